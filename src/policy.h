/* SPDX-License-Identifier: GPL-2.0-or-later */
/* policy.h - host patterns and the allow/deny decision for a request */
#pragma once

#include <glib.h>

typedef struct MoatPolicy MoatPolicy;

gboolean moat_host_pattern_validate (const char *pattern, GError **error);
gboolean moat_host_name_validate (const char *host, GError **error);
gboolean moat_host_pattern_match (const char *pattern, const char *host);

MoatPolicy *moat_policy_new (const char *const *allow,
                             const char *const *deny, GError **error);
void moat_policy_free (MoatPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatPolicy, moat_policy_free)

gboolean moat_policy_allows_host (const MoatPolicy *policy, const char *host,
                                  char **reason);
