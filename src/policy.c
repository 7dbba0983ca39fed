/* SPDX-License-Identifier: GPL-2.0-or-later */
/* policy.c - host patterns and the allow/deny decision for a request */
#define G_LOG_DOMAIN "moat-policy"

#include "policy.h"

#include <string.h>

#include "error.h"
#include "moat-limits.h"

/* Maximum length of a DNS label in bytes (RFC 1035 section 2.3.4). */
#define HOST_LABEL_MAX 63

#define PATTERN_EXAMPLES \
  "a valid pattern is a host name (\"api.example.com\"), an IPv4 address " \
  "(\"127.0.0.1\") or \"*.\" followed by a name (\"*.example.com\")"

/**
 * MoatPolicy:
 * @allow: lowercase allow patterns without a trailing dot
 * @deny: lowercase deny patterns without a trailing dot
 *
 * TODO: per-request rules (port, method, path) will join the host patterns;
 * until then a decision looks only at the host.
 */
struct MoatPolicy {
  GPtrArray *allow;
  GPtrArray *deny;
};

/**
 * strip_trailing_dot:
 * @name: host name or pattern
 * @length: (out): length of @name without one trailing dot
 *
 * Ignores one trailing dot, so that the absolute form "example.com." means
 * the same as "example.com".
 */
static void
strip_trailing_dot (const char *name, gsize *length)
{
  gsize n = strlen (name);

  if (n > 0 && name[n - 1] == '.')
    n--;
  *length = n;
}

static gboolean
is_numeric (const char *label, gsize length)
{
  for (gsize i = 0; i < length; i++)
    {
      if (!g_ascii_isdigit (label[i]))
        return FALSE;
    }

  return length > 0;
}

static gboolean
is_host_char (char c)
{
  return g_ascii_isalnum (c) || c == '-' || c == '_';
}

/**
 * check_name:
 * @name: host name or pattern, not NUL-terminated at @length
 * @length: bytes of @name to check, trailing dot already removed
 * @allow_wildcard: whether "*" may be the whole first label
 * @error: return location for a #GError
 *
 * Checks the label syntax shared by host names and host patterns. The error
 * message gives only the reason, so callers add @name itself.
 *
 * Return: %TRUE if @name is valid
 */
static gboolean
check_name (const char *name, gsize length, gboolean allow_wildcard,
            GError **error)
{
  const char *p = name;
  const char *end = name + length;
  const char *last_label = name;
  gboolean first = TRUE;

  if (length == 0)
    {
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG, "empty name");
      return FALSE;
    }

  if (length > MOAT_DNS_NAME_MAX)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%" G_GSIZE_FORMAT " bytes long, more than the %d bytes "
                   "allowed for a DNS name", length, MOAT_DNS_NAME_MAX);
      return FALSE;
    }

  while (p < end)
    {
      const char *label = p;
      gsize label_length;

      last_label = label;
      while (p < end && *p != '.')
        p++;
      label_length = p - label;

      if (label_length == 0)
        {
          g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                               "empty label (two dots in a row, or a "
                               "leading dot)");
          return FALSE;
        }

      if (label_length > HOST_LABEL_MAX)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "label \"%.*s\" is %" G_GSIZE_FORMAT " bytes long, "
                       "more than the %d bytes allowed for a DNS label",
                       (int) label_length, label, label_length,
                       HOST_LABEL_MAX);
          return FALSE;
        }

      if (memchr (label, '*', label_length) != NULL)
        {
          if (!allow_wildcard)
            {
              g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                                   "\"*\" is not allowed in a host name");
              return FALSE;
            }
          if (!first || label_length != 1)
            {
              g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                                   "\"*\" is only allowed as the whole first "
                                   "label (\"*.example.com\")");
              return FALSE;
            }
          if (p == end)
            {
              g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                                   "\"*\" alone would match every host; "
                                   "give a suffix (\"*.example.com\")");
              return FALSE;
            }
        }
      else
        {
          for (const char *c = label; c < p; c++)
            {
              if (!is_host_char (*c))
                {
                  g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                               "invalid character 0x%02x; only letters, "
                               "digits, '-', '_' and '.' are allowed",
                               (guint) (guchar) *c);
                  return FALSE;
                }
            }
        }

      first = FALSE;
      if (p < end)
        p++; /* the dot */
    }

  /* A dot at the very end means an empty last label, which the loop
   * above does not visit. */
  if (end[-1] == '.')
    {
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                           "empty label (two dots in a row, or a "
                           "leading dot)");
      return FALSE;
    }

  /* Resolvers read "127.1" or "0x7f.1" as an IPv4 address (inet_aton), so a
   * numeric last label is accepted only in a dotted-quad address. No
   * top-level domain is all-numeric (RFC 3696 section 2). */
  if (is_numeric (last_label, end - last_label))
    {
      g_autofree char *copy = g_strndup (name, length);

      if (!g_hostname_is_ip_address (copy) || strchr (copy, ':') != NULL)
        {
          g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                               "the last label is a number, but the name "
                               "is not an IPv4 address of four decimal "
                               "numbers from 0 to 255 without leading "
                               "zeros");
          return FALSE;
        }
    }

  return TRUE;
}

