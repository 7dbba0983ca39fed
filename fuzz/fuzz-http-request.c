/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-http-request.c - libFuzzer target: the HTTP/1.1 request head parser
 * and the body decoder that reads what follows the head
 */
#include <string.h>

#include "fuzz-common.h"
#include "http.h"
#include "moat-limits.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_setup_logging ();
  return 0;
}

/* Decodes the body that follows @request's head, fed in pieces of at
 * most @step bytes. */
static void
decode_body (const MoatHttpRequest *request, const guint8 *body, gsize length,
             gsize step)
{
  MoatHttpBodyDecoder decoder;
  gsize offset = 0;

  moat_http_body_decoder_init (&decoder, request);
  while (offset < length && !moat_http_body_decoder_is_done (&decoder))
    {
      gsize piece = MIN (step, length - offset);
      const guint8 *span = NULL;
      gsize span_length = 0;
      gssize consumed;

      consumed = moat_http_body_decoder_feed (&decoder, body + offset, piece,
                                              &span, &span_length, NULL);
      /* 0: the rest of the input is a partial chunk line; -1: the
       * chunked coding is malformed. */
      if (consumed <= 0)
        break;
      g_assert_cmpuint ((gsize) consumed, <=, piece);
      if (span_length > 0)
        {
          g_assert_true (span >= body + offset);
          g_assert_true (span + span_length <= body + offset + consumed);
        }
      offset += consumed;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree guint8 *buffer = fuzz_copy (data, size);
  g_autoptr (MoatHttpRequest) request = NULL;
  g_autoptr (GError) error = NULL;
  gsize consumed = 0;
  guint status = 0;
  MoatHttpParseResult result;

  result = moat_http_parse_request_head (buffer, size, &request, &consumed,
                                         &status, &error);
  if (result == MOAT_HTTP_PARSE_ERROR)
    {
      g_assert_nonnull (error);
      g_assert_cmpuint (status, >=, 400);
      g_assert_cmpuint (status, <=, 599);
      return 0;
    }
  if (result == MOAT_HTTP_PARSE_INCOMPLETE)
    return 0;

  g_assert_nonnull (request);
  g_assert_cmpuint (consumed, <=, size);
  g_assert_cmpuint (consumed, <=, MOAT_HTTP_HEAD_MAX);
  g_assert_nonnull (request->method);
  g_assert_nonnull (request->target);
  g_assert_false (request->chunked && request->content_length >= 0);

  decode_body (request, buffer + consumed, size - consumed, size);
  decode_body (request, buffer + consumed, size - consumed, 1);
  return 0;
}
