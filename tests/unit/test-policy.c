/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-policy.c - unit tests for host patterns, rules and decisions */
#include <string.h>

#include "error.h"
#include "policy.h"

typedef struct {
  const char *description;
  const char *pattern;
  const char *host;
  gboolean expected;
} MatchCase;

static const MatchCase match_cases[] = {
  { "exact name", "api.example.com", "api.example.com", TRUE },
  { "exact name, other host", "api.example.com", "www.example.com", FALSE },
  { "exact name, subdomain", "example.com", "a.example.com", FALSE },
  { "exact name, longer suffix", "example.com", "badexample.com", FALSE },
  { "host is a prefix of pattern", "api.example.com", "api.example", FALSE },
  { "uppercase host", "api.example.com", "API.Example.COM", TRUE },
  { "uppercase pattern", "API.EXAMPLE.com", "api.example.com", TRUE },
  { "trailing dot on host", "api.example.com", "api.example.com.", TRUE },
  { "trailing dot on pattern", "api.example.com.", "api.example.com", TRUE },
  { "trailing dot on both", "api.example.com.", "api.example.com.", TRUE },
  { "two trailing dots on host", "api.example.com", "api.example.com..",
    FALSE },
  { "wildcard, one label", "*.github.com", "api.github.com", TRUE },
  { "wildcard, deeper name", "*.github.com", "a.b.github.com", TRUE },
  { "wildcard, bare suffix", "*.github.com", "github.com", FALSE },
  { "wildcard, bare suffix with dot", "*.github.com", "github.com.", FALSE },
  { "wildcard, suffix without dot", "*.github.com", "evilgithub.com", FALSE },
  { "wildcard, other suffix", "*.github.com", "github.com.evil.test", FALSE },
  { "wildcard, uppercase host", "*.github.com", "API.GitHub.Com", TRUE },
  { "wildcard, trailing dot", "*.github.com.", "api.github.com", TRUE },
  { "wildcard, empty first label", "*.github.com", ".github.com", FALSE },
  { "IPv4 literal", "127.0.0.1", "127.0.0.1", TRUE },
  { "IPv4 literal, other address", "127.0.0.1", "127.0.0.2", FALSE },
  { "IPv4 literal, longer address", "127.0.0.1", "127.0.0.11", FALSE },
  { "underscore", "_acme.example.com", "_acme.example.com", TRUE },
  { "empty host", "example.com", "", FALSE },
  { "host with a port", "example.com", "example.com:443", FALSE },
  { "host with a wildcard", "*.example.com", "*.example.com", FALSE },
  { "host with a space", "example.com", "example.com ", FALSE },
  { "host with a NUL-free control byte", "example.com", "exam\x01ple.com",
    FALSE },
  { "invalid pattern matches nothing", "*", "example.com", FALSE },
  { "short IPv4 form of host", "127.0.0.1", "127.1", FALSE },
  { "hexadecimal IPv4 form of host", "127.0.0.1", "0x7f.0.0.1", FALSE },
};

static void
test_match (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (match_cases); i++)
    {
      const MatchCase *c = &match_cases[i];
      gboolean matched = moat_host_pattern_match (c->pattern, c->host);

      g_test_message ("%s: pattern \"%s\", host \"%s\"", c->description,
                      c->pattern, c->host);
      if (matched != c->expected)
        g_test_fail_printf ("%s: pattern \"%s\" %s host \"%s\"",
                            c->description, c->pattern,
                            matched ? "matches" : "does not match", c->host);
    }
}

typedef struct {
  const char *description;
  const char *pattern;
  const char *message; /* substring expected in the error, NULL if valid */
} ValidateCase;

