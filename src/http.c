/* SPDX-License-Identifier: GPL-2.0-or-later */
/* http.c - HTTP/1.1 request head parser and message body decoder */
#define G_LOG_DOMAIN "moat-http"

#include "http.h"

#include <arpa/inet.h>
#include <string.h>

#include "error.h"
#include "moat-limits.h"

/*
 * Theory of operation
 *
 * The guest is untrusted and moat re-issues its requests through libcurl,
 * so any disagreement between this parser and an upstream about where a
 * request ends is a request smuggling hole. The parser therefore follows
 * the strict grammar of RFC 9112 and rejects the constructs that RFC 9112
 * lets a recipient reject: bare LF, obs-fold, whitespace before the colon,
 * control characters in values and conflicting framing fields.
 *
 * moat_http_parse_request_head() keeps no state between calls. It first
 * scans the buffered bytes for the end of the head with memchr(), checking
 * the size limits and line endings on the way, so a head that can never
 * become valid is rejected while still incomplete. Only a complete head is
 * parsed into fields.
 *
 * The body decoder is a byte-at-a-time state machine for chunked coding
 * (RFC 9112 section 7.1), so it gives the same result however the input is
 * split. Body bytes are returned as spans of the caller's input.
 */

/* RFC 9110 section 5.6.2: tchar, the characters of a token. */
static gboolean
is_tchar (guint8 c)
{
  if (g_ascii_isalnum (c))
    return TRUE;

  return c != '\0' && strchr ("!#$%&'*+-.^_`|~", c) != NULL;
}

static gboolean
is_ows (guint8 c)
{
  return c == ' ' || c == '\t';
}

/* RFC 9110 section 5.5: field-vchar, SP and HTAB; obs-text is allowed. */
static gboolean
is_field_value_char (guint8 c)
{
  return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

static gboolean
span_equal_ascii_nocase (const char *span, gsize length, const char *word)
{
  return strlen (word) == length && g_ascii_strncasecmp (span, word, length) == 0;
}

/* Maximum bytes of an untrusted value quoted in an error message. */
#define QUOTE_MAX 64

/**
 * quote_bytes:
 * @bytes: untrusted bytes, not necessarily NUL-terminated
 * @length: length of @bytes
 *
 * Formats @bytes for an error message: in double quotes, with non-printable
 * bytes, quotes and backslashes as escapes, cut after QUOTE_MAX bytes.
 *
 * Return: a newly allocated string
 */
static char *
quote_bytes (const char *bytes, gsize length)
{
  GString *quoted = g_string_new ("\"");
  gsize quoted_length = MIN (length, QUOTE_MAX);

  for (gsize i = 0; i < quoted_length; i++)
    {
      guint8 c = (guint8) bytes[i];

      if (c == '"' || c == '\\')
        g_string_append_printf (quoted, "\\%c", c);
      else if (c >= 0x20 && c < 0x7f)
        g_string_append_c (quoted, (char) c);
      else
        g_string_append_printf (quoted, "\\x%02x", c);
    }
  g_string_append_c (quoted, '"');
  if (length > quoted_length)
    g_string_append (quoted, " (cut)");

  return g_string_free (quoted, FALSE);
}

static void set_head_error (guint *error_status, GError **error, guint status,
                            MoatError code, const char *format, ...)
    G_GNUC_PRINTF (5, 6);

static void
set_head_error (guint *error_status, GError **error, guint status,
                MoatError code, const char *format, ...)
{
  va_list args;

  if (error_status != NULL)
    *error_status = status;

  if (error == NULL)
    return;

  va_start (args, format);
  g_autofree char *message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error_literal (error, MOAT_ERROR, code, message);
}

MoatHttpHeader *
moat_http_header_new (const char *name, const char *value)
{
  MoatHttpHeader *header = g_new0 (MoatHttpHeader, 1);

  header->name = g_strdup (name);
  header->value = g_strdup (value);
  return header;
}

void
moat_http_header_free (MoatHttpHeader *header)
{
  if (header == NULL)
    return;

  g_free (header->name);
  g_free (header->value);
  g_free (header);
}

void
moat_http_request_free (MoatHttpRequest *request)
{
  if (request == NULL)
    return;

  g_free (request->method);
  g_free (request->target);
  g_clear_pointer (&request->headers, g_ptr_array_unref);
  g_free (request->host);
  g_free (request);
}

/**
 * moat_http_request_get_header:
 * @request: a parsed request
 * @name: field name, compared case-insensitively
 *
 * Return: the value of the first field called @name, or %NULL
 */
const char *
moat_http_request_get_header (const MoatHttpRequest *request, const char *name)
{
  g_return_val_if_fail (request != NULL, NULL);
  g_return_val_if_fail (name != NULL, NULL);

  for (guint i = 0; i < request->headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (request->headers, i);

      if (g_ascii_strcasecmp (header->name, name) == 0)
        return header->value;
    }

  return NULL;
}

/* ---- Head scanning: limits and line endings ---- */

/**
 * scan_head:
 * @buffer: buffered bytes from the start of the request
 * @length: length of @buffer
 * @head_length: (out): length of the head, final CRLF CRLF included
 * @error_status: (out): HTTP status for an error
 * @error: return location for an error
 *
 * Finds the empty line that ends the head (RFC 9112 section 2.1) and checks
 * the limits that can be checked before the head is complete: request line
 * length, head length and field count. Every LF must follow a CR. Empty
 * lines before the request line are skipped, as RFC 9112 section 2.2
 * recommends, but count toward the head length. Reads at most
 * MOAT_HTTP_HEAD_MAX bytes.
 *
 * Return: DONE with @head_length set, INCOMPLETE, or ERROR
 */
static MoatHttpParseResult
scan_head (const guint8 *buffer, gsize length, gsize *head_length,
           guint *error_status, GError **error)
{
  enum { LEADING_LINES, REQUEST_LINE, FIELD_LINES } part = LEADING_LINES;
  gsize limit = MIN (length, (gsize) MOAT_HTTP_HEAD_MAX);
  gsize position = 0;
  guint field_count = 0;

  while (position < limit)
    {
      const guint8 *newline = memchr (buffer + position, '\n', limit - position);
      gsize newline_index;
      gsize line_length;

      if (newline == NULL)
        break;

      newline_index = (gsize) (newline - buffer);
      if (newline_index == position || buffer[newline_index - 1] != '\r')
        {
          set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                          "bare LF at byte %" G_GSIZE_FORMAT " of the request "
                          "head: HTTP/1.1 lines must end with CRLF",
                          newline_index);
          return MOAT_HTTP_PARSE_ERROR;
        }
      line_length = newline_index - 1 - position;

      if (part == LEADING_LINES && line_length > 0)
        part = REQUEST_LINE;

      if (part == REQUEST_LINE)
        {
          if (line_length > MOAT_HTTP_REQUEST_LINE_MAX)
            {
              set_head_error (error_status, error, 414, MOAT_ERROR_LIMIT,
                              "request line of %" G_GSIZE_FORMAT " bytes is "
                              "longer than the maximum of %d bytes",
                              line_length, MOAT_HTTP_REQUEST_LINE_MAX);
              return MOAT_HTTP_PARSE_ERROR;
            }
          part = FIELD_LINES;
        }
      else if (part == FIELD_LINES)
        {
          if (line_length == 0)
            {
              *head_length = newline_index + 1;
              return MOAT_HTTP_PARSE_DONE;
            }

          field_count++;
          if (field_count > MOAT_HTTP_HEADERS_MAX)
            {
              set_head_error (error_status, error, 431, MOAT_ERROR_LIMIT,
                              "request head has more than the maximum of %d "
                              "header fields", MOAT_HTTP_HEADERS_MAX);
              return MOAT_HTTP_PARSE_ERROR;
            }
        }

      position = newline_index + 1;
    }

  /*
   * No end of head yet. A request line still without its LF is checked
   * now, so that a line that never ends is rejected once it is too long.
   * A final CR may be the start of the CRLF, so it does not count.
   */
  if (part != FIELD_LINES)
    {
      gsize partial_length = limit - position;

      if (partial_length > 0 && buffer[limit - 1] == '\r')
        partial_length--;

      if (partial_length > MOAT_HTTP_REQUEST_LINE_MAX)
        {
          set_head_error (error_status, error, 414, MOAT_ERROR_LIMIT,
                          "request line is longer than the maximum of %d "
                          "bytes and still has no end",
                          MOAT_HTTP_REQUEST_LINE_MAX);
          return MOAT_HTTP_PARSE_ERROR;
        }
    }

  if (length > MOAT_HTTP_HEAD_MAX)
    {
      set_head_error (error_status, error, 431, MOAT_ERROR_LIMIT,
                      "request head is longer than the maximum of %d bytes",
                      MOAT_HTTP_HEAD_MAX);
      return MOAT_HTTP_PARSE_ERROR;
    }

  return MOAT_HTTP_PARSE_INCOMPLETE;
}

