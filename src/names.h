/* SPDX-License-Identifier: GPL-2.0-or-later */
/* names.h - the table of synthetic addresses handed out by moat's DNS */
#pragma once

#include <glib.h>
#include <netinet/in.h>

typedef struct MoatNames MoatNames;

/* Called before the address of @name is given to another name. */
typedef void (*MoatNamesEvictFunc) (struct in_addr address, const char *name,
                                    gpointer user_data);

MoatNames *moat_names_new (struct in_addr first, guint count,
                           MoatNamesEvictFunc evict, gpointer user_data);
void moat_names_free (MoatNames *names);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatNames, moat_names_free)

struct in_addr moat_names_resolve (MoatNames *names, const char *name);
const char *moat_names_lookup (MoatNames *names, struct in_addr address);
gboolean moat_names_contains_address (const MoatNames *names,
                                      struct in_addr address);
