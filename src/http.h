/* SPDX-License-Identifier: GPL-2.0-or-later */
/* http.h - HTTP/1.1 request head parser and message body decoder */
#pragma once

#include <glib.h>

/**
 * MoatHttpHeader:
 * @name: field name as received
 * @value: field value without leading and trailing whitespace
 */
typedef struct {
  char *name;
  char *value;
} MoatHttpHeader;

MoatHttpHeader *moat_http_header_new (const char *name, const char *value);
void moat_http_header_free (MoatHttpHeader *header);

/**
 * MoatHttpRequest:
 * @method: request method, e.g. "GET"
 * @target: request target as received (origin form "/path?query", or
 *   absolute form "http://host/path")
 * @version_minor: 0 for HTTP/1.0, 1 for HTTP/1.1
 * @headers: (element-type MoatHttpHeader) header fields in order
 * @host: host from the Host field (or the absolute or authority form
 *   target), lowercase, without port and without a trailing dot. An IPv6
 *   address is in inet_ntop() form without brackets, e.g. "::1". The host
 *   is %NULL only for an HTTP/1.0 origin-form request without Host.
 * @port: port from the Host field (or the target), or 0 when absent
 * @content_length: body length from Content-Length, or -1
 * @chunked: the body uses chunked transfer coding
 * @keep_alive: the connection may be reused after this request
 * @expect_continue: the request carries "Expect: 100-continue"
 */
typedef struct {
  char *method;
  char *target;
  guint version_minor;
  GPtrArray *headers;
  char *host;
  guint port;
  gint64 content_length;
  gboolean chunked;
  gboolean keep_alive;
  gboolean expect_continue;
} MoatHttpRequest;

void moat_http_request_free (MoatHttpRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatHttpRequest, moat_http_request_free)

const char *moat_http_request_get_header (const MoatHttpRequest *request,
                                          const char *name);

typedef enum {
  MOAT_HTTP_PARSE_INCOMPLETE,
  MOAT_HTTP_PARSE_DONE,
  MOAT_HTTP_PARSE_ERROR,
} MoatHttpParseResult;

MoatHttpParseResult moat_http_parse_request_head (const guint8 *buffer,
                                                  gsize length,
                                                  MoatHttpRequest **request,
                                                  gsize *consumed,
                                                  guint *error_status,
                                                  GError **error);

gboolean moat_http_header_is_hop_by_hop (const char *name);
const char *moat_http_status_reason (guint status);

typedef enum {
  MOAT_HTTP_BODY_NONE,
  MOAT_HTTP_BODY_LENGTH,
  MOAT_HTTP_BODY_CHUNKED,
} MoatHttpBodyMode;

/**
 * MoatHttpBodyDecoder:
 * Incremental decoder for a request body framed by Content-Length or by
 * chunked transfer coding (RFC 9112 section 7.1). The fields are private.
 */
typedef struct {
  MoatHttpBodyMode mode;
  guint64 remaining;
  int state;
  gsize line_length;
  gboolean done;
} MoatHttpBodyDecoder;

void moat_http_body_decoder_init (MoatHttpBodyDecoder *decoder,
                                  const MoatHttpRequest *request);
gssize moat_http_body_decoder_feed (MoatHttpBodyDecoder *decoder,
                                    const guint8 *input, gsize input_length,
                                    const guint8 **data, gsize *data_length,
                                    GError **error);
gboolean moat_http_body_decoder_is_done (const MoatHttpBodyDecoder *decoder);
