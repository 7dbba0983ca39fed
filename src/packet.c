/* SPDX-License-Identifier: GPL-2.0-or-later */
/* packet.c - bounded views of Ethernet, ARP, IPv4, UDP and TCP headers */
#define G_LOG_DOMAIN "moat-packet"

#include "packet.h"

#include <arpa/inet.h>
#include <string.h>

#include "error.h"
#include "moat-limits.h"

#define IPV4_HEADER_MIN 20
#define UDP_HEADER_LEN 8
#define TCP_HEADER_MIN 20
#define ARP_IPV4_LEN 28

static guint16
read_be16 (const guint8 *p)
{
  return (guint16) ((p[0] << 8) | p[1]);
}

static void
write_be16 (guint8 *p, guint16 value)
{
  p[0] = value >> 8;
  p[1] = value & 0xff;
}

static guint32
read_be32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16)
         | ((guint32) p[2] << 8) | p[3];
}

static void
write_be32 (guint8 *p, guint32 value)
{
  write_be16 (p, (guint16) (value >> 16));
  write_be16 (p + 2, (guint16) (value & 0xffff));
}

/**
 * moat_packet_parse_eth:
 * @frame: the frame as received from the guest
 * @length: its length in bytes
 * @view: (out): the parsed header
 * @error: return location for an error
 *
 * Return: %TRUE if @frame holds at least an Ethernet header.
 */
gboolean
moat_packet_parse_eth (const guint8 *frame, gsize length, MoatEthView *view,
                       GError **error)
{
  if (length < MOAT_ETH_HEADER_LEN)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "frame of %" G_GSIZE_FORMAT " bytes is shorter than an "
                   "Ethernet header (%d bytes)", length, MOAT_ETH_HEADER_LEN);
      return FALSE;
    }
  view->destination = frame;
  view->source = frame + MOAT_ETH_ALEN;
  view->ethertype = read_be16 (frame + 12);
  view->payload = frame + MOAT_ETH_HEADER_LEN;
  view->payload_length = length - MOAT_ETH_HEADER_LEN;
  return TRUE;
}

/**
 * moat_packet_parse_arp:
 * @data: the Ethernet payload
 * @length: its length
 * @view: (out): the parsed ARP message
 * @error: return location for an error
 *
 * Accepts only Ethernet/IPv4 ARP (RFC 826 with hardware type 1, protocol
 * type 0x0800, address lengths 6 and 4).
 *
 * Return: %TRUE on success.
 */
gboolean
moat_packet_parse_arp (const guint8 *data, gsize length, MoatArpView *view,
                       GError **error)
{
  if (length < ARP_IPV4_LEN)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "ARP message of %" G_GSIZE_FORMAT " bytes is truncated",
                   length);
      return FALSE;
    }
  if (read_be16 (data) != 1 || read_be16 (data + 2) != MOAT_ETHERTYPE_IPV4
      || data[4] != MOAT_ETH_ALEN || data[5] != 4)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "ARP message is not Ethernet/IPv4");
      return FALSE;
    }
  view->operation = read_be16 (data + 6);
  view->sender_mac = data + 8;
  memcpy (&view->sender_ip, data + 14, 4);
  memcpy (&view->target_ip, data + 24, 4);
  return TRUE;
}

/**
 * moat_packet_parse_ipv4:
 * @data: the Ethernet payload
 * @length: its length
 * @view: (out): the parsed header
 * @error: return location for an error
 *
 * Checks version, header length and total length (RFC 791 section 3.1).
 * The payload is bounded by the total length field, so Ethernet padding is
 * not part of it.
 *
 * Return: %TRUE on success.
 */
