/* SPDX-License-Identifier: GPL-2.0-or-later */
/* policy.c - host patterns, request rules and the allow/deny decision */
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

/* Explains a character that is not allowed in a host name. A port or a
 * path written into a host pattern of a rule is a common mistake, so for
 * a pattern those get the key they belong in. */
static void
set_invalid_char_error (GError **error, char c, gboolean is_pattern)
{
  g_autofree char *shown = NULL;
  const char *hint = "";

  if (g_ascii_isgraph (c))
    shown = g_strdup_printf ("invalid character '%c'", c);
  else
    shown = g_strdup_printf ("invalid byte 0x%02x", (guint) (guchar) c);
  if (c == ':' && is_pattern)
    hint = " (a port is not part of a host pattern: put it in the "
           "\"ports\" key of a [rule NAME] group, such as \"ports = 443\")";
  else if (c == '/' && is_pattern)
    hint = " (a path is not part of a host pattern: put it in the "
           "\"paths\" key of a [rule NAME] group, such as "
           "\"paths = /v1/**\")";

  g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG, "%s%s; only letters, "
               "digits, '-', '_' and '.' are allowed", shown, hint);
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
                  set_invalid_char_error (error, *c, allow_wildcard);
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

/* Rule syntax */

/**
 * moat_rule_name_validate:
 * @name: a rule name from "[rule NAME]"
 * @error: return location for a #GError
 *
 * Accepts 1 to 64 letters, digits, '-', '_' and '.'. The names of the
 * built-in decisions ("default", and "policy." or "secret." followed by
 * anything) are reserved, so that an audit line always tells which kind of
 * rule decided.
 *
 * Return: %TRUE if @name is valid, else %FALSE with a %MOAT_ERROR_CONFIG
 *   error
 */
gboolean
moat_rule_name_validate (const char *name, GError **error)
{
  gsize length = strlen (name);

  if (length == 0 || length > 64)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid rule name \"%s\": expected 1 to 64 letters, "
                   "digits, '-', '_' or '.'", name);
      return FALSE;
    }
  for (const char *c = name; *c != '\0'; c++)
    {
      if (!g_ascii_isalnum (*c) && *c != '-' && *c != '_' && *c != '.')
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "invalid rule name \"%s\": invalid character 0x%02x; "
                       "only letters, digits, '-', '_' and '.' are allowed",
                       name, (guint) (guchar) *c);
          return FALSE;
        }
    }
  if (strcmp (name, MOAT_POLICY_DEFAULT_RULE) == 0
      || g_str_has_prefix (name, "policy.")
      || g_str_has_prefix (name, "secret."))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid rule name \"%s\": \"default\" and names "
                   "starting with \"policy.\" or \"secret.\" are reserved "
                   "for moat's built-in decisions; choose another name",
                   name);
      return FALSE;
    }

  return TRUE;
}

/**
 * moat_port_range_parse:
 * @text: "443" or "8000-8999"
 * @first: (out): first port of the range
 * @last: (out): last port of the range, equal to @first for one port
 * @error: return location for a #GError
 *
 * Return: %TRUE if @text is a decimal port from 1 to 65535 or an ascending
 *   range of two such ports, else %FALSE with a %MOAT_ERROR_CONFIG error
 */
gboolean
moat_port_range_parse (const char *text, guint *first, guint *last,
                       GError **error)
{
  g_auto (GStrv) parts = g_strsplit (text, "-", 3);
  guint64 numbers[2] = { 0, 0 };
  guint count = g_strv_length (parts);

  if (count < 1 || count > 2)
    goto invalid;
  for (guint i = 0; i < count; i++)
    {
      if (!g_ascii_string_to_unsigned (parts[i], 10, 1, 65535, &numbers[i],
                                       NULL))
        goto invalid;
    }
  if (count == 1)
    numbers[1] = numbers[0];
  if (numbers[1] < numbers[0])
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid port range \"%s\": the first port is larger "
                   "than the last", text);
      return FALSE;
    }

  *first = (guint) numbers[0];
  *last = (guint) numbers[1];
  return TRUE;

invalid:
  g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
               "invalid port \"%s\": expected a port from 1 to 65535 "
               "(\"443\") or a range (\"8000-8999\")", text);
  return FALSE;
}