/* ---- Request line ---- */

static gboolean
parse_method (const char *method, gsize length, guint *error_status,
              GError **error)
{
  g_autofree char *quoted = NULL;

  if (length == 0)
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "request line starts with a space: expected a method "
                      "such as GET");
      return FALSE;
    }

  for (gsize i = 0; i < length; i++)
    {
      if (is_tchar ((guint8) method[i]))
        continue;

      quoted = quote_bytes (method, length);
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "invalid character 0x%02x in request method %s: a "
                      "method must be a token (RFC 9110 section 9.1)",
                      (guint8) method[i], quoted);
      return FALSE;
    }

  return TRUE;
}

/*
 * RFC 9112 section 3.2: a request target contains no whitespace. Only
 * visible ASCII is accepted, and no "#" because the grammar of every target
 * form leaves out the URI fragment.
 */
static gboolean
validate_target_chars (const char *target, gsize length, guint *error_status,
                       GError **error)
{
  g_autofree char *quoted = NULL;

  if (length == 0)
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "request line has an empty request target: expected "
                      "\"METHOD SP TARGET SP HTTP/1.1\" with single spaces");
      return FALSE;
    }

  for (gsize i = 0; i < length; i++)
    {
      guint8 c = (guint8) target[i];

      if (c > 0x20 && c < 0x7f && c != '#')
        continue;

      quoted = quote_bytes (target, length);
      if (c == '#')
        {
          set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                          "request target %s contains a fragment (\"#\"), "
                          "which clients must not send", quoted);
          return FALSE;
        }
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "invalid character 0x%02x in request target %s: "
                      "percent-encode it", c, quoted);
      return FALSE;
    }

  return TRUE;
}

/* RFC 9112 section 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT */
static gboolean
parse_version (const char *version, gsize length, guint *version_minor,
               guint *error_status, GError **error)
{
  g_autofree char *quoted = quote_bytes (version, length);

  if (length != 8 || memcmp (version, "HTTP/", 5) != 0
      || !g_ascii_isdigit (version[5]) || version[6] != '.'
      || !g_ascii_isdigit (version[7]))
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "invalid HTTP version %s in the request line: expected "
                      "HTTP/1.1 or HTTP/1.0", quoted);
      return FALSE;
    }

  if (version[5] != '1' || (version[7] != '0' && version[7] != '1'))
    {
      set_head_error (error_status, error, 505, MOAT_ERROR_PROTOCOL,
                      "unsupported HTTP version %s: moat accepts HTTP/1.1 and "
                      "HTTP/1.0", quoted);
      return FALSE;
    }

  *version_minor = (guint) (version[7] - '0');
  return TRUE;
}

/* RFC 9112 section 3: request-line = method SP request-target SP HTTP-version */
static gboolean
parse_request_line (const char *line, gsize length, MoatHttpRequest *request,
                    guint *error_status, GError **error)
{
  const char *end = line + length;
  const char *first_space = memchr (line, ' ', length);
  const char *second_space;
  const char *target;

  if (first_space == NULL)
    {
      g_autofree char *quoted = quote_bytes (line, length);

      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "invalid request line %s: expected \"METHOD SP TARGET "
                      "SP HTTP/1.1\"", quoted);
      return FALSE;
    }

  if (!parse_method (line, (gsize) (first_space - line), error_status, error))
    return FALSE;

  target = first_space + 1;
  second_space = memchr (target, ' ', (gsize) (end - target));
  if (second_space == NULL)
    {
      g_autofree char *quoted = quote_bytes (line, length);

      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "request line %s has no HTTP version: HTTP/0.9 is not "
                      "supported", quoted);
      return FALSE;
    }

  if (!validate_target_chars (target, (gsize) (second_space - target),
                              error_status, error))
    return FALSE;

  if (!parse_version (second_space + 1, (gsize) (end - second_space - 1),
                      &request->version_minor, error_status, error))
    return FALSE;

  request->method = g_strndup (line, (gsize) (first_space - line));
  request->target = g_strndup (target, (gsize) (second_space - target));
  return TRUE;
}

