/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * guard.c - checks every guest frame before libslirp sees it
 *
 * The guard is the only path from the guest into moat. It answers DHCP
 * and DNS itself, answers ARP for synthetic addresses, and passes to
 * libslirp only ARP, ICMP and TCP over IPv4. TCP connection attempts are
 * audited here: a SYN toward an address that moat's DNS handed out gets a
 * guest forward registered on demand, so every port works; a SYN toward
 * any other address is audited as denied and left to libslirp, which
 * resets it in restricted mode. Everything else is dropped.
 */
#define G_LOG_DOMAIN "moat-guard"

#include "guard.h"

#include <arpa/inet.h>
#include <string.h>

#include "dns.h"
#include "error.h"
#include "packet.h"
#include "stack.h"
#include "transport.h"

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DNS_PORT 53
/* Seconds a guest may cache a synthetic address. Short, because the
 * address is reused for another name once the table is full. */
#define DNS_TTL_S 60
/* Warnings a guest can trigger are logged this many times, then only
 * every 1000th occurrence. */
#define WARNINGS_LOGGED 10

struct MoatGuard {
  MoatSession *session;
  guint64 warnings;
  guint64 dropped;
};

static void G_GNUC_PRINTF (2, 3)
guard_warn (MoatGuard *guard, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  guard->warnings++;
  if (guard->warnings > WARNINGS_LOGGED && guard->warnings % 1000 != 0)
    return;
  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_warning ("%s (guest warning %" G_GUINT64_FORMAT ")", message,
             guard->warnings);
}

MoatGuard *
moat_guard_new (MoatSession *session)
{
  MoatGuard *guard = g_new0 (MoatGuard, 1);

  guard->session = session;
  return guard;
}

void
moat_guard_free (MoatGuard *guard)
{
  g_free (guard);
}

static char *
format_endpoint (struct in_addr address, guint port)
{
  char text[INET_ADDRSTRLEN];

  inet_ntop (AF_INET, &address, text, sizeof text);
  return g_strdup_printf ("%s:%u", text, port);
}

static void
guard_send_udp (MoatGuard *guard, const MoatEthView *request,
                struct in_addr source, guint16 source_port,
                struct in_addr destination, guint16 destination_port,
                const guint8 *payload, gsize length)
{
  guint8 frame[MOAT_ETH_HEADER_LEN + 28 + 1500];
  guint8 source_mac[MOAT_ETH_ALEN];
  gsize frame_length;

  moat_packet_mac_for_address (source, source_mac);
  frame_length = moat_packet_build_udp4 (frame, sizeof frame, source_mac,
                                         request->source, source,
                                         source_port, destination,
                                         destination_port, payload, length);
  if (frame_length > 0)
    moat_transport_send (guard->session->transport, frame, frame_length);
}

static void
guard_handle_dhcp (MoatGuard *guard, const MoatEthView *eth,
                   const MoatL4View *udp)
{
  g_autoptr (GError) error = NULL;
  guint8 reply[1024];
  gsize length;
  struct in_addr broadcast = { .s_addr = INADDR_BROADCAST };

  length = moat_dhcp_handle (&guard->session->dhcp, udp->payload,
                             udp->payload_length, reply, sizeof reply,
                             &error);
  if (length == 0)
    {
      if (error != NULL)
        guard_warn (guard, "invalid DHCP message from the guest: %s",
                    error->message);
      return;
    }
  /* Sent to the broadcast address because the guest has no address yet
   * (RFC 2131 section 4.1); the Ethernet destination is the client. */
  guard_send_udp (guard, eth, guard->session->dhcp.gateway, DHCP_SERVER_PORT,
                  broadcast, DHCP_CLIENT_PORT, reply, length);
}

