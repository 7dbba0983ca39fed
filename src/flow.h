/* SPDX-License-Identifier: GPL-2.0-or-later */
/* flow.h - one guest TCP connection: classification, TLS, HTTP, policy */
#pragma once

#include <glib.h>

#include "session.h"
#include "stack.h"

typedef struct MoatFlow MoatFlow;

MoatFlow *moat_flow_new (MoatSession *session, int fd,
                         const MoatFlowKey *key);
void moat_flow_free (MoatFlow *flow);