/* A token character of RFC 9110 section 5.6.2. */
static gboolean
is_token_char (char c)
{
  return g_ascii_isalnum (c) || (c != '\0' && strchr ("!#$%&'*+-.^_`|~", c)
                                              != NULL);
}

/**
 * moat_method_validate:
 * @method: a request method from a rule
 * @error: return location for a #GError
 *
 * Methods are case-sensitive (RFC 9110 section 9.1), so a lowercase letter
 * is rejected: "get" would never match what clients send.
 *
 * Return: %TRUE if @method is a token without lowercase letters
 */
gboolean
moat_method_validate (const char *method, GError **error)
{
  if (method[0] == '\0')
    {
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                           "invalid method \"\": expected a method such as "
                           "GET");
      return FALSE;
    }
  for (const char *c = method; *c != '\0'; c++)
    {
      if (g_ascii_islower (*c))
        {
          g_autofree char *upper = g_ascii_strup (method, -1);

          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "invalid method \"%s\": methods are case-sensitive "
                       "and clients send them in uppercase; write \"%s\"",
                       method, upper);
          return FALSE;
        }
      if (!is_token_char (*c))
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "invalid method \"%s\": invalid character 0x%02x",
                       method, (guint) (guchar) *c);
          return FALSE;
        }
    }

  return TRUE;
}

/**
 * moat_path_pattern_validate:
 * @pattern: a path pattern from a rule
 * @error: return location for a #GError
 *
 * A pattern starts with '/' and is compared with the normalised path (see
 * moat_path_normalize()), so it may not contain what normalisation
 * removes: empty segments, "." and ".." segments, a query ('?') or '%'.
 * "*" matches within one segment. "**" matches any number of whole
 * segments, so it must be a whole segment itself: "/a**" and "/re**pos"
 * are rejected.
 *
 * Return: %TRUE if @pattern is valid, else %FALSE with a %MOAT_ERROR_CONFIG
 *   error
 */
gboolean
moat_path_pattern_validate (const char *pattern, GError **error)
{
  const char *why = NULL;
  g_auto (GStrv) segments = NULL;

  if (pattern[0] != '/')
    why = "a path pattern starts with '/'";
  else if (strlen (pattern) > MOAT_HTTP_REQUEST_LINE_MAX)
    why = "longer than a request line may be";
  else if (strpbrk (pattern, "?#%") != NULL)
    why = "'?', '#' and '%' are not allowed: patterns match the decoded "
          "path without the query";

  for (const char *c = pattern; why == NULL && *c != '\0'; c++)
    {
      if ((guchar) *c <= 0x20 || (guchar) *c >= 0x7f)
        why = "only visible ASCII characters are allowed";
    }

  if (why == NULL)
    {
      /* Normalised paths have no such segments, so a pattern with them
       * could never match. The last segment may be empty ("/repos/"). */
      segments = g_strsplit (pattern + 1, "/", -1);
      for (guint i = 0; why == NULL && segments[i] != NULL; i++)
        {
          gboolean last = segments[i + 1] == NULL;

          if ((segments[i][0] == '\0' && !last)
              || strcmp (segments[i], ".") == 0
              || strcmp (segments[i], "..") == 0)
            why = "empty, \".\" and \"..\" segments never match, because "
                  "paths are normalised before matching";
          else if (strstr (segments[i], "**") != NULL
                   && strcmp (segments[i], "**") != 0)
            why = "\"**\" matches whole segments, so it must be a whole "
                  "segment (\"/a/**\", \"/a/**/b\"); use \"*\" within a "
                  "segment";
        }
    }

  if (why != NULL)
    {
      g_autofree char *escaped = g_strescape (pattern, NULL);

      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid path pattern \"%s\": %s", escaped, why);
      return FALSE;
    }

  return TRUE;
}

/* Pattern tokens above the byte values. */
enum {
  TOKEN_STAR = 256,      /* "*": any bytes except '/' */
  TOKEN_GLOBSTAR,        /* "**" as the last segment: any bytes */
  TOKEN_GLOBSTAR_SLASH,  /* a "**" segment and the '/' after it: nothing,
                          * or any bytes that end with '/' */
};