static void
guard_audit_dns (MoatGuard *guard, const MoatIpv4View *ip,
                 const MoatL4View *udp, const MoatDnsQuery *query,
                 const struct in_addr *answer, const char *error_text)
{
  MoatSession *session = guard->session;
  g_autoptr (MoatAuditEvent) event = moat_audit_event_new ("dns");
  g_autofree char *guest = format_endpoint (ip->source, udp->source_port);
  g_autofree char *reason = NULL;
  gboolean allowed = FALSE;

  if (query != NULL && query->name[0] != '\0')
    allowed = moat_policy_allows_host (session->policy, query->name, &reason);

  moat_audit_event_add_string (event, "decision",
                               allowed ? "allow" : "deny");
  if (error_text != NULL)
    moat_audit_event_add_string (event, "reason", error_text);
  else if (reason != NULL)
    moat_audit_event_add_string (event, "reason", reason);
  moat_audit_event_add_string (event, "guest", guest);
  if (query != NULL)
    {
      moat_audit_event_add_string (event, "host", query->name);
      moat_audit_event_add_int (event, "qtype", query->qtype);
    }
  if (answer != NULL)
    {
      char text[INET_ADDRSTRLEN];

      inet_ntop (AF_INET, answer, text, sizeof text);
      moat_audit_event_add_string (event, "answer", text);
    }
  moat_audit_emit (session->audit, g_steal_pointer (&event));
}

/*
 * Every name gets an answer, allowed or not: the decision is made per
 * request, where a denied guest gets a 403 that explains it. No query ever
 * leaves moat, so query names cannot carry data out.
 */
static void
guard_handle_dns (MoatGuard *guard, const MoatEthView *eth,
                  const MoatIpv4View *ip, const MoatL4View *udp)
{
  MoatSession *session = guard->session;
  g_autoptr (GError) error = NULL;
  MoatDnsQuery query;
  struct in_addr address;
  const struct in_addr *answer = NULL;
  guint8 reply[MOAT_DNS_UDP_MAX];
  gsize length;
  guint rcode = MOAT_DNS_RCODE_NOERROR;

  if (!moat_dns_parse_query (udp->payload, udp->payload_length, &query,
                             &error))
    {
      guard_warn (guard, "invalid DNS query from the guest: %s",
                  error->message);
      guard_audit_dns (guard, ip, udp, NULL, NULL, error->message);
      return;
    }

  if (query.qclass != MOAT_DNS_CLASS_IN)
    rcode = MOAT_DNS_RCODE_NOTIMP;
  else if (query.qtype == MOAT_DNS_TYPE_A && query.name[0] != '\0')
    {
      address = moat_names_resolve (session->names, query.name);
      answer = &address;
    }

  length = moat_dns_build_response (&query, rcode, answer, DNS_TTL_S, reply,
                                    sizeof reply);
  if (length > 0)
    guard_send_udp (guard, eth, ip->destination, DNS_PORT, ip->source,
                    udp->source_port, reply, length);
  guard_audit_dns (guard, ip, udp, &query, answer, NULL);
}

static void
guard_audit_denied_connection (MoatGuard *guard, const MoatIpv4View *ip,
                               const MoatL4View *l4, const char *protocol,
                               const char *reason)
{
  MoatSession *session = guard->session;
  g_autoptr (MoatAuditEvent) event = moat_audit_event_new ("connection");
  g_autofree char *guest = format_endpoint (ip->source, l4->source_port);
  char destination[INET_ADDRSTRLEN];

  inet_ntop (AF_INET, &ip->destination, destination, sizeof destination);
  moat_audit_event_add_string (event, "decision", "deny");
  moat_audit_event_add_string (event, "reason", reason);
  moat_audit_event_add_string (event, "guest", guest);
  moat_audit_event_add_string (event, "protocol", protocol);
  moat_audit_event_add_string (event, "address", destination);
  moat_audit_event_add_int (event, "port", l4->destination_port);
  moat_audit_emit (session->audit, g_steal_pointer (&event));
}

static void
guard_handle_udp (MoatGuard *guard, const MoatEthView *eth,
                  const MoatIpv4View *ip)
{
  MoatSession *session = guard->session;
  g_autoptr (GError) error = NULL;
  MoatL4View udp;

  if (!moat_packet_parse_udp (ip, &udp, &error))
    {
      guard_warn (guard, "dropping a UDP datagram from the guest: %s",
                  error->message);
      return;
    }
  if (udp.destination_port == DHCP_SERVER_PORT)
    {
      guard_handle_dhcp (guard, eth, &udp);
      return;
    }
  if (udp.destination_port == DNS_PORT
      && ip->destination.s_addr == session->dhcp.dns.s_addr)
    {
      guard_handle_dns (guard, eth, ip, &udp);
      return;
    }
  /* Broadcasts and multicasts are local chatter, not connection
   * attempts; drop them without an audit line. */
  if (ip->destination.s_addr == INADDR_BROADCAST
      || IN_MULTICAST (ntohl (ip->destination.s_addr)))
    return;
  guard_audit_denied_connection (guard, ip, &udp, "udp",
                                 "UDP other than DNS and DHCP is not "
                                 "forwarded");
}

