/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * session.c - one moat process serving one guest: builds the data path
 * from the configuration and connects its parts
 */
#define G_LOG_DOMAIN "moat-session"

#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "error.h"
#include "flow.h"
#include "guard.h"
#include "moat-limits.h"
#include "stack.h"
#include "transport.h"

/*
 * The familiar "-netdev user" layout. libslirp's network is a /16 while
 * the guest is told /24: synthetic addresses come from the upper half of
 * the /16, so the guest routes them through the gateway, and libslirp
 * still accepts guest forwards for them (they must lie inside its
 * network).
 */
#define NETWORK "10.0.0.0"
#define NETWORK_MASK "255.255.0.0"
#define GUEST_MASK MOAT_GUEST_NETMASK
#define GATEWAY MOAT_GATEWAY_ADDRESS
#define DNS_SERVER MOAT_DNS_ADDRESS
#define GUEST MOAT_GUEST_ADDRESS
#define POOL_FIRST "10.0.128.1"
#define LEASE_SECONDS 86400
/* Quiet time after a change of the configuration file before it is
 * reloaded, in milliseconds. */
#define RELOAD_DELAY_MS 200

static struct in_addr
address_from_string (const char *text)
{
  struct in_addr address;

  inet_pton (AF_INET, text, &address);
  return address;
}

static void
session_on_frame (const guint8 *frame, gsize length, gpointer user_data)
{
  MoatSession *session = user_data;

  moat_guard_input (session->guard, frame, length);
}

static void
session_on_transport_state (gboolean connected, gpointer user_data)
{
  MoatSession *session = user_data;
  MoatAuditEvent *event = moat_audit_event_new (session->tap ? "tap"
                                                              : "qemu");

  moat_audit_event_add_string (event, "state",
                               connected ? "connected" : "disconnected");
  moat_audit_emit (session->audit, event);
  if (connected)
    return;

  /* The guest's TCP connections ended with its NIC: a QEMU that connects
   * again runs a guest that has none of them. Closing the flows now
   * cancels their upstream transfers and audits the requests that were
   * still running. */
  g_hash_table_remove_all (session->flows);

  if (moat_transport_can_reconnect (session->transport)
      && !session->config->one_off)
    {
      g_message ("waiting for QEMU to connect again");
      return;
    }
  g_message ("QEMU disconnected; exiting");
  g_main_loop_quit (session->loop);
}

static void
session_on_stack_output (const guint8 *frame, gsize length,
                         gpointer user_data)
{
  MoatSession *session = user_data;

  moat_transport_send (session->transport, frame, length);
}

static void
session_on_accept (int fd, const MoatFlowKey *key, gpointer user_data)
{
  MoatSession *session = user_data;

  moat_flow_new (session, fd, key);
}

static void
session_on_name_evicted (struct in_addr address, const char *name,
                         gpointer user_data)
{
  MoatSession *session = user_data;

  if (session->stack != NULL)
    moat_stack_unforward_address (session->stack, address);
}

static gboolean
session_create_runtime_dir (MoatSession *session, GError **error)
{
  /* XDG_RUNTIME_DIR is private to the user; /tmp is the fallback. Both
   * keep the socket path well under the 108-byte sun_path limit unless
   * the variable is unusually long, which stack.c reports. */
  const char *base = g_getenv ("XDG_RUNTIME_DIR");
  g_autofree char *template = NULL;

  if (base == NULL || !g_file_test (base, G_FILE_TEST_IS_DIR))
    base = g_get_tmp_dir ();
  template = g_build_filename (base, "moat-XXXXXX", NULL);
  session->runtime_dir = g_mkdtemp (template);
  if (session->runtime_dir == NULL)
    {
      int saved_errno = errno;
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "cannot create a session directory in %s: %s", base,
                   g_strerror (saved_errno));
      return FALSE;
    }
  g_steal_pointer (&template);
  return TRUE;
}