static const ValidateCase validate_cases[] = {
  { "name", "api.example.com", NULL },
  { "one label", "localhost", NULL },
  { "wildcard", "*.example.com", NULL },
  { "wildcard over a top-level domain", "*.com", NULL },
  { "trailing dot", "example.com.", NULL },
  { "IPv4 literal", "127.0.0.1", NULL },
  { "hyphen and underscore", "my-host_1.example.com", NULL },
  { "63-byte label",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
    NULL },
  { "empty", "", "invalid host pattern \"\": empty name" },
  { "single dot", ".", "invalid host pattern \".\": empty name" },
  { "star alone", "*", "invalid host pattern \"*\": \"*\" alone would match "
    "every host" },
  { "star and dot", "*.", "invalid host pattern \"*.\": \"*\" alone" },
  { "star in a later label", "*.*.com", "invalid host pattern \"*.*.com\": "
    "\"*\" is only allowed as the whole first label (\"*.example.com\")" },
  { "star inside a label", "api*.example.com", "invalid host pattern "
    "\"api*.example.com\": \"*\" is only allowed as the whole first label" },
  { "star at the end", "example.*", "\"*\" is only allowed as the whole "
    "first label" },
  { "star without a dot", "*example.com", "\"*\" is only allowed as the "
    "whole first label" },
  { "empty label", "a..b", "invalid host pattern \"a..b\": empty label" },
  { "leading dot", ".example.com", "empty label" },
  { "two trailing dots", "example.com..", "empty label" },
  { "wildcard with empty label", "*..com", "empty label" },
  { "64-byte label",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
    "is 64 bytes long, more than the 63 bytes allowed for a DNS label" },
  { "space", "example .com", "invalid byte 0x20" },
  { "colon", "example.com:443", "invalid character ':' (a port is not part "
    "of a host pattern: put it in the \"ports\" key of a [rule NAME] "
    "group" },
  { "slash", "example.com/path", "invalid character '/' (a path is not part "
    "of a host pattern: put it in the \"paths\" key of a [rule NAME] "
    "group" },
  { "IPv6 literal", "::1", "invalid character ':'" },
  { "exclamation mark", "a!.example.com", "invalid character '!'; only "
    "letters" },
  { "non-ASCII", "\xc3\xa9xample.com", "invalid byte 0xc3" },
  { "advice", "a..b", "a valid pattern is a host name (\"api.example.com\")" },
  { "numeric first label", "123.example.com", NULL },
  { "all-zero address", "0.0.0.0", NULL },
  { "short IPv4 form", "127.1", "invalid host pattern \"127.1\": the last "
    "label is a number, but the name is not an IPv4 address" },
  { "IPv4 octet above 255", "1.2.3.256", "the last label is a number" },
  { "IPv4 leading zero", "1.2.3.04", "the last label is a number" },
  { "five numbers", "1.2.3.4.5", "the last label is a number" },
  { "numeric top-level domain", "example.123", "the last label is a number" },
  { "wildcard over addresses", "*.0.0.1", "the last label is a number" },
};

static void
test_validate (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (validate_cases); i++)
    {
      const ValidateCase *c = &validate_cases[i];
      g_autoptr (GError) error = NULL;
      gboolean valid = moat_host_pattern_validate (c->pattern, &error);

      g_test_message ("%s: \"%s\"", c->description, c->pattern);
      if (c->message == NULL)
        {
          g_assert_no_error (error);
          g_assert_true (valid);
        }
      else
        {
          g_assert_false (valid);
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
          if (strstr (error->message, c->message) == NULL)
            g_test_fail_printf ("%s: error \"%s\" lacks \"%s\"",
                                c->description, error->message, c->message);
        }
    }
}

static void
test_validate_name_length (void)
{
  g_autofree char *label63 = g_strnfill (63, 'a');
  g_autofree char *label61 = g_strnfill (61, 'b');
  g_autofree char *name = NULL;
  g_autofree char *absolute = NULL;
  g_autofree char *too_long = NULL;
  g_autoptr (GError) error = NULL;

  /* 3 * 63 + 61 bytes of labels and 3 dots: exactly 253 bytes. */
  name = g_strjoin (".", label63, label63, label63, label61, NULL);
  g_assert_cmpuint (strlen (name), ==, 253);
  g_assert_true (moat_host_pattern_validate (name, &error));
  g_assert_no_error (error);

  /* The trailing dot of an absolute name does not count. */
  absolute = g_strconcat (name, ".", NULL);
  g_assert_true (moat_host_pattern_validate (absolute, &error));
  g_assert_no_error (error);

  too_long = g_strconcat (name, "b", NULL);
  g_assert_false (moat_host_pattern_validate (too_long, &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "254 bytes long, more than the "
                                            "253 bytes allowed"));
}

typedef struct {
  const char *description;
  const char *host;
  const char *message; /* substring expected in the error, NULL if valid */
} HostNameCase;

static const HostNameCase host_name_cases[] = {
  { "name", "api.example.com", NULL },
  { "trailing dot", "api.example.com.", NULL },
  { "IPv4 literal", "127.0.0.1", NULL },
  { "wildcard", "*.example.com", "invalid host name \"*.example.com\": "
    "\"*\" is not allowed in a host name" },
  { "star alone", "*", "\"*\" is not allowed in a host name" },
  { "empty", "", "invalid host name \"\": empty name" },
  { "port", "example.com:443", "invalid character ':'" },
  { "bracketed IPv6", "[::1]", "invalid character '['" },
  { "short IPv4 form", "127.1", "the last label is a number" },
};

