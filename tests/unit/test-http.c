/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-http.c - unit tests for the HTTP/1.1 request parser and body decoder */
#include <string.h>

#include "error.h"
#include "http.h"
#include "moat-limits.h"

/* ---- Request heads ---- */

/**
 * HeadCase:
 * @description: what the case checks
 * @raw: bytes received
 * @raw_length: length of @raw, or 0 for strlen (@raw)
 * @result: expected parse result
 * @status: expected HTTP status on %MOAT_HTTP_PARSE_ERROR
 * @message: text the error message must contain, or %NULL
 * @leftover: bytes at the end of @raw after the head, not consumed
 * @field_name: a field to look up in the parsed request, or %NULL
 * @field_value: expected value of @field_name (%NULL: absent)
 *
 * The remaining members are the expected request on %MOAT_HTTP_PARSE_DONE.
 */
typedef struct {
  const char *description;
  const char *raw;
  gsize raw_length;
  MoatHttpParseResult result;
  guint status;
  const char *message;
  gsize leftover;
  const char *method;
  const char *target;
  guint version_minor;
  const char *host;
  guint port;
  gint64 content_length;
  gboolean chunked;
  gboolean keep_alive;
  gboolean expect_continue;
  guint header_count;
  const char *field_name;
  const char *field_value;
} HeadCase;

/* Raw bytes from a string literal that contains NUL. */
#define RAW_WITH_NUL(literal) .raw = literal, .raw_length = sizeof (literal) - 1

#define DONE MOAT_HTTP_PARSE_DONE
#define INCOMPLETE MOAT_HTTP_PARSE_INCOMPLETE
#define ERROR MOAT_HTTP_PARSE_ERROR