static gboolean
session_create_ca (MoatSession *session, GError **error)
{
  MoatConfig *config = session->config;
  g_autofree char *default_path = NULL;
  const char *path = config->ca_cert_out;

  if (config->ca_cert != NULL)
    {
      g_autoptr (GError) local_error = NULL;

      session->ca = moat_ca_load (config->ca_cert, config->ca_key,
                                  &local_error);
      if (session->ca == NULL)
        {
          /* The CA files come from the configuration, so a bad one is a
           * configuration error that names where it was set. */
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "%s%s[tls] ca-cert = %s, ca-key = %s: %s",
                       config->path ? config->path : "",
                       config->path ? ": " : "", config->ca_cert,
                       config->ca_key, local_error->message);
          return FALSE;
        }
    }
  else
    session->ca = moat_ca_new_ephemeral (error);
  if (session->ca == NULL)
    return FALSE;

  if (path == NULL)
    {
      default_path = g_build_filename (session->runtime_dir, "ca.pem", NULL);
      path = default_path;
    }
  if (!moat_ca_write_cert (session->ca, path, error))
    return FALSE;
  if (config->ca_cert_out == NULL)
    config->ca_cert_out = g_steal_pointer (&default_path);
  return TRUE;
}

static gboolean
session_create_transport (MoatSession *session, int tap_fd, GError **error)
{
  MoatConfig *config = session->config;

  if (tap_fd >= 0)
    session->transport = moat_transport_new_tap (tap_fd, session_on_frame,
                                                 session_on_transport_state,
                                                 session, error);
  else if (config->fd >= 0)
    session->transport = moat_transport_new_fd (config->fd, session_on_frame,
                                                session_on_transport_state,
                                                session, error);
  else if (config->connect_path != NULL)
    session->transport = moat_transport_new_connect (
        config->connect_path, session_on_frame, session_on_transport_state,
        session, error);
  else
    session->transport = moat_transport_new_listen (
        config->socket_path, session_on_frame, session_on_transport_state,
        session, error);
  return session->transport != NULL;
}

/* Reads the secret values of @config and writes their placeholders. */
static MoatSecrets *
session_load_secrets (const MoatConfig *config, const MoatSecrets *previous,
                      GError **error)
{
  g_autoptr (MoatSecrets) secrets = NULL;

  if (config->secrets->len == 0)
    return NULL;
  /* moat_config_load_file() already rejects this; a configuration built
   * in code gets the same rule. */
  if (config->placeholders_out == NULL)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%s%s[secret] groups need [moat] placeholders-out: the "
                   "guest can only use a secret through the placeholder "
                   "written there", config->path ? config->path : "",
                   config->path ? ": " : "");
      return NULL;
    }
  secrets = moat_secrets_new (config->secrets, previous, error);
  if (secrets == NULL)
    return NULL;
  if (!moat_secrets_write_placeholders (secrets, config->placeholders_out,
                                        error))
    return NULL;
  return g_steal_pointer (&secrets);
}

/**
 * moat_session_reload:
 * @session: the session
 * @trigger: what asked for the reload ("SIGHUP", "file change"), for the
 *   log and the audit line
 * @error: return location for a #GError
 *
 * Loads the configuration file again and replaces the policy and the
 * secrets. The new policy is built completely before anything is swapped,
 * so a file that fails to load leaves the running policy in place.
 * Requests already running keep the policy they started with. Secrets
 * keep their placeholders across reloads. Other settings (sockets, audit
 * log, CA, upstream) take effect only on a restart. Every reload is
 * audited as a "reload" event.
 *
 * Return: %TRUE if the new policy is in place
 */
