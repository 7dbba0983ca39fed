/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tls_hello.c - reads the server name from a guest's TLS ClientHello */
#define G_LOG_DOMAIN "moat-tls"

#include "tls.h"

#include <string.h>

#include "error.h"
#include "moat-limits.h"

/* TLS record layer (RFC 8446 section 5.1). */
#define RECORD_HEADER_LEN 5
#define RECORD_FRAGMENT_MAX 16384 /* 2^14 */
#define CONTENT_TYPE_HANDSHAKE 22

/* Handshake layer (RFC 8446 section 4). */
#define HANDSHAKE_HEADER_LEN 4
#define HANDSHAKE_CLIENT_HELLO 1

/* ClientHello fields (RFC 8446 section 4.1.2). */
#define RANDOM_LEN 32
#define SESSION_ID_MAX 32

/* server_name extension (RFC 6066 section 3). */
#define EXTENSION_SERVER_NAME 0
#define NAME_TYPE_HOST_NAME 0

/* A DNS label is at most 63 octets (RFC 1035 section 2.3.4). */
#define LABEL_MAX 63

/*
 * Bounded reader over a byte range: every read checks the remaining length
 * first and fails rather than reading past @end.
 */
typedef struct {
  const guint8 *pos;
  const guint8 *end;
} Reader;

static gsize
reader_left (const Reader *reader)
{
  return (gsize) (reader->end - reader->pos);
}

static gboolean
read_u8 (Reader *reader, guint *value)
{
  if (reader_left (reader) < 1)
    return FALSE;
  *value = reader->pos[0];
  reader->pos += 1;
  return TRUE;
}

static gboolean
read_u16 (Reader *reader, guint *value)
{
  if (reader_left (reader) < 2)
    return FALSE;
  *value = ((guint) reader->pos[0] << 8) | reader->pos[1];
  reader->pos += 2;
  return TRUE;
}

static gboolean
read_u24 (Reader *reader, guint *value)
{
  if (reader_left (reader) < 3)
    return FALSE;
  *value = ((guint) reader->pos[0] << 16) | ((guint) reader->pos[1] << 8)
           | reader->pos[2];
  reader->pos += 3;
  return TRUE;
}

static gboolean
skip (Reader *reader, gsize count)
{
  if (reader_left (reader) < count)
    return FALSE;
  reader->pos += count;
  return TRUE;
}

/*
 * Splits off a vector of @length bytes into @inner (RFC 8446 section 3.4).
 */
static gboolean
read_vector (Reader *reader, gsize length, Reader *inner)
{
  if (reader_left (reader) < length)
    return FALSE;
  inner->pos = reader->pos;
  inner->end = reader->pos + length;
  reader->pos += length;
  return TRUE;
}

static MoatTlsHelloResult
invalid (GError **error, MoatError code, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

static MoatTlsHelloResult
invalid (GError **error, MoatError code, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_autofree char *message = g_strdup_vprintf (format, args);
  va_end (args);

  g_set_error (error, MOAT_ERROR, code, "not a valid TLS ClientHello: %s",
               message);
  return MOAT_TLS_HELLO_INVALID;
}

/*
 * Returns INCOMPLETE, unless the caller has already given MOAT_SNIFF_MAX
 * bytes and so cannot give more.
 */
static MoatTlsHelloResult
incomplete (gsize length, GError **error)
{
  if (length >= MOAT_SNIFF_MAX)
    return invalid (error, MOAT_ERROR_LIMIT,
                    "the hello does not fit in the first %d bytes",
                    MOAT_SNIFF_MAX);
  return MOAT_TLS_HELLO_INCOMPLETE;
}

/**
 * moat_tls_server_name_is_valid:
 * @name: a host name, not NUL-terminated necessarily
 * @length: bytes in @name
 *
 * Checks that @name is usable as a TLS server name and certificate dNSName:
 * 1 to 253 bytes, dot-separated labels of 1 to 63 letters, digits, hyphens
 * or underscores, and no trailing dot (RFC 6066 section 3). Underscores are
 * not valid in host names but appear in real ones, and clients send them.
 *
 * Return: TRUE if @name is valid
 */
gboolean
moat_tls_server_name_is_valid (const char *name, gsize length)
{
  if (length == 0 || length > MOAT_DNS_NAME_MAX)
    return FALSE;

  gsize label_len = 0;
  for (gsize i = 0; i < length; i++)
    {
      char c = name[i];
      if (c == '.')
        {
          if (label_len == 0)
            return FALSE;
          label_len = 0;
          continue;
        }
      if (!g_ascii_isalnum (c) && c != '-' && c != '_')
        return FALSE;
      if (++label_len > LABEL_MAX)
        return FALSE;
    }

  /* label_len == 0 here means a trailing dot. */
  return label_len > 0;
}

/*
 * Parses a server_name extension body (RFC 6066 section 3) and stores the
 * lowercase host name in @server_name.
 */
static MoatTlsHelloResult
parse_server_name (Reader *body, char **server_name, GError **error)
{
  guint list_len = 0;
  Reader list;

  if (!read_u16 (body, &list_len) || list_len != reader_left (body)
      || !read_vector (body, list_len, &list))
    return invalid (error, MOAT_ERROR_PROTOCOL,
                    "server_name list length does not match its extension");
  if (list_len == 0)
    return invalid (error, MOAT_ERROR_PROTOCOL, "server_name list is empty");

  g_autofree char *host_name = NULL;
  while (reader_left (&list) > 0)
    {
      guint name_type = 0;
      guint name_len = 0;
      Reader name;

      if (!read_u8 (&list, &name_type) || !read_u16 (&list, &name_len)
          || !read_vector (&list, name_len, &name))
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "server_name entry overruns its list");
      if (name_type != NAME_TYPE_HOST_NAME)
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "server_name entry has type %u, expected host_name "
                        "(0)",
                        name_type);
      /* RFC 6066 section 3: at most one name of each type. */
      if (host_name != NULL)
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "server_name lists more than one host_name");
      if (!moat_tls_server_name_is_valid ((const char *) name.pos, name_len))
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "server_name host_name of %u bytes is not a valid "
                        "host name",
                        name_len);

      host_name = g_ascii_strdown ((const char *) name.pos, name_len);
    }

  *server_name = g_steal_pointer (&host_name);
  return MOAT_TLS_HELLO_OK;
}

