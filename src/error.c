/* SPDX-License-Identifier: GPL-2.0-or-later */
/* error.c - the GError domain shared by all moat modules */
#include "error.h"

G_DEFINE_QUARK (moat-error-quark, moat_error)