static void
test_host_name_validate (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (host_name_cases); i++)
    {
      const HostNameCase *c = &host_name_cases[i];
      g_autoptr (GError) error = NULL;
      gboolean valid = moat_host_name_validate (c->host, &error);

      g_test_message ("%s: \"%s\"", c->description, c->host);
      if (c->message == NULL)
        {
          g_assert_no_error (error);
          g_assert_true (valid);
        }
      else
        {
          g_assert_false (valid);
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
          if (strstr (error->message, c->message) == NULL)
            g_test_fail_printf ("%s: error \"%s\" lacks \"%s\"",
                                c->description, error->message, c->message);
        }
    }
}

typedef struct {
  const char *description;
  const char *host;
  gboolean allowed;
  const char *reason;
} DecisionCase;

static const char *const decision_allow[] = {
  "api.example.com", "*.github.com", "127.0.0.1", NULL,
};
static const char *const decision_deny[] = {
  "uploads.github.com", "*.gist.github.com", NULL,
};

static const DecisionCase decision_cases[] = {
  { "exact allow", "api.example.com", TRUE,
    "host \"api.example.com\" matches allow pattern \"api.example.com\"" },
  { "wildcard allow", "api.github.com", TRUE,
    "host \"api.github.com\" matches allow pattern \"*.github.com\"" },
  { "deny wins over wildcard allow", "uploads.github.com", FALSE,
    "host \"uploads.github.com\" matches deny pattern "
    "\"uploads.github.com\"" },
  { "deny wins, uppercase and dot", "Uploads.GitHub.com.", FALSE,
    "host \"Uploads.GitHub.com.\" matches deny pattern "
    "\"uploads.github.com\"" },
  { "wildcard deny", "x.gist.github.com", FALSE,
    "host \"x.gist.github.com\" matches deny pattern \"*.gist.github.com\"" },
  { "bare suffix of wildcard deny", "gist.github.com", TRUE,
    "host \"gist.github.com\" matches allow pattern \"*.github.com\"" },
  { "bare suffix of wildcard allow", "github.com", FALSE,
    "host \"github.com\" matches no allow pattern" },
  { "no allow match", "evil.test", FALSE,
    "host \"evil.test\" matches no allow pattern" },
  { "IPv4 literal", "127.0.0.1", TRUE,
    "host \"127.0.0.1\" matches allow pattern \"127.0.0.1\"" },
  { "invalid host", "api.example.com:443", FALSE,
    "host \"api.example.com:443\" is not a valid host name: invalid "
    "character ':'; only letters" },
  { "control byte escaped", "a\nb", FALSE,
    "host \"a\\nb\" is not a valid host name" },
  { "empty host", "", FALSE, "host \"\" is not a valid host name: empty" },
};

static void
test_decision (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatPolicy) policy = moat_policy_new (decision_allow,
                                                   decision_deny, &error);

  g_assert_no_error (error);
  g_assert_nonnull (policy);

  for (gsize i = 0; i < G_N_ELEMENTS (decision_cases); i++)
    {
      const DecisionCase *c = &decision_cases[i];
      g_autofree char *reason = NULL;
      gboolean allowed;

      g_test_message ("%s: \"%s\"", c->description, c->host);
      allowed = moat_policy_allows_host (policy, c->host, &reason);
      g_assert_cmpint (allowed, ==, c->allowed);
      g_assert_nonnull (reason);
      if (strstr (reason, c->reason) != reason)
        g_test_fail_printf ("%s: reason \"%s\", expected \"%s\"",
                            c->description, reason, c->reason);

      /* The reason is optional. */
      g_assert_cmpint (moat_policy_allows_host (policy, c->host, NULL), ==,
                       c->allowed);
    }
}

static void
test_empty_allow_denies_all (void)
{
  const char *const empty[] = { NULL };
  const char *const hosts[] = { "example.com", "127.0.0.1", "localhost" };
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatPolicy) from_null = moat_policy_new (NULL, NULL, &error);
  g_autoptr (MoatPolicy) from_empty = NULL;

  g_assert_no_error (error);
  from_empty = moat_policy_new (empty, empty, &error);
  g_assert_no_error (error);

  for (gsize i = 0; i < G_N_ELEMENTS (hosts); i++)
    {
      g_autofree char *reason = NULL;

      g_assert_false (moat_policy_allows_host (from_null, hosts[i], NULL));
      g_assert_false (moat_policy_allows_host (from_empty, hosts[i],
                                               &reason));
      g_assert_nonnull (strstr (reason, "matches no allow pattern"));
    }
}

static void
test_deny_only (void)
{
  const char *const allow[] = { "api.example.com", NULL };
  const char *const deny[] = { "API.EXAMPLE.COM.", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatPolicy) policy = moat_policy_new (allow, deny, &error);
  g_autofree char *reason = NULL;

  g_assert_no_error (error);
  g_assert_false (moat_policy_allows_host (policy, "api.example.com",
                                           &reason));
  /* Patterns are stored lowercase without the trailing dot. */
  g_assert_cmpstr (reason, ==, "host \"api.example.com\" matches deny "
                               "pattern \"api.example.com\"");
}