/**
 * moat_host_pattern_validate:
 * @pattern: an exact host name, or "*." followed by a name
 * @error: return location for a #GError
 *
 * Checks @pattern against the rules of moat_host_pattern_match(): letters,
 * digits, '-', '_' and '.', labels of 1 to 63 bytes, at most 253 bytes, one
 * optional trailing dot, and "*" only as the whole first label of a longer
 * name. IPv4 addresses are valid exact names.
 *
 * Return: %TRUE if @pattern is valid, else %FALSE with a %MOAT_ERROR_CONFIG
 *   error that names @pattern and describes a valid pattern
 */
gboolean
moat_host_pattern_validate (const char *pattern, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  gsize length;

  g_return_val_if_fail (pattern != NULL, FALSE);

  strip_trailing_dot (pattern, &length);
  if (strcmp (pattern, "*") == 0 || strcmp (pattern, "*.") == 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid host pattern \"%s\": \"*\" alone would match "
                   "every host; %s", pattern, PATTERN_EXAMPLES);
      return FALSE;
    }

  if (!check_name (pattern, length, TRUE, &local_error))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid host pattern \"%s\": %s; %s", pattern,
                   local_error->message, PATTERN_EXAMPLES);
      return FALSE;
    }

  return TRUE;
}

/**
 * moat_host_name_validate:
 * @host: host name or IPv4 address, with or without one trailing dot
 * @error: return location for a #GError
 *
 * Applies the rules of moat_host_pattern_validate() without a wildcard.
 *
 * Return: %TRUE if @host is valid, else %FALSE with a %MOAT_ERROR_CONFIG
 *   error that names @host
 */
gboolean
moat_host_name_validate (const char *host, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  gsize length;

  g_return_val_if_fail (host != NULL, FALSE);

  strip_trailing_dot (host, &length);
  if (!check_name (host, length, FALSE, &local_error))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid host name \"%s\": %s", host,
                   local_error->message);
      return FALSE;
    }

  return TRUE;
}

/**
 * match_normalized:
 * @pattern: valid pattern, lowercase, without a trailing dot
 * @host: valid host name, lowercase, without a trailing dot
 * @host_length: bytes of @host
 *
 * Return: %TRUE if @host equals @pattern, or lies under the suffix of a
 *   "*." pattern at any depth; the bare suffix does not match
 */
static gboolean
match_normalized (const char *pattern, const char *host, gsize host_length)
{
  gsize suffix_length;

  if (pattern[0] != '*')
    return strlen (pattern) == host_length
           && memcmp (pattern, host, host_length) == 0;

  /* "*.example.com": compare ".example.com" with the end of the host,
   * which must have at least one label in front of it. */
  suffix_length = strlen (pattern + 1);
  return host_length > suffix_length
         && memcmp (host + host_length - suffix_length, pattern + 1,
                    suffix_length) == 0;
}

/**
 * normalize:
 * @name: host name or pattern
 *
 * Return: @name in lowercase without one trailing dot, newly allocated
 */
static char *
normalize (const char *name)
{
  gsize length;
  g_autofree char *copy = NULL;

  strip_trailing_dot (name, &length);
  copy = g_strndup (name, length);
  return g_ascii_strdown (copy, -1);
}

/**
 * moat_host_pattern_match:
 * @pattern: host pattern
 * @host: host name from DNS, SNI or a Host header
 *
 * Compares case-insensitively and ignores one trailing dot on either side.
 * "*.example.com" matches "a.example.com" and "a.b.example.com" but not
 * "example.com". An invalid @pattern or @host matches nothing.
 *
 * Return: %TRUE if @host matches @pattern
 */
gboolean
moat_host_pattern_match (const char *pattern, const char *host)
{
  g_autofree char *pattern_lower = NULL;
  g_autofree char *host_lower = NULL;
  gsize host_length;

  g_return_val_if_fail (pattern != NULL, FALSE);
  g_return_val_if_fail (host != NULL, FALSE);

  if (!moat_host_pattern_validate (pattern, NULL))
    return FALSE;
  strip_trailing_dot (host, &host_length);
  if (!check_name (host, host_length, FALSE, NULL))
    return FALSE;

  pattern_lower = normalize (pattern);
  host_lower = normalize (host);
  return match_normalized (pattern_lower, host_lower, strlen (host_lower));
}

