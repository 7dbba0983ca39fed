/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tls.h - the session CA, leaf certificates minted per server name, and the
 * TLS server side of a guest connection
 */
#pragma once

#include <glib.h>
#include <gnutls/gnutls.h>

typedef struct MoatCa MoatCa;

MoatCa *moat_ca_new_ephemeral (GError **error);
MoatCa *moat_ca_load (const char *cert_path, const char *key_path,
                      GError **error);
void moat_ca_free (MoatCa *ca);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatCa, moat_ca_free)

char *moat_ca_get_cert_pem (const MoatCa *ca);
gboolean moat_ca_write_cert (const MoatCa *ca, const char *path,
                             GError **error);
gnutls_certificate_credentials_t moat_ca_get_leaf (MoatCa *ca,
                                                   const char *server_name,
                                                   GError **error);

/*
 * A leaf certificate with its credentials, reference counted so that a TLS
 * session keeps its credentials alive after the CA's cache evicts them.
 */
typedef struct MoatLeaf MoatLeaf;

MoatLeaf *moat_ca_ref_leaf (MoatCa *ca, const char *server_name,
                            GError **error);
MoatLeaf *moat_leaf_ref (MoatLeaf *leaf);
void moat_leaf_unref (MoatLeaf *leaf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatLeaf, moat_leaf_unref)
gnutls_certificate_credentials_t moat_leaf_get_credentials (
    const MoatLeaf *leaf);

gboolean moat_tls_server_name_is_valid (const char *name, gsize length);

typedef struct MoatTlsServer MoatTlsServer;

/* Result of a non-blocking TLS operation. */
typedef enum {
  MOAT_TLS_OK,
  MOAT_TLS_AGAIN,
  MOAT_TLS_EOF,
  MOAT_TLS_ERROR,
} MoatTlsStatus;

MoatTlsServer *moat_tls_server_new (MoatCa *ca, int fd,
                                    const char *fallback_name,
                                    GError **error);
void moat_tls_server_free (MoatTlsServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatTlsServer, moat_tls_server_free)

MoatTlsStatus moat_tls_server_handshake (MoatTlsServer *server,
                                         GError **error);
const char *moat_tls_server_get_server_name (const MoatTlsServer *server);
MoatTlsStatus moat_tls_server_read (MoatTlsServer *server, guint8 *buffer,
                                    gsize size, gsize *bytes_read,
                                    GError **error);
MoatTlsStatus moat_tls_server_write (MoatTlsServer *server,
                                     const guint8 *buffer, gsize size,
                                     gsize *bytes_written, GError **error);
gboolean moat_tls_server_has_pending (const MoatTlsServer *server);
gboolean moat_tls_server_wants_write (const MoatTlsServer *server);
MoatTlsStatus moat_tls_server_close (MoatTlsServer *server);

/* ClientHello reader used to classify new connections. */
typedef enum {
  MOAT_TLS_HELLO_INCOMPLETE,
  MOAT_TLS_HELLO_OK,
  MOAT_TLS_HELLO_INVALID,
} MoatTlsHelloResult;

MoatTlsHelloResult moat_tls_hello_parse (const guint8 *data, gsize length,
                                         char **server_name,
                                         GError **error);