gboolean
moat_packet_parse_ipv4 (const guint8 *data, gsize length, MoatIpv4View *view,
                        GError **error)
{
  guint header_length;
  guint total_length;
  guint16 fragment_field;

  if (length < IPV4_HEADER_MIN)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "IPv4 packet of %" G_GSIZE_FORMAT " bytes is truncated",
                   length);
      return FALSE;
    }
  if ((data[0] >> 4) != 4)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "IPv4 packet has version %u", data[0] >> 4);
      return FALSE;
    }
  header_length = (data[0] & 0x0f) * 4u;
  total_length = read_be16 (data + 2);
  if (header_length < IPV4_HEADER_MIN || total_length < header_length
      || total_length > length)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "IPv4 header length %u or total length %u is invalid for "
                   "a packet of %" G_GSIZE_FORMAT " bytes",
                   header_length, total_length, length);
      return FALSE;
    }
  fragment_field = read_be16 (data + 6);
  view->fragment = (fragment_field & 0x3fff) != 0;
  view->protocol = data[9];
  memcpy (&view->source, data + 12, 4);
  memcpy (&view->destination, data + 16, 4);
  view->payload = data + header_length;
  view->payload_length = total_length - header_length;
  return TRUE;
}

/**
 * moat_packet_parse_udp:
 * @ip: an IPv4 packet whose protocol is UDP and that is not a fragment
 * @view: (out): ports and payload
 * @error: return location for an error
 *
 * Return: %TRUE on success.
 */
gboolean
moat_packet_parse_udp (const MoatIpv4View *ip, MoatL4View *view,
                       GError **error)
{
  guint udp_length;

  if (ip->fragment || ip->payload_length < UDP_HEADER_LEN)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "UDP datagram is fragmented or truncated");
      return FALSE;
    }
  udp_length = read_be16 (ip->payload + 4);
  if (udp_length < UDP_HEADER_LEN || udp_length > ip->payload_length)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "UDP length %u is invalid for a payload of %"
                   G_GSIZE_FORMAT " bytes", udp_length, ip->payload_length);
      return FALSE;
    }
  view->source_port = read_be16 (ip->payload);
  view->destination_port = read_be16 (ip->payload + 2);
  view->tcp_flags = 0;
  view->payload = ip->payload + UDP_HEADER_LEN;
  view->payload_length = udp_length - UDP_HEADER_LEN;
  return TRUE;
}

/**
 * moat_packet_parse_tcp:
 * @ip: an IPv4 packet whose protocol is TCP
 * @view: (out): ports, flags and payload
 * @error: return location for an error
 *
 * Return: %TRUE on success.
 */
gboolean
moat_packet_parse_tcp (const MoatIpv4View *ip, MoatL4View *view,
                       GError **error)
{
  guint data_offset;

  if (ip->fragment || ip->payload_length < TCP_HEADER_MIN)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "TCP segment is fragmented or truncated");
      return FALSE;
    }
  data_offset = (ip->payload[12] >> 4) * 4u;
  if (data_offset < TCP_HEADER_MIN || data_offset > ip->payload_length)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "TCP data offset %u is invalid", data_offset);
      return FALSE;
    }
  view->source_port = read_be16 (ip->payload);
  view->destination_port = read_be16 (ip->payload + 2);
  view->tcp_flags = ip->payload[13];
  view->payload = ip->payload + data_offset;
  view->payload_length = ip->payload_length - data_offset;
  return TRUE;
}

/**
 * moat_packet_format_endpoint:
 * @address: an IPv4 address
 * @port: a port, host byte order
 *
 * Return: "address:port", the form audit lines and logs use, newly
 *   allocated.
 */
char *
moat_packet_format_endpoint (struct in_addr address, guint port)
{
  char text[INET_ADDRSTRLEN];

  inet_ntop (AF_INET, &address, text, sizeof text);
  return g_strdup_printf ("%s:%u", text, port);
}

/**
 * moat_packet_mac_for_address:
 * @address: a virtual address served by moat
 * @mac: (out): its MAC address
 *
 * Uses libslirp's scheme for its virtual hosts, 52:55 followed by the four
 * address bytes, so that the gateway keeps one MAC whether libslirp or moat
 * sends the frame.
 */
void
moat_packet_mac_for_address (struct in_addr address, guint8 mac[MOAT_ETH_ALEN])
{
  mac[0] = 0x52;
  mac[1] = 0x55;
  memcpy (mac + 2, &address, 4);
}