static void
test_invalid_pattern (void)
{
  const char *const good[] = { "example.com", NULL };
  const char *const bad_allow[] = { "example.com", "*.*.com", NULL };
  const char *const bad_deny[] = { "a..b", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatPolicy) policy = NULL;

  policy = moat_policy_new (bad_allow, good, &error);
  g_assert_null (policy);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "allow pattern 2: invalid host "
                                            "pattern \"*.*.com\""));
  g_clear_error (&error);

  policy = moat_policy_new (good, bad_deny, &error);
  g_assert_null (policy);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "deny pattern 1: invalid host "
                                            "pattern \"a..b\""));
}

typedef struct {
  const char *description;
  const char *target;
  const char *expected; /* NULL when normalisation must fail */
} NormalizeCase;

static const NormalizeCase normalize_cases[] = {
  { "root", "/", "/" },
  { "plain path", "/repos/moat", "/repos/moat" },
  { "query removed", "/repos/moat?ref=../admin", "/repos/moat" },
  { "fragment removed", "/a#b", "/a" },
  { "trailing slash kept", "/repos/", "/repos/" },
  { "dot-dot removes a segment", "/repos/../admin", "/admin" },
  { "dot-dot at the root stays there", "/../../admin", "/admin" },
  { "dot segment removed", "/repos/./moat", "/repos/moat" },
  { "trailing dot-dot", "/repos/moat/..", "/repos/" },
  { "trailing dot", "/repos/.", "/repos/" },
  { "empty segments collapsed", "//repos///moat", "/repos/moat" },
  { "encoded dot-dot", "/repos/%2e%2e/admin", "/admin" },
  { "encoded uppercase dot-dot", "/repos/%2E%2E/admin", "/admin" },
  { "mixed encoded dot-dot", "/repos/.%2e/admin", "/admin" },
  { "encoded slash splits segments", "/repos%2F..%2Fadmin", "/admin" },
  { "encoded letters decoded", "/%72epos/x", "/repos/x" },
  { "double encoding decoded once", "/repos/%252e%252e/admin",
    "/repos/%2e%2e/admin" },
  { "dot-dot as part of a name", "/repos/..x/a", "/repos/..x/a" },
  { "encoded NUL", "/repos/%00/x", NULL },
  { "truncated escape", "/repos/%2", NULL },
  { "invalid hex digit", "/repos/%zz", NULL },
  { "not starting with slash", "repos/x", NULL },
  { "asterisk form", "*", NULL },
};

static void
test_path_normalize (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (normalize_cases); i++)
    {
      const NormalizeCase *c = &normalize_cases[i];
      g_autoptr (GError) error = NULL;
      g_autofree char *path = moat_path_normalize (c->target, &error);

      g_test_message ("%s: \"%s\"", c->description, c->target);
      if (c->expected == NULL)
        {
          g_assert_null (path);
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
        }
      else
        {
          g_assert_no_error (error);
          if (g_strcmp0 (path, c->expected) != 0)
            g_test_fail_printf ("%s: \"%s\" normalised to \"%s\", "
                                "expected \"%s\"", c->description,
                                c->target, path, c->expected);
        }
    }
}