/* Splits a valid pattern into bytes and TOKEN_* values. */
static GArray *
tokenize_path_pattern (const char *pattern)
{
  GArray *tokens = g_array_new (FALSE, FALSE, sizeof (guint));

  for (const char *p = pattern; *p != '\0'; p++)
    {
      guint token = (guchar) *p;

      if (p[0] == '*' && p[1] == '*' && p[2] == '/')
        {
          token = TOKEN_GLOBSTAR_SLASH;
          p += 2;
        }
      else if (p[0] == '*' && p[1] == '*')
        {
          token = TOKEN_GLOBSTAR;
          p++;
        }
      else if (*p == '*')
        token = TOKEN_STAR;
      g_array_append_val (tokens, token);
    }

  return tokens;
}

/**
 * moat_path_pattern_match:
 * @pattern: a valid path pattern
 * @normalized_path: a path from moat_path_normalize()
 *
 * Matches like a shell glob with globstar (bash "shopt -s globstar"): "*"
 * matches any bytes within a segment. A "**" segment between two others
 * matches zero or more whole segments, so the pattern a, "**", b matches
 * "/a/b" and "/a/x/y/b". A "**" as the last segment matches the rest of
 * the path, so the pattern a, "**" matches "/a/" and "/a/x/y" but not
 * "/a".
 *
 * The matcher is a table of pattern prefixes against path prefixes, one
 * path byte at a time: O(pattern × path) time, O(pattern) memory, no
 * backtracking and no recursion.
 *
 * Return: %TRUE if the whole path matches the whole pattern
 */
gboolean
moat_path_pattern_match (const char *pattern, const char *normalized_path)
{
  g_autoptr (GArray) tokens = tokenize_path_pattern (pattern);
  guint count = tokens->len;
  /* matched[j]: the first j tokens match the path bytes read so far.
   * inside[j]: token j - 1 is TOKEN_GLOBSTAR_SLASH, and the first j - 1
   * tokens match a prefix of those bytes whose rest that token is in the
   * middle of. */
  g_autofree gboolean *matched = g_new0 (gboolean, count + 1);
  g_autofree gboolean *next_matched = g_new0 (gboolean, count + 1);
  g_autofree gboolean *inside = g_new0 (gboolean, count + 1);
  g_autofree gboolean *next_inside = g_new0 (gboolean, count + 1);
  gboolean *swap;

  /* Before the first byte, only tokens that match nothing can match. */
  matched[0] = TRUE;
  for (guint j = 1; j <= count; j++)
    {
      guint token = g_array_index (tokens, guint, j - 1);

      inside[j] = token == TOKEN_GLOBSTAR_SLASH && matched[j - 1];
      matched[j] = matched[j - 1] && token >= TOKEN_STAR;
    }

  for (const char *c = normalized_path; *c != '\0'; c++)
    {
      gboolean any = FALSE;

      next_matched[0] = FALSE;
      next_inside[0] = FALSE;
      for (guint j = 1; j <= count; j++)
        {
          guint token = g_array_index (tokens, guint, j - 1);

          next_inside[j] = FALSE;
          if (token == TOKEN_GLOBSTAR_SLASH)
            {
              /* The byte extends the segments, or ends them if it is a
               * '/'. The token may also match nothing. */
              next_inside[j] = inside[j] || next_matched[j - 1];
              next_matched[j] = (inside[j] && *c == '/')
                                || next_matched[j - 1];
            }
          else if (token == TOKEN_GLOBSTAR)
            next_matched[j] = next_matched[j - 1] || matched[j];
          else if (token == TOKEN_STAR)
            next_matched[j] = next_matched[j - 1]
                              || (matched[j] && *c != '/');
          else
            next_matched[j] = matched[j - 1] && token == (guchar) *c;
          any |= next_matched[j] || next_inside[j];
        }
      if (!any)
        return FALSE;

      swap = matched;
      matched = next_matched;
      next_matched = swap;
      swap = inside;
      inside = next_inside;
      next_inside = swap;
    }

  return matched[count];
}

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/**
 * moat_path_normalize:
 * @target: an origin-form request target ("/a/b?q"), as sent
 * @error: return location for a #GError
 *
 * Removes the query, decodes every percent-encoded byte (RFC 3986 section
 * 2.1), then removes dot segments (RFC 3986 section 5.2.4) and empty
 * segments. Decoding comes first, so "%2e%2e" and "%2F" cannot hide a
 * ".." or a segment boundary from a rule. A ".." at the root stays at the
 * root. A trailing '/' is kept.
 *
 * Return: (transfer full): the normalised path, or %NULL with a
 *   %MOAT_ERROR_PROTOCOL error when @target does not start with '/', has
 *   an invalid percent-encoding, or decodes to a NUL byte
 */