static guint32
checksum_add (guint32 sum, const guint8 *data, gsize length)
{
  gsize i;

  for (i = 0; i + 1 < length; i += 2)
    sum += read_be16 (data + i);
  if (length & 1)
    sum += data[length - 1] << 8;
  return sum;
}

static guint16
checksum_finish (guint32 sum)
{
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (guint16) ~sum;
}

/**
 * moat_packet_build_udp4:
 * @out: buffer for the frame
 * @out_size: its size
 * @source_mac: Ethernet source
 * @destination_mac: Ethernet destination
 * @source: IPv4 source
 * @source_port: UDP source port
 * @destination: IPv4 destination
 * @destination_port: UDP destination port
 * @payload: UDP payload
 * @payload_length: its length
 *
 * Builds an Ethernet/IPv4/UDP frame with both checksums set.
 *
 * Return: the frame length, or 0 if @out_size is too small.
 */
gsize
moat_packet_build_udp4 (guint8 *out, gsize out_size,
                        const guint8 source_mac[MOAT_ETH_ALEN],
                        const guint8 destination_mac[MOAT_ETH_ALEN],
                        struct in_addr source, guint16 source_port,
                        struct in_addr destination, guint16 destination_port,
                        const guint8 *payload, gsize payload_length)
{
  gsize udp_length = UDP_HEADER_LEN + payload_length;
  gsize ip_length = IPV4_HEADER_MIN + udp_length;
  gsize frame_length = MOAT_ETH_HEADER_LEN + ip_length;
  guint8 *ip = out + MOAT_ETH_HEADER_LEN;
  guint8 *udp = ip + IPV4_HEADER_MIN;
  guint8 pseudo[12];
  guint32 sum;
  guint16 udp_checksum;

  if (frame_length > out_size || ip_length > G_MAXUINT16)
    return 0;

  memcpy (out, destination_mac, MOAT_ETH_ALEN);
  memcpy (out + MOAT_ETH_ALEN, source_mac, MOAT_ETH_ALEN);
  write_be16 (out + 12, MOAT_ETHERTYPE_IPV4);

  memset (ip, 0, IPV4_HEADER_MIN);
  ip[0] = 0x45;
  write_be16 (ip + 2, (guint16) ip_length);
  ip[8] = 64;
  ip[9] = MOAT_IP_PROTO_UDP;
  memcpy (ip + 12, &source, 4);
  memcpy (ip + 16, &destination, 4);
  write_be16 (ip + 10, checksum_finish (checksum_add (0, ip, IPV4_HEADER_MIN)));

  write_be16 (udp, source_port);
  write_be16 (udp + 2, destination_port);
  write_be16 (udp + 4, (guint16) udp_length);
  write_be16 (udp + 6, 0);
  memcpy (udp + UDP_HEADER_LEN, payload, payload_length);

  /* RFC 768: the checksum covers a pseudo header of addresses, protocol
   * and length; a computed 0 is sent as 0xffff. */
  memcpy (pseudo, &source, 4);
  memcpy (pseudo + 4, &destination, 4);
  pseudo[8] = 0;
  pseudo[9] = MOAT_IP_PROTO_UDP;
  write_be16 (pseudo + 10, (guint16) udp_length);
  sum = checksum_add (0, pseudo, sizeof pseudo);
  sum = checksum_add (sum, udp, udp_length);
  udp_checksum = checksum_finish (sum);
  write_be16 (udp + 6, udp_checksum == 0 ? 0xffff : udp_checksum);

  return frame_length;
}

/**
 * moat_packet_build_arp_reply:
 * @out: buffer for the frame
 * @out_size: its size
 * @request: the ARP request being answered
 * @reply_mac: hardware address of the target
 *
 * Return: the frame length, or 0 if @out_size is too small.
 */
