/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-transport.c - libFuzzer target: QEMU stream framing */
#include <string.h>

#include "fuzz-common.h"
#include "moat-limits.h"
#include "transport.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_setup_logging ();
  return 0;
}

/*
 * Deframes the input as one stream read, as transport.c's read buffer would
 * hold it, then checks that the first few bytes alone never yield a frame
 * that the whole input does not.
 */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree guint8 *stream = fuzz_copy (data, size);
  gsize offset = 0;
  guint frames = 0;
  gsize frame_bytes = 0;

  for (;;)
    {
      g_autoptr (GError) error = NULL;
      const guint8 *frame = NULL;
      gsize frame_length = 0;
      gssize consumed = moat_transport_deframe (stream + offset,
                                                size - offset, &frame,
                                                &frame_length, &error);

      if (consumed < 0)
        {
          g_assert_nonnull (error);
          break;
        }
      g_assert_null (error);
      if (consumed == 0)
        break;
      g_assert_cmpuint (frame_length, >=, 1);
      g_assert_cmpuint (frame_length, <=, MOAT_FRAME_MAX);
      g_assert_true (frame == stream + offset + 4);
      g_assert_cmpuint ((gsize) consumed, ==, frame_length + 4);
      g_assert_cmpuint ((gsize) consumed, <=, size - offset);
      /* Touch every byte so that AddressSanitizer checks the bounds. */
      for (gsize i = 0; i < frame_length; i++)
        frame_bytes += frame[i] != 0;
      offset += consumed;
      frames++;
    }

  /* A partial read must wait for more bytes, not guess a frame. */
  for (gsize cut = 0; cut < MIN (size, (gsize) 8); cut++)
    {
      g_autofree guint8 *prefix = fuzz_copy (data, cut);
      const guint8 *frame = NULL;
      gsize frame_length = 0;
      gssize consumed = moat_transport_deframe (prefix, cut, &frame,
                                                &frame_length, NULL);

      g_assert_true (consumed <= 0 || frames > 0);
    }
  (void) frame_bytes;
  return 0;
}