char *
moat_path_normalize (const char *target, GError **error)
{
  g_autoptr (GString) decoded = g_string_new (NULL);
  g_autoptr (GPtrArray) segments = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GString) path = g_string_new ("/");
  const char *end = target + strcspn (target, "?#");
  gboolean trailing_slash = FALSE;
  const char *p;
  char byte;

  if (target[0] != '/')
    {
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                           "the path does not start with '/'");
      return NULL;
    }

  for (p = target; p < end; p++)
    {
      if (*p != '%')
        {
          g_string_append_c (decoded, *p);
          continue;
        }
      if (end - p < 3 || hex_value (p[1]) < 0 || hex_value (p[2]) < 0)
        {
          g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                               "the path has a '%' that is not followed by "
                               "two hexadecimal digits");
          return NULL;
        }
      byte = (char) (hex_value (p[1]) * 16 + hex_value (p[2]));
      if (byte == '\0')
        {
          g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                               "the path contains an encoded NUL byte "
                               "(%00)");
          return NULL;
        }
      g_string_append_c (decoded, byte);
      p += 2;
    }

  /* Walk the segments after the leading '/'. */
  p = decoded->str + 1;
  for (;;)
    {
      const char *slash = strchr (p, '/');
      gsize length = slash != NULL ? (gsize) (slash - p) : strlen (p);
      gboolean last = slash == NULL;

      if (length == 0 || (length == 1 && p[0] == '.'))
        trailing_slash = last;
      else if (length == 2 && p[0] == '.' && p[1] == '.')
        {
          if (segments->len > 0)
            g_ptr_array_remove_index (segments, segments->len - 1);
          trailing_slash = last;
        }
      else
        {
          g_ptr_array_add (segments, g_strndup (p, length));
          trailing_slash = FALSE;
        }
      if (last)
        break;
      p = slash + 1;
    }

  for (guint i = 0; i < segments->len; i++)
    {
      if (i > 0)
        g_string_append_c (path, '/');
      g_string_append (path, g_ptr_array_index (segments, i));
    }
  if (trailing_slash && segments->len > 0)
    g_string_append_c (path, '/');

  return g_string_free (g_steal_pointer (&path), FALSE);
}

/* Rules and policies */

typedef struct {
  guint first;
  guint last;
} PortRange;

/**
 * Rule:
 * @name: the rule's name
 * @action: allow or deny
 * @hosts: (nullable): lowercase host patterns without a trailing dot;
 *   %NULL matches any host
 * @ports: (nullable) (element-type PortRange): %NULL matches any port
 * @methods: (nullable): %NULL matches any method
 * @paths: (nullable): path patterns; %NULL matches any path
 */
typedef struct {
  char *name;
  MoatRuleAction action;
  GPtrArray *hosts;
  GArray *ports;
  GStrv methods;
  GStrv paths;
} Rule;

/**
 * MoatPolicy:
 * @ref_count: references; requests in flight keep the policy they started
 *   with while a reload installs a new one
 * @mode: enforce or report
 * @rules: (element-type Rule): the "[rule NAME]" groups in file order, then
 *   the [policy] deny and allow shorthands
 */
struct MoatPolicy {
  gatomicrefcount ref_count;
  MoatPolicyMode mode;
  GPtrArray *rules;
};

MoatRuleSpec *
moat_rule_spec_new (const char *name)
{
  MoatRuleSpec *spec = g_new0 (MoatRuleSpec, 1);

  spec->name = g_strdup (name);
  return spec;
}

void
moat_rule_spec_free (MoatRuleSpec *spec)
{
  if (spec == NULL)
    return;
  g_free (spec->name);
  g_strfreev (spec->hosts);
  g_strfreev (spec->ports);
  g_strfreev (spec->methods);
  g_strfreev (spec->paths);
  g_free (spec);
}

static void
rule_free (Rule *rule)
{
  if (rule == NULL)
    return;
  g_free (rule->name);
  g_clear_pointer (&rule->hosts, g_ptr_array_unref);
  g_clear_pointer (&rule->ports, g_array_unref);
  g_strfreev (rule->methods);
  g_strfreev (rule->paths);
  g_free (rule);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Rule, rule_free)

