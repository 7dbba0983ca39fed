/* SPDX-License-Identifier: GPL-2.0-or-later */
/* policy.h - host patterns, request rules and the allow/deny decision */
#pragma once

#include <glib.h>

typedef struct MoatPolicy MoatPolicy;

typedef enum {
  MOAT_RULE_ALLOW,
  MOAT_RULE_DENY,
} MoatRuleAction;

/**
 * MoatPolicyMode:
 * @MOAT_POLICY_MODE_ENFORCE: denied requests get a 403
 * @MOAT_POLICY_MODE_REPORT: every request goes upstream, and the ones the
 *   policy would deny are audited as "would-deny"
 */
typedef enum {
  MOAT_POLICY_MODE_ENFORCE,
  MOAT_POLICY_MODE_REPORT,
} MoatPolicyMode;

/**
 * MoatRuleSpec:
 * @name: rule name, unique within a policy
 * @hosts: (nullable): host patterns, %NULL-terminated; %NULL matches any host
 * @ports: (nullable): ports ("443") or port ranges ("8000-8999"); %NULL
 *   matches any port
 * @methods: (nullable): request methods, case-sensitive; %NULL matches any
 * @paths: (nullable): path patterns; %NULL matches any path
 * @action: whether a matching request is allowed or denied
 *
 * One "[rule NAME]" group of the configuration, as text. moat_policy_new_full()
 * checks and compiles it.
 */
typedef struct {
  char *name;
  char **hosts;
  char **ports;
  char **methods;
  char **paths;
  MoatRuleAction action;
} MoatRuleSpec;

MoatRuleSpec *moat_rule_spec_new (const char *name);
void moat_rule_spec_free (MoatRuleSpec *spec);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatRuleSpec, moat_rule_spec_free)

/**
 * MoatPolicyRequest:
 * @host: host name the request is for (the DNS name of the connection)
 * @port: destination port of the connection
 * @method: request method
 * @path: origin-form request target: the path, optionally with a query,
 *   as sent by the client (percent-encoded, not normalised)
 */
typedef struct {
  const char *host;
  guint port;
  const char *method;
  const char *path;
} MoatPolicyRequest;

/**
 * MoatPolicyDecision:
 * @allowed: whether the policy allows the request
 * @rule: name of the deciding rule; "default" when no rule matched or the
 *   request could not be checked
 * @reason: sentence for the audit log and the 403 response
 */
typedef struct {
  gboolean allowed;
  char *rule;
  char *reason;
} MoatPolicyDecision;

/* Name of the decision when no allow rule matches. */
#define MOAT_POLICY_DEFAULT_RULE "default"
/* Rule names of the host-only shorthand in the [policy] group. */
#define MOAT_POLICY_ALLOW_RULE "policy.allow"
#define MOAT_POLICY_DENY_RULE "policy.deny"

gboolean moat_host_pattern_validate (const char *pattern, GError **error);
gboolean moat_host_name_validate (const char *host, GError **error);
gboolean moat_host_pattern_match (const char *pattern, const char *host);

gboolean moat_rule_name_validate (const char *name, GError **error);
gboolean moat_port_range_parse (const char *text, guint *first, guint *last,
                                GError **error);
gboolean moat_method_validate (const char *method, GError **error);
gboolean moat_path_pattern_validate (const char *pattern, GError **error);
gboolean moat_path_pattern_match (const char *pattern,
                                  const char *normalized_path);
char *moat_path_normalize (const char *target, GError **error);

MoatPolicy *moat_policy_new (const char *const *allow,
                             const char *const *deny, GError **error);
MoatPolicy *moat_policy_new_full (const char *const *allow,
                                  const char *const *deny,
                                  const GPtrArray *rules,
                                  MoatPolicyMode mode, GError **error);
MoatPolicy *moat_policy_ref (MoatPolicy *policy);
void moat_policy_unref (MoatPolicy *policy);
void moat_policy_free (MoatPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatPolicy, moat_policy_unref)

MoatPolicyMode moat_policy_get_mode (const MoatPolicy *policy);
guint moat_policy_get_rule_count (const MoatPolicy *policy);
guint moat_policy_count_rules (const MoatPolicy *policy,
                               MoatRuleAction action);
char *moat_policy_describe (const MoatPolicy *policy);

gboolean moat_policy_allows_host (const MoatPolicy *policy, const char *host,
                                  char **reason);
gboolean moat_policy_decide (const MoatPolicy *policy,
                             const MoatPolicyRequest *request,
                             MoatPolicyDecision *decision);
void moat_policy_decision_clear (MoatPolicyDecision *decision);
