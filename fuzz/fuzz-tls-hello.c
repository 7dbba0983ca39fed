/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-tls-hello.c - libFuzzer target: the TLS ClientHello reader */
#include <string.h>

#include "fuzz-common.h"
#include "tls.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_setup_logging ();
  return 0;
}

/*
 * Reads the input as the first bytes of a guest connection. A server name
 * the reader returns must pass moat's own server name check, because flow.c
 * mints a certificate for it.
 */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree guint8 *bytes = fuzz_copy (data, size);
  g_autofree char *server_name = NULL;
  g_autoptr (GError) error = NULL;
  MoatTlsHelloResult result;

  result = moat_tls_hello_parse (bytes, size, &server_name, &error);
  switch (result)
    {
    case MOAT_TLS_HELLO_OK:
      g_assert_null (error);
      if (server_name != NULL)
        g_assert_true (moat_tls_server_name_is_valid (server_name,
                                                      strlen (server_name)));
      break;
    case MOAT_TLS_HELLO_INVALID:
      g_assert_nonnull (error);
      g_assert_null (server_name);
      break;
    case MOAT_TLS_HELLO_INCOMPLETE:
      g_assert_null (server_name);
      break;
    default:
      g_assert_not_reached ();
    }
  return 0;
}