static const MatchCase path_match_cases[] = {
  { "exact", "/user", "/user", TRUE },
  { "exact, longer path", "/user", "/user/keys", FALSE },
  { "exact, trailing slash", "/user", "/user/", FALSE },
  { "star in one segment", "/repos/*", "/repos/moat", TRUE },
  { "star, empty segment", "/repos/*", "/repos/", TRUE },
  { "star does not cross a slash", "/repos/*", "/repos/a/b", FALSE },
  { "star, missing segment", "/repos/*", "/repos", FALSE },
  { "star inside a segment", "/files/*.tar.gz", "/files/moat-1.0.tar.gz",
    TRUE },
  { "star inside a segment, wrong suffix", "/files/*.tar.gz",
    "/files/moat.zip", FALSE },
  { "star inside a segment, crosses", "/files/*.tar.gz",
    "/files/a/b.tar.gz", FALSE },
  { "two stars in a pattern", "/repos/*/*/issues", "/repos/a/b/issues",
    TRUE },
  { "two stars, one segment short", "/repos/*/*/issues", "/repos/a/issues",
    FALSE },
  { "globstar crosses segments", "/repos/**", "/repos/a/b/c", TRUE },
  { "globstar, one segment", "/repos/**", "/repos/a", TRUE },
  { "globstar, other prefix", "/repos/**", "/admin/a", FALSE },
  { "globstar in the middle", "/a/**/z", "/a/b/c/z", TRUE },
  { "globstar in the middle, wrong end", "/a/**/z", "/a/b/c/y", FALSE },
  { "globstar in the middle, no segment", "/a/**/b", "/a/b", TRUE },
  { "globstar in the middle, one segment", "/a/**/b", "/a/x/b", TRUE },
  { "globstar in the middle, suffix of a segment", "/a/**/b", "/a/xb",
    FALSE },
  { "globstar in the middle, prefix of a segment", "/a/**/b", "/ax/b",
    FALSE },
  { "globstar in the middle, longer last segment", "/a/**/b", "/a/x/bc",
    FALSE },
  { "globstar first", "/**/private", "/private", TRUE },
  { "globstar first, deeper", "/**/private", "/a/b/private", TRUE },
  { "globstar first, partial segment", "/**/private", "/aprivate", FALSE },
  { "two globstars", "/**/x/**", "/a/x/b/c", TRUE },
  { "two globstars, bare segment", "/**/x/**", "/x/", TRUE },
  { "globstar and star", "/a/**/*.git", "/a/b/c/d.git", TRUE },
  { "globstar and star, no segment", "/a/**/*.git", "/a/d.git", TRUE },
  { "globstar before a final slash", "/a/**/", "/a/", TRUE },
  { "globstar before a final slash, deeper", "/a/**/", "/a/b/", TRUE },
  { "globstar before a final slash, no slash", "/a/**/", "/a/b", FALSE },
  { "final globstar, trailing slash", "/admin/**", "/admin/", TRUE },
  { "final globstar, bare prefix", "/admin/**", "/admin", FALSE },
  { "final globstar, longer segment", "/admin/**", "/administrator", FALSE },
  { "exact does not cover a subtree", "/admin", "/admin/x", FALSE },
  { "globstar alone", "/**", "/anything/at/all", TRUE },
  { "globstar alone, root", "/**", "/", TRUE },
  { "star followed by literal", "/*/issues", "/moat/issues", TRUE },
  { "case-sensitive", "/User", "/user", FALSE },
  { "many stars, no match", "/*a*a*a*a*a*b", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    FALSE },
};

static void
test_path_match (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (path_match_cases); i++)
    {
      const MatchCase *c = &path_match_cases[i];
      gboolean matched;

      g_assert_true (moat_path_pattern_validate (c->pattern, NULL));
      matched = moat_path_pattern_match (c->pattern, c->host);
      g_test_message ("%s: pattern \"%s\", path \"%s\"", c->description,
                      c->pattern, c->host);
      if (matched != c->expected)
        g_test_fail_printf ("%s: pattern \"%s\" %s path \"%s\"",
                            c->description, c->pattern,
                            matched ? "matches" : "does not match", c->host);
    }
}

typedef struct {
  const char *description;
  const char *host;
  guint port;
  const char *method;
  const char *path;
  gboolean allowed;
  const char *rule;
} RuleCase;

/* Read-only GitHub, no uploads to GitHub, no "private" path segment on any
 * host, and a package registry allowed by the [policy] shorthands. */
static const char *const rule_allow[] = { "registry.example", NULL };
static const char *const rule_deny[] = { "evil.registry.example", NULL };

static const RuleCase rule_cases[] = {
  { "allowed by path and method", "api.github.com", 443, "GET",
    "/repos/moat", TRUE, "github-read" },
  { "HEAD allowed too", "api.github.com", 443, "HEAD", "/user", TRUE,
    "github-read" },
  { "wildcard host", "raw.githubusercontent.com", 443, "GET", "/user",
    TRUE, "github-read" },
  { "host case and trailing dot", "API.GitHub.com.", 443, "GET",
    "/user", TRUE, "github-read" },
  { "query ignored", "api.github.com", 443, "GET", "/user?page=2", TRUE,
    "github-read" },
  { "wrong port", "api.github.com", 80, "GET", "/user", FALSE, "default" },
  { "wrong method", "api.github.com", 443, "DELETE", "/user", FALSE,
    "github-uploads" },
  { "method is case-sensitive", "api.github.com", 443, "get", "/user",
    FALSE, "default" },
  { "path outside the rule", "api.github.com", 443, "GET", "/admin", FALSE,
    "default" },
  { "dot-dot escapes the rule", "api.github.com", 443, "GET",
    "/repos/../admin", FALSE, "default" },
  { "encoded dot-dot escapes the rule", "api.github.com", 443, "GET",
    "/repos/%2e%2e/admin", FALSE, "default" },
  { "encoded slash adds a segment", "api.github.com", 443, "GET",
    "/repos/a%2Fb", FALSE, "default" },
  { "dot-dot back into the rule", "api.github.com", 443, "GET",
    "/admin/../repos/moat", TRUE, "github-read" },
  { "deny rule wins over allow rule", "api.github.com", 443, "POST",
    "/repos/moat", FALSE, "github-uploads" },
  { "deny rule with encoded path", "api.github.com", 443, "PUT",
    "/%72epos/x", FALSE, "github-uploads" },
  { "deny for a path anywhere", "registry.example", 443, "GET",
    "/x/y/private/z", FALSE, "no-private" },
  { "deny path traversal target", "registry.example", 443, "GET",
    "/x/private/a/../../../x/private/b", FALSE, "no-private" },
  { "policy.allow host shorthand", "registry.example", 80, "DELETE",
    "/anything", TRUE, "policy.allow" },
  { "policy.deny host shorthand", "evil.registry.example", 443, "GET", "/",
    FALSE, "policy.deny" },
  { "no rule", "example.com", 443, "GET", "/", FALSE, "default" },
  { "invalid host", "a b", 443, "GET", "/", FALSE, "default" },
  { "invalid path", "api.github.com", 443, "GET", "/repos/%zz", FALSE,
    "default" },
  { "NUL in path", "api.github.com", 443, "GET", "/repos/%00", FALSE,
    "default" },
};

