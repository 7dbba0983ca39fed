/* SPDX-License-Identifier: GPL-2.0-or-later */
/* config.h - moat's configuration: GKeyFile INI file plus command line */
#pragma once

#include <glib.h>

#include "policy.h"

/**
 * MoatSecretSpec:
 * @name: secret name from "[secret NAME]"
 * @value_env: (nullable): environment variable that holds the value
 * @value_file: (nullable): absolute path of a file that holds the value
 * @hosts: host patterns of the requests that receive the value,
 *   %NULL-terminated
 * @origin: (nullable): "FILE:LINE: [secret NAME] KEY" of the value-env or
 *   value-file line, for messages about the value
 *
 * One "[secret NAME]" group. Exactly one of @value_env and @value_file is
 * set; the value itself is read when the session starts, not here.
 */
typedef struct {
  char *name;
  char *value_env;
  char *value_file;
  char **hosts;
  char *origin;
} MoatSecretSpec;

MoatSecretSpec *moat_secret_spec_new (const char *name);
void moat_secret_spec_free (MoatSecretSpec *spec);

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
 * @placeholders_out: ([moat] placeholders-out) where the secret
 *   placeholders are written as NAME=PLACEHOLDER lines, or %NULL
 * @policy_mode: ([policy] mode) enforce (default) or report
 * @head_timeout_s: ([moat] head-timeout) seconds a guest has to send a
 *   complete request head, default MOAT_HTTP_HEAD_TIMEOUT_S
 * @stall_timeout_s: ([upstream] stall-timeout) seconds without progress
 *   after which an upstream transfer fails, default
 *   MOAT_UPSTREAM_STALL_TIMEOUT_S
 * @rules: (element-type MoatRuleSpec): the "[rule NAME]" groups in file
 *   order
 * @secrets: (element-type MoatSecretSpec): the "[secret NAME]" groups in
 *   file order
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
  char *placeholders_out;
  MoatPolicyMode policy_mode;
  guint head_timeout_s;
  guint stall_timeout_s;
  GPtrArray *rules;
  GPtrArray *secrets;
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
gboolean moat_config_validate_settings (const MoatConfig *config,
                                        GError **error);
gboolean moat_config_check_placeholders_dir (const MoatConfig *config,
                                             GError **error);
MoatPolicy *moat_config_build_policy (const MoatConfig *config,
                                      GError **error);