static const HeadCase head_cases[] = {
  /* Valid requests. */
  {
    .description = "simple GET, host lowercased and trailing dot removed",
    .raw = "GET /index.html?q=1 HTTP/1.1\r\nHost: Example.COM.\r\n"
           "User-Agent: test\r\nAccept: */*\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/index.html?q=1",
    .version_minor = 1, .host = "example.com", .content_length = -1,
    .keep_alive = TRUE, .header_count = 3,
    .field_name = "user-agent", .field_value = "test",
  },
  {
    .description = "POST with Content-Length, body not consumed",
    .raw = "POST /upload HTTP/1.1\r\nHost: example.com:8080\r\n"
           "Content-Length: 5\r\n\r\nhello",
    .leftover = 5, .result = DONE, .method = "POST", .target = "/upload",
    .version_minor = 1, .host = "example.com", .port = 8080,
    .content_length = 5, .keep_alive = TRUE, .header_count = 2,
  },
  {
    .description = "Content-Length 0",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    .result = DONE, .method = "POST", .target = "/", .version_minor = 1,
    .host = "a", .content_length = 0, .keep_alive = TRUE, .header_count = 2,
  },
  {
    .description = "largest Content-Length",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\n"
           "Content-Length: 9223372036854775807\r\n\r\n",
    .result = DONE, .method = "POST", .target = "/", .version_minor = 1,
    .host = "a", .content_length = G_MAXINT64, .keep_alive = TRUE,
    .header_count = 2,
  },
  {
    .description = "chunked POST",
    .raw = "POST /c HTTP/1.1\r\nHost: a.example\r\n"
           "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    .leftover = 15, .result = DONE, .method = "POST", .target = "/c",
    .version_minor = 1, .host = "a.example", .content_length = -1,
    .chunked = TRUE, .keep_alive = TRUE, .header_count = 2,
  },
  {
    .description = "chunked in mixed case",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  Chunked \r\n\r\n",
    .result = DONE, .method = "POST", .target = "/", .version_minor = 1,
    .host = "a", .content_length = -1, .chunked = TRUE, .keep_alive = TRUE,
    .header_count = 2,
  },
  {
    .description = "HEAD",
    .raw = "HEAD /file HTTP/1.1\r\nHost: example.com\r\n\r\n",
    .result = DONE, .method = "HEAD", .target = "/file", .version_minor = 1,
    .host = "example.com", .content_length = -1, .keep_alive = TRUE,
    .header_count = 1,
  },
  {
    .description = "absolute form sets host and port",
    .raw = "GET http://Example.com:8080/p?q HTTP/1.1\r\n"
           "Host: example.com:8080\r\n\r\n",
    .result = DONE, .method = "GET", .target = "http://Example.com:8080/p?q",
    .version_minor = 1, .host = "example.com", .port = 8080,
    .content_length = -1, .keep_alive = TRUE, .header_count = 1,
  },
  {
    .description = "absolute form agrees with Host naming the default port",
    .raw = "GET http://example.com/ HTTP/1.1\r\nHost: example.com:80\r\n\r\n",
    .result = DONE, .method = "GET", .target = "http://example.com/",
    .version_minor = 1, .host = "example.com", .port = 0,
    .content_length = -1, .keep_alive = TRUE, .header_count = 1,
  },
  {
    .description = "absolute https form without path",
    .raw = "GET HTTPS://example.com HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    .result = DONE, .method = "GET", .target = "HTTPS://example.com",
    .version_minor = 1, .host = "example.com", .port = 0,
    .content_length = -1, .keep_alive = TRUE, .header_count = 1,
  },
  {
    .description = "absolute form in HTTP/1.0 without Host",
    .raw = "GET http://example.com/x HTTP/1.0\r\n\r\n",
    .result = DONE, .method = "GET", .target = "http://example.com/x",
    .version_minor = 0, .host = "example.com", .content_length = -1,
    .keep_alive = FALSE, .header_count = 0,
  },
  {
    .description = "IPv6 Host with port",
    .raw = "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "::1", .port = 8080, .content_length = -1, .keep_alive = TRUE,
    .header_count = 1,
  },
  {
    .description = "IPv6 Host in canonical form",
    .raw = "GET / HTTP/1.1\r\nHost: [2001:DB8:0:0::1]\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "2001:db8::1", .port = 0, .content_length = -1,
    .keep_alive = TRUE, .header_count = 1,
  },
  {
    .description = "absolute form with IPv6 host",
    .raw = "GET http://[::1]:8080/ HTTP/1.1\r\nHost: [0::1]:8080\r\n\r\n",
    .result = DONE, .method = "GET", .target = "http://[::1]:8080/",
    .version_minor = 1, .host = "::1", .port = 8080, .content_length = -1,
    .keep_alive = TRUE, .header_count = 1,
  },
  {
    .description = "IPv4 Host",
    .raw = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "127.0.0.1", .port = 8000, .content_length = -1,
    .keep_alive = TRUE, .header_count = 1,
  },
  {
    .description = "HTTP/1.0 without Connection closes",
    .raw = "GET / HTTP/1.0\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 0,
    .host = NULL, .content_length = -1, .keep_alive = FALSE,
    .header_count = 0,
  },
  {
    .description = "HTTP/1.0 keep-alive",
    .raw = "GET / HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 0,
    .host = "a", .content_length = -1, .keep_alive = TRUE,
    .header_count = 2,
  },
  {
    .description = "HTTP/1.0 close wins over keep-alive",
    .raw = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 0,
    .content_length = -1, .keep_alive = FALSE, .header_count = 1,
  },
  {
    .description = "HTTP/1.1 Connection list with close",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade,, CLOSE\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "a", .content_length = -1, .keep_alive = FALSE,
    .header_count = 2,
  },
  {
    .description = "HTTP/1.1 close in a second Connection field",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\n"
           "Connection: close\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "a", .content_length = -1, .keep_alive = FALSE,
    .header_count = 3,
  },
  {
    .description = "Expect 100-continue",
    .raw = "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
           "Expect: 100-Continue\r\n\r\n",
    .result = DONE, .method = "PUT", .target = "/f", .version_minor = 1,
    .host = "a", .content_length = 3, .keep_alive = TRUE,
    .expect_continue = TRUE, .header_count = 3,
  },
  {
    .description = "Expect ignored in HTTP/1.0",
    .raw = "PUT /f HTTP/1.0\r\nContent-Length: 3\r\n"
           "Expect: 100-continue\r\n\r\n",
    .result = DONE, .method = "PUT", .target = "/f", .version_minor = 0,
    .content_length = 3, .keep_alive = FALSE, .expect_continue = FALSE,
    .header_count = 2,
  },
  {
    .description = "identical Content-Length fields",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n"
           "Content-Length: 42\r\n\r\n",
    .result = DONE, .method = "POST", .target = "/", .version_minor = 1,
    .host = "a", .content_length = 42, .keep_alive = TRUE,
    .header_count = 3,
  },
  {
    .description = "identical Content-Length list",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42 , 42\r\n\r\n",
    .result = DONE, .method = "POST", .target = "/", .version_minor = 1,
    .host = "a", .content_length = 42, .keep_alive = TRUE,
    .header_count = 2,
  },
  {
    .description = "empty lines before the request line",
    .raw = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "a", .content_length = -1, .keep_alive = TRUE,
    .header_count = 1,
  },
  {
    .description = "OWS around a value is removed",
    .raw = "GET / HTTP/1.1\r\nHost: \t a \t\r\nX-Empty:\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "a", .content_length = -1, .keep_alive = TRUE,
    .header_count = 2, .field_name = "x-empty", .field_value = "",
  },
  {
    .description = "obs-text in a value",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9 \"q\"\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "a", .content_length = -1, .keep_alive = TRUE,
    .header_count = 2, .field_name = "X-NAME",
    .field_value = "caf\xc3\xa9 \"q\"",
  },
  {
    .description = "first of two fields with one name",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nAccept: one\r\naccept: two\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "a", .content_length = -1, .keep_alive = TRUE,
    .header_count = 3, .field_name = "Accept", .field_value = "one",
  },
  {
    .description = "lookup of an absent field",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    .result = DONE, .method = "GET", .target = "/", .version_minor = 1,
    .host = "a", .content_length = -1, .keep_alive = TRUE,
    .header_count = 1, .field_name = "Cookie", .field_value = NULL,
  },
  {
    .description = "asterisk form with OPTIONS",
    .raw = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    .result = DONE, .method = "OPTIONS", .target = "*", .version_minor = 1,
    .host = "a", .content_length = -1, .keep_alive = TRUE,
    .header_count = 1,
  },
  {
    .description = "authority form with CONNECT",
    .raw = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    .result = DONE, .method = "CONNECT", .target = "example.com:443",
    .version_minor = 1, .host = "example.com", .port = 443,
    .content_length = -1, .keep_alive = TRUE, .header_count = 1,
  },
  {
    .description = "pipelined second request is not consumed",
    .raw = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
    .leftover = 28, .result = DONE, .method = "GET", .target = "/1",
    .version_minor = 1, .host = "a", .content_length = -1,
    .keep_alive = TRUE, .header_count = 1,
  },
  {
    .description = "extension method",
    .raw = "PROPFIND /d HTTP/1.1\r\nHost: a_b.example\r\n\r\n",
    .result = DONE, .method = "PROPFIND", .target = "/d", .version_minor = 1,
    .host = "a_b.example", .content_length = -1, .keep_alive = TRUE,
    .header_count = 1,
  },

  /* Incomplete heads. */
  { .description = "empty buffer", .raw = "", .result = INCOMPLETE },
  { .description = "empty line only", .raw = "\r\n", .result = INCOMPLETE },
  {
    .description = "head without the final CRLF",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\n", .result = INCOMPLETE,
  },
  {
    .description = "head ending in CR",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\n\r", .result = INCOMPLETE,
  },

  /* Request line errors. */
  {
    .description = "HTTP/2.0 version",
    .raw = "GET / HTTP/2.0\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 505, .message = "HTTP/2.0",
  },
  {
    .description = "HTTP/1.2 version",
    .raw = "GET / HTTP/1.2\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 505, .message = "HTTP/1.2",
  },
  {
    .description = "two-digit minor version",
    .raw = "GET / HTTP/1.10\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "HTTP/1.10",
  },
  {
    .description = "lowercase version",
    .raw = "GET / http/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "http/1.1",
  },
  {
    .description = "HTTP/0.9 request line",
    .raw = "GET /\r\n\r\n", .result = ERROR, .status = 400,
    .message = "no HTTP version",
  },
  {
    .description = "request line without spaces",
    .raw = "GET\r\n\r\n", .result = ERROR, .status = 400,
    .message = "invalid request line",
  },
  {
    .description = "invalid character in method",
    .raw = "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "0x28",
  },
  {
    .description = "space before the method",
    .raw = " GET / HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "starts with a space",
  },
  {
    .description = "two spaces after the method",
    .raw = "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "empty request target",
  },
  {
    .description = "space after the version",
    .raw = "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid HTTP version",
  },
  {
    .description = "tab in the request line",
    .raw = "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "0x09",
  },
  {
    .description = "non-ASCII byte in the target",
    .raw = "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "0xc3",
  },
  {
    .description = "fragment in the target",
    .raw = "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "fragment",
  },
  {
    .description = "NUL in the target",
    RAW_WITH_NUL ("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"),
    .result = ERROR, .status = 400, .message = "0x00",
  },
  {
    .description = "CR inside the request line",
    .raw = "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "0x0d",
  },

  /* Field line errors. */
  {
    .description = "obs-fold",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", .result = ERROR,
    .status = 400, .message = "obs-fold",
  },
  {
    .description = "whitespace before the first field",
    .raw = "GET / HTTP/1.1\r\n Host: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "obs-fold",
  },
  {
    .description = "bare LF ending a field line",
    .raw = "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", .result = ERROR,
    .status = 400, .message = "bare LF",
  },
  {
    .description = "bare LF ending the request line",
    .raw = "GET / HTTP/1.1\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "bare LF",
  },
  {
    .description = "bare LF as the final empty line",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\n\n", .result = ERROR,
    .status = 400, .message = "bare LF",
  },
  {
    .description = "bare LF in a head that is still incomplete",
    .raw = "GET / HTTP/1.1\nHost", .result = ERROR, .status = 400,
    .message = "bare LF",
  },
  {
    .description = "bare LF as a leading empty line",
    .raw = "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "bare LF",
  },
  {
    .description = "space before the colon",
    .raw = "GET / HTTP/1.1\r\nHost : a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "before the colon",
  },
  {
    .description = "tab before the colon",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n",
    .result = ERROR, .status = 400, .message = "before the colon",
  },
  {
    .description = "parenthesis in a field name",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", .result = ERROR,
    .status = 400, .message = "0x28",
  },
  {
    .description = "non-ASCII byte in a field name",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nX\xff: b\r\n\r\n", .result = ERROR,
    .status = 400, .message = "0xff",
  },
  {
    .description = "empty field name",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", .result = ERROR,
    .status = 400, .message = "expected \"name: value\"",
  },
  {
    .description = "field line without a colon",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nXA\r\n\r\n", .result = ERROR,
    .status = 400, .message = "expected \"name: value\"",
  },
  {
    .description = "NUL in a value",
    RAW_WITH_NUL ("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"),
    .result = ERROR, .status = 400, .message = "0x00",
  },
  {
    .description = "CR in a value",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", .result = ERROR,
    .status = 400, .message = "0x0d",
  },
  {
    .description = "other control character in a value",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n",
    .result = ERROR, .status = 400, .message = "0x01",
  },
  {
    .description = "DEL in a value",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", .result = ERROR,
    .status = 400, .message = "0x7f",
  },

  /* Framing errors: the request smuggling shapes of RFC 9112 section 6. */
  {
    .description = "Content-Length and Transfer-Encoding",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
           "Transfer-Encoding: chunked\r\n\r\n", .result = ERROR,
    .status = 400, .message = "both Transfer-Encoding and Content-Length",
  },
  {
    .description = "Transfer-Encoding and Content-Length",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
           "Content-Length: 5\r\n\r\n", .result = ERROR,
    .status = 400, .message = "both Transfer-Encoding and Content-Length",
  },
  {
    .description = "differing Content-Length fields",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
           "Content-Length: 6\r\n\r\n", .result = ERROR,
    .status = 400, .message = "conflicting Content-Length",
  },
  {
    .description = "differing Content-Length list",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
    .result = ERROR, .status = 400, .message = "\"5\" and \"6\"",
  },
  {
    .description = "Content-Length spelled differently",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
           "Content-Length: 05\r\n\r\n", .result = ERROR,
    .status = 400, .message = "conflicting Content-Length",
  },
  {
    .description = "negative Content-Length",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    .result = ERROR, .status = 400, .message = "\"-1\"",
  },
  {
    .description = "Content-Length with plus sign",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
    .result = ERROR, .status = 400, .message = "\"+5\"",
  },
  {
    .description = "hexadecimal Content-Length",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
    .result = ERROR, .status = 400, .message = "\"0x10\"",
  },
  {
    .description = "Content-Length with trailing letter",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n",
    .result = ERROR, .status = 400, .message = "\"5a\"",
  },
  {
    .description = "Content-Length with inner space",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
    .result = ERROR, .status = 400, .message = "\"1 2\"",
  },
  {
    .description = "empty Content-Length",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
    .result = ERROR, .status = 400, .message = "invalid Content-Length",
  },
  {
    .description = "Content-Length list with an empty element",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",
    .result = ERROR, .status = 400, .message = "invalid Content-Length",
  },
  {
    .description = "Content-Length one above gint64",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\n"
           "Content-Length: 9223372036854775808\r\n\r\n",
    .result = ERROR, .status = 400, .message = "larger than",
  },
  {
    .description = "Content-Length above guint64",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\n"
           "Content-Length: 99999999999999999999999\r\n\r\n",
    .result = ERROR, .status = 400, .message = "larger than",
  },
  {
    .description = "Transfer-Encoding gzip alone",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    .result = ERROR, .status = 400, .message = "single \"chunked\"",
  },
  {
    .description = "Transfer-Encoding with chunked not last",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\n"
           "Transfer-Encoding: chunked, gzip\r\n\r\n",
    .result = ERROR, .status = 400, .message = "single \"chunked\"",
  },
  {
    .description = "Transfer-Encoding gzip then chunked",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\n"
           "Transfer-Encoding: gzip, chunked\r\n\r\n",
    .result = ERROR, .status = 501, .message = "\"gzip\"",
  },
  {
    .description = "Transfer-Encoding with an unknown coding",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo\r\n"
           "Transfer-Encoding: chunked\r\n\r\n",
    .result = ERROR, .status = 501, .message = "unknown coding",
  },
  {
    .description = "chunked twice",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
           "Transfer-Encoding: chunked\r\n\r\n",
    .result = ERROR, .status = 400, .message = "single \"chunked\"",
  },
  {
    .description = "chunked with a parameter",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\n"
           "Transfer-Encoding: chunked;q=1\r\n\r\n",
    .result = ERROR, .status = 400, .message = "single \"chunked\"",
  },
  {
    .description = "Transfer-Encoding identity",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
    .result = ERROR, .status = 400, .message = "single \"chunked\"",
  },
  {
    .description = "empty Transfer-Encoding",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
    .result = ERROR, .status = 400, .message = "invalid Transfer-Encoding",
  },
  {
    .description = "Transfer-Encoding with a trailing comma",
    .raw = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n",
    .result = ERROR, .status = 400, .message = "invalid Transfer-Encoding",
  },
  {
    .description = "Transfer-Encoding in HTTP/1.0",
    .raw = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    .result = ERROR, .status = 400, .message = "HTTP/1.0",
  },

  /* Host errors. */
  {
    .description = "HTTP/1.1 without Host",
    .raw = "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", .result = ERROR,
    .status = 400, .message = "no Host field",
  },
  {
    .description = "two identical Host fields",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "2 Host fields",
  },
  {
    .description = "two Host fields in HTTP/1.0",
    .raw = "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", .result = ERROR,
    .status = 400, .message = "2 Host fields",
  },
  {
    .description = "empty Host",
    .raw = "GET / HTTP/1.1\r\nHost:\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid host name",
  },
  {
    .description = "port 0",
    .raw = "GET / HTTP/1.1\r\nHost: a.com:0\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid port",
  },
  {
    .description = "port above 65535",
    .raw = "GET / HTTP/1.1\r\nHost: a.com:65536\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid port",
  },
  {
    .description = "empty port",
    .raw = "GET / HTTP/1.1\r\nHost: a.com:\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid port",
  },
  {
    .description = "port with a letter",
    .raw = "GET / HTTP/1.1\r\nHost: a.com:8x\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid port",
  },
  {
    .description = "port with six digits",
    .raw = "GET / HTTP/1.1\r\nHost: a.com:000080\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid port",
  },
  {
    .description = "userinfo in Host",
    .raw = "GET / HTTP/1.1\r\nHost: user@a.com\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid host name",
  },
  {
    .description = "empty label in Host",
    .raw = "GET / HTTP/1.1\r\nHost: a..com\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid host name",
  },
  {
    .description = "two trailing dots in Host",
    .raw = "GET / HTTP/1.1\r\nHost: a.com..\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid host name",
  },
  {
    .description = "percent-encoding in Host",
    .raw = "GET / HTTP/1.1\r\nHost: a%2ecom\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid host name",
  },
  {
    .description = "IPv6 Host without closing bracket",
    .raw = "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid IPv6 address",
  },
  {
    .description = "IPv6 Host with text after the bracket",
    .raw = "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", .result = ERROR,
    .status = 400, .message = "after the IPv6 address",
  },
  {
    .description = "invalid IPv6 Host",
    .raw = "GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid IPv6 address",
  },
  {
    .description = "IPv6 Host without brackets",
    .raw = "GET / HTTP/1.1\r\nHost: ::1\r\n\r\n", .result = ERROR,
    .status = 400,
  },
  {
    .description = "absolute form with a different Host",
    .raw = "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
    .result = ERROR, .status = 400, .message = "does not match",
  },
  {
    .description = "absolute form with a different port",
    .raw = "GET http://a.example:8080/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
    .result = ERROR, .status = 400, .message = "does not match",
  },
  {
    .description = "absolute form with userinfo",
    .raw = "GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
    .result = ERROR, .status = 400, .message = "userinfo",
  },
  {
    .description = "absolute form with an empty host",
    .raw = "GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid host name",
  },
  {
    .description = "absolute form with another scheme",
    .raw = "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "invalid request target",
  },
  {
    .description = "authority form without CONNECT",
    .raw = "GET a.example:80 HTTP/1.1\r\nHost: a.example\r\n\r\n",
    .result = ERROR, .status = 400, .message = "invalid request target",
  },
  {
    .description = "asterisk form without OPTIONS",
    .raw = "GET * HTTP/1.1\r\nHost: a\r\n\r\n", .result = ERROR,
    .status = 400, .message = "only valid with OPTIONS",
  },
  {
    .description = "CONNECT without port",
    .raw = "CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n",
    .result = ERROR, .status = 400, .message = "no port",
  },
  {
    .description = "CONNECT with origin form",
    .raw = "CONNECT /p HTTP/1.1\r\nHost: a.example\r\n\r\n",
    .result = ERROR, .status = 400, .message = "CONNECT target",
  },

  /* Other field errors. */
  {
    .description = "unknown expectation",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n",
    .result = ERROR, .status = 417, .message = "\"x\"",
  },
  {
    .description = "space inside a Connection element",
    .raw = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive close\r\n\r\n",
    .result = ERROR, .status = 400, .message = "invalid Connection",
  },
};