/*
 * Parses a complete ClientHello body (RFC 8446 section 4.1.2, which also
 * covers the TLS 1.0-1.2 layout, where extensions may be absent).
 */
static MoatTlsHelloResult
parse_client_hello (Reader *hello, char **server_name, GError **error)
{
  guint version = 0;
  guint length = 0;

  if (!read_u16 (hello, &version))
    return invalid (error, MOAT_ERROR_PROTOCOL, "legacy_version is truncated");
  if ((version >> 8) != 3)
    return invalid (error, MOAT_ERROR_PROTOCOL,
                    "legacy_version 0x%04x is not 0x03xx", version);
  if (!skip (hello, RANDOM_LEN))
    return invalid (error, MOAT_ERROR_PROTOCOL, "random is truncated");

  if (!read_u8 (hello, &length) || length > SESSION_ID_MAX
      || !skip (hello, length))
    return invalid (error, MOAT_ERROR_PROTOCOL,
                    "legacy_session_id length %u is invalid", length);

  if (!read_u16 (hello, &length) || length < 2 || length % 2 != 0
      || !skip (hello, length))
    return invalid (error, MOAT_ERROR_PROTOCOL,
                    "cipher_suites length %u is invalid", length);

  if (!read_u8 (hello, &length) || length < 1 || !skip (hello, length))
    return invalid (error, MOAT_ERROR_PROTOCOL,
                    "legacy_compression_methods length %u is invalid",
                    length);

  *server_name = NULL;
  /* TLS 1.2 and older may end the hello here (RFC 5246 section 7.4.1.2). */
  if (reader_left (hello) == 0)
    return MOAT_TLS_HELLO_OK;

  Reader extensions;
  if (!read_u16 (hello, &length) || length != reader_left (hello)
      || !read_vector (hello, length, &extensions))
    return invalid (error, MOAT_ERROR_PROTOCOL,
                    "extensions length %u does not match the hello", length);

  /* One bit per extension type: RFC 8446 section 4.2 forbids repeats. */
  guint64 seen[65536 / 64] = { 0 };
  g_autofree char *name = NULL;

  while (reader_left (&extensions) > 0)
    {
      guint type = 0;
      guint ext_len = 0;
      Reader body;

      if (!read_u16 (&extensions, &type) || !read_u16 (&extensions, &ext_len)
          || !read_vector (&extensions, ext_len, &body))
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "extension overruns the extensions block");

      if (seen[type / 64] & (G_GUINT64_CONSTANT (1) << (type % 64)))
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "extension %u appears more than once", type);
      seen[type / 64] |= G_GUINT64_CONSTANT (1) << (type % 64);

      if (type == EXTENSION_SERVER_NAME)
        {
          MoatTlsHelloResult result = parse_server_name (&body, &name, error);
          if (result != MOAT_TLS_HELLO_OK)
            return result;
        }
    }

  *server_name = g_steal_pointer (&name);
  return MOAT_TLS_HELLO_OK;
}

