/* SPDX-License-Identifier: GPL-2.0-or-later */
/* config.h - moat's configuration: GKeyFile INI file plus command line */
#pragma once

#include <glib.h>

/**
 * MoatConfig:
 * @path: file the configuration was loaded from, or %NULL
 * @socket_path: ([moat] socket, --socket) unix socket moat listens on for QEMU
 * @connect_path: (--connect) unix socket of a QEMU that listens
 * @fd: (--fd) already connected socket from a launcher, or -1
 * @audit_path: ([moat] audit, --audit) JSON Lines audit log, "-" for stdout,
 *   %NULL for none
 * @mtu: ([moat] mtu, --mtu) guest MTU in bytes, default 1500
 * @one_off: (--one-off) exit when QEMU disconnects instead of waiting for
 *   the next connection
 * @allow: ([policy] allow) host patterns, %NULL-terminated
 * @deny: ([policy] deny) host patterns, %NULL-terminated
 * @ca_cert_out: ([tls] ca-cert-out, --ca-cert-out) where the session CA
 *   certificate is written as PEM
 * @ca_cert: ([tls] ca-cert) persistent CA certificate (PEM), or %NULL
 * @ca_key: ([tls] ca-key) persistent CA private key (PEM), or %NULL
 * @upstream_ca_file: ([upstream] ca-file) roots trusted in addition to the
 *   system store
 * @connect_to: ([upstream] connect-to) entries in curl's CONNECT_TO format
 *   "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT", %NULL-terminated
 */
typedef struct {
  char *path;
  char *socket_path;
  char *connect_path;
  int fd;
  char *audit_path;
  guint mtu;
  gboolean one_off;
  char **allow;
  char **deny;
  char *ca_cert_out;
  char *ca_cert;
  char *ca_key;
  char *upstream_ca_file;
  char **connect_to;
} MoatConfig;

MoatConfig *moat_config_new (void);
void moat_config_free (MoatConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatConfig, moat_config_free)

gboolean moat_config_load_file (MoatConfig *config, const char *path,
                                GError **error);
gboolean moat_config_load_data (MoatConfig *config, const char *data,
                                gsize length, const char *name,
                                GError **error);
gboolean moat_config_validate (const MoatConfig *config, GError **error);