/* ---- Field lines ---- */

/* RFC 9112 section 5: field-line = field-name ":" OWS field-value OWS */
static gboolean
parse_field_line (const char *line, gsize length, GPtrArray *headers,
                  guint *error_status, GError **error)
{
  g_autofree char *quoted_line = NULL;
  g_autofree char *name = NULL;
  const char *colon = NULL;
  const char *value;
  const char *value_end;
  MoatHttpHeader *header;

  /* RFC 9112 section 5.2: obs-fold, and section 2.2: whitespace after the
   * request line. Both are rejected. */
  if (is_ows ((guint8) line[0]))
    {
      quoted_line = quote_bytes (line, length);
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "header line %s starts with whitespace: line folding "
                      "(obs-fold) is not accepted", quoted_line);
      return FALSE;
    }

  for (gsize i = 0; i < length; i++)
    {
      guint8 c = (guint8) line[i];

      if (c == ':')
        {
          colon = line + i;
          break;
        }
      if (is_tchar (c))
        continue;

      quoted_line = quote_bytes (line, length);
      if (is_ows (c))
        set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                        "header line %s has whitespace in the field name or "
                        "before the colon (RFC 9112 section 5.1)",
                        quoted_line);
      else
        set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                        "invalid character 0x%02x in the field name of header "
                        "line %s: a field name must be a token", c,
                        quoted_line);
      return FALSE;
    }

  if (colon == NULL || colon == line)
    {
      quoted_line = quote_bytes (line, length);
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "invalid header line %s: expected \"name: value\"",
                      quoted_line);
      return FALSE;
    }

  name = g_strndup (line, (gsize) (colon - line));
  value = colon + 1;
  value_end = line + length;

  /* RFC 9110 section 5.5: NUL, CR and LF must be rejected; the other
   * control characters are not allowed either. */
  for (const char *p = value; p < value_end; p++)
    {
      if (is_field_value_char ((guint8) *p))
        continue;

      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "invalid control character 0x%02x in the value of "
                      "header field \"%s\"", (guint8) *p, name);
      return FALSE;
    }

  while (value < value_end && is_ows ((guint8) *value))
    value++;
  while (value_end > value && is_ows ((guint8) value_end[-1]))
    value_end--;

  header = g_new0 (MoatHttpHeader, 1);
  header->name = g_steal_pointer (&name);
  header->value = g_strndup (value, (gsize) (value_end - value));
  g_ptr_array_add (headers, header);
  return TRUE;
}

/* ---- Host and authority ---- */

/* RFC 1035 section 2.3.4: longest label, in bytes. */
#define HOST_LABEL_MAX 63
/* Maximum length of a textual IPv6 address such as
 * "ffff:...:255.255.255.255" (RFC 4291 section 2.2). */
#define IPV6_TEXT_MAX 45

/**
 * parse_host_name:
 * @name: host name bytes without port
 * @length: length of @name
 *
 * Checks a registered name or IPv4 address. This is stricter than the
 * reg-name of RFC 3986 section 3.2.2: only letters, digits, "-", "_" and
 * "." are accepted, because percent-encoding and sub-delims in a host name
 * could make the policy and the upstream see different names.
 *
 * Return: the name lowercased, without one trailing dot, or %NULL
 */
static char *
parse_host_name (const char *name, gsize length)
{
  gsize label_length = 0;

  if (length > 0 && name[length - 1] == '.')
    length--;

  if (length == 0 || length > MOAT_DNS_NAME_MAX)
    return NULL;

  for (gsize i = 0; i < length; i++)
    {
      char c = name[i];

      if (c == '.')
        {
          if (label_length == 0)
            return NULL;
          label_length = 0;
          continue;
        }

      if (!g_ascii_isalnum (c) && c != '-' && c != '_')
        return NULL;

      label_length++;
      if (label_length > HOST_LABEL_MAX)
        return NULL;
    }

  /* The last label must not be empty either: "a.com.." has two dots. */
  if (label_length == 0)
    return NULL;

  return g_ascii_strdown (name, (gssize) length);
}

/* IPv6 literal between brackets (RFC 3986 section 3.2.2), in canonical
 * text form so that equal addresses compare equal. */
static char *
parse_ipv6_literal (const char *literal, gsize length)
{
  char text[IPV6_TEXT_MAX + 1];
  char canonical[INET6_ADDRSTRLEN];
  struct in6_addr address;

  if (length == 0 || length > IPV6_TEXT_MAX)
    return NULL;

  memcpy (text, literal, length);
  text[length] = '\0';
  if (inet_pton (AF_INET6, text, &address) != 1)
    return NULL;
  if (inet_ntop (AF_INET6, &address, canonical, sizeof canonical) == NULL)
    return NULL;

  return g_strdup (canonical);
}

/* RFC 3986 section 3.2.3: port = *DIGIT. moat also rejects an empty port
 * and port 0, so every port it returns can be connected to. */
static gboolean
parse_port (const char *digits, gsize length, guint *port)
{
  guint value = 0;

  if (length == 0 || length > 5)
    return FALSE;

  for (gsize i = 0; i < length; i++)
    {
      if (!g_ascii_isdigit (digits[i]))
        return FALSE;
      value = value * 10 + (guint) (digits[i] - '0');
    }

  if (value == 0 || value > 65535)
    return FALSE;

  *port = value;
  return TRUE;
}

/**
 * parse_authority:
 * @authority: "host[:port]" bytes, where host is a name, an IPv4 address
 *   or an IPv6 address in brackets
 * @length: length of @authority
 * @host: (out): lowercase host without brackets, port and trailing dot
 * @port: (out): the port, or 0 when absent
 * @what: what the authority came from, for the error message
 *
 * Parses the authority of a Host field or of a request target (RFC 3986
 * section 3.2). IPv6 addresses are returned in canonical form.
 *
 * Return: %TRUE, or %FALSE with a 400 error
 */