static MoatHttpParseResult
parse_copy (const char *raw, gsize length, MoatHttpRequest **request,
            gsize *consumed, guint *status, GError **error)
{
  /* An exact-size copy lets AddressSanitizer catch any read past the end. */
  g_autofree guint8 *copy = g_malloc (MAX (length, 1));

  memcpy (copy, raw, length);
  return moat_http_parse_request_head (copy, length, request, consumed, status,
                                       error);
}

static gsize
case_raw_length (const HeadCase *test_case)
{
  return test_case->raw_length != 0 ? test_case->raw_length
                                    : strlen (test_case->raw);
}

static void
check_request (const HeadCase *test_case, const MoatHttpRequest *request)
{
  g_assert_cmpstr (request->method, ==, test_case->method);
  g_assert_cmpstr (request->target, ==, test_case->target);
  g_assert_cmpuint (request->version_minor, ==, test_case->version_minor);
  g_assert_cmpstr (request->host, ==, test_case->host);
  g_assert_cmpuint (request->port, ==, test_case->port);
  g_assert_cmpint (request->content_length, ==, test_case->content_length);
  g_assert_cmpint (request->chunked, ==, test_case->chunked);
  g_assert_cmpint (request->keep_alive, ==, test_case->keep_alive);
  g_assert_cmpint (request->expect_continue, ==, test_case->expect_continue);
  g_assert_cmpuint (request->headers->len, ==, test_case->header_count);
  if (test_case->field_name != NULL)
    g_assert_cmpstr (moat_http_request_get_header (request,
                                                   test_case->field_name),
                     ==, test_case->field_value);
}

