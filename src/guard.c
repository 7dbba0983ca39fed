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
#include <sys/resource.h>

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
/* Audit lines of one kind the guest can cause at once, and per second
 * after that. A guest sending more gets a "suppressed" line with the
 * count instead of one line per frame. */
#define AUDIT_BURST 1000
#define AUDIT_PER_SECOND 200
/* File descriptors one guest connection can hold: libslirp's end and
 * moat's end of its unix connection, and the upstream socket. */
#define FDS_PER_FLOW 3
/* File descriptors kept for everything else: QEMU, listeners, the audit
 * log, libcurl's resolver and the CA files. */
#define FDS_RESERVED 64
#define IPV6_HEADER_LEN 40

/* Kinds of audit lines a guest can cause with single frames. */
typedef enum {
  GUARD_AUDIT_DNS,
  GUARD_AUDIT_CONNECTION,
  GUARD_AUDIT_FRAME,
  GUARD_AUDIT_KINDS,
} GuardAuditKind;

static const char *const audit_kind_names[GUARD_AUDIT_KINDS] = {
  "dns", "connection", "frame",
};

/* Token bucket for one kind of audit line. */
typedef struct {
  gdouble tokens;
  gint64 updated_us;
  guint64 suppressed;
} AuditBucket;

struct MoatGuard {
  MoatSession *session;
  guint64 warnings;
  guint64 dropped;
  /* Guest connections allowed at once: %MOAT_FLOWS_MAX, or less when the
   * file descriptor limit cannot hold that many. */
  guint flows_max;
  /* Guest handshakes in progress: packed (source port, destination,
   * destination port) to the monotonic time of the SYN, in microseconds. */
  GHashTable *handshakes;
  AuditBucket buckets[GUARD_AUDIT_KINDS];
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

/*
 * Raises the soft file descriptor limit toward what %MOAT_FLOWS_MAX
 * connections need, and returns how many connections fit under the limit
 * that results. Without this, accept() would fail with EMFILE long before
 * the connection cap, on systems whose soft limit is 1024.
 */
static guint
guard_fit_flows_max (void)
{
  rlim_t needed = (rlim_t) MOAT_FLOWS_MAX * FDS_PER_FLOW + FDS_RESERVED;
  struct rlimit limit;
  guint flows_max;

  if (getrlimit (RLIMIT_NOFILE, &limit) < 0)
    return MOAT_FLOWS_MAX;
  if (limit.rlim_cur < needed)
    {
      limit.rlim_cur = MIN (needed, limit.rlim_max);
      setrlimit (RLIMIT_NOFILE, &limit);
      getrlimit (RLIMIT_NOFILE, &limit);
    }
  if (limit.rlim_cur >= needed)
    return MOAT_FLOWS_MAX;

  flows_max = limit.rlim_cur > FDS_RESERVED + FDS_PER_FLOW
                ? (guint) ((limit.rlim_cur - FDS_RESERVED) / FDS_PER_FLOW)
                : 1;
  g_warning ("the file descriptor limit (%llu, hard limit %llu) allows %u "
             "guest connections at once instead of %d: raise it with "
             "ulimit -n %llu", (unsigned long long) limit.rlim_cur,
             (unsigned long long) limit.rlim_max, flows_max, MOAT_FLOWS_MAX,
             (unsigned long long) needed);
  return flows_max;
}

MoatGuard *
moat_guard_new (MoatSession *session)
{
  MoatGuard *guard = g_new0 (MoatGuard, 1);
  gint64 now_us = g_get_monotonic_time ();

  guard->session = session;
  guard->flows_max = guard_fit_flows_max ();
  guard->handshakes = g_hash_table_new_full (g_int64_hash, g_int64_equal,
                                             g_free, g_free);
  for (guint i = 0; i < GUARD_AUDIT_KINDS; i++)
    {
      guard->buckets[i].tokens = AUDIT_BURST;
      guard->buckets[i].updated_us = now_us;
    }
  return guard;
}

static void
guard_audit_suppressed (MoatGuard *guard, GuardAuditKind kind)
{
  g_autoptr (MoatAuditEvent) event = moat_audit_event_new ("suppressed");

  moat_audit_event_add_string (event, "kind", audit_kind_names[kind]);
  moat_audit_event_add_int (event, "count",
                            (gint64) guard->buckets[kind].suppressed);
  moat_audit_emit (guard->session->audit, g_steal_pointer (&event));
  guard->buckets[kind].suppressed = 0;
}

void
moat_guard_free (MoatGuard *guard)
{
  if (guard == NULL)
    return;
  for (guint i = 0; i < GUARD_AUDIT_KINDS; i++)
    if (guard->buckets[i].suppressed > 0)
      guard_audit_suppressed (guard, i);
  g_hash_table_unref (guard->handshakes);
  g_free (guard);
}

/*
 * Writes @event unless the guest has used up the audit lines of @kind.
 * The count of lines left out goes into a "suppressed" line written before
 * the next line of that kind that passes, or when the guard is freed.
 */
static void
guard_audit_emit (MoatGuard *guard, GuardAuditKind kind,
                  MoatAuditEvent *event)
{
  AuditBucket *bucket = &guard->buckets[kind];
  gint64 now_us = g_get_monotonic_time ();

  bucket->tokens = MIN ((gdouble) AUDIT_BURST,
                        bucket->tokens + (now_us - bucket->updated_us)
                                           * AUDIT_PER_SECOND / 1e6);
  bucket->updated_us = now_us;
  if (bucket->tokens < 1)
    {
      bucket->suppressed++;
      moat_audit_event_free (event);
      return;
    }
  bucket->tokens -= 1;
  if (bucket->suppressed > 0)
    guard_audit_suppressed (guard, kind);
  moat_audit_emit (guard->session->audit, event);
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
  g_autofree char *guest = moat_packet_format_endpoint (ip->source, udp->source_port);
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
  guard_audit_emit (guard, GUARD_AUDIT_DNS, g_steal_pointer (&event));
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

/*
 * Audits a connection attempt that the guard rejects. @guest is the
 * guest's address, with ":PORT" when the protocol has ports; @port is -1
 * for protocols without ports.
 */
static void
guard_audit_denied (MoatGuard *guard, const char *guest,
                    const char *protocol, const char *address, gint port,
                    const char *reason)
{
  g_autoptr (MoatAuditEvent) event = moat_audit_event_new ("connection");

  moat_audit_event_add_string (event, "decision", "deny");
  moat_audit_event_add_string (event, "reason", reason);
  moat_audit_event_add_string (event, "guest", guest);
  moat_audit_event_add_string (event, "protocol", protocol);
  moat_audit_event_add_string (event, "address", address);
  if (port >= 0)
    moat_audit_event_add_int (event, "port", port);
  guard_audit_emit (guard, GUARD_AUDIT_CONNECTION, g_steal_pointer (&event));
}

static void
guard_audit_denied_connection (MoatGuard *guard, const MoatIpv4View *ip,
                               const MoatL4View *l4, const char *protocol,
                               const char *reason)
{
  g_autofree char *guest = moat_packet_format_endpoint (ip->source, l4->source_port);
  char destination[INET_ADDRSTRLEN];

  inet_ntop (AF_INET, &ip->destination, destination, sizeof destination);
  guard_audit_denied (guard, guest, protocol, destination,
                      l4->destination_port, reason);
}

/* Audits a frame the guard drops that is not a connection attempt. */
static void
guard_audit_frame (MoatGuard *guard, const MoatEthView *eth,
                   const char *reason)
{
  g_autoptr (MoatAuditEvent) event = moat_audit_event_new ("frame");
  g_autofree char *source = g_strdup_printf (
      "%02x:%02x:%02x:%02x:%02x:%02x", eth->source[0], eth->source[1],
      eth->source[2], eth->source[3], eth->source[4], eth->source[5]);

  moat_audit_event_add_string (event, "decision", "deny");
  moat_audit_event_add_string (event, "reason", reason);
  moat_audit_event_add_string (event, "mac", source);
  moat_audit_event_add_int (event, "ethertype", eth->ethertype);
  guard_audit_emit (guard, GUARD_AUDIT_FRAME, g_steal_pointer (&event));
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

static gint64
handshake_key (const MoatIpv4View *ip, const MoatL4View *tcp)
{
  guint64 key = ((guint64) tcp->source_port << 48)
                | ((guint64) ntohl (ip->destination.s_addr) << 16)
                | tcp->destination_port;

  return (gint64) key;
}

/* Forgets handshakes older than libslirp's SYN_RECEIVED timeout. */
static void
guard_expire_handshakes (MoatGuard *guard, gint64 now_us)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, guard->handshakes);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (now_us - *(gint64 *) value > MOAT_HANDSHAKE_TIMEOUT_S * G_USEC_PER_SEC)
      g_hash_table_iter_remove (&iter);
}

/*
 * Records the SYN's handshake. Returns FALSE when %MOAT_HANDSHAKES_MAX
 * handshakes are already in progress, so the SYN must be refused.
 */
static gboolean
guard_track_handshake (MoatGuard *guard, const MoatIpv4View *ip,
                       const MoatL4View *tcp)
{
  gint64 key = handshake_key (ip, tcp);
  gint64 now_us = g_get_monotonic_time ();

  if (g_hash_table_contains (guard->handshakes, &key))
    return TRUE;
  if (g_hash_table_size (guard->handshakes) >= MOAT_HANDSHAKES_MAX)
    guard_expire_handshakes (guard, now_us);
  if (g_hash_table_size (guard->handshakes) >= MOAT_HANDSHAKES_MAX)
    return FALSE;
  g_hash_table_insert (guard->handshakes, g_memdup2 (&key, sizeof key),
                       g_memdup2 (&now_us, sizeof now_us));
  return TRUE;
}

/* Refuses a guest SYN with a RST, so the guest's connect() fails at once. */
static void
guard_send_reset (MoatGuard *guard, const MoatEthView *eth,
                  const MoatIpv4View *ip, const MoatL4View *tcp)
{
  guint8 reset[MOAT_ETH_HEADER_LEN + 40];
  gsize reset_length;

  reset_length = moat_packet_build_tcp_reset (reset, sizeof reset,
                                              eth->source, ip, tcp);
  if (reset_length > 0)
    moat_transport_send (guard->session->transport, reset, reset_length);
}

static void
guard_handle_tcp (MoatGuard *guard, const MoatEthView *eth,
                  const guint8 *frame, gsize length, const MoatIpv4View *ip)
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
  /* The guest's ACK ends its handshake, and its RST abandons it. */
  if (!syn && g_hash_table_size (guard->handshakes) > 0
      && (tcp.tcp_flags & (MOAT_TCP_ACK | MOAT_TCP_RST)) != 0)
    {
      gint64 handshake = handshake_key (ip, &tcp);

      g_hash_table_remove (guard->handshakes, &handshake);
    }
  if (syn)
    {
      const char *name = moat_names_lookup (session->names, ip->destination);

      if (name == NULL)
        guard_audit_denied_connection (guard, ip, &tcp, "tcp",
                                       "the address was not handed out by "
                                       "moat's DNS: connect by host name");
      else if (g_hash_table_size (session->flows) >= guard->flows_max)
        {
          g_autofree char *reason = g_strdup_printf (
              "too many connections: the guest already has %u open, "
              "moat's limit",
              guard->flows_max);

          guard_audit_denied_connection (guard, ip, &tcp, "tcp", reason);
          guard_send_reset (guard, eth, ip, &tcp);
          return;
        }
      else if (!guard_track_handshake (guard, ip, &tcp))
        {
          guard_audit_denied_connection (guard, ip, &tcp, "tcp",
                                         "too many half-open connections: "
                                         "the guest sent SYNs without "
                                         "completing the handshakes");
          guard_send_reset (guard, eth, ip, &tcp);
          return;
        }
      else if (!moat_stack_forward (session->stack, ip->destination,
                                    tcp.destination_port, &error))
        {
          gint64 handshake = handshake_key (ip, &tcp);

          g_hash_table_remove (guard->handshakes, &handshake);
          guard_warn (guard, "%s", error->message);
          guard_audit_denied_connection (guard, ip, &tcp, "tcp",
                                         error->message);
          guard_send_reset (guard, eth, ip, &tcp);
          return;
        }
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
  /* An ARP message whose sender is moat's own address (gateway, DNS or a
   * synthetic address) would teach libslirp's ARP table a guest MAC for
   * it. Address 0.0.0.0 is an ARP probe (RFC 5227) and passes. */
  if (arp.sender_ip.s_addr == session->dhcp.gateway.s_addr
      || arp.sender_ip.s_addr == session->dhcp.dns.s_addr
      || moat_names_lookup (session->names, arp.sender_ip) != NULL)
    {
      char sender[INET_ADDRSTRLEN];
      g_autofree char *reason = NULL;

      inet_ntop (AF_INET, &arp.sender_ip, sender, sizeof sender);
      reason = g_strdup_printf ("ARP sender address %s belongs to moat, "
                                "not to the guest", sender);
      guard_audit_frame (guard, eth, reason);
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

/*
 * IPv6 is not offered (no router advertisements, no DHCPv6), so neighbour
 * discovery and other ICMPv6 end here silently. TCP and UDP packets are
 * connection attempts by a guest with a static IPv6 address, and are
 * audited. Extension headers are not walked, so a TCP segment behind one
 * is dropped without an audit line.
 */
static void
guard_handle_ipv6 (MoatGuard *guard, const MoatEthView *eth)
{
  const guint8 *ip6 = eth->payload;
  guint8 next_header;
  char source[INET6_ADDRSTRLEN];
  char destination[INET6_ADDRSTRLEN];
  g_autofree char *guest = NULL;
  guint16 source_port;
  guint16 destination_port;

  guard->dropped++;
  if (eth->payload_length < IPV6_HEADER_LEN + 4)
    return;
  next_header = ip6[6];
  if (next_header != MOAT_IP_PROTO_TCP && next_header != MOAT_IP_PROTO_UDP)
    return;

  inet_ntop (AF_INET6, ip6 + 8, source, sizeof source);
  inet_ntop (AF_INET6, ip6 + 24, destination, sizeof destination);
  source_port = (guint16) ((ip6[IPV6_HEADER_LEN] << 8)
                           | ip6[IPV6_HEADER_LEN + 1]);
  destination_port = (guint16) ((ip6[IPV6_HEADER_LEN + 2] << 8)
                                | ip6[IPV6_HEADER_LEN + 3]);
  /* Only a SYN opens a TCP connection; later segments of a refused one
   * need no line of their own. */
  if (next_header == MOAT_IP_PROTO_TCP
      && (eth->payload_length < IPV6_HEADER_LEN + 14
          || (ip6[IPV6_HEADER_LEN + 13] & (MOAT_TCP_SYN | MOAT_TCP_ACK))
               != MOAT_TCP_SYN))
    return;
  guest = g_strdup_printf ("[%s]:%u", source, source_port);
  guard_audit_denied (guard, guest,
                      next_header == MOAT_IP_PROTO_TCP ? "tcp6" : "udp6",
                      destination, destination_port,
                      "IPv6 is not offered: connect over IPv4 by host name");
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
    case MOAT_ETHERTYPE_IPV6:
      guard_handle_ipv6 (guard, &eth);
      return;
    default:
      {
        g_autofree char *reason = g_strdup_printf (
            "EtherType 0x%04x is not forwarded: only IPv4 and ARP are",
            eth.ethertype);

        guard->dropped++;
        guard_audit_frame (guard, &eth, reason);
        return;
      }
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
      guard_handle_tcp (guard, &eth, frame, length, &ip);
      break;
    case MOAT_IP_PROTO_ICMP:
      moat_stack_input (guard->session->stack, frame, length, NULL);
      break;
    default:
      {
        char source[INET_ADDRSTRLEN];
        char destination[INET_ADDRSTRLEN];
        g_autofree char *protocol = g_strdup_printf ("ip-%u", ip.protocol);

        guard->dropped++;
        inet_ntop (AF_INET, &ip.source, source, sizeof source);
        inet_ntop (AF_INET, &ip.destination, destination,
                   sizeof destination);
        guard_audit_denied (guard, source, protocol, destination, -1,
                            "only TCP, DNS and DHCP are forwarded");
        break;
      }
    }
}