/* Compiles @spec. Errors name the rule and the first invalid value. */
static Rule *
rule_compile (const MoatRuleSpec *spec, gboolean check_name, GError **error)
{
  g_autoptr (Rule) rule = g_new0 (Rule, 1);

  if (check_name && !moat_rule_name_validate (spec->name, error))
    return NULL;
  rule->name = g_strdup (spec->name);
  rule->action = spec->action;

  if (spec->hosts != NULL)
    {
      rule->hosts = g_ptr_array_new_with_free_func (g_free);
      for (guint i = 0; spec->hosts[i] != NULL; i++)
        {
          if (!moat_host_pattern_validate (spec->hosts[i], error))
            goto invalid;
          g_ptr_array_add (rule->hosts, normalize (spec->hosts[i]));
        }
    }
  if (spec->ports != NULL)
    {
      rule->ports = g_array_new (FALSE, FALSE, sizeof (PortRange));
      for (guint i = 0; spec->ports[i] != NULL; i++)
        {
          PortRange range;

          if (!moat_port_range_parse (spec->ports[i], &range.first,
                                      &range.last, error))
            goto invalid;
          g_array_append_val (rule->ports, range);
        }
    }
  if (spec->methods != NULL)
    {
      for (guint i = 0; spec->methods[i] != NULL; i++)
        {
          if (!moat_method_validate (spec->methods[i], error))
            goto invalid;
        }
      rule->methods = g_strdupv (spec->methods);
    }
  if (spec->paths != NULL)
    {
      for (guint i = 0; spec->paths[i] != NULL; i++)
        {
          if (!moat_path_pattern_validate (spec->paths[i], error))
            goto invalid;
        }
      rule->paths = g_strdupv (spec->paths);
    }

  return g_steal_pointer (&rule);

invalid:
  g_prefix_error (error, "rule \"%s\": ", spec->name);
  return NULL;
}

/* Adds the [policy] allow or deny list as a host-only rule. */
static gboolean
add_host_rule (MoatPolicy *policy, const char *const *patterns,
               const char *name, MoatRuleAction action, GError **error)
{
  g_autoptr (Rule) rule = g_new0 (Rule, 1);

  rule->name = g_strdup (name);
  rule->action = action;
  rule->hosts = g_ptr_array_new_with_free_func (g_free);
  for (gsize i = 0; patterns != NULL && patterns[i] != NULL; i++)
    {
      if (!moat_host_pattern_validate (patterns[i], error))
        {
          g_prefix_error (error, "%s pattern %" G_GSIZE_FORMAT ": ",
                          action == MOAT_RULE_ALLOW ? "allow" : "deny",
                          i + 1);
          return FALSE;
        }
      g_ptr_array_add (rule->hosts, normalize (patterns[i]));
    }

  /* An empty list matches no host, so the rule would never decide. */
  if (rule->hosts->len > 0)
    g_ptr_array_add (policy->rules, g_steal_pointer (&rule));
  return TRUE;
}

/**
 * moat_policy_new_full:
 * @allow: (nullable): [policy] allow host patterns, %NULL-terminated
 * @deny: (nullable): [policy] deny host patterns, %NULL-terminated
 * @rules: (nullable) (element-type MoatRuleSpec): the "[rule NAME]" groups
 * @mode: enforce or report
 * @error: return location for a #GError
 *
 * Builds a policy that allows a request when at least one allow rule
 * matches it and no deny rule does. @allow and @deny become the host-only
 * rules "policy.allow" and "policy.deny", checked after @rules.
 *
 * Return: (transfer full): the policy with one reference, or %NULL with a
 *   %MOAT_ERROR_CONFIG error naming the rule and the first invalid value
 */
MoatPolicy *
moat_policy_new_full (const char *const *allow, const char *const *deny,
                      const GPtrArray *rules, MoatPolicyMode mode,
                      GError **error)
{
  g_autoptr (MoatPolicy) policy = g_new0 (MoatPolicy, 1);
  g_autoptr (GHashTable) names = g_hash_table_new (g_str_hash, g_str_equal);

  g_atomic_ref_count_init (&policy->ref_count);
  policy->mode = mode;
  policy->rules = g_ptr_array_new_with_free_func ((GDestroyNotify) rule_free);

  for (guint i = 0; rules != NULL && i < rules->len; i++)
    {
      const MoatRuleSpec *spec = g_ptr_array_index (rules, i);
      Rule *rule = rule_compile (spec, TRUE, error);

      if (rule == NULL)
        return NULL;
      g_ptr_array_add (policy->rules, rule);
      if (!g_hash_table_add (names, rule->name))
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "rule \"%s\" is defined twice: give each rule its "
                       "own name", rule->name);
          return NULL;
        }
    }

  if (!add_host_rule (policy, deny, MOAT_POLICY_DENY_RULE, MOAT_RULE_DENY,
                      error)
      || !add_host_rule (policy, allow, MOAT_POLICY_ALLOW_RULE,
                         MOAT_RULE_ALLOW, error))
    return NULL;

  return g_steal_pointer (&policy);
}

