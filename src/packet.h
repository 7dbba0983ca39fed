/* SPDX-License-Identifier: GPL-2.0-or-later */
/* packet.h - bounded views of Ethernet, ARP, IPv4, UDP and TCP headers */
#pragma once

#include <glib.h>
#include <netinet/in.h>

#define MOAT_ETHERTYPE_IPV4 0x0800
#define MOAT_ETHERTYPE_ARP 0x0806
#define MOAT_ETHERTYPE_IPV6 0x86dd

#define MOAT_IP_PROTO_ICMP 1
#define MOAT_IP_PROTO_TCP 6
#define MOAT_IP_PROTO_UDP 17

#define MOAT_TCP_FIN 0x01
#define MOAT_TCP_SYN 0x02
#define MOAT_TCP_RST 0x04
#define MOAT_TCP_ACK 0x10

#define MOAT_ETH_ALEN 6

/**
 * MoatEthView:
 * @destination: destination MAC address, inside the frame
 * @source: source MAC address, inside the frame
 * @ethertype: EtherType in host byte order
 * @payload: bytes after the 14-byte header
 * @payload_length: length of @payload
 */
typedef struct {
  const guint8 *destination;
  const guint8 *source;
  guint16 ethertype;
  const guint8 *payload;
  gsize payload_length;
} MoatEthView;

/**
 * MoatIpv4View:
 * @source: source address
 * @destination: destination address
 * @protocol: IP protocol number
 * @fragment: the packet is a fragment (MF set or non-zero offset)
 * @payload: bytes after the IPv4 header, bounded by the total length field
 * @payload_length: length of @payload
 */
typedef struct {
  struct in_addr source;
  struct in_addr destination;
  guint8 protocol;
  gboolean fragment;
  const guint8 *payload;
  gsize payload_length;
} MoatIpv4View;

/**
 * MoatL4View:
 * @source_port: source port, host byte order
 * @destination_port: destination port, host byte order
 * @tcp_flags: TCP flags byte (0 for UDP)
 * @payload: UDP payload (TCP: the segment after the TCP header)
 * @payload_length: length of @payload
 */
typedef struct {
  guint16 source_port;
  guint16 destination_port;
  guint8 tcp_flags;
  const guint8 *payload;
  gsize payload_length;
} MoatL4View;

/**
 * MoatArpView:
 * @operation: 1 for request, 2 for reply
 * @sender_mac: sender hardware address, inside the frame
 * @sender_ip: sender protocol address
 * @target_ip: target protocol address
 */
typedef struct {
  guint16 operation;
  const guint8 *sender_mac;
  struct in_addr sender_ip;
  struct in_addr target_ip;
} MoatArpView;

gboolean moat_packet_parse_eth (const guint8 *frame, gsize length,
                                MoatEthView *view, GError **error);
gboolean moat_packet_parse_arp (const guint8 *data, gsize length,
                                MoatArpView *view, GError **error);
gboolean moat_packet_parse_ipv4 (const guint8 *data, gsize length,
                                 MoatIpv4View *view, GError **error);
gboolean moat_packet_parse_udp (const MoatIpv4View *ip, MoatL4View *view,
                                GError **error);
gboolean moat_packet_parse_tcp (const MoatIpv4View *ip, MoatL4View *view,
                                GError **error);

char *moat_packet_format_endpoint (struct in_addr address, guint port);
void moat_packet_mac_for_address (struct in_addr address,
                                  guint8 mac[MOAT_ETH_ALEN]);
gsize moat_packet_build_udp4 (guint8 *out, gsize out_size,
                              const guint8 source_mac[MOAT_ETH_ALEN],
                              const guint8 destination_mac[MOAT_ETH_ALEN],
                              struct in_addr source, guint16 source_port,
                              struct in_addr destination,
                              guint16 destination_port,
                              const guint8 *payload, gsize payload_length);
gsize moat_packet_build_arp_reply (guint8 *out, gsize out_size,
                                   const MoatArpView *request,
                                   const guint8 reply_mac[MOAT_ETH_ALEN]);
gsize moat_packet_build_tcp_reset (guint8 *out, gsize out_size,
                                   const guint8 guest_mac[MOAT_ETH_ALEN],
                                   const MoatIpv4View *syn,
                                   const MoatL4View *tcp);