static gboolean
parse_authority (const char *authority, gsize length, char **host,
                 guint *port, const char *what, guint *error_status,
                 GError **error)
{
  const char *end = authority + length;
  const char *host_end;
  const char *port_start = NULL;
  g_autofree char *parsed_host = NULL;
  g_autofree char *quoted = quote_bytes (authority, length);

  if (length > 0 && authority[0] == '[')
    {
      const char *bracket = memchr (authority, ']', length);

      if (bracket != NULL)
        parsed_host = parse_ipv6_literal (authority + 1,
                                          (gsize) (bracket - authority - 1));
      if (parsed_host == NULL)
        {
          set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                          "invalid IPv6 address in %s %s: expected "
                          "\"[address]\" or \"[address]:port\"", what, quoted);
          return FALSE;
        }

      host_end = bracket + 1;
      if (host_end < end && *host_end != ':')
        {
          set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                          "unexpected characters after the IPv6 address in "
                          "%s %s", what, quoted);
          return FALSE;
        }
    }
  else
    {
      host_end = memchr (authority, ':', length);
      if (host_end == NULL)
        host_end = end;

      parsed_host = parse_host_name (authority, (gsize) (host_end - authority));
      if (parsed_host == NULL)
        {
          set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                          "invalid host name in %s %s: expected letters, "
                          "digits, \"-\", \"_\" and dots, at most %d bytes",
                          what, quoted, MOAT_DNS_NAME_MAX);
          return FALSE;
        }
    }

  *port = 0;
  if (host_end < end)
    {
      port_start = host_end + 1;
      if (!parse_port (port_start, (gsize) (end - port_start), port))
        {
          set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                          "invalid port in %s %s: expected a number from 1 "
                          "to 65535", what, quoted);
          return FALSE;
        }
    }

  *host = g_steal_pointer (&parsed_host);
  return TRUE;
}

/**
 * parse_target_authority:
 * @request: request whose method and target are set
 * @host: (out): host named by the target, or %NULL for origin and asterisk
 *   form
 * @port: (out): port named by the target, or 0
 * @default_port: (out): port implied by the target's scheme, or 0
 *
 * Identifies the form of the request target (RFC 9112 section 3.2) and
 * parses the authority out of absolute and authority forms.
 *
 * Return: %TRUE, or %FALSE with a 400 error
 */
static gboolean
parse_target_authority (const MoatHttpRequest *request, char **host,
                        guint *port, guint *default_port,
                        guint *error_status, GError **error)
{
  const char *target = request->target;
  gsize target_length = strlen (target);
  const char *separator;
  const char *authority;
  gsize authority_length;

  *host = NULL;
  *port = 0;
  *default_port = 0;

  /* Section 3.2.3: CONNECT takes exactly "host:port". */
  if (strcmp (request->method, "CONNECT") == 0)
    {
      if (!parse_authority (target, target_length, host, port,
                            "CONNECT target", error_status, error))
        return FALSE;
      if (*port == 0)
        {
          g_clear_pointer (host, g_free);
          set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                          "CONNECT target \"%s\" has no port: expected "
                          "\"host:port\"", target);
          return FALSE;
        }
      return TRUE;
    }

  if (target[0] == '/')
    return TRUE;

  /* Section 3.2.4: the asterisk form is only for OPTIONS. */
  if (strcmp (target, "*") == 0)
    {
      if (strcmp (request->method, "OPTIONS") == 0)
        return TRUE;
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "request target \"*\" is only valid with OPTIONS, not "
                      "with %s", request->method);
      return FALSE;
    }

  /* Section 3.2.2: absolute form. */
  if (g_ascii_strncasecmp (target, "http://", 7) == 0)
    {
      authority = target + 7;
      *default_port = 80;
    }
  else if (g_ascii_strncasecmp (target, "https://", 8) == 0)
    {
      authority = target + 8;
      *default_port = 443;
    }
  else
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "invalid request target \"%.64s\": expected \"/path\" "
                      "or an absolute http:// or https:// URI", target);
      return FALSE;
    }

  separator = strpbrk (authority, "/?");
  authority_length = separator != NULL ? (gsize) (separator - authority)
                                       : strlen (authority);

  /* RFC 9110 section 4.2.4: userinfo in an http(s) URI is an error. */
  if (memchr (authority, '@', authority_length) != NULL)
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "request target \"%.64s\" contains userinfo (\"@\"), "
                      "which http and https URIs must not carry", target);
      return FALSE;
    }

  return parse_authority (authority, authority_length, host, port,
                          "request target", error_status, error);
}

/**
 * resolve_host:
 * @request: request with method, target and header fields set
 *
 * Sets @request->host and @request->port from the Host field, or from an
 * absolute or authority form target, which must then agree with the Host
 * field. RFC 9112 section 3.2.2 lets a server ignore Host in that case, but
 * a disagreement could make the policy check one host and the upstream
 * request go to another, so moat rejects it.
 *
 * Return: %TRUE, or %FALSE with a 400 error
 */
static gboolean
resolve_host (MoatHttpRequest *request, guint *error_status, GError **error)
{
  const char *host_value = NULL;
  guint host_field_count = 0;
  g_autofree char *field_host = NULL;
  guint field_port = 0;
  g_autofree char *target_host = NULL;
  guint target_port = 0;
  guint default_port = 0;

  for (guint i = 0; i < request->headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (request->headers, i);

      if (g_ascii_strcasecmp (header->name, "Host") != 0)
        continue;
      host_field_count++;
      if (host_value == NULL)
        host_value = header->value;
    }

  /* RFC 9112 section 3.2: exactly one Host field in HTTP/1.1, at most one
   * in any request. */
  if (host_field_count > 1)
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "request has %u Host fields: send exactly one",
                      host_field_count);
      return FALSE;
    }
  if (host_field_count == 0 && request->version_minor == 1)
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "HTTP/1.1 request has no Host field: send exactly one");
      return FALSE;
    }

  if (host_value != NULL
      && !parse_authority (host_value, strlen (host_value), &field_host,
                           &field_port, "Host field", error_status, error))
    return FALSE;

  if (!parse_target_authority (request, &target_host, &target_port,
                               &default_port, error_status, error))
    return FALSE;

  if (target_host == NULL)
    {
      request->host = g_steal_pointer (&field_host);
      request->port = field_port;
      return TRUE;
    }

  if (field_host != NULL
      && (strcmp (field_host, target_host) != 0
          || (field_port != 0 ? field_port : default_port)
                 != (target_port != 0 ? target_port : default_port)))
    {
      g_autofree char *quoted = quote_bytes (host_value, strlen (host_value));

      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "Host field %s does not match the host of request "
                      "target \"%.64s\"", quoted, request->target);
      return FALSE;
    }

  request->host = g_steal_pointer (&target_host);
  request->port = target_port;
  return TRUE;
}

/* ---- Framing and connection fields ---- */

