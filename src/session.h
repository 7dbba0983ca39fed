/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * session.h - one moat process serving one guest: the objects that the
 * data path shares, and the virtual network layout
 */
#pragma once

#include <glib.h>
#include <netinet/in.h>

#include "audit.h"
#include "config.h"
#include "dhcp.h"
#include "fetch.h"
#include "names.h"
#include "policy.h"
#include "tls.h"

typedef struct MoatStack MoatStack;
typedef struct MoatTransport MoatTransport;
typedef struct MoatGuard MoatGuard;

/**
 * MoatSession:
 * @config: the merged configuration
 * @policy: host policy built from @config
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
 */
typedef struct {
  MoatConfig *config;
  MoatPolicy *policy;
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
} MoatSession;

MoatSession *moat_session_new (MoatConfig *config, GError **error);
void moat_session_free (MoatSession *session);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatSession, moat_session_free)

char *moat_session_describe_qemu_args (const MoatSession *session);
