/* SPDX-License-Identifier: GPL-2.0-or-later */
/* stack.h - libslirp in restricted mode, driven from the GLib main loop */
#pragma once

#include <glib.h>
#include <netinet/in.h>

typedef struct MoatStack MoatStack;

/**
 * MoatFlowKey:
 * @guest: guest address
 * @guest_port: guest TCP port, host byte order
 * @destination: destination address the guest connected to
 * @destination_port: destination port, host byte order
 */
typedef struct {
  struct in_addr guest;
  guint16 guest_port;
  struct in_addr destination;
  guint16 destination_port;
} MoatFlowKey;

/* Sends a frame from libslirp toward the guest. */
typedef void (*MoatStackOutputFunc) (const guint8 *frame, gsize length,
                                     gpointer user_data);
/*
 * Hands over the host end of a new guest TCP connection. @key is the
 * connection it was accepted for, or %NULL if it cannot be attributed.
 * The callee owns @fd.
 */
typedef void (*MoatStackAcceptFunc) (int fd, const MoatFlowKey *key,
                                     gpointer user_data);

/**
 * MoatStackConfig:
 * @network: virtual network address (libslirp's vnetwork)
 * @netmask: its netmask
 * @gateway: the gateway address (libslirp's vhost)
 * @dns: the DNS address (libslirp's vnameserver)
 * @guest: the guest's address
 * @mtu: MTU and MRU in bytes
 * @socket_dir: directory for the guest forward socket
 */
typedef struct {
  struct in_addr network;
  struct in_addr netmask;
  struct in_addr gateway;
  struct in_addr dns;
  struct in_addr guest;
  guint mtu;
  const char *socket_dir;
} MoatStackConfig;

MoatStack *moat_stack_new (const MoatStackConfig *config,
                           MoatStackOutputFunc output,
                           MoatStackAcceptFunc accept_func,
                           gpointer user_data, GError **error);
void moat_stack_free (MoatStack *stack);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatStack, moat_stack_free)

void moat_stack_input (MoatStack *stack, const guint8 *frame, gsize length,
                       const MoatFlowKey *key);
gboolean moat_stack_forward (MoatStack *stack, struct in_addr address,
                             guint16 port, GError **error);
void moat_stack_unforward_address (MoatStack *stack, struct in_addr address);
