/* SPDX-License-Identifier: GPL-2.0-or-later */
/* dhcp.h - the DHCP server that hands the guest its -netdev user layout */
#pragma once

#include <glib.h>
#include <netinet/in.h>

/**
 * MoatDhcpConfig:
 * @guest: address offered to the guest (10.0.2.15)
 * @netmask: netmask offered (255.255.255.0)
 * @gateway: router option and server identifier (10.0.2.2)
 * @dns: DNS server option (10.0.2.3)
 * @mtu: interface MTU option (RFC 2132 section 5.1)
 * @lease_seconds: lease time option
 * @domain: domain name and search option, or %NULL
 */
typedef struct {
  struct in_addr guest;
  struct in_addr netmask;
  struct in_addr gateway;
  struct in_addr dns;
  guint mtu;
  guint32 lease_seconds;
  const char *domain;
} MoatDhcpConfig;

gsize moat_dhcp_handle (const MoatDhcpConfig *config, const guint8 *request,
                        gsize request_length, guint8 *reply,
                        gsize reply_size, GError **error);