static void
test_head_table (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (head_cases); i++)
    {
      const HeadCase *test_case = &head_cases[i];
      gsize raw_length = case_raw_length (test_case);
      g_autoptr (MoatHttpRequest) request = NULL;
      g_autoptr (GError) error = NULL;
      gsize consumed = 12345;
      guint status = 12345;
      MoatHttpParseResult result;
      int expected_code;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i,
                      test_case->description);
      result = parse_copy (test_case->raw, raw_length, &request, &consumed,
                           &status, &error);
      g_assert_cmpint (result, ==, test_case->result);

      switch (result)
        {
        case MOAT_HTTP_PARSE_DONE:
          g_assert_no_error (error);
          g_assert_nonnull (request);
          g_assert_cmpuint (consumed, ==, raw_length - test_case->leftover);
          check_request (test_case, request);
          break;

        case MOAT_HTTP_PARSE_INCOMPLETE:
          g_assert_no_error (error);
          g_assert_null (request);
          break;

        case MOAT_HTTP_PARSE_ERROR:
          expected_code = status == 414 || status == 431 ? MOAT_ERROR_LIMIT
                                                         : MOAT_ERROR_PROTOCOL;
          g_assert_null (request);
          g_assert_cmpuint (status, ==, test_case->status);
          g_assert_error (error, MOAT_ERROR, expected_code);
          g_test_message ("  error: %s", error->message);
          if (test_case->message != NULL)
            g_assert_nonnull (strstr (error->message, test_case->message));
          break;

        default:
          g_assert_not_reached ();
        }
    }
}

/* Every proper prefix of a valid head is incomplete, never an error. */
static void
test_head_every_split (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (head_cases); i++)
    {
      const HeadCase *test_case = &head_cases[i];
      gsize raw_length = case_raw_length (test_case);
      gsize head_length;

      if (test_case->result != MOAT_HTTP_PARSE_DONE)
        continue;

      head_length = raw_length - test_case->leftover;
      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i,
                      test_case->description);

      for (gsize prefix = 0; prefix <= raw_length; prefix++)
        {
          g_autoptr (MoatHttpRequest) request = NULL;
          g_autoptr (GError) error = NULL;
          gsize consumed = 0;
          guint status = 0;
          MoatHttpParseResult result;

          result = parse_copy (test_case->raw, prefix, &request, &consumed,
                               &status, &error);
          g_assert_no_error (error);
          if (prefix < head_length)
            {
              g_assert_cmpint (result, ==, MOAT_HTTP_PARSE_INCOMPLETE);
              g_assert_null (request);
            }
          else
            {
              g_assert_cmpint (result, ==, MOAT_HTTP_PARSE_DONE);
              g_assert_cmpuint (consumed, ==, head_length);
              check_request (test_case, request);
            }
        }
    }
}

/* Bytes that the mutations below insert: delimiters of the HTTP grammar. */
static const guint8 mutation_bytes[] = {
  ' ', '\t', '\r', '\n', ':', ',', ';', '\0', '[', ']', '0', 'f', 'a', 0x80,
};

/* Replaces, deletes or duplicates one random byte of @bytes. */
static void
mutate_bytes (GByteArray *bytes)
{
  guint index;

  if (bytes->len == 0)
    return;

  index = (guint) g_test_rand_int_range (0, (gint32) bytes->len);
  switch (g_test_rand_int_range (0, 3))
    {
    case 0:
      bytes->data[index] = mutation_bytes[g_test_rand_int_range (
          0, G_N_ELEMENTS (mutation_bytes))];
      break;
    case 1:
      g_byte_array_remove_index (bytes, index);
      break;
    default:
      g_byte_array_set_size (bytes, bytes->len + 1);
      memmove (bytes->data + index + 1, bytes->data + index,
               bytes->len - 1 - index);
      break;
    }
}

/*
 * Randomly mutated valid heads, parsed at every prefix length. A result
 * other than INCOMPLETE must stay the same as more bytes arrive, because the
 * caller acts on it at once. The seed is printed by --verbose and replayed
 * with --seed.
 */
static void
test_head_mutations_are_stable (void)
{
  const guint rounds = g_test_thorough () ? 20000 : 2000;

  for (guint round = 0; round < rounds; round++)
    {
      const HeadCase *base;
      g_autoptr (GByteArray) bytes = g_byte_array_new ();
      MoatHttpParseResult settled = MOAT_HTTP_PARSE_INCOMPLETE;
      guint settled_status = 0;
      gsize settled_consumed = 0;
      guint mutation_count;

      do
        base = &head_cases[g_test_rand_int_range (0, G_N_ELEMENTS (head_cases))];
      while (base->result != MOAT_HTTP_PARSE_DONE);

      g_byte_array_append (bytes, (const guint8 *) base->raw,
                           (guint) case_raw_length (base));
      mutation_count = (guint) g_test_rand_int_range (1, 4);
      for (guint i = 0; i < mutation_count; i++)
        mutate_bytes (bytes);

      for (gsize prefix = 0; prefix <= bytes->len; prefix++)
        {
          g_autoptr (MoatHttpRequest) request = NULL;
          g_autoptr (GError) error = NULL;
          gsize consumed = 0;
          guint status = 0;
          MoatHttpParseResult result;

          result = parse_copy ((const char *) bytes->data, prefix, &request,
                               &consumed, &status, &error);

          if (settled != MOAT_HTTP_PARSE_INCOMPLETE)
            {
              g_assert_cmpint (result, ==, settled);
              g_assert_cmpuint (status, ==, settled_status);
              g_assert_cmpuint (consumed, ==, settled_consumed);
            }

          switch (result)
            {
            case MOAT_HTTP_PARSE_DONE:
              g_assert_no_error (error);
              g_assert_nonnull (request);
              g_assert_cmpuint (consumed, >, 0);
              g_assert_cmpuint (consumed, <=, prefix);
              break;
            case MOAT_HTTP_PARSE_INCOMPLETE:
              g_assert_no_error (error);
              g_assert_null (request);
              break;
            case MOAT_HTTP_PARSE_ERROR:
              g_assert_nonnull (error);
              g_assert_null (request);
              g_assert_cmpuint (status, >=, 400);
              break;
            default:
              g_assert_not_reached ();
            }

          settled = result;
          settled_status = status;
          settled_consumed = consumed;
        }
    }
}

static MoatHttpParseResult
parse_string (const GString *head, guint *status, GError **error)
{
  g_autoptr (MoatHttpRequest) request = NULL;
  gsize consumed = 0;
  MoatHttpParseResult result;

  result = parse_copy (head->str, head->len, &request, &consumed, status,
                       error);
  if (result == MOAT_HTTP_PARSE_DONE)
    g_assert_cmpuint (consumed, ==, head->len);
  else
    g_assert_null (request);

  return result;
}