static MoatPolicy *
new_rule_policy (MoatPolicyMode mode, GError **error)
{
  g_autoptr (GPtrArray) rules = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_rule_spec_free);
  MoatRuleSpec *rule;

  rule = moat_rule_spec_new ("github-read");
  rule->hosts = g_strsplit ("api.github.com;*.githubusercontent.com", ";",
                            -1);
  rule->ports = g_strsplit ("443", ";", -1);
  rule->methods = g_strsplit ("GET;HEAD", ";", -1);
  rule->paths = g_strsplit ("/repos/*;/user", ";", -1);
  rule->action = MOAT_RULE_ALLOW;
  g_ptr_array_add (rules, rule);

  rule = moat_rule_spec_new ("github-uploads");
  rule->hosts = g_strsplit ("*.github.com", ";", -1);
  rule->methods = g_strsplit ("POST;PUT;PATCH;DELETE", ";", -1);
  rule->action = MOAT_RULE_DENY;
  g_ptr_array_add (rules, rule);

  rule = moat_rule_spec_new ("no-private");
  rule->paths = g_strsplit ("/**/private/**", ";", -1);
  rule->ports = g_strsplit ("1-442;443;444-65535", ";", -1);
  rule->action = MOAT_RULE_DENY;
  g_ptr_array_add (rules, rule);

  return moat_policy_new_full (rule_allow, rule_deny, rules, mode, error);
}

static void
test_rules (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatPolicy) policy = new_rule_policy (MOAT_POLICY_MODE_ENFORCE,
                                                   &error);

  g_assert_no_error (error);
  g_assert_cmpuint (moat_policy_get_rule_count (policy), ==, 5);

  for (gsize i = 0; i < G_N_ELEMENTS (rule_cases); i++)
    {
      const RuleCase *c = &rule_cases[i];
      MoatPolicyRequest request = { c->host, c->port, c->method, c->path };
      MoatPolicyDecision decision;
      gboolean allowed;

      g_test_message ("%s: %s %s:%u%s", c->description, c->method, c->host,
                      c->port, c->path);
      allowed = moat_policy_decide (policy, &request, &decision);
      g_assert_cmpint (allowed, ==, decision.allowed);
      g_assert_nonnull (decision.reason);
      if (allowed != c->allowed || g_strcmp0 (decision.rule, c->rule) != 0)
        g_test_fail_printf ("%s: %s by rule \"%s\" (%s), expected %s by "
                            "\"%s\"", c->description,
                            allowed ? "allowed" : "denied", decision.rule,
                            decision.reason,
                            c->allowed ? "allowed" : "denied", c->rule);
      moat_policy_decision_clear (&decision);
    }
}