/**
 * moat_tls_hello_parse:
 * @data: the first bytes the guest sent on a connection
 * @length: bytes in @data
 * @server_name: (out): on MOAT_TLS_HELLO_OK, the lowercase SNI host name, or
 *   NULL if the hello has no server_name extension
 * @error: return location for an error on MOAT_TLS_HELLO_INVALID:
 *   MOAT_ERROR_PROTOCOL for malformed bytes, MOAT_ERROR_LIMIT for a hello
 *   that does not fit in MOAT_SNIFF_MAX bytes
 *
 * Reads a ClientHello from TLS records (RFC 8446 section 5.1), which may
 * split it over several handshake records. The bytes come from the guest,
 * so every length is checked before use. Bytes that cannot start a TLS
 * connection are rejected as soon as they arrive, so that the caller can
 * classify other protocols without waiting for more.
 *
 * Return: MOAT_TLS_HELLO_INCOMPLETE while more bytes are needed (never for
 *   @length >= MOAT_SNIFF_MAX), MOAT_TLS_HELLO_OK, or MOAT_TLS_HELLO_INVALID
 */
MoatTlsHelloResult
moat_tls_hello_parse (const guint8 *data, gsize length, char **server_name,
                      GError **error)
{
  g_return_val_if_fail (data != NULL || length == 0,
                        MOAT_TLS_HELLO_INVALID);
  g_return_val_if_fail (server_name != NULL, MOAT_TLS_HELLO_INVALID);

  *server_name = NULL;

  /* Handshake bytes gathered from the records, at most MOAT_SNIFF_MAX. */
  g_autofree guint8 *handshake = g_malloc (MOAT_SNIFF_MAX);
  gsize handshake_len = 0;
  /* Total handshake message length, known once its header is in. */
  gsize message_len = 0;

  Reader input = { data, data + length };
  gsize record_index = 0;

  for (;;)
    {
      gsize record_start = (gsize) (input.pos - data);
      guint content_type = 0;
      guint record_version = 0;
      guint fragment_len = 0;

      /* Check each header byte as it arrives, so that non-TLS bytes are
       * rejected on the first bytes of a connection. */
      if (!read_u8 (&input, &content_type))
        return incomplete (length, error);
      if (content_type != CONTENT_TYPE_HANDSHAKE)
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "record %" G_GSIZE_FORMAT " has content type %u, "
                        "expected handshake (22)",
                        record_index, content_type);
      if (reader_left (&input) >= 1 && input.pos[0] != 3)
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "record %" G_GSIZE_FORMAT " has version major %u, "
                        "expected 3",
                        record_index, input.pos[0]);
      if (!read_u16 (&input, &record_version)
          || !read_u16 (&input, &fragment_len))
        return incomplete (length, error);

      /* RFC 8446 section 5.1: handshake records are never empty and carry
       * at most 2^14 bytes. */
      if (fragment_len == 0 || fragment_len > RECORD_FRAGMENT_MAX)
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "record %" G_GSIZE_FORMAT " has length %u, expected "
                        "1 to 16384",
                        record_index, fragment_len);
      if (record_start + RECORD_HEADER_LEN + fragment_len > MOAT_SNIFF_MAX)
        return invalid (error, MOAT_ERROR_LIMIT,
                        "the hello does not fit in the first %d bytes",
                        MOAT_SNIFF_MAX);

      /* Copy what has arrived of this record, so that the handshake header
       * is checked early. handshake_len <= record_start, so the bound
       * checked above also bounds the copy. */
      gsize available = MIN ((gsize) fragment_len, reader_left (&input));
      gsize record_offset = handshake_len;
      memcpy (handshake + handshake_len, input.pos, available);
      handshake_len += available;

      if (handshake_len >= 1 && handshake[0] != HANDSHAKE_CLIENT_HELLO)
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "handshake type %u, expected client_hello (1)",
                        handshake[0]);

      if (message_len == 0 && handshake_len >= HANDSHAKE_HEADER_LEN)
        {
          Reader header = { handshake + 1, handshake + HANDSHAKE_HEADER_LEN };
          guint body_len = 0;
          read_u24 (&header, &body_len);
          message_len = HANDSHAKE_HEADER_LEN + (gsize) body_len;
          if (message_len > MOAT_SNIFF_MAX)
            return invalid (error, MOAT_ERROR_LIMIT,
                            "the hello is %u bytes, more than %d", body_len,
                            MOAT_SNIFF_MAX);
        }

      /* The client sends nothing else before the server's reply, so a
       * record that runs past the end of the hello is malformed. */
      if (message_len > 0 && record_offset + fragment_len > message_len)
        return invalid (error, MOAT_ERROR_PROTOCOL,
                        "record %" G_GSIZE_FORMAT " has %" G_GSIZE_FORMAT
                        " bytes after the end of the hello",
                        record_index,
                        record_offset + fragment_len - message_len);

      if (available < fragment_len)
        return incomplete (length, error);
      if (handshake_len == message_len)
        break;

      skip (&input, fragment_len);
      record_index++;
    }

  Reader hello = { handshake + HANDSHAKE_HEADER_LEN,
                   handshake + message_len };
  return parse_client_hello (&hello, server_name, error);
}