/* A request line of exactly @length bytes, without CRLF. */
static GString *
make_request_line (gsize length)
{
  GString *line = g_string_new ("GET /");

  while (line->len < length - strlen (" HTTP/1.1"))
    g_string_append_c (line, 'a');
  g_string_append (line, " HTTP/1.1");
  g_assert_cmpuint (line->len, ==, length);
  return line;
}

static void
test_head_request_line_limit (void)
{
  static const struct {
    const char *description;
    gsize line_length;
    const char *rest;
    MoatHttpParseResult result;
  } cases[] = {
    { "maximum line, complete", MOAT_HTTP_REQUEST_LINE_MAX,
      "\r\nHost: a\r\n\r\n", MOAT_HTTP_PARSE_DONE },
    { "one byte over, complete", MOAT_HTTP_REQUEST_LINE_MAX + 1,
      "\r\nHost: a\r\n\r\n", MOAT_HTTP_PARSE_ERROR },
    { "maximum line without CRLF", MOAT_HTTP_REQUEST_LINE_MAX, "",
      MOAT_HTTP_PARSE_INCOMPLETE },
    { "maximum line with its CR", MOAT_HTTP_REQUEST_LINE_MAX, "\r",
      MOAT_HTTP_PARSE_INCOMPLETE },
    { "maximum line with CRLF", MOAT_HTTP_REQUEST_LINE_MAX, "\r\n",
      MOAT_HTTP_PARSE_INCOMPLETE },
    { "one byte over without CRLF", MOAT_HTTP_REQUEST_LINE_MAX + 1, "",
      MOAT_HTTP_PARSE_ERROR },
    { "one byte over with its CR", MOAT_HTTP_REQUEST_LINE_MAX + 1, "\r",
      MOAT_HTTP_PARSE_ERROR },
    { "far over without CRLF", 4 * MOAT_HTTP_REQUEST_LINE_MAX, "",
      MOAT_HTTP_PARSE_ERROR },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GString) head = make_request_line (cases[i].line_length);
      g_autoptr (GError) error = NULL;
      guint status = 0;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].description);
      g_string_append (head, cases[i].rest);
      g_assert_cmpint (parse_string (head, &status, &error), ==,
                       cases[i].result);
      if (cases[i].result == MOAT_HTTP_PARSE_ERROR)
        {
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT);
          g_assert_cmpuint (status, ==, 414);
        }
      else
        g_assert_no_error (error);
    }
}

/* A head of @length bytes, CRLF CRLF included, in a few large fields;
 * without the final CRLF when @complete is FALSE. */
static GString *
make_long_head (gsize length, gboolean complete)
{
  static const gsize field_size = 4000;
  GString *head = g_string_new ("GET / HTTP/1.1\r\nHost: a\r\n");
  gsize end_length = complete ? 2 : 0;

  while (head->len + end_length < length)
    {
      gsize missing = length - end_length - head->len;
      /* "X: " + value + CRLF; a field needs at least one value byte. */
      gsize field_length = missing < field_size + 6 ? missing : field_size;

      g_assert_cmpuint (field_length, >=, 6);
      g_string_append (head, "X: ");
      for (gsize i = 0; i < field_length - 5; i++)
        g_string_append_c (head, 'v');
      g_string_append (head, "\r\n");
    }
  if (complete)
    g_string_append (head, "\r\n");

  g_assert_cmpuint (head->len, ==, length);
  return head;
}

static void
test_head_size_limit (void)
{
  static const struct {
    const char *description;
    gsize length;
    gboolean complete;
    MoatHttpParseResult result;
  } cases[] = {
    { "maximum head", MOAT_HTTP_HEAD_MAX, TRUE, MOAT_HTTP_PARSE_DONE },
    { "one byte over", MOAT_HTTP_HEAD_MAX + 1, TRUE, MOAT_HTTP_PARSE_ERROR },
    { "maximum incomplete head", MOAT_HTTP_HEAD_MAX, FALSE,
      MOAT_HTTP_PARSE_INCOMPLETE },
    { "incomplete head one byte over", MOAT_HTTP_HEAD_MAX + 1, FALSE,
      MOAT_HTTP_PARSE_ERROR },
    { "incomplete head far over", 3 * MOAT_HTTP_HEAD_MAX, FALSE,
      MOAT_HTTP_PARSE_ERROR },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GString) head = make_long_head (cases[i].length,
                                                 cases[i].complete);
      g_autoptr (GError) error = NULL;
      guint status = 0;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].description);
      g_assert_cmpint (parse_string (head, &status, &error), ==,
                       cases[i].result);
      if (cases[i].result == MOAT_HTTP_PARSE_ERROR)
        {
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT);
          g_assert_cmpuint (status, ==, 431);
        }
      else
        g_assert_no_error (error);
    }
}

/* The leading empty lines count toward the head size too. */
static void
test_head_leading_lines_limit (void)
{
  g_autoptr (GString) head = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  guint status = 0;

  while (head->len <= MOAT_HTTP_HEAD_MAX)
    g_string_append (head, "\r\n");

  g_assert_cmpint (parse_string (head, &status, &error), ==,
                   MOAT_HTTP_PARSE_ERROR);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT);
  g_assert_cmpuint (status, ==, 431);
}

static void
test_head_field_count_limit (void)
{
  static const struct {
    const char *description;
    guint field_count;
    gboolean complete;
    MoatHttpParseResult result;
  } cases[] = {
    { "maximum fields", MOAT_HTTP_HEADERS_MAX, TRUE, MOAT_HTTP_PARSE_DONE },
    { "one field over", MOAT_HTTP_HEADERS_MAX + 1, TRUE,
      MOAT_HTTP_PARSE_ERROR },
    { "maximum fields, incomplete", MOAT_HTTP_HEADERS_MAX, FALSE,
      MOAT_HTTP_PARSE_INCOMPLETE },
    { "one field over, incomplete", MOAT_HTTP_HEADERS_MAX + 1, FALSE,
      MOAT_HTTP_PARSE_ERROR },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GString) head = g_string_new ("GET / HTTP/1.1\r\nHost: a\r\n");
      g_autoptr (GError) error = NULL;
      guint status = 0;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].description);
      for (guint field = 1; field < cases[i].field_count; field++)
        g_string_append_printf (head, "X-%u: %u\r\n", field, field);
      if (cases[i].complete)
        g_string_append (head, "\r\n");

      g_assert_cmpint (parse_string (head, &status, &error), ==,
                       cases[i].result);
      if (cases[i].result == MOAT_HTTP_PARSE_ERROR)
        {
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT);
          g_assert_cmpuint (status, ==, 431);
        }
      else
        g_assert_no_error (error);
    }
}

/* ---- Helpers ---- */