/**
 * moat_policy_new:
 * @allow: (nullable): %NULL-terminated allow patterns
 * @deny: (nullable): %NULL-terminated deny patterns
 * @error: return location for a #GError
 *
 * Builds an enforcing policy from host patterns only, as
 * moat_policy_new_full() does without rules. An empty or %NULL @allow
 * denies every host.
 *
 * Return: (transfer full): the policy, or %NULL with a %MOAT_ERROR_CONFIG
 *   error naming the first invalid pattern
 */
MoatPolicy *
moat_policy_new (const char *const *allow, const char *const *deny,
                 GError **error)
{
  return moat_policy_new_full (allow, deny, NULL, MOAT_POLICY_MODE_ENFORCE,
                               error);
}

MoatPolicy *
moat_policy_ref (MoatPolicy *policy)
{
  g_return_val_if_fail (policy != NULL, NULL);

  g_atomic_ref_count_inc (&policy->ref_count);
  return policy;
}

void
moat_policy_unref (MoatPolicy *policy)
{
  if (policy == NULL)
    return;
  if (!g_atomic_ref_count_dec (&policy->ref_count))
    return;

  g_clear_pointer (&policy->rules, g_ptr_array_unref);
  g_free (policy);
}

/* Drops one reference, as moat_policy_unref() does. */
void
moat_policy_free (MoatPolicy *policy)
{
  moat_policy_unref (policy);
}

MoatPolicyMode
moat_policy_get_mode (const MoatPolicy *policy)
{
  return policy->mode;
}

/* Returns the number of rules, the [policy] shorthands included. */
guint
moat_policy_get_rule_count (const MoatPolicy *policy)
{
  return policy->rules->len;
}

/* Returns the number of rules with @action, the [policy] shorthands
 * included. */
guint
moat_policy_count_rules (const MoatPolicy *policy, MoatRuleAction action)
{
  guint count = 0;

  for (guint i = 0; i < policy->rules->len; i++)
    {
      const Rule *rule = g_ptr_array_index (policy->rules, i);

      if (rule->action == action)
        count++;
    }

  return count;
}

/**
 * moat_policy_describe:
 * @policy: the policy
 *
 * Summarises the mode and the rules for the start-up banner, such as
 * "enforce mode, 2 allow rules, 1 deny rule". The [policy] allow and deny
 * lists count as one rule each.
 *
 * Return: (transfer full): the summary, one line
 */