/**
 * next_list_element:
 * @cursor: (inout): position in a comma-separated field value
 * @end: end of the value
 * @element_length: (out): length of the element
 *
 * Splits off the next element of a list (RFC 9110 section 5.6.1), trimmed
 * of OWS. The element may be empty.
 *
 * Return: the element, or %NULL when the value is used up
 */
static const char *
next_list_element (const char **cursor, const char *end,
                   gsize *element_length)
{
  const char *start = *cursor;
  const char *comma;
  const char *element_end;

  if (start > end)
    return NULL;

  comma = memchr (start, ',', (gsize) (end - start));
  element_end = comma != NULL ? comma : end;
  *cursor = element_end + 1;

  while (start < element_end && is_ows ((guint8) *start))
    start++;
  while (element_end > start && is_ows ((guint8) element_end[-1]))
    element_end--;

  *element_length = (gsize) (element_end - start);
  return start;
}

/**
 * parse_content_length:
 * @request: request with header fields set
 * @found: (out): whether any Content-Length field is present
 *
 * Parses every Content-Length field. Several fields or a list are accepted
 * only when all elements are the identical digit string (RFC 9112 section
 * 6.3 item 5). The value must fit in a gint64.
 *
 * Return: %TRUE, or %FALSE with a 400 error
 */
static gboolean
parse_content_length (MoatHttpRequest *request, gboolean *found,
                      guint *error_status, GError **error)
{
  const char *first = NULL;
  gsize first_length = 0;
  guint64 value = 0;

  *found = FALSE;

  for (guint i = 0; i < request->headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (request->headers, i);
      const char *cursor = header->value;
      const char *end = cursor + strlen (cursor);
      const char *element;
      gsize element_length;

      if (g_ascii_strcasecmp (header->name, "Content-Length") != 0)
        continue;
      *found = TRUE;

      while ((element = next_list_element (&cursor, end, &element_length)))
        {
          g_autofree char *quoted = quote_bytes (header->value,
                                                 strlen (header->value));
          gboolean all_digits = element_length > 0;

          for (gsize j = 0; j < element_length; j++)
            all_digits = all_digits && g_ascii_isdigit (element[j]);

          if (!all_digits)
            {
              set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                              "invalid Content-Length %s: expected one "
                              "decimal number", quoted);
              return FALSE;
            }

          if (first == NULL)
            {
              first = element;
              first_length = element_length;
            }
          else if (element_length != first_length
                   || memcmp (element, first, first_length) != 0)
            {
              g_autofree char *quoted_first = quote_bytes (first,
                                                           first_length);
              g_autofree char *quoted_element = quote_bytes (element,
                                                             element_length);

              set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                              "conflicting Content-Length values %s and %s: "
                              "send one Content-Length field", quoted_first,
                              quoted_element);
              return FALSE;
            }
        }
    }

  if (!*found)
    return TRUE;

  for (gsize j = 0; j < first_length; j++)
    {
      guint digit = (guint) (first[j] - '0');

      if (value > ((guint64) G_MAXINT64 - digit) / 10)
        {
          g_autofree char *quoted = quote_bytes (first, first_length);

          set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                          "Content-Length %s is larger than %" G_GINT64_FORMAT,
                          quoted, G_MAXINT64);
          return FALSE;
        }
      value = value * 10 + digit;
    }

  request->content_length = (gint64) value;
  return TRUE;
}

/* Transfer codings registered by RFC 9112 section 7 and RFC 9110 section
 * 8.4.1, which moat understands but does not decode. */
static gboolean
is_known_transfer_coding (const char *coding, gsize length)
{
  static const char *const known[] = {
    "compress", "deflate", "gzip", "x-compress", "x-gzip",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (known); i++)
    if (span_equal_ascii_nocase (coding, length, known[i]))
      return TRUE;

  return FALSE;
}

/**
 * parse_transfer_encoding:
 * @request: request with header fields set
 * @found: (out): whether any Transfer-Encoding field is present
 *
 * Accepts exactly the coding list "chunked" (RFC 9112 section 6.1). A list
 * that does not end in chunked makes the body length unknowable (400, RFC
 * 9112 section 6.3 item 4). Other codings before chunked are valid but moat
 * does not decode them (501).
 *
 * Return: %TRUE, or %FALSE with a 400 or 501 error
 */
static gboolean
parse_transfer_encoding (MoatHttpRequest *request, gboolean *found,
                         guint *error_status, GError **error)
{
  guint coding_count = 0;
  guint chunked_count = 0;
  gboolean last_is_chunked = FALSE;
  const char *unsupported = NULL;
  gsize unsupported_length = 0;

  *found = FALSE;

  for (guint i = 0; i < request->headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (request->headers, i);
      const char *cursor = header->value;
      const char *end = cursor + strlen (cursor);
      const char *element;
      gsize element_length;

      if (g_ascii_strcasecmp (header->name, "Transfer-Encoding") != 0)
        continue;
      *found = TRUE;

      while ((element = next_list_element (&cursor, end, &element_length)))
        {
          gsize name_length = 0;

          /* A coding is a token, optionally followed by parameters. */
          while (name_length < element_length
                 && is_tchar ((guint8) element[name_length]))
            name_length++;

          if (name_length == 0
              || (name_length < element_length
                  && element[name_length] != ';'
                  && !is_ows ((guint8) element[name_length])))
            {
              g_autofree char *quoted = quote_bytes (header->value,
                                                     strlen (header->value));

              set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                              "invalid Transfer-Encoding %s: expected a "
                              "comma-separated list of transfer codings",
                              quoted);
              return FALSE;
            }

          coding_count++;
          last_is_chunked = span_equal_ascii_nocase (element, element_length,
                                                     "chunked");
          if (span_equal_ascii_nocase (element, name_length, "chunked"))
            chunked_count++;
          else if (unsupported == NULL)
            {
              unsupported = element;
              unsupported_length = element_length;
            }
        }
    }

  if (!*found)
    return TRUE;

  if (request->version_minor == 0)
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "HTTP/1.0 request has a Transfer-Encoding field, which "
                      "HTTP/1.0 does not define (RFC 9112 section 6.1)");
      return FALSE;
    }

  /* This covers an empty field value, "gzip", and "chunked;param" alike. */
  if (!last_is_chunked || chunked_count > 1)
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "Transfer-Encoding must end with a single \"chunked\" "
                      "without parameters, or the request body length is "
                      "unknown (RFC 9112 section 6.3)");
      return FALSE;
    }

  if (coding_count > 1)
    {
      g_autofree char *quoted = quote_bytes (unsupported, unsupported_length);

      set_head_error (error_status, error, 501, MOAT_ERROR_PROTOCOL,
                      "unsupported transfer coding %s%s: send the body with "
                      "chunked coding only", quoted,
                      is_known_transfer_coding (unsupported, unsupported_length)
                          ? "" : " (unknown coding)");
      return FALSE;
    }

  request->chunked = TRUE;
  return TRUE;
}