gboolean
moat_session_reload (MoatSession *session, const char *trigger,
                     GError **error)
{
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (MoatPolicy) policy = NULL;
  g_autoptr (MoatSecrets) secrets = NULL;
  g_autoptr (GError) local_error = NULL;
  const char *path = session->config->path;
  MoatAuditEvent *event = moat_audit_event_new ("reload");

  moat_audit_event_add_string (event, "trigger", trigger);
  if (path != NULL)
    moat_audit_event_add_string (event, "config", path);

  if (path == NULL)
    g_set_error_literal (&local_error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                         "moat was started without --config, so there is "
                         "no file to reload");
  else if (moat_config_load_file (config, path, &local_error)
           && (policy = moat_config_build_policy (config,
                                                  &local_error)) != NULL)
    secrets = session_load_secrets (config, session->secrets, &local_error);

  if (local_error != NULL)
    {
      g_warning ("reload (%s) failed, the running policy stays in place: %s",
                 trigger, local_error->message);
      moat_audit_event_add_string (event, "decision", "failed");
      moat_audit_event_add_string (event, "reason", local_error->message);
      moat_audit_emit (session->audit, event);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  g_clear_pointer (&session->policy, moat_policy_unref);
  session->policy = g_steal_pointer (&policy);
  g_clear_pointer (&session->secrets, moat_secrets_unref);
  session->secrets = g_steal_pointer (&secrets);

  g_message ("reload (%s): %u rules, %u secrets, %s mode", trigger,
             moat_policy_get_rule_count (session->policy),
             moat_secrets_get_count (session->secrets),
             moat_policy_get_mode (session->policy) == MOAT_POLICY_MODE_REPORT
             ? "report" : "enforce");
  moat_audit_event_add_string (event, "decision", "applied");
  moat_audit_event_add_int (event, "rules",
                            moat_policy_get_rule_count (session->policy));
  moat_audit_event_add_int (event, "secrets",
                            moat_secrets_get_count (session->secrets));
  moat_audit_event_add_string (event, "mode",
                               moat_policy_get_mode (session->policy)
                               == MOAT_POLICY_MODE_REPORT ? "report"
                                                          : "enforce");
  moat_audit_emit (session->audit, event);
  return TRUE;
}

static gboolean
session_reload_timeout (gpointer user_data)
{
  MoatSession *session = user_data;

  session->reload_id = 0;
  /* A failure is logged and audited by the reload itself. */
  moat_session_reload (session, "file change", NULL);
  return G_SOURCE_REMOVE;
}

static void
session_on_config_changed (GFileMonitor *monitor, GFile *file,
                           GFile *other_file, GFileMonitorEvent event_type,
                           gpointer user_data)
{
  MoatSession *session = user_data;

  if (event_type == G_FILE_MONITOR_EVENT_DELETED
      || event_type == G_FILE_MONITOR_EVENT_ATTRIBUTE_CHANGED
      || event_type == G_FILE_MONITOR_EVENT_PRE_UNMOUNT
      || event_type == G_FILE_MONITOR_EVENT_UNMOUNTED)
    return;

  /* Editors write a file in several steps: reload once they are done. */
  g_clear_handle_id (&session->reload_id, g_source_remove);
  session->reload_id = g_timeout_add (RELOAD_DELAY_MS, session_reload_timeout,
                                      session);
}

/* Reloads the policy when the configuration file changes. Without a
 * working file monitor, SIGHUP still reloads. */
static void
session_watch_config (MoatSession *session)
{
  g_autoptr (GFile) file = NULL;
  g_autoptr (GError) error = NULL;

  if (session->config->path == NULL)
    return;
  file = g_file_new_for_path (session->config->path);
  session->config_monitor = g_file_monitor_file (file,
                                                 G_FILE_MONITOR_WATCH_MOVES,
                                                 NULL, &error);
  if (session->config_monitor == NULL)
    {
      g_warning ("cannot watch %s for changes, reload with SIGHUP: %s",
                 session->config->path, error->message);
      return;
    }
  g_signal_connect (session->config_monitor, "changed",
                    G_CALLBACK (session_on_config_changed), session);
}

static MoatSession *
session_new (MoatConfig *config, int tap_fd, GError **error)
{
  g_autoptr (MoatSession) session = g_new0 (MoatSession, 1);
  MoatStackConfig stack_config;

  session->config = config;
  session->tap = tap_fd >= 0;
  session->loop = g_main_loop_new (NULL, FALSE);
  session->flows = g_hash_table_new_full (g_direct_hash, g_direct_equal,
                                          (GDestroyNotify) moat_flow_free,
                                          NULL);

  session->dhcp.guest = address_from_string (GUEST);
  session->dhcp.netmask = address_from_string (GUEST_MASK);
  session->dhcp.gateway = address_from_string (GATEWAY);
  session->dhcp.dns = address_from_string (DNS_SERVER);
  session->dhcp.mtu = config->mtu;
  session->dhcp.lease_seconds = LEASE_SECONDS;
  session->pool_first = address_from_string (POOL_FIRST);
  session->pool_size = MOAT_NAMES_MAX;

  session->policy = moat_config_build_policy (config, error);
  if (session->policy == NULL)
    return NULL;
  session->secrets = session_load_secrets (config, NULL, error);
  if (config->secrets->len > 0 && session->secrets == NULL)
    return NULL;
  session->audit = moat_audit_open (config->audit_path, error);
  if (session->audit == NULL)
    return NULL;
  if (!session_create_runtime_dir (session, error)
      || !session_create_ca (session, error))
    return NULL;
  session->fetch = moat_fetch_new (config, error);
  if (session->fetch == NULL)
    return NULL;
  session->names = moat_names_new (session->pool_first, session->pool_size,
                                   session_on_name_evicted, session);
  session->guard = moat_guard_new (session);

  stack_config = (MoatStackConfig) {
    .network = address_from_string (NETWORK),
    .netmask = address_from_string (NETWORK_MASK),
    .gateway = session->dhcp.gateway,
    .dns = session->dhcp.dns,
    .guest = session->dhcp.guest,
    .mtu = config->mtu,
    .socket_dir = session->runtime_dir,
  };
  session->stack = moat_stack_new (&stack_config, session_on_stack_output,
                                   session_on_accept, session, error);
  if (session->stack == NULL)
    return NULL;

  if (!session_create_transport (session, tap_fd, error))
    return NULL;
  session_watch_config (session);
  return g_steal_pointer (&session);
}

/**
 * moat_session_new:
 * @config: the validated configuration; the session takes ownership
 * @error: return location for an error
 *
 * Builds the policy, audit log, CA, host fetch, libslirp stack and QEMU
 * transport. When this fails nothing is listening, so a configuration
 * that cannot be loaded never lets traffic through.
 *
 * Return: the session, ready for its main loop to run.
 */
MoatSession *
moat_session_new (MoatConfig *config, GError **error)
{
  return session_new (config, -1, error);
}

/**
 * moat_session_new_tap:
 * @config: the validated configuration; the session takes ownership. Its
 *   QEMU socket settings are ignored.
 * @tap_fd: a TAP device opened with IFF_TAP | IFF_NO_PI; the session takes
 *   ownership, also on failure
 * @error: return location for an error
 *
 * Builds the same data path as moat_session_new(), attached to a TAP
 * device in place of QEMU (moat run).
 *
 * Return: the session, ready for its main loop to run.
 */
MoatSession *
moat_session_new_tap (MoatConfig *config, int tap_fd, GError **error)
{
  MoatSession *session = session_new (config, tap_fd, error);

  /* The transport is the last part built, so on failure nothing owns the
   * device yet. */
  if (session == NULL)
    close (tap_fd);
  return session;
}

void
moat_session_free (MoatSession *session)
{
  if (session == NULL)
    return;
  /* Flows cancel their transfers, so they go before the fetch. */
  g_clear_pointer (&session->flows, g_hash_table_unref);
  g_clear_pointer (&session->transport, moat_transport_free);
  g_clear_pointer (&session->stack, moat_stack_free);
  g_clear_pointer (&session->guard, moat_guard_free);
  g_clear_pointer (&session->names, moat_names_free);
  g_clear_pointer (&session->fetch, moat_fetch_free);
  g_clear_pointer (&session->ca, moat_ca_free);
  g_clear_pointer (&session->audit, moat_audit_close);
  g_clear_handle_id (&session->reload_id, g_source_remove);
  g_clear_object (&session->config_monitor);
  g_clear_pointer (&session->secrets, moat_secrets_unref);
  g_clear_pointer (&session->policy, moat_policy_unref);
  if (session->runtime_dir != NULL)
    {
      g_autofree char *ca_path = g_build_filename (session->runtime_dir,
                                                   "ca.pem", NULL);
      g_unlink (ca_path);
      g_rmdir (session->runtime_dir);
      g_free (session->runtime_dir);
    }
  g_clear_pointer (&session->loop, g_main_loop_unref);
  g_clear_pointer (&session->config, moat_config_free);
  g_free (session);
}

/**
 * moat_session_describe_qemu_args:
 * @session: the session
 *
 * Return: the QEMU options that attach a guest NIC to this session.
 */
char *
moat_session_describe_qemu_args (const MoatSession *session)
{
  const MoatConfig *config = session->config;

  if (config->fd >= 0)
    return g_strdup ("(connected through --fd; the launcher configured QEMU)");
  if (config->connect_path != NULL)
    return g_strdup_printf ("-netdev stream,id=n0,server=on,addr.type=unix,"
                            "addr.path=%s -device virtio-net-pci,netdev=n0",
                            config->connect_path);
  return g_strdup_printf ("-netdev stream,id=n0,server=off,addr.type=unix,"
                          "addr.path=%s -device virtio-net-pci,netdev=n0",
                          config->socket_path);
}
