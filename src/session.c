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
#define GUEST_MASK "255.255.255.0"
#define GATEWAY "10.0.2.2"
#define DNS_SERVER "10.0.2.3"
#define GUEST "10.0.2.15"
#define POOL_FIRST "10.0.128.1"
#define LEASE_SECONDS 86400

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
  MoatAuditEvent *event = moat_audit_event_new ("qemu");

  moat_audit_event_add_string (event, "state",
                               connected ? "connected" : "disconnected");
  moat_audit_emit (session->audit, event);
  if (connected)
    return;
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
    session->ca = moat_ca_load (config->ca_cert, config->ca_key, error);
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
session_create_transport (MoatSession *session, GError **error)
{
  MoatConfig *config = session->config;

  if (config->fd >= 0)
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
  g_autoptr (MoatSession) session = g_new0 (MoatSession, 1);
  MoatStackConfig stack_config;

  session->config = config;
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

  session->policy = moat_policy_new ((const char *const *) config->allow,
                                     (const char *const *) config->deny,
                                     error);
  if (session->policy == NULL)
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

  if (!session_create_transport (session, error))
    return NULL;
  return g_steal_pointer (&session);
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
  g_clear_pointer (&session->policy, moat_policy_free);
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