/* RFC 9112 section 9.3: persistence from the version and Connection. */
static gboolean
parse_connection (MoatHttpRequest *request, guint *error_status,
                  GError **error)
{
  gboolean close = FALSE;
  gboolean keep_alive = FALSE;

  for (guint i = 0; i < request->headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (request->headers, i);
      const char *cursor = header->value;
      const char *end = cursor + strlen (cursor);
      const char *element;
      gsize element_length;

      if (g_ascii_strcasecmp (header->name, "Connection") != 0)
        continue;

      while ((element = next_list_element (&cursor, end, &element_length)))
        {
          for (gsize j = 0; j < element_length; j++)
            {
              if (is_tchar ((guint8) element[j]))
                continue;

              g_autofree char *quoted = quote_bytes (header->value,
                                                     strlen (header->value));
              set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                              "invalid Connection field %s: expected a "
                              "comma-separated list of field names", quoted);
              return FALSE;
            }

          if (span_equal_ascii_nocase (element, element_length, "close"))
            close = TRUE;
          else if (span_equal_ascii_nocase (element, element_length,
                                            "keep-alive"))
            keep_alive = TRUE;
        }
    }

  if (request->version_minor == 1)
    request->keep_alive = !close;
  else
    request->keep_alive = keep_alive && !close;

  return TRUE;
}

/*
 * RFC 9110 section 10.1.1: "100-continue" is the only expectation. An
 * HTTP/1.0 request's expectation is ignored. Any other expectation gets 417,
 * because moat could not meet it.
 */
static gboolean
parse_expect (MoatHttpRequest *request, guint *error_status, GError **error)
{
  if (request->version_minor == 0)
    return TRUE;

  for (guint i = 0; i < request->headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (request->headers, i);
      const char *cursor = header->value;
      const char *end = cursor + strlen (cursor);
      const char *element;
      gsize element_length;

      if (g_ascii_strcasecmp (header->name, "Expect") != 0)
        continue;

      while ((element = next_list_element (&cursor, end, &element_length)))
        {
          if (element_length == 0)
            continue;

          if (span_equal_ascii_nocase (element, element_length,
                                       "100-continue"))
            {
              request->expect_continue = TRUE;
              continue;
            }

          g_autofree char *quoted = quote_bytes (element, element_length);
          set_head_error (error_status, error, 417, MOAT_ERROR_PROTOCOL,
                          "unsupported expectation %s: only \"100-continue\" "
                          "is supported", quoted);
          return FALSE;
        }
    }

  return TRUE;
}

/* ---- The head parser ---- */

/**
 * parse_head_lines:
 * @head: a complete head as found by scan_head()
 * @head_length: length of @head
 * @request: request to fill in
 *
 * Parses the request line and every field line of a complete head.
 *
 * Return: %TRUE, or %FALSE with an error
 */
static gboolean
parse_head_lines (const char *head, gsize head_length,
                  MoatHttpRequest *request, guint *error_status,
                  GError **error)
{
  const char *end = head + head_length;
  const char *line = head;
  gboolean request_line_seen = FALSE;

  while (line < end)
    {
      /* scan_head() has checked that every LF follows a CR. */
      const char *newline = memchr (line, '\n', (gsize) (end - line));
      gsize line_length = (gsize) (newline - line) - 1;

      if (line_length == 0)
        {
          if (request_line_seen)
            break;
        }
      else if (!request_line_seen)
        {
          if (!parse_request_line (line, line_length, request, error_status,
                                   error))
            return FALSE;
          request_line_seen = TRUE;
        }
      else if (!parse_field_line (line, line_length, request->headers,
                                  error_status, error))
        return FALSE;

      line = newline + 1;
    }

  return TRUE;
}

/**
 * moat_http_parse_request_head:
 * @buffer: all bytes received on the connection since the previous request
 * @length: length of @buffer
 * @request: (out): the parsed request, on %MOAT_HTTP_PARSE_DONE
 * @consumed: (out): length of the head including the final CRLF CRLF, on
 *   %MOAT_HTTP_PARSE_DONE
 * @error_status: (out) (optional): HTTP status for the error response, on
 *   %MOAT_HTTP_PARSE_ERROR
 * @error: return location for a %MOAT_ERROR_PROTOCOL or %MOAT_ERROR_LIMIT
 *   error
 *
 * Parses an HTTP/1.x request head (RFC 9112 sections 2 to 7). The function
 * keeps no state: call it again with the whole buffer when more bytes
 * arrive. Limits are checked on incomplete heads too.
 *
 * Return: %MOAT_HTTP_PARSE_INCOMPLETE until the head is complete, then
 *   %MOAT_HTTP_PARSE_DONE or %MOAT_HTTP_PARSE_ERROR
 */
MoatHttpParseResult
moat_http_parse_request_head (const guint8 *buffer, gsize length,
                              MoatHttpRequest **request, gsize *consumed,
                              guint *error_status, GError **error)
{
  g_autoptr (MoatHttpRequest) parsed = NULL;
  MoatHttpParseResult result;
  gboolean content_length_found;
  gboolean transfer_encoding_found;
  gsize head_length = 0;

  g_return_val_if_fail (buffer != NULL || length == 0, MOAT_HTTP_PARSE_ERROR);
  g_return_val_if_fail (request != NULL, MOAT_HTTP_PARSE_ERROR);
  g_return_val_if_fail (consumed != NULL, MOAT_HTTP_PARSE_ERROR);
  g_return_val_if_fail (error == NULL || *error == NULL, MOAT_HTTP_PARSE_ERROR);

  *request = NULL;
  *consumed = 0;
  if (error_status != NULL)
    *error_status = 0;

  result = scan_head (buffer, length, &head_length, error_status, error);
  if (result != MOAT_HTTP_PARSE_DONE)
    return result;

  parsed = g_new0 (MoatHttpRequest, 1);
  parsed->headers = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_http_header_free);
  parsed->content_length = -1;

  if (!parse_head_lines ((const char *) buffer, head_length, parsed,
                         error_status, error)
      || !resolve_host (parsed, error_status, error)
      || !parse_content_length (parsed, &content_length_found, error_status,
                                error)
      || !parse_transfer_encoding (parsed, &transfer_encoding_found,
                                   error_status, error))
    return MOAT_HTTP_PARSE_ERROR;

  /* RFC 9112 section 6.3 item 3: both framing fields is a smuggling shape. */
  if (content_length_found && transfer_encoding_found)
    {
      set_head_error (error_status, error, 400, MOAT_ERROR_PROTOCOL,
                      "request has both Transfer-Encoding and Content-Length: "
                      "send only one");
      return MOAT_HTTP_PARSE_ERROR;
    }

  if (!parse_connection (parsed, error_status, error)
      || !parse_expect (parsed, error_status, error))
    return MOAT_HTTP_PARSE_ERROR;

  *consumed = head_length;
  *request = g_steal_pointer (&parsed);
  return MOAT_HTTP_PARSE_DONE;
}

