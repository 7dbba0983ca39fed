/* SPDX-License-Identifier: GPL-2.0-or-later */
/* guard.h - checks every guest frame before libslirp sees it */
#pragma once

#include <glib.h>

#include "session.h"

MoatGuard *moat_guard_new (MoatSession *session);
void moat_guard_free (MoatGuard *guard);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatGuard, moat_guard_free)

void moat_guard_input (MoatGuard *guard, const guint8 *frame, gsize length);