static gboolean
add_patterns (GPtrArray *patterns, const char *const *list,
              const char *list_name, GError **error)
{
  for (gsize i = 0; list != NULL && list[i] != NULL; i++)
    {
      if (!moat_host_pattern_validate (list[i], error))
        {
          g_prefix_error (error, "%s pattern %" G_GSIZE_FORMAT ": ",
                          list_name, i + 1);
          return FALSE;
        }
      g_ptr_array_add (patterns, normalize (list[i]));
    }

  return TRUE;
}

/**
 * moat_policy_new:
 * @allow: (nullable): %NULL-terminated allow patterns
 * @deny: (nullable): %NULL-terminated deny patterns
 * @error: return location for a #GError
 *
 * Builds a policy that allows a host when it matches an allow pattern and
 * no deny pattern. An empty or %NULL @allow denies every host.
 *
 * Return: (transfer full): the policy, or %NULL with a %MOAT_ERROR_CONFIG
 *   error naming the first invalid pattern
 */
MoatPolicy *
moat_policy_new (const char *const *allow, const char *const *deny,
                 GError **error)
{
  g_autoptr (MoatPolicy) policy = g_new0 (MoatPolicy, 1);

  policy->allow = g_ptr_array_new_with_free_func (g_free);
  policy->deny = g_ptr_array_new_with_free_func (g_free);

  if (!add_patterns (policy->allow, allow, "allow", error)
      || !add_patterns (policy->deny, deny, "deny", error))
    return NULL;

  return g_steal_pointer (&policy);
}

void
moat_policy_free (MoatPolicy *policy)
{
  if (policy == NULL)
    return;

  g_clear_pointer (&policy->allow, g_ptr_array_unref);
  g_clear_pointer (&policy->deny, g_ptr_array_unref);
  g_free (policy);
}

/* Returns the first pattern in @patterns that @host matches, or NULL. */
static const char *
find_match (const GPtrArray *patterns, const char *host, gsize host_length)
{
  for (guint i = 0; i < patterns->len; i++)
    {
      const char *pattern = g_ptr_array_index (patterns, i);

      if (match_normalized (pattern, host, host_length))
        return pattern;
    }

  return NULL;
}

/**
 * moat_policy_allows_host:
 * @policy: the policy
 * @host: host name from DNS, SNI or a Host header
 * @reason: (out) (optional): newly allocated reason for the decision, for
 *   the audit log
 *
 * Decides whether requests to @host may go upstream. A deny match wins over
 * an allow match, and a host that matches no allow pattern is denied. A
 * @host that is not a valid host name (empty, "*", characters outside
 * letters, digits, '-', '_' and '.') is denied regardless of the patterns.
 *
 * Return: %TRUE if @host is allowed
 */
gboolean
moat_policy_allows_host (const MoatPolicy *policy, const char *host,
                         char **reason)
{
  g_autoptr (GError) local_error = NULL;
  g_autofree char *host_lower = NULL;
  gsize host_length;
  const char *pattern;

  g_return_val_if_fail (policy != NULL, FALSE);
  g_return_val_if_fail (host != NULL, FALSE);

  strip_trailing_dot (host, &host_length);
  if (!check_name (host, host_length, FALSE, &local_error))
    {
      if (reason != NULL)
        {
          /* The host comes from the guest: escape it for log readers. */
          g_autofree char *escaped = g_strescape (host, NULL);

          *reason = g_strdup_printf ("host \"%s\" is not a valid host name: "
                                     "%s", escaped, local_error->message);
        }
      return FALSE;
    }

  host_lower = normalize (host);
  host_length = strlen (host_lower);

  pattern = find_match (policy->deny, host_lower, host_length);
  if (pattern != NULL)
    {
      if (reason != NULL)
        *reason = g_strdup_printf ("host \"%s\" matches deny pattern \"%s\"",
                                   host, pattern);
      return FALSE;
    }

  pattern = find_match (policy->allow, host_lower, host_length);
  if (pattern != NULL)
    {
      if (reason != NULL)
        *reason = g_strdup_printf ("host \"%s\" matches allow pattern \"%s\"",
                                   host, pattern);
      return TRUE;
    }

  if (reason != NULL)
    *reason = g_strdup_printf ("host \"%s\" matches no allow pattern", host);
  return FALSE;
}