/* ---- Helpers for the flow layer ---- */

/**
 * moat_http_header_is_hop_by_hop:
 * @name: a field name
 *
 * Tells whether a field applies only to one connection (RFC 9110 section
 * 7.6.1), so a proxy must not forward it. Fields named in Connection are
 * hop-by-hop too; the caller checks those.
 *
 * Return: %TRUE for a hop-by-hop field name, compared case-insensitively
 */
gboolean
moat_http_header_is_hop_by_hop (const char *name)
{
  static const char *const hop_by_hop[] = {
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
  };

  g_return_val_if_fail (name != NULL, FALSE);

  for (gsize i = 0; i < G_N_ELEMENTS (hop_by_hop); i++)
    if (g_ascii_strcasecmp (name, hop_by_hop[i]) == 0)
      return TRUE;

  return FALSE;
}

/**
 * moat_http_status_reason:
 * @status: an HTTP status code
 *
 * Return: the reason phrase of RFC 9110 section 15 for @status, or
 *   "Unknown"
 */
const char *
moat_http_status_reason (guint status)
{
  switch (status)
    {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- Body decoder ---- */

/* States of the chunked decoder (RFC 9112 section 7.1), kept in
 * MoatHttpBodyDecoder.state. */
enum {
  CHUNK_SIZE_START,   /* before the first hex digit of a chunk size */
  CHUNK_SIZE,         /* in the hex digits */
  CHUNK_SIZE_BWS,     /* whitespace after the size, ";" must follow */
  CHUNK_EXTENSION,    /* after ";", up to CR */
  CHUNK_SIZE_LF,      /* CR of the chunk-size line seen */
  CHUNK_DATA,         /* remaining bytes of chunk data */
  CHUNK_DATA_CR,      /* CR after chunk data expected */
  CHUNK_DATA_LF,      /* LF after chunk data expected */
  TRAILER_LINE_START, /* a trailer field or the final CRLF */
  TRAILER_NAME,       /* in a trailer field name */
  TRAILER_VALUE,      /* in a trailer field value, up to CR */
  TRAILER_LF,         /* CR of a trailer field line seen */
  FINAL_LF,           /* CR of the final empty line seen */
  DECODER_FAILED,
};

/**
 * moat_http_body_decoder_init:
 * @decoder: decoder to set up
 * @request: (nullable): the request whose body follows, or %NULL for none
 *
 * Chooses chunked decoding, a fixed length, or no body (RFC 9112 section
 * 6.3). A decoder for an empty body is done at once.
 */
void
moat_http_body_decoder_init (MoatHttpBodyDecoder *decoder,
                             const MoatHttpRequest *request)
{
  g_return_if_fail (decoder != NULL);

  memset (decoder, 0, sizeof *decoder);
  decoder->state = CHUNK_SIZE_START;

  if (request != NULL && request->chunked)
    decoder->mode = MOAT_HTTP_BODY_CHUNKED;
  else if (request != NULL && request->content_length > 0)
    {
      decoder->mode = MOAT_HTTP_BODY_LENGTH;
      decoder->remaining = (guint64) request->content_length;
    }
  else
    {
      decoder->mode = MOAT_HTTP_BODY_NONE;
      decoder->done = TRUE;
    }
}

static gssize
fail_chunked (MoatHttpBodyDecoder *decoder, GError **error, MoatError code,
              const char *message)
{
  decoder->state = DECODER_FAILED;
  g_set_error_literal (error, MOAT_ERROR, code, message);
  return -1;
}

/* Adds one hex digit to the chunk size in decoder->remaining. Sizes above
 * G_MAXINT64 are rejected so that they fit the signed lengths callers use. */
static gboolean
add_chunk_size_digit (MoatHttpBodyDecoder *decoder, guint8 c)
{
  int digit = g_ascii_xdigit_value ((char) c);

  if (decoder->remaining > ((guint64) G_MAXINT64 - (guint64) digit) / 16)
    return FALSE;

  decoder->remaining = decoder->remaining * 16 + (guint64) digit;
  return TRUE;
}

/*
 * Runs the chunked state machine over the input until it reaches chunk
 * data, the end of the body, or the end of the input, with the contract of
 * moat_http_body_decoder_feed(). Chunk-size lines, extensions and trailer
 * fields are checked and discarded. Extensions are checked only for bytes
 * that may not appear in them (CTLs other than HTAB): moat ignores them, so
 * only their end must be found.
 */
static gssize
feed_chunked (MoatHttpBodyDecoder *decoder, const guint8 *input,
              gsize input_length, const guint8 **data, gsize *data_length,
              GError **error)
{
  gsize position = 0;

  while (position < input_length && !decoder->done)
    {
      guint8 c = input[position];

      if (decoder->state == CHUNK_DATA)
        {
          gsize span = (gsize) MIN (decoder->remaining,
                                    (guint64) (input_length - position));

          *data = input + position;
          *data_length = span;
          decoder->remaining -= span;
          if (decoder->remaining == 0)
            decoder->state = CHUNK_DATA_CR;
          return (gssize) (position + span);
        }

      /* Chunk-size lines and the trailer section are bounded, CRLF aside. */
      if (decoder->state <= CHUNK_EXTENSION && c != '\r')
        {
          decoder->line_length++;
          if (decoder->line_length > MOAT_HTTP_CHUNK_LINE_MAX)
            return fail_chunked (decoder, error, MOAT_ERROR_LIMIT,
                                 "Chunk-size line is longer than the maximum "
                                 "of " G_STRINGIFY (MOAT_HTTP_CHUNK_LINE_MAX)
                                 " bytes");
        }
      else if (decoder->state >= TRAILER_LINE_START
               && decoder->state <= FINAL_LF)
        {
          decoder->line_length++;
          if (decoder->line_length > MOAT_HTTP_HEAD_MAX)
            return fail_chunked (decoder, error, MOAT_ERROR_LIMIT,
                                 "Chunked trailer section is longer than the "
                                 "maximum of " G_STRINGIFY (MOAT_HTTP_HEAD_MAX)
                                 " bytes");
        }

      if (c == '\n' && decoder->state != CHUNK_SIZE_LF
          && decoder->state != CHUNK_DATA_LF && decoder->state != TRAILER_LF
          && decoder->state != FINAL_LF)
        return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                             "Bare LF in chunked body: lines must end with "
                             "CRLF");

      switch (decoder->state)
        {
        case CHUNK_SIZE_START:
          if (!g_ascii_isxdigit ((char) c))
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "Invalid chunk size: expected a hexadecimal "
                                 "number");
          decoder->remaining = (guint64) g_ascii_xdigit_value ((char) c);
          decoder->state = CHUNK_SIZE;
          break;

        case CHUNK_SIZE:
          if (g_ascii_isxdigit ((char) c))
            {
              if (!add_chunk_size_digit (decoder, c))
                return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                     "Chunk size is larger than 2^63 - 1 "
                                     "bytes");
            }
          else if (c == ';')
            decoder->state = CHUNK_EXTENSION;
          else if (is_ows (c))
            decoder->state = CHUNK_SIZE_BWS;
          else if (c == '\r')
            decoder->state = CHUNK_SIZE_LF;
          else
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "Invalid character after the chunk size: "
                                 "expected \";\" or CRLF");
          break;

        /* RFC 9112 section 7.1.1: BWS is allowed only before ";". */
        case CHUNK_SIZE_BWS:
          if (c == ';')
            decoder->state = CHUNK_EXTENSION;
          else if (!is_ows (c))
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "Whitespace after the chunk size is not "
                                 "followed by a chunk extension");
          break;

        case CHUNK_EXTENSION:
          if (c == '\r')
            decoder->state = CHUNK_SIZE_LF;
          else if (!is_field_value_char (c))
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "Invalid control character in a chunk "
                                 "extension");
          break;

        case CHUNK_SIZE_LF:
          if (c != '\n')
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "CR in a chunk-size line is not followed by "
                                 "LF");
          decoder->line_length = 0;
          decoder->state = decoder->remaining == 0 ? TRAILER_LINE_START
                                                   : CHUNK_DATA;
          break;

        case CHUNK_DATA_CR:
          if (c != '\r')
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "Chunk data is longer than its chunk size: "
                                 "expected CRLF");
          decoder->state = CHUNK_DATA_LF;
          break;

        case CHUNK_DATA_LF:
          if (c != '\n')
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "CR after chunk data is not followed by LF");
          decoder->state = CHUNK_SIZE_START;
          break;

        /* RFC 9112 section 7.1.2: trailer fields have the syntax of
         * header fields and are discarded here. */
        case TRAILER_LINE_START:
          if (c == '\r')
            decoder->state = FINAL_LF;
          else if (is_tchar (c))
            decoder->state = TRAILER_NAME;
          else
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "Invalid trailer field line: expected a "
                                 "field name (obs-fold is not accepted)");
          break;

        case TRAILER_NAME:
          if (c == ':')
            decoder->state = TRAILER_VALUE;
          else if (!is_tchar (c))
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "Invalid character in a trailer field name");
          break;

        case TRAILER_VALUE:
          if (c == '\r')
            decoder->state = TRAILER_LF;
          else if (!is_field_value_char (c))
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "Invalid control character in a trailer "
                                 "field value");
          break;

        case TRAILER_LF:
          if (c != '\n')
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "CR in a trailer field is not followed by LF");
          decoder->state = TRAILER_LINE_START;
          break;

        case FINAL_LF:
          if (c != '\n')
            return fail_chunked (decoder, error, MOAT_ERROR_PROTOCOL,
                                 "CR after the trailer section is not "
                                 "followed by LF");
          decoder->done = TRUE;
          break;

        default:
          g_assert_not_reached ();
        }

      position++;
    }

  return (gssize) position;
}