static void
test_hop_by_hop (void)
{
  static const struct {
    const char *name;
    gboolean hop_by_hop;
  } cases[] = {
    { "Connection", TRUE },
    { "keep-alive", TRUE },
    { "PROXY-CONNECTION", TRUE },
    { "Proxy-Authenticate", TRUE },
    { "proxy-authorization", TRUE },
    { "te", TRUE },
    { "Trailer", TRUE },
    { "Transfer-Encoding", TRUE },
    { "upgrade", TRUE },
    { "Host", FALSE },
    { "Content-Length", FALSE },
    { "Trailers", FALSE },
    { "", FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_test_message ("field \"%s\"", cases[i].name);
      g_assert_cmpint (moat_http_header_is_hop_by_hop (cases[i].name), ==,
                       cases[i].hop_by_hop);
    }
}

static void
test_status_reason (void)
{
  static const struct {
    guint status;
    const char *reason;
  } cases[] = {
    { 100, "Continue" },
    { 200, "OK" },
    { 400, "Bad Request" },
    { 403, "Forbidden" },
    { 414, "URI Too Long" },
    { 417, "Expectation Failed" },
    { 431, "Request Header Fields Too Large" },
    { 501, "Not Implemented" },
    { 502, "Bad Gateway" },
    { 504, "Gateway Timeout" },
    { 505, "HTTP Version Not Supported" },
    { 299, "Unknown" },
    { 0, "Unknown" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmpstr (moat_http_status_reason (cases[i].status), ==,
                     cases[i].reason);
}

static void
test_header_new (void)
{
  MoatHttpHeader *header = moat_http_header_new ("Name", "value");

  g_assert_cmpstr (header->name, ==, "Name");
  g_assert_cmpstr (header->value, ==, "value");
  moat_http_header_free (header);
  moat_http_header_free (NULL);
}

/* ---- Body decoder ---- */

/**
 * BodyCase:
 * @description: what the case checks
 * @raw: bytes after the head
 * @raw_length: length of @raw, or 0 for strlen (@raw)
 * @chunked: decode chunked coding, otherwise @content_length bytes
 * @content_length: Content-Length of the request, -1 for none
 * @error_code: expected MoatError, or -1 for success
 * @body: expected decoded body; for errors, the bytes decoded before it
 * @body_length: length of @body, or 0 for strlen (@body)
 * @leftover: bytes at the end of @raw after the body, not consumed
 * @done: whether the body ends within @raw
 */
typedef struct {
  const char *description;
  const char *raw;
  gsize raw_length;
  gboolean chunked;
  gint64 content_length;
  int error_code;
  const char *body;
  gsize body_length;
  gsize leftover;
  gboolean done;
} BodyCase;

#define SUCCESS (-1)

static const BodyCase body_cases[] = {
  {
    .description = "Content-Length body with the next request after it",
    .raw = "helloGET / HTTP/1.1\r\n", .content_length = 5,
    .error_code = SUCCESS, .body = "hello", .leftover = 16, .done = TRUE,
  },
  {
    .description = "Content-Length body not yet complete",
    .raw = "hel", .content_length = 5, .error_code = SUCCESS, .body = "hel",
    .done = FALSE,
  },
  {
    .description = "Content-Length 0",
    .raw = "GET", .content_length = 0, .error_code = SUCCESS, .body = "",
    .leftover = 3, .done = TRUE,
  },
  {
    .description = "no body",
    .raw = "GET", .content_length = -1, .error_code = SUCCESS, .body = "",
    .leftover = 3, .done = TRUE,
  },
  {
    .description = "one chunk",
    .raw = "5\r\nhello\r\n0\r\n\r\n", .chunked = TRUE, .error_code = SUCCESS,
    .body = "hello", .done = TRUE,
  },
  {
    .description = "several chunks with the next request after them",
    .raw = "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\nGET", .chunked = TRUE,
    .error_code = SUCCESS, .body = "hello world", .leftover = 3,
    .done = TRUE,
  },
  {
    .description = "upper and lower case hex sizes",
    .raw = "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n", .chunked = TRUE,
    .error_code = SUCCESS, .body = "0123456789abcdefghijk", .done = TRUE,
  },
  {
    .description = "leading zeros in sizes",
    .raw = "0005\r\nhello\r\n000\r\n\r\n", .chunked = TRUE,
    .error_code = SUCCESS, .body = "hello", .done = TRUE,
  },
  {
    .description = "chunk extensions",
    .raw = "5;name=value\r\nhello\r\n5 ; a=\"x;y\" ;b\r\nworld\r\n0;last\r\n\r\n",
    .chunked = TRUE, .error_code = SUCCESS, .body = "helloworld",
    .done = TRUE,
  },
  {
    .description = "trailer fields",
    .raw = "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:v\r\n\r\nGET",
    .chunked = TRUE, .error_code = SUCCESS, .body = "hello", .leftover = 3,
    .done = TRUE,
  },
  {
    .description = "empty chunked body",
    .raw = "0\r\n\r\n", .chunked = TRUE, .error_code = SUCCESS, .body = "",
    .done = TRUE,
  },
  {
    .description = "CRLF inside chunk data",
    .raw = "4\r\n\r\n\r\n\r\n0\r\n\r\n", .chunked = TRUE,
    .error_code = SUCCESS, .body = "\r\n\r\n", .done = TRUE,
  },
  {
    .description = "NUL inside chunk data",
    RAW_WITH_NUL ("3\r\na\0b\r\n0\r\n\r\n"), .chunked = TRUE,
    .error_code = SUCCESS, .body = "a\0b", .body_length = 3, .done = TRUE,
  },
  {
    .description = "largest chunk size, data still coming",
    .raw = "7fffffffffffffff\r\nab", .chunked = TRUE, .error_code = SUCCESS,
    .body = "ab", .done = FALSE,
  },
  {
    .description = "chunked body not yet complete",
    .raw = "5\r\nhello\r\n0\r\n", .chunked = TRUE, .error_code = SUCCESS,
    .body = "hello", .done = FALSE,
  },
  {
    .description = "chunk size that is not hex",
    .raw = "x\r\n", .chunked = TRUE, .error_code = MOAT_ERROR_PROTOCOL,
    .body = "",
  },
  {
    .description = "empty chunk size",
    .raw = "\r\nhello\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "negative chunk size",
    .raw = "-5\r\n", .chunked = TRUE, .error_code = MOAT_ERROR_PROTOCOL,
    .body = "",
  },
  {
    .description = "chunk size with plus sign",
    .raw = "+5\r\n", .chunked = TRUE, .error_code = MOAT_ERROR_PROTOCOL,
    .body = "",
  },
  {
    .description = "chunk size with 0x prefix",
    .raw = "0x5\r\nhello\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "whitespace before the chunk size",
    .raw = " 5\r\nhello\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "whitespace after the size without extension",
    .raw = "5 \r\nhello\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "chunk size above gint64",
    .raw = "8000000000000000\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "chunk size above guint64",
    .raw = "10000000000000000\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "chunk size that wraps to 5 in 64 bits",
    .raw = "10000000000000005\r\nhello\r\n0\r\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "bare LF after the chunk size",
    .raw = "5\nhello\r\n0\r\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "bare LF after chunk data",
    .raw = "5\r\nhello\n0\r\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "hello",
  },
  {
    .description = "CR not followed by LF in a size line",
    .raw = "5\r\rhello\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "chunk data longer than its size",
    .raw = "5\r\nhelloX\r\n0\r\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "hello",
  },
  {
    .description = "chunk data shorter than its size",
    .raw = "5\r\nhell\r\n0\r\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "hell\r",
  },
  {
    .description = "NUL in a chunk extension",
    RAW_WITH_NUL ("5;a\0b\r\nhello\r\n"), .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "bare LF in a chunk extension",
    .raw = "5;a\nhello\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "obs-fold in a trailer",
    .raw = "0\r\nX: a\r\n b\r\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "bare LF in a trailer",
    .raw = "0\r\nX: a\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "space before the colon in a trailer",
    .raw = "0\r\nX : a\r\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "trailer line without a colon",
    .raw = "0\r\nXa\r\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "control character in a trailer value",
    .raw = "0\r\nX: a\x01\r\n\r\n", .chunked = TRUE,
    .error_code = MOAT_ERROR_PROTOCOL, .body = "",
  },
  {
    .description = "bare LF as the final line",
    .raw = "0\r\n\n", .chunked = TRUE, .error_code = MOAT_ERROR_PROTOCOL,
    .body = "",
  },
  {
    .description = "CR not followed by LF at the end",
    .raw = "0\r\n\rX", .chunked = TRUE, .error_code = MOAT_ERROR_PROTOCOL,
    .body = "",
  },
};

/**
 * DecodeResult:
 * @failed: the decoder returned -1
 * @error_code: code of the error, or -1
 * @body: body bytes decoded
 * @consumed: bytes consumed before the end of the body or the error
 * @done: the decoder reported the end of the body
 */
typedef struct {
  gboolean failed;
  int error_code;
  GString *body;
  gsize consumed;
  gboolean done;
} DecodeResult;

/**
 * decode_pieces:
 * @decoder: initialised decoder
 * @raw: bytes to decode
 * @raw_length: length of @raw
 * @cuts: ascending offsets at which @raw is split into pieces
 * @cut_count: number of @cuts
 * @result: (out): what the decoder returned; free @result->body
 *
 * Feeds @raw piece by piece, as a caller does when bytes arrive. Each
 * piece is an exact-size copy, so AddressSanitizer catches reads past its
 * end.
 */
static void
decode_pieces (MoatHttpBodyDecoder *decoder, const guint8 *raw,
               gsize raw_length, const gsize *cuts, gsize cut_count,
               DecodeResult *result)
{
  gsize piece_start = 0;

  result->failed = FALSE;
  result->error_code = -1;
  result->body = g_string_new (NULL);
  result->consumed = 0;

  for (gsize piece = 0; piece <= cut_count; piece++)
    {
      gsize piece_end = piece < cut_count ? cuts[piece] : raw_length;
      gsize piece_length = piece_end - piece_start;
      g_autofree guint8 *copy = g_memdup2 (raw + piece_start, piece_length);
      gsize offset = 0;

      while (offset < piece_length && !moat_http_body_decoder_is_done (decoder))
        {
          g_autoptr (GError) error = NULL;
          const guint8 *data = NULL;
          gsize data_length = 0;
          gssize count;

          count = moat_http_body_decoder_feed (decoder, copy + offset,
                                               piece_length - offset, &data,
                                               &data_length, &error);
          if (count < 0)
            {
              g_assert_nonnull (error);
              g_assert_true (error->domain == MOAT_ERROR);
              result->failed = TRUE;
              result->error_code = error->code;
              result->consumed += offset;
              result->done = moat_http_body_decoder_is_done (decoder);
              return;
            }
          g_assert_no_error (error);

          /* Until the body is done, the decoder makes progress. */
          g_assert_cmpint (count, >, 0);
          g_assert_cmpuint ((gsize) count, <=, piece_length - offset);
          g_assert_true (data >= copy + offset);
          g_assert_true (data + data_length <= copy + offset + (gsize) count);
          g_string_append_len (result->body, (const char *) data,
                               (gssize) data_length);
          offset += (gsize) count;
        }

      result->consumed += offset;
      piece_start = piece_end;
      if (moat_http_body_decoder_is_done (decoder))
        break;
    }

  result->done = moat_http_body_decoder_is_done (decoder);
}

static void
init_decoder (MoatHttpBodyDecoder *decoder, const BodyCase *test_case)
{
  MoatHttpRequest request = {
    .content_length = test_case->chunked ? -1 : test_case->content_length,
    .chunked = test_case->chunked,
  };

  moat_http_body_decoder_init (decoder, &request);
}

static gsize
body_case_raw_length (const BodyCase *test_case)
{
  return test_case->raw_length != 0 ? test_case->raw_length
                                    : strlen (test_case->raw);
}

static void
check_decode_result (const BodyCase *test_case, const DecodeResult *result)
{
  gsize raw_length = body_case_raw_length (test_case);
  gsize body_length = test_case->body_length != 0 ? test_case->body_length
                                                  : strlen (test_case->body);

  if (test_case->error_code != SUCCESS)
    {
      g_assert_true (result->failed);
      g_assert_cmpint (result->error_code, ==, test_case->error_code);
      g_assert_false (result->done);
    }
  else
    {
      g_assert_false (result->failed);
      g_assert_cmpint (result->done, ==, test_case->done);
      g_assert_cmpuint (result->consumed, ==, raw_length - test_case->leftover);
    }

  g_assert_cmpuint (result->body->len, ==, body_length);
  g_assert_true (memcmp (result->body->str, test_case->body, body_length) == 0);
}

/*
 * Each case is decoded in one piece, one byte at a time, and split in two at
 * every offset. All must give the expected result.
 */
static void
test_body_table (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (body_cases); i++)
    {
      const BodyCase *test_case = &body_cases[i];
      const guint8 *raw = (const guint8 *) test_case->raw;
      gsize raw_length = body_case_raw_length (test_case);
      g_autofree gsize *every_byte = g_new0 (gsize, raw_length + 1);
      MoatHttpBodyDecoder decoder;
      DecodeResult result;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i,
                      test_case->description);

      init_decoder (&decoder, test_case);
      decode_pieces (&decoder, raw, raw_length, NULL, 0, &result);
      check_decode_result (test_case, &result);
      g_string_free (result.body, TRUE);

      for (gsize cut = 1; cut < raw_length; cut++)
        every_byte[cut - 1] = cut;
      init_decoder (&decoder, test_case);
      decode_pieces (&decoder, raw, raw_length, every_byte,
                     raw_length > 0 ? raw_length - 1 : 0, &result);
      check_decode_result (test_case, &result);
      g_string_free (result.body, TRUE);

      for (gsize cut = 0; cut <= raw_length; cut++)
        {
          init_decoder (&decoder, test_case);
          decode_pieces (&decoder, raw, raw_length, &cut, 1, &result);
          check_decode_result (test_case, &result);
          g_string_free (result.body, TRUE);
        }
    }
}

/* A chunk-size line of @length bytes without CRLF, padded by an extension. */
static GString *
make_chunk_size_line (gsize length)
{
  GString *line = g_string_new ("5;x=");

  while (line->len < length)
    g_string_append_c (line, 'y');
  return line;
}

static void
test_body_chunk_line_limit (void)
{
  static const struct {
    const char *description;
    gsize line_length;
    int error_code;
  } cases[] = {
    { "maximum chunk-size line", MOAT_HTTP_CHUNK_LINE_MAX, SUCCESS },
    { "one byte over", MOAT_HTTP_CHUNK_LINE_MAX + 1, MOAT_ERROR_LIMIT },
    { "far over", 10 * MOAT_HTTP_CHUNK_LINE_MAX, MOAT_ERROR_LIMIT },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GString) raw = make_chunk_size_line (cases[i].line_length);
      BodyCase test_case = {
        .chunked = TRUE,
        .error_code = cases[i].error_code,
        .body = cases[i].error_code == SUCCESS ? "hello" : "",
        .done = TRUE,
      };
      MoatHttpBodyDecoder decoder;
      DecodeResult result;
      gsize cut = raw->len / 2;

      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].description);
      g_string_append (raw, "\r\nhello\r\n0\r\n\r\n");
      test_case.raw = raw->str;

      init_decoder (&decoder, &test_case);
      decode_pieces (&decoder, (const guint8 *) raw->str, raw->len, NULL, 0,
                     &result);
      check_decode_result (&test_case, &result);
      g_string_free (result.body, TRUE);

      init_decoder (&decoder, &test_case);
      decode_pieces (&decoder, (const guint8 *) raw->str, raw->len, &cut, 1,
                     &result);
      check_decode_result (&test_case, &result);
      g_string_free (result.body, TRUE);
    }
}