char *
moat_policy_describe (const MoatPolicy *policy)
{
  guint allow = moat_policy_count_rules (policy, MOAT_RULE_ALLOW);
  guint deny = moat_policy_count_rules (policy, MOAT_RULE_DENY);
  GString *text = g_string_new (NULL);

  g_string_append_printf (text, "%s mode, %u allow rule%s, %u deny rule%s",
                          policy->mode == MOAT_POLICY_MODE_REPORT
                          ? "report" : "enforce",
                          allow, allow == 1 ? "" : "s",
                          deny, deny == 1 ? "" : "s");
  if (policy->mode == MOAT_POLICY_MODE_REPORT)
    g_string_append (text, " (every request goes upstream; those the "
                           "policy would deny are audited as would-deny)");
  else if (allow == 0)
    g_string_append (text, " (every request is denied: add an allow rule)");

  return g_string_free (text, FALSE);
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

static gboolean
is_host_only (const Rule *rule)
{
  return rule->ports == NULL && rule->methods == NULL && rule->paths == NULL;
}

/* Sets the reason of a host-level decision by @rule through @pattern. */
static char *
describe_host_match (const Rule *rule, const char *host, const char *pattern)
{
  const char *action = rule->action == MOAT_RULE_ALLOW ? "allow" : "deny";

  if (strcmp (rule->name, MOAT_POLICY_ALLOW_RULE) == 0
      || strcmp (rule->name, MOAT_POLICY_DENY_RULE) == 0)
    return g_strdup_printf ("host \"%s\" matches %s pattern \"%s\"", host,
                            action, pattern);
  if (pattern == NULL)
    return g_strdup_printf ("host \"%s\" may match %s rule \"%s\", which "
                            "has no hosts", host, action, rule->name);
  return g_strdup_printf ("host \"%s\" matches %s rule \"%s\" (host "
                          "pattern \"%s\")", host, action, rule->name,
                          pattern);
}

/**
 * check_host:
 * @host: host name from the guest
 * @host_lower: (out) (transfer full): @host in lowercase without one
 *   trailing dot
 * @reason: (out) (optional): why @host is invalid
 *
 * Return: %TRUE if @host is a valid host name
 */
static gboolean
check_host (const char *host, char **host_lower, char **reason)
{
  g_autoptr (GError) local_error = NULL;
  gsize host_length;

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

  *host_lower = normalize (host);
  return TRUE;
}

/**
 * moat_policy_allows_host:
 * @policy: the policy
 * @host: host name from DNS, SNI or a Host header
 * @reason: (out) (optional): newly allocated reason for the decision, for
 *   the audit log
 *
 * Decides whether some request to @host may be allowed, for DNS answers:
 * @host is allowed when an allow rule matches it (a rule without hosts
 * matches every host) and no deny rule that looks only at hosts does. A
 * deny rule with ports, methods or paths denies only some requests, so it
 * does not deny the name. A @host that is not a valid host name (empty,
 * "*", characters outside letters, digits, '-', '_' and '.') is denied.
 *
 * Return: %TRUE if @host is allowed
 */
gboolean
moat_policy_allows_host (const MoatPolicy *policy, const char *host,
                         char **reason)
{
  g_autofree char *host_lower = NULL;
  gsize host_length;

  g_return_val_if_fail (policy != NULL, FALSE);
  g_return_val_if_fail (host != NULL, FALSE);

  if (!check_host (host, &host_lower, reason))
    return FALSE;
  host_length = strlen (host_lower);

  for (guint i = 0; i < policy->rules->len; i++)
    {
      const Rule *rule = g_ptr_array_index (policy->rules, i);
      const char *pattern;

      if (rule->action != MOAT_RULE_DENY || !is_host_only (rule)
          || rule->hosts == NULL)
        continue;
      pattern = find_match (rule->hosts, host_lower, host_length);
      if (pattern != NULL)
        {
          if (reason != NULL)
            *reason = describe_host_match (rule, host, pattern);
          return FALSE;
        }
    }

  for (guint i = 0; i < policy->rules->len; i++)
    {
      const Rule *rule = g_ptr_array_index (policy->rules, i);
      const char *pattern = NULL;

      if (rule->action != MOAT_RULE_ALLOW)
        continue;
      if (rule->hosts != NULL)
        {
          pattern = find_match (rule->hosts, host_lower, host_length);
          if (pattern == NULL)
            continue;
        }
      if (reason != NULL)
        *reason = describe_host_match (rule, host, pattern);
      return TRUE;
    }

  if (reason != NULL)
    *reason = g_strdup_printf ("host \"%s\" matches no allow pattern or "
                               "rule", host);
  return FALSE;
}

/* The request, checked and normalised once for all rules. */
typedef struct {
  const MoatPolicyRequest *request;
  const char *host;
  gsize host_length;
  const char *path;
} Subject;

/* Returns whether @rule matches; @pattern is set to the host pattern that
 * matched, or NULL when the rule has no hosts. */
static gboolean
rule_matches (const Rule *rule, const Subject *subject, const char **pattern)
{
  gboolean found;

  *pattern = NULL;
  if (rule->hosts != NULL)
    {
      *pattern = find_match (rule->hosts, subject->host, subject->host_length);
      if (*pattern == NULL)
        return FALSE;
    }

  if (rule->ports != NULL)
    {
      found = FALSE;
      for (guint i = 0; i < rule->ports->len && !found; i++)
        {
          const PortRange *range = &g_array_index (rule->ports, PortRange, i);

          found = subject->request->port >= range->first
                  && subject->request->port <= range->last;
        }
      if (!found)
        return FALSE;
    }

  if (rule->methods != NULL
      && !g_strv_contains ((const char *const *) rule->methods,
                           subject->request->method))
    return FALSE;

  if (rule->paths != NULL)
    {
      found = FALSE;
      for (guint i = 0; rule->paths[i] != NULL && !found; i++)
        found = moat_path_pattern_match (rule->paths[i], subject->path);
      if (!found)
        return FALSE;
    }

  return TRUE;
}

static void
decision_set (MoatPolicyDecision *decision, gboolean allowed,
              const char *rule, char *reason)
{
  decision->allowed = allowed;
  decision->rule = g_strdup (rule);
  decision->reason = reason;
}

/**
 * moat_policy_decide:
 * @policy: the policy
 * @request: the request
 * @decision: (out caller-allocates): the decision; free its fields with
 *   moat_policy_decision_clear()
 *
 * Decides one request as the enforce mode does, whatever the policy's
 * mode: the first matching deny rule denies, otherwise the first matching
 * allow rule allows, otherwise the request is denied by "default". The
 * path is normalised with moat_path_normalize() first; a host or path that
 * cannot be checked is denied by "default".
 *
 * Return: @decision->allowed
 */
gboolean
moat_policy_decide (const MoatPolicy *policy,
                    const MoatPolicyRequest *request,
                    MoatPolicyDecision *decision)
{
  g_autoptr (GError) local_error = NULL;
  g_autofree char *host_lower = NULL;
  g_autofree char *path = NULL;
  g_autofree char *escaped_path = NULL;
  g_autofree char *what = NULL;
  g_autofree char *invalid = NULL;
  const Rule *allow_rule = NULL;
  const char *allow_pattern = NULL;
  Subject subject;

  g_return_val_if_fail (policy != NULL, FALSE);
  g_return_val_if_fail (request != NULL && request->host != NULL
                        && request->method != NULL
                        && request->path != NULL, FALSE);
  g_return_val_if_fail (decision != NULL, FALSE);

  memset (decision, 0, sizeof *decision);
  if (!check_host (request->host, &host_lower, &invalid))
    {
      decision_set (decision, FALSE, MOAT_POLICY_DEFAULT_RULE,
                    g_steal_pointer (&invalid));
      return FALSE;
    }

  path = moat_path_normalize (request->path, &local_error);
  if (path == NULL)
    {
      g_autofree char *escaped = g_strescape (request->path, NULL);

      decision_set (decision, FALSE, MOAT_POLICY_DEFAULT_RULE,
                    g_strdup_printf ("path \"%s\" cannot be checked: %s",
                                     escaped, local_error->message));
      return FALSE;
    }

  subject.request = request;
  subject.host = host_lower;
  subject.host_length = strlen (host_lower);
  subject.path = path;
  /* The path comes from the guest: escape it for log readers. */
  escaped_path = g_strescape (path, NULL);
  what = g_strdup_printf ("%s %s:%u%s", request->method, host_lower,
                          request->port, escaped_path);

  for (guint i = 0; i < policy->rules->len; i++)
    {
      const Rule *rule = g_ptr_array_index (policy->rules, i);
      const char *pattern;

      if (!rule_matches (rule, &subject, &pattern))
        continue;
      if (rule->action == MOAT_RULE_DENY)
        {
          char *reason = pattern != NULL
            ? g_strdup_printf ("%s matches deny rule \"%s\" (host pattern "
                               "\"%s\")", what, rule->name, pattern)
            : g_strdup_printf ("%s matches deny rule \"%s\"", what,
                               rule->name);

          decision_set (decision, FALSE, rule->name, reason);
          return FALSE;
        }
      if (allow_rule == NULL)
        {
          allow_rule = rule;
          allow_pattern = pattern;
        }
    }

  if (allow_rule != NULL)
    {
      char *reason = allow_pattern != NULL
        ? g_strdup_printf ("%s matches allow rule \"%s\" (host pattern "
                           "\"%s\")", what, allow_rule->name, allow_pattern)
        : g_strdup_printf ("%s matches allow rule \"%s\"", what,
                           allow_rule->name);

      decision_set (decision, TRUE, allow_rule->name, reason);
      return TRUE;
    }

  decision_set (decision, FALSE, MOAT_POLICY_DEFAULT_RULE,
                g_strdup_printf ("%s matches no allow rule", what));
  return FALSE;
}

void
moat_policy_decision_clear (MoatPolicyDecision *decision)
{
  g_clear_pointer (&decision->rule, g_free);
  g_clear_pointer (&decision->reason, g_free);
}
