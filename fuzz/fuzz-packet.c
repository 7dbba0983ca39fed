/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-packet.c - libFuzzer target: the frame guard's header parsers
 * (Ethernet, ARP, IPv4, UDP, TCP) and the ARP reply builder
 */
#include <string.h>

#include "fuzz-common.h"
#include "moat-limits.h"
#include "packet.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  fuzz_setup_logging ();
  return 0;
}

static gsize
touch (const guint8 *bytes, gsize length)
{
  gsize sum = 0;

  for (gsize i = 0; i < length; i++)
    sum += bytes[i];
  return sum;
}

static void
check_within (const guint8 *inner, gsize inner_length, const guint8 *outer,
              gsize outer_length)
{
  g_assert_true (inner >= outer);
  g_assert_cmpuint (inner_length, <=, outer_length);
  g_assert_true ((gsize) (inner - outer) <= outer_length - inner_length);
}

/*
 * Walks the input the way guard.c does: Ethernet, then ARP or IPv4, then
 * UDP or TCP. Every view must lie inside the frame.
 */
int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree guint8 *frame = fuzz_copy (data, size);
  MoatEthView eth;
  MoatIpv4View ip;
  MoatL4View l4;
  MoatArpView arp;
  volatile gsize sink = 0;

  if (!moat_packet_parse_eth (frame, size, &eth, NULL))
    return 0;
  check_within (eth.payload, eth.payload_length, frame, size);

  if (eth.ethertype == MOAT_ETHERTYPE_ARP)
    {
      guint8 reply[64];
      guint8 mac[MOAT_ETH_ALEN] = { 0x52, 0x55, 0x0a, 0x00, 0x80, 0x01 };

      if (moat_packet_parse_arp (eth.payload, eth.payload_length, &arp, NULL))
        {
          check_within (arp.sender_mac, MOAT_ETH_ALEN, frame, size);
          sink += moat_packet_build_arp_reply (reply, sizeof reply, &arp,
                                               mac);
        }
      return 0;
    }

  if (!moat_packet_parse_ipv4 (eth.payload, eth.payload_length, &ip, NULL))
    return 0;
  check_within (ip.payload, ip.payload_length, eth.payload,
                eth.payload_length);
  sink += touch (ip.payload, ip.payload_length);

  if (moat_packet_parse_udp (&ip, &l4, NULL))
    {
      check_within (l4.payload, l4.payload_length, ip.payload,
                    ip.payload_length);
      sink += touch (l4.payload, l4.payload_length);
    }
  if (moat_packet_parse_tcp (&ip, &l4, NULL))
    {
      check_within (l4.payload, l4.payload_length, ip.payload,
                    ip.payload_length);
      sink += touch (l4.payload, l4.payload_length);
    }
  (void) sink;
  return 0;
}
