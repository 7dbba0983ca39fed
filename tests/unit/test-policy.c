/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-policy.c - unit tests for host patterns and allow/deny decisions */
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
  { "space", "example .com", "invalid character 0x20" },
  { "colon", "example.com:443", "invalid character 0x3a" },
  { "slash", "example.com/path", "invalid character 0x2f" },
  { "IPv6 literal", "::1", "invalid character 0x3a" },
  { "non-ASCII", "\xc3\xa9xample.com", "invalid character 0xc3" },
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
  { "port", "example.com:443", "invalid character 0x3a" },
  { "bracketed IPv6", "[::1]", "invalid character 0x5b" },
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
    "character 0x3a" },
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

  return g_test_run ();
}
