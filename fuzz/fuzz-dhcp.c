/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fuzz-dhcp.c - libFuzzer target: the DHCP server's request handler */
#include <arpa/inet.h>

#include "dhcp.h"
#include "fuzz-common.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_setup_logging ();
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree guint8 *request = fuzz_copy (data, size);
  MoatDhcpConfig config = {
    .mtu = 1500,
    .lease_seconds = 86400,
    .domain = "moat.internal",
  };
  guint8 reply[1024];
  gsize length;

  inet_pton (AF_INET, "10.0.2.15", &config.guest);
  inet_pton (AF_INET, "255.255.255.0", &config.netmask);
  inet_pton (AF_INET, "10.0.2.2", &config.gateway);
  inet_pton (AF_INET, "10.0.2.3", &config.dns);

  /* The buffer size guard.c passes. */
  length = moat_dhcp_handle (&config, request, size, reply, sizeof reply,
                             NULL);
  g_assert_cmpuint (length, <=, sizeof reply);
  return 0;
}