static void
test_body_trailer_limit (void)
{
  g_autoptr (GString) raw = g_string_new ("0\r\n");
  BodyCase test_case = {
    .chunked = TRUE, .error_code = MOAT_ERROR_LIMIT, .body = "",
  };
  MoatHttpBodyDecoder decoder;
  DecodeResult result;

  while (raw->len <= MOAT_HTTP_HEAD_MAX + 3)
    g_string_append (raw, "X-Trailer: value\r\n");
  g_string_append (raw, "\r\n");
  test_case.raw = raw->str;

  init_decoder (&decoder, &test_case);
  decode_pieces (&decoder, (const guint8 *) raw->str, raw->len, NULL, 0,
                 &result);
  check_decode_result (&test_case, &result);
  g_string_free (result.body, TRUE);
}

/* After an error, every further call fails too. */
static void
test_body_error_is_final (void)
{
  static const guint8 bad[] = "z\r\n";
  static const guint8 good[] = "0\r\n\r\n";
  MoatHttpBodyDecoder decoder;
  MoatHttpRequest request = { .content_length = -1, .chunked = TRUE };
  const guint8 *data = NULL;
  gsize data_length = 0;
  g_autoptr (GError) first_error = NULL;
  g_autoptr (GError) second_error = NULL;

  moat_http_body_decoder_init (&decoder, &request);
  g_assert_cmpint (moat_http_body_decoder_feed (&decoder, bad, 3, &data,
                                                &data_length, &first_error),
                   ==, -1);
  g_assert_error (first_error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
  g_assert_cmpint (moat_http_body_decoder_feed (&decoder, good, 5, &data,
                                                &data_length, &second_error),
                   ==, -1);
  g_assert_error (second_error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
  g_assert_false (moat_http_body_decoder_is_done (&decoder));
}

/* A head from the parser selects the decoder, and the body that follows
 * the head in the same buffer decodes. */
static void
test_body_after_parsed_head (void)
{
  static const char raw[] = "POST /u HTTP/1.1\r\nHost: a\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n"
                            "3;ext\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
                            "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  g_autoptr (MoatHttpRequest) request = NULL;
  g_autoptr (GError) error = NULL;
  gsize consumed = 0;
  guint status = 0;
  MoatHttpBodyDecoder decoder;
  DecodeResult result;
  gsize body_end;

  g_assert_cmpint (moat_http_parse_request_head ((const guint8 *) raw,
                                                 sizeof raw - 1, &request,
                                                 &consumed, &status, &error),
                   ==, MOAT_HTTP_PARSE_DONE);
  g_assert_no_error (error);

  moat_http_body_decoder_init (&decoder, request);
  decode_pieces (&decoder, (const guint8 *) raw + consumed,
                 sizeof raw - 1 - consumed, NULL, 0, &result);
  g_assert_false (result.failed);
  g_assert_true (result.done);
  g_assert_cmpstr (result.body->str, ==, "abcde");
  body_end = consumed + result.consumed;
  g_assert_cmpstr (raw + body_end, ==, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  g_string_free (result.body, TRUE);
}

static void
test_body_long_content_length (void)
{
  static const gsize length = 3 * MOAT_BODY_BUFFER_MAX + 7;
  g_autofree guint8 *raw = g_malloc (length);
  gsize cuts[] = { 1, 4096, 65536, MOAT_BODY_BUFFER_MAX, length - 1 };
  BodyCase test_case = { .content_length = (gint64) length };
  MoatHttpBodyDecoder decoder;
  DecodeResult result;

  for (gsize i = 0; i < length; i++)
    raw[i] = (guint8) (i * 7);

  init_decoder (&decoder, &test_case);
  decode_pieces (&decoder, raw, length, cuts, G_N_ELEMENTS (cuts), &result);
  g_assert_false (result.failed);
  g_assert_true (result.done);
  g_assert_cmpuint (result.consumed, ==, length);
  g_assert_cmpuint (result.body->len, ==, length);
  g_assert_true (memcmp (result.body->str, raw, length) == 0);
  g_string_free (result.body, TRUE);
}

/* Appends a random chunked body to @raw and its decoded form to @body. */
static void
make_random_chunked_body (GByteArray *raw, GString *body)
{
  guint chunk_count = (guint) g_test_rand_int_range (0, 5);
  g_autoptr (GString) text = g_string_new (NULL);

  for (guint chunk = 0; chunk < chunk_count; chunk++)
    {
      guint size = (guint) g_test_rand_int_range (1, 40);

      g_string_append_printf (text, g_test_rand_bit () ? "%x" : "%X", size);
      if (g_test_rand_int_range (0, 4) == 0)
        g_string_append (text, " ;ext=\"a;b\"");
      g_string_append (text, "\r\n");
      for (guint i = 0; i < size; i++)
        {
          char c = (char) g_test_rand_int_range (0, 256);

          g_string_append_c (text, c);
          g_string_append_c (body, c);
        }
      g_string_append (text, "\r\n");
    }

  g_string_append (text, "0\r\n");
  if (g_test_rand_bit ())
    g_string_append (text, "X-Trailer: v\r\n");
  g_string_append (text, "\r\n");
  g_byte_array_append (raw, (const guint8 *) text->str, (guint) text->len);
}

static gboolean
decode_results_equal (const DecodeResult *a, const DecodeResult *b)
{
  return a->failed == b->failed && a->error_code == b->error_code
         && a->done == b->done && (a->failed || a->consumed == b->consumed)
         && g_string_equal (a->body, b->body);
}

/*
 * Random chunked bodies, some of them mutated, decoded in one piece, one
 * byte at a time and split at random offsets: all must agree, and an
 * unmutated body must decode to its data.
 */
static void
test_body_random_splits_agree (void)
{
  const guint rounds = g_test_thorough () ? 20000 : 2000;
  BodyCase chunked = { .chunked = TRUE };

  for (guint round = 0; round < rounds; round++)
    {
      g_autoptr (GByteArray) raw = g_byte_array_new ();
      g_autoptr (GString) expected_body = g_string_new (NULL);
      g_autofree gsize *every_byte = NULL;
      gboolean mutated = g_test_rand_bit ();
      gsize random_cuts[3];
      gsize random_cut_count;
      MoatHttpBodyDecoder decoder;
      DecodeResult whole;
      DecodeResult bytewise;
      DecodeResult split;

      make_random_chunked_body (raw, expected_body);
      if (mutated)
        mutate_bytes (raw);

      init_decoder (&decoder, &chunked);
      decode_pieces (&decoder, raw->data, raw->len, NULL, 0, &whole);
      if (!mutated)
        {
          g_assert_false (whole.failed);
          g_assert_true (whole.done);
          g_assert_cmpuint (whole.consumed, ==, raw->len);
          g_assert_true (g_string_equal (whole.body, expected_body));
        }

      every_byte = g_new0 (gsize, raw->len + 1);
      for (gsize cut = 1; cut < raw->len; cut++)
        every_byte[cut - 1] = cut;
      init_decoder (&decoder, &chunked);
      decode_pieces (&decoder, raw->data, raw->len, every_byte,
                     raw->len - 1, &bytewise);
      g_assert_true (decode_results_equal (&whole, &bytewise));

      random_cut_count = 0;
      for (gsize i = 0; i < G_N_ELEMENTS (random_cuts); i++)
        {
          gsize previous = i > 0 ? random_cuts[i - 1] : 0;

          random_cuts[i] = previous
                           + (gsize) g_test_rand_int_range (
                               0, (gint32) (raw->len - previous + 1));
          random_cut_count++;
        }
      init_decoder (&decoder, &chunked);
      decode_pieces (&decoder, raw->data, raw->len, random_cuts,
                     random_cut_count, &split);
      g_assert_true (decode_results_equal (&whole, &split));

      g_string_free (whole.body, TRUE);
      g_string_free (bytewise.body, TRUE);
      g_string_free (split.body, TRUE);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/http/head/table", test_head_table);
  g_test_add_func ("/http/head/every-split", test_head_every_split);
  g_test_add_func ("/http/head/request-line-limit",
                   test_head_request_line_limit);
  g_test_add_func ("/http/head/size-limit", test_head_size_limit);
  g_test_add_func ("/http/head/leading-lines-limit",
                   test_head_leading_lines_limit);
  g_test_add_func ("/http/head/field-count-limit",
                   test_head_field_count_limit);
  g_test_add_func ("/http/head/mutations-are-stable",
                   test_head_mutations_are_stable);
  g_test_add_func ("/http/hop-by-hop", test_hop_by_hop);
  g_test_add_func ("/http/status-reason", test_status_reason);
  g_test_add_func ("/http/header-new", test_header_new);
  g_test_add_func ("/http/body/table", test_body_table);
  g_test_add_func ("/http/body/chunk-line-limit", test_body_chunk_line_limit);
  g_test_add_func ("/http/body/trailer-limit", test_body_trailer_limit);
  g_test_add_func ("/http/body/error-is-final", test_body_error_is_final);
  g_test_add_func ("/http/body/after-parsed-head",
                   test_body_after_parsed_head);
  g_test_add_func ("/http/body/long-content-length",
                   test_body_long_content_length);
  g_test_add_func ("/http/body/random-splits-agree",
                   test_body_random_splits_agree);

  return g_test_run ();
}