static void
guard_handle_tcp (MoatGuard *guard, const guint8 *frame, gsize length,
                  const MoatIpv4View *ip)
{
  MoatSession *session = guard->session;
  g_autoptr (GError) error = NULL;
  MoatL4View tcp;
  MoatFlowKey key;
  gboolean syn;

  if (!moat_packet_parse_tcp (ip, &tcp, &error))
    {
      guard_warn (guard, "dropping a TCP segment from the guest: %s",
                  error->message);
      return;
    }

  syn = (tcp.tcp_flags & (MOAT_TCP_SYN | MOAT_TCP_ACK)) == MOAT_TCP_SYN;
  if (syn)
    {
      const char *name = moat_names_lookup (session->names, ip->destination);

      if (name == NULL)
        guard_audit_denied_connection (guard, ip, &tcp, "tcp",
                                       "the address was not handed out by "
                                       "moat's DNS: connect by host name");
      else if (!moat_stack_forward (session->stack, ip->destination,
                                    tcp.destination_port, &error))
        guard_warn (guard, "%s", error->message);
    }

  key.guest = ip->source;
  key.guest_port = tcp.source_port;
  key.destination = ip->destination;
  key.destination_port = tcp.destination_port;
  moat_stack_input (session->stack, frame, length, &key);
}

static void
guard_handle_arp (MoatGuard *guard, const guint8 *frame, gsize length,
                  const MoatEthView *eth)
{
  MoatSession *session = guard->session;
  g_autoptr (GError) error = NULL;
  MoatArpView arp;
  guint8 reply[64];
  guint8 mac[MOAT_ETH_ALEN];
  gsize reply_length;

  if (!moat_packet_parse_arp (eth->payload, eth->payload_length, &arp,
                              &error))
    {
      guard_warn (guard, "dropping an ARP message from the guest: %s",
                  error->message);
      return;
    }
  /* A guest whose netmask covers the synthetic pool asks for its
   * addresses directly; libslirp only answers for its own. */
  if (arp.operation == 1
      && moat_names_lookup (session->names, arp.target_ip) != NULL)
    {
      moat_packet_mac_for_address (arp.target_ip, mac);
      reply_length = moat_packet_build_arp_reply (reply, sizeof reply, &arp,
                                                  mac);
      if (reply_length > 0)
        moat_transport_send (session->transport, reply, reply_length);
      return;
    }
  moat_stack_input (session->stack, frame, length, NULL);
}

/**
 * moat_guard_input:
 * @guard: the guard
 * @frame: a frame from the guest
 * @length: its length
 *
 * Handles or forwards one guest frame. Malformed frames are dropped with a
 * rate-limited warning.
 */
void
moat_guard_input (MoatGuard *guard, const guint8 *frame, gsize length)
{
  g_autoptr (GError) error = NULL;
  MoatEthView eth;
  MoatIpv4View ip;

  if (!moat_packet_parse_eth (frame, length, &eth, &error))
    {
      guard_warn (guard, "dropping a frame from the guest: %s",
                  error->message);
      return;
    }

  switch (eth.ethertype)
    {
    case MOAT_ETHERTYPE_ARP:
      guard_handle_arp (guard, frame, length, &eth);
      return;
    case MOAT_ETHERTYPE_IPV4:
      break;
    default:
      /* IPv6 is not offered (no router advertisements, no DHCPv6), so
       * the guest's neighbour discovery and anything else end here. */
      guard->dropped++;
      return;
    }

  if (!moat_packet_parse_ipv4 (eth.payload, eth.payload_length, &ip, &error))
    {
      guard_warn (guard, "dropping an IPv4 packet from the guest: %s",
                  error->message);
      return;
    }

  switch (ip.protocol)
    {
    case MOAT_IP_PROTO_UDP:
      guard_handle_udp (guard, &eth, &ip);
      break;
    case MOAT_IP_PROTO_TCP:
      guard_handle_tcp (guard, frame, length, &ip);
      break;
    case MOAT_IP_PROTO_ICMP:
      moat_stack_input (guard->session->stack, frame, length, NULL);
      break;
    default:
      guard->dropped++;
      break;
    }
}