static void
test_rule_reasons (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatPolicy) policy = new_rule_policy (MOAT_POLICY_MODE_REPORT,
                                                   &error);
  MoatPolicyRequest post = { "api.github.com", 443, "POST", "/repos/x" };
  MoatPolicyRequest get = { "api.github.com", 443, "GET", "/repos/x" };
  MoatPolicyRequest other = { "example.com", 8080, "GET", "/a/%0a" };
  MoatPolicyDecision decision;

  g_assert_no_error (error);
  g_assert_cmpint (moat_policy_get_mode (policy), ==,
                   MOAT_POLICY_MODE_REPORT);

  /* The decision itself does not depend on the mode. */
  g_assert_false (moat_policy_decide (policy, &post, &decision));
  g_assert_cmpstr (decision.reason, ==, "POST api.github.com:443/repos/x "
                   "matches deny rule \"github-uploads\" (host pattern "
                   "\"*.github.com\")");
  moat_policy_decision_clear (&decision);

  g_assert_true (moat_policy_decide (policy, &get, &decision));
  g_assert_cmpstr (decision.reason, ==, "GET api.github.com:443/repos/x "
                   "matches allow rule \"github-read\" (host pattern "
                   "\"api.github.com\")");
  moat_policy_decision_clear (&decision);

  /* A decoded control byte is escaped in the reason. */
  g_assert_false (moat_policy_decide (policy, &other, &decision));
  g_assert_cmpstr (decision.rule, ==, "default");
  g_assert_cmpstr (decision.reason, ==, "GET example.com:8080/a/\\n "
                   "matches no allow rule");
  moat_policy_decision_clear (&decision);
}

static void
test_rules_dns (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatPolicy) policy = new_rule_policy (MOAT_POLICY_MODE_ENFORCE,
                                                   &error);
  g_autofree char *reason = NULL;

  g_assert_no_error (error);
  /* A rule with methods denies only some requests, not the name. */
  g_assert_true (moat_policy_allows_host (policy, "api.github.com",
                                          &reason));
  g_assert_cmpstr (reason, ==, "host \"api.github.com\" matches allow rule "
                   "\"github-read\" (host pattern \"api.github.com\")");
  g_clear_pointer (&reason, g_free);
  g_assert_false (moat_policy_allows_host (policy, "evil.registry.example",
                                           &reason));
  g_assert_cmpstr (reason, ==, "host \"evil.registry.example\" matches deny "
                   "pattern \"evil.registry.example\"");
  g_clear_pointer (&reason, g_free);
  g_assert_false (moat_policy_allows_host (policy, "gitlab.com", NULL));
}

typedef struct {
  const char *description;
  const char *name;
  const char *field;
  const char *value;
  const char *message;
} RuleErrorCase;

static const RuleErrorCase rule_error_cases[] = {
  { "reserved name", "default", NULL, NULL,
    "invalid rule name \"default\"" },
  { "reserved prefix", "secret.x", NULL, NULL,
    "invalid rule name \"secret.x\"" },
  { "invalid host", "r", "hosts", "a..b",
    "rule \"r\": invalid host pattern \"a..b\"" },
  { "invalid port", "r", "ports", "65536", "rule \"r\": invalid port" },
  { "invalid range", "r", "ports", "1-2-3", "rule \"r\": invalid port" },
  { "invalid method", "r", "methods", "GE T",
    "rule \"r\": invalid method \"GE T\": invalid character 0x20" },
  { "three stars", "r", "paths", "/a/***",
    "rule \"r\": invalid path pattern \"/a/***\"" },
  { "globstar inside a segment", "r", "paths", "/re**pos",
    "invalid path pattern \"/re**pos\": \"**\" matches whole segments, "
    "so it must be a whole segment" },
  { "globstar at a segment end", "r", "paths", "/a**",
    "invalid path pattern \"/a**\": \"**\" matches whole segments" },
  { "globstar at a segment start", "r", "paths", "/**.git",
    "invalid path pattern \"/**.git\": \"**\" matches whole segments" },
  { "empty segment", "r", "paths", "/a//b",
    "rule \"r\": invalid path pattern \"/a//b\"" },
  { "control byte", "r", "paths", "/a\tb",
    "invalid path pattern \"/a\\tb\": only visible ASCII" },
};

static void
test_rule_errors (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (rule_error_cases); i++)
    {
      const RuleErrorCase *c = &rule_error_cases[i];
      g_autoptr (GPtrArray) rules = g_ptr_array_new_with_free_func (
          (GDestroyNotify) moat_rule_spec_free);
      MoatRuleSpec *rule = moat_rule_spec_new (c->name);
      g_autoptr (GError) error = NULL;
      g_autoptr (MoatPolicy) policy = NULL;
      char *values[] = { (char *) c->value, NULL };

      g_test_message ("%s", c->description);
      if (c->field != NULL && strcmp (c->field, "hosts") == 0)
        rule->hosts = g_strdupv (values);
      else if (c->field != NULL && strcmp (c->field, "ports") == 0)
        rule->ports = g_strdupv (values);
      else if (c->field != NULL && strcmp (c->field, "methods") == 0)
        rule->methods = g_strdupv (values);
      else if (c->field != NULL)
        rule->paths = g_strdupv (values);
      g_ptr_array_add (rules, rule);

      policy = moat_policy_new_full (NULL, NULL, rules,
                                     MOAT_POLICY_MODE_ENFORCE, &error);
      g_assert_null (policy);
      g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
      if (strstr (error->message, c->message) == NULL)
        g_test_fail_printf ("%s: error \"%s\" lacks \"%s\"",
                            c->description, error->message, c->message);
    }
}

