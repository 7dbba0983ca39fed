/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-common.h - setup shared by the libFuzzer targets */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);
int LLVMFuzzerInitialize (int *argc, char ***argv);

/*
 * Drops warnings and messages, which malformed input triggers by design,
 * so that they do not slow the fuzzer down; criticals still print.
 */
static inline GLogWriterOutput
fuzz_log_writer (GLogLevelFlags level, const GLogField *fields,
                 gsize n_fields, gpointer user_data)
{
  if ((level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL)) == 0)
    return G_LOG_WRITER_HANDLED;
  return g_log_writer_default (level, fields, n_fields, user_data);
}

/*
 * A g_return_if_fail() or g_critical() reached from parser input is a bug
 * in moat, so criticals abort and libFuzzer records the input that caused
 * them.
 */
static inline void
fuzz_setup_logging (void)
{
  g_log_set_always_fatal (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL);
  g_log_set_writer_func (fuzz_log_writer, NULL, NULL);
}

/*
 * Copies the input into a buffer of exactly its size, so that AddressSanitizer
 * catches a read one byte past the end (libFuzzer's own buffer is exact
 * too, but a target may shorten it).
 */
static inline guint8 *
fuzz_copy (const uint8_t *data, size_t size)
{
  return size == 0 ? g_malloc (1) : g_memdup2 (data, size);
}