/**
 * moat_http_body_decoder_feed:
 * @decoder: an initialised decoder
 * @input: received bytes that follow what was consumed before
 * @input_length: length of @input
 * @data: (out): start of the body bytes found, inside @input
 * @data_length: (out): number of body bytes at @data, possibly 0
 * @error: return location for a %MOAT_ERROR_PROTOCOL or %MOAT_ERROR_LIMIT
 *   error
 *
 * Consumes framing and body bytes from @input and returns at most one span
 * of body bytes. Call it again on the rest of @input until it returns 0 or
 * the decoder is done. Bytes after the end of the body are not consumed.
 *
 * Return: the number of bytes consumed, or -1 on malformed chunked coding,
 *   also on every call after that
 */
gssize
moat_http_body_decoder_feed (MoatHttpBodyDecoder *decoder,
                             const guint8 *input, gsize input_length,
                             const guint8 **data, gsize *data_length,
                             GError **error)
{
  gsize span;

  g_return_val_if_fail (decoder != NULL, -1);
  g_return_val_if_fail (input != NULL || input_length == 0, -1);
  g_return_val_if_fail (data != NULL && data_length != NULL, -1);

  *data = input;
  *data_length = 0;

  if (decoder->state == DECODER_FAILED)
    {
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                           "chunked body decoding already failed");
      return -1;
    }

  /* The return value is signed. */
  input_length = MIN (input_length, (gsize) G_MAXSSIZE);

  if (decoder->done || input_length == 0)
    return 0;

  switch (decoder->mode)
    {
    case MOAT_HTTP_BODY_CHUNKED:
      return feed_chunked (decoder, input, input_length, data, data_length,
                           error);

    case MOAT_HTTP_BODY_LENGTH:
      span = (gsize) MIN (decoder->remaining, (guint64) input_length);
      *data_length = span;
      decoder->remaining -= span;
      decoder->done = decoder->remaining == 0;
      return (gssize) span;

    case MOAT_HTTP_BODY_NONE:
    default:
      return 0;
    }
}

gboolean
moat_http_body_decoder_is_done (const MoatHttpBodyDecoder *decoder)
{
  g_return_val_if_fail (decoder != NULL, FALSE);

  return decoder->done;
}