static void
test_duplicate_rule (void)
{
  g_autoptr (GPtrArray) rules = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_rule_spec_free);
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatPolicy) policy = NULL;

  g_ptr_array_add (rules, moat_rule_spec_new ("r"));
  g_ptr_array_add (rules, moat_rule_spec_new ("r"));
  policy = moat_policy_new_full (NULL, NULL, rules, MOAT_POLICY_MODE_ENFORCE,
                                 &error);
  g_assert_null (policy);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "rule \"r\" is defined twice"));
}

typedef struct {
  const char *description;
  const char *const *allow;
  MoatRuleAction rule_action; /* of one [rule] group */
  MoatPolicyMode mode;
  const char *expected;
} DescribeCase;

static const char *const describe_allow[] = { "a.example", "b.example",
                                              NULL };

static const DescribeCase describe_cases[] = {
  { "allow rule only", NULL, MOAT_RULE_ALLOW, MOAT_POLICY_MODE_ENFORCE,
    "enforce mode, 1 allow rule, 0 deny rules" },
  { "[policy] allow counts as one rule", describe_allow, MOAT_RULE_ALLOW,
    MOAT_POLICY_MODE_ENFORCE, "enforce mode, 2 allow rules, 0 deny rules" },
  { "deny rule only", NULL, MOAT_RULE_DENY, MOAT_POLICY_MODE_ENFORCE,
    "enforce mode, 0 allow rules, 1 deny rule (every request is denied: "
    "add an allow rule)" },
  { "report mode", describe_allow, MOAT_RULE_DENY, MOAT_POLICY_MODE_REPORT,
    "report mode, 1 allow rule, 1 deny rule (every request goes upstream; "
    "those the policy would deny are audited as would-deny)" },
};

static void
test_describe (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (describe_cases); i++)
    {
      const DescribeCase *c = &describe_cases[i];
      g_autoptr (GPtrArray) rules = g_ptr_array_new_with_free_func (
          (GDestroyNotify) moat_rule_spec_free);
      MoatRuleSpec *rule = moat_rule_spec_new ("r");
      g_autoptr (GError) error = NULL;
      g_autoptr (MoatPolicy) policy = NULL;
      g_autofree char *text = NULL;

      rule->action = c->rule_action;
      g_ptr_array_add (rules, rule);
      policy = moat_policy_new_full (c->allow, NULL, rules, c->mode, &error);
      g_assert_no_error (error);
      text = moat_policy_describe (policy);
      if (g_strcmp0 (text, c->expected) != 0)
        g_test_fail_printf ("%s: \"%s\", expected \"%s\"", c->description,
                            text, c->expected);
    }
}

static void
test_policy_ref (void)
{
  g_autoptr (GError) error = NULL;
  MoatPolicy *policy = new_rule_policy (MOAT_POLICY_MODE_ENFORCE, &error);
  MoatPolicyRequest get = { "api.github.com", 443, "GET", "/user" };
  MoatPolicyDecision decision;

  g_assert_no_error (error);
  g_assert_true (moat_policy_ref (policy) == policy);
  moat_policy_unref (policy);
  /* One reference is left, so the policy still decides. */
  g_assert_true (moat_policy_decide (policy, &get, &decision));
  moat_policy_decision_clear (&decision);
  moat_policy_unref (policy);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/policy/pattern/match", test_match);
  g_test_add_func ("/policy/pattern/validate", test_validate);
  g_test_add_func ("/policy/pattern/name-length", test_validate_name_length);
  g_test_add_func ("/policy/host-name/validate", test_host_name_validate);
  g_test_add_func ("/policy/decision/table", test_decision);
  g_test_add_func ("/policy/decision/empty-allow", test_empty_allow_denies_all);
  g_test_add_func ("/policy/decision/deny-normalized", test_deny_only);
  g_test_add_func ("/policy/new/invalid-pattern", test_invalid_pattern);
  g_test_add_func ("/policy/path/normalize", test_path_normalize);
  g_test_add_func ("/policy/path/match", test_path_match);
  g_test_add_func ("/policy/rules/table", test_rules);
  g_test_add_func ("/policy/rules/reasons", test_rule_reasons);
  g_test_add_func ("/policy/rules/dns-answer", test_rules_dns);
  g_test_add_func ("/policy/rules/invalid", test_rule_errors);
  g_test_add_func ("/policy/rules/duplicate-name", test_duplicate_rule);
  g_test_add_func ("/policy/new/reference-count", test_policy_ref);
  g_test_add_func ("/policy/describe/banner", test_describe);

  return g_test_run ();
}
