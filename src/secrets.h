/* SPDX-License-Identifier: GPL-2.0-or-later */
/* secrets.h - credentials kept out of the guest behind per-session placeholders */
#pragma once

#include <glib.h>

typedef struct MoatSecrets MoatSecrets;

/* Prefix of every placeholder: "moat-placeholder-NAME-<32 hex digits>". */
#define MOAT_PLACEHOLDER_PREFIX "moat-placeholder-"
/* Maximum length of a secret value in bytes. */
#define MOAT_SECRET_VALUE_MAX 8192

MoatSecrets *moat_secrets_new (const GPtrArray *specs,
                               const MoatSecrets *previous, GError **error);
MoatSecrets *moat_secrets_ref (MoatSecrets *secrets);
void moat_secrets_unref (MoatSecrets *secrets);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatSecrets, moat_secrets_unref)

guint moat_secrets_get_count (const MoatSecrets *secrets);
const char *moat_secrets_get_placeholder (const MoatSecrets *secrets,
                                          const char *name);
gboolean moat_secrets_write_placeholders (const MoatSecrets *secrets,
                                          const char *path, GError **error);

const char *moat_secrets_find_misplaced (const MoatSecrets *secrets,
                                         const char *host, const char *text);
gboolean moat_secrets_inject (const MoatSecrets *secrets, const char *host,
                              GPtrArray *headers, const char **misplaced);
char *moat_secrets_scrub (const MoatSecrets *secrets, const char *value);