gsize
moat_packet_build_arp_reply (guint8 *out, gsize out_size,
                             const MoatArpView *request,
                             const guint8 reply_mac[MOAT_ETH_ALEN])
{
  gsize frame_length = MOAT_ETH_HEADER_LEN + ARP_IPV4_LEN;
  guint8 *arp = out + MOAT_ETH_HEADER_LEN;

  if (out_size < frame_length)
    return 0;
  memcpy (out, request->sender_mac, MOAT_ETH_ALEN);
  memcpy (out + MOAT_ETH_ALEN, reply_mac, MOAT_ETH_ALEN);
  write_be16 (out + 12, MOAT_ETHERTYPE_ARP);
  write_be16 (arp, 1);
  write_be16 (arp + 2, MOAT_ETHERTYPE_IPV4);
  arp[4] = MOAT_ETH_ALEN;
  arp[5] = 4;
  write_be16 (arp + 6, 2);
  memcpy (arp + 8, reply_mac, MOAT_ETH_ALEN);
  memcpy (arp + 14, &request->target_ip, 4);
  memcpy (arp + 18, request->sender_mac, MOAT_ETH_ALEN);
  memcpy (arp + 24, &request->sender_ip, 4);
  return frame_length;
}

/**
 * moat_packet_build_tcp_reset:
 * @out: buffer for the frame
 * @out_size: its size
 * @guest_mac: hardware address of the guest, the frame's destination
 * @syn: the guest's IPv4 packet carrying a SYN, already checked by
 *   moat_packet_parse_tcp()
 * @tcp: its TCP view
 *
 * Builds the RST|ACK that refuses the connection @syn opens (RFC 9293
 * section 3.10.7.1: the ACK acknowledges the SYN's sequence number plus
 * one), sent as if from the address the guest tried to reach.
 *
 * Return: the frame length, or 0 if @out_size is too small.
 */
gsize
moat_packet_build_tcp_reset (guint8 *out, gsize out_size,
                             const guint8 guest_mac[MOAT_ETH_ALEN],
                             const MoatIpv4View *syn, const MoatL4View *tcp)
{
  gsize ip_length = IPV4_HEADER_MIN + TCP_HEADER_MIN;
  gsize frame_length = MOAT_ETH_HEADER_LEN + ip_length;
  guint8 *ip = out + MOAT_ETH_HEADER_LEN;
  guint8 *segment = ip + IPV4_HEADER_MIN;
  guint8 source_mac[MOAT_ETH_ALEN];
  guint8 pseudo[12];
  guint32 sequence;
  guint32 sum;

  if (out_size < frame_length || syn->payload_length < TCP_HEADER_MIN)
    return 0;
  sequence = read_be32 (syn->payload + 4);

  moat_packet_mac_for_address (syn->destination, source_mac);
  memcpy (out, guest_mac, MOAT_ETH_ALEN);
  memcpy (out + MOAT_ETH_ALEN, source_mac, MOAT_ETH_ALEN);
  write_be16 (out + 12, MOAT_ETHERTYPE_IPV4);

  memset (ip, 0, IPV4_HEADER_MIN);
  ip[0] = 0x45;
  write_be16 (ip + 2, (guint16) ip_length);
  ip[8] = 64;
  ip[9] = MOAT_IP_PROTO_TCP;
  memcpy (ip + 12, &syn->destination, 4);
  memcpy (ip + 16, &syn->source, 4);
  write_be16 (ip + 10, checksum_finish (checksum_add (0, ip, IPV4_HEADER_MIN)));

  memset (segment, 0, TCP_HEADER_MIN);
  write_be16 (segment, tcp->destination_port);
  write_be16 (segment + 2, tcp->source_port);
  write_be32 (segment + 8, sequence + 1);
  segment[12] = (TCP_HEADER_MIN / 4) << 4;
  segment[13] = MOAT_TCP_RST | MOAT_TCP_ACK;

  memcpy (pseudo, &syn->destination, 4);
  memcpy (pseudo + 4, &syn->source, 4);
  pseudo[8] = 0;
  pseudo[9] = MOAT_IP_PROTO_TCP;
  write_be16 (pseudo + 10, TCP_HEADER_MIN);
  sum = checksum_add (0, pseudo, sizeof pseudo);
  sum = checksum_add (sum, segment, TCP_HEADER_MIN);
  write_be16 (segment + 16, checksum_finish (sum));
  return frame_length;
}
