/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * session.h - one moat process serving one guest: the objects that the
 * data path shares, and the virtual network layout
 */
#pragma once

#include <gio/gio.h>
#include <glib.h>
#include <netinet/in.h>

#include "audit.h"
#include "config.h"
#include "dhcp.h"
#include "fetch.h"
#include "names.h"
#include "policy.h"
#include "secrets.h"
#include "tls.h"

/* The guest's side of the "-netdev user" layout: offered by DHCP to QEMU
 * guests, set up statically by moat run. */
#define MOAT_GUEST_ADDRESS "10.0.2.15"
#define MOAT_GUEST_NETMASK "255.255.255.0"
#define MOAT_GATEWAY_ADDRESS "10.0.2.2"
#define MOAT_DNS_ADDRESS "10.0.2.3"

typedef struct MoatStack MoatStack;
typedef struct MoatTransport MoatTransport;
typedef struct MoatGuard MoatGuard;

/**
 * MoatSession:
 * @config: the merged configuration
 * @policy: the policy built from @config; a reload replaces it, and
 *   requests in flight keep a reference to the one they started with
 * @secrets: the secrets of @config, or %NULL when it has none; replaced
 *   by a reload like @policy
 * @audit: the audit log
 * @ca: the session CA
 * @fetch: the host fetch
 * @names: synthetic addresses handed out by DNS
 * @stack: libslirp and the unix sockets behind its guest forwards
 * @transport: the QEMU socket
 * @guard: frame checks in front of libslirp
 * @dhcp: the addresses offered to the guest
 * @pool_first: first synthetic address
 * @pool_size: number of synthetic addresses
 * @runtime_dir: private directory for the session's unix sockets
 * @loop: the main loop
 * @flows: (element-type MoatFlow) live guest connections
 * @next_flow_id: identifier for the next flow, for logs and audit
 * @exit_status: process exit status once @loop quits
 * @config_monitor: (nullable): watches the configuration file for reloads
 * @reload_id: timeout source of a pending reload, or 0
 * @tap: %TRUE when @transport is a TAP device (moat run), not QEMU
 */
typedef struct {
  MoatConfig *config;
  MoatPolicy *policy;
  MoatSecrets *secrets;
  MoatAudit *audit;
  MoatCa *ca;
  MoatFetch *fetch;
  MoatNames *names;
  MoatStack *stack;
  MoatTransport *transport;
  MoatGuard *guard;
  MoatDhcpConfig dhcp;
  struct in_addr pool_first;
  guint pool_size;
  char *runtime_dir;
  GMainLoop *loop;
  GHashTable *flows;
  guint64 next_flow_id;
  int exit_status;
  GFileMonitor *config_monitor;
  guint reload_id;
  gboolean tap;
} MoatSession;

MoatSession *moat_session_new (MoatConfig *config, GError **error);
MoatSession *moat_session_new_tap (MoatConfig *config, int tap_fd,
                                   GError **error);
void moat_session_free (MoatSession *session);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatSession, moat_session_free)

char *moat_session_describe_qemu_args (const MoatSession *session);
gboolean moat_session_reload (MoatSession *session, const char *trigger,
                              GError **error);
