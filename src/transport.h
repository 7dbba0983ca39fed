/* SPDX-License-Identifier: GPL-2.0-or-later */
/* transport.h - QEMU's stream netdev: length-prefixed frames on a socket */
#pragma once

#include <glib.h>

typedef struct MoatTransport MoatTransport;

/* Called for each complete frame received from QEMU. */
typedef void (*MoatTransportFrameFunc) (const guint8 *frame, gsize length,
                                        gpointer user_data);
/* Called when QEMU connects (@connected TRUE) or disconnects. */
typedef void (*MoatTransportStateFunc) (gboolean connected,
                                        gpointer user_data);

MoatTransport *moat_transport_new_listen (const char *path,
                                          MoatTransportFrameFunc on_frame,
                                          MoatTransportStateFunc on_state,
                                          gpointer user_data, GError **error);
MoatTransport *moat_transport_new_connect (const char *path,
                                           MoatTransportFrameFunc on_frame,
                                           MoatTransportStateFunc on_state,
                                           gpointer user_data,
                                           GError **error);
MoatTransport *moat_transport_new_fd (int fd, MoatTransportFrameFunc on_frame,
                                      MoatTransportStateFunc on_state,
                                      gpointer user_data, GError **error);
MoatTransport *moat_transport_new_tap (int fd,
                                       MoatTransportFrameFunc on_frame,
                                       MoatTransportStateFunc on_state,
                                       gpointer user_data, GError **error);
void moat_transport_free (MoatTransport *transport);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatTransport, moat_transport_free)

gboolean moat_transport_is_connected (const MoatTransport *transport);
gboolean moat_transport_can_reconnect (const MoatTransport *transport);
void moat_transport_send (MoatTransport *transport, const guint8 *frame,
                          gsize length);
gssize moat_transport_deframe (const guint8 *buffer, gsize length,
                               const guint8 **frame, gsize *frame_length,
                               GError **error);
