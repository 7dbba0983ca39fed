/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tls.c - the non-blocking TLS server side of one guest connection */
#define G_LOG_DOMAIN "moat-tls"

#include "tls.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "error.h"
#include "moat-limits.h"

/*
 * TLS 1.2 and 1.3 only: the GnuTLS defaults minus the versions that RFC 8996
 * deprecates, and no DTLS since the guest connection is a TCP stream.
 */
#define SERVER_PRIORITIES \
  "NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS-ALL"

/* A TLS record that carries one alert: a 5-byte record header and a 2-byte
 * alert (RFC 8446 sections 5.1 and 6). */
#define ALERT_RECORD_LEN 7
#define RECORD_TYPE_ALERT 21

/* moat speaks HTTP/1.1 to the guest, so ALPN offers only that. */
static const char ALPN_HTTP_1_1[] = "http/1.1";

struct MoatTlsServer {
  gnutls_session_t session;
  MoatCa *ca; /* borrowed: must outlive the server */
  char *fallback_name; /* used when the client sends no SNI, may be NULL */
  char *sni; /* lowercase SNI from the client, or NULL */
  MoatLeaf *leaf; /* credentials in use, a reference of our own */
  GError *callback_error; /* why choose_certificate() failed */
  gboolean handshake_done;
  int fd;
  /* The last bytes received, to recognise an alert sent in plaintext. */
  guint8 received_tail[ALERT_RECORD_LEN];
  gsize received_tail_len;
};

void
moat_tls_server_free (MoatTlsServer *server)
{
  if (server == NULL)
    return;

  /* Deinit the session first: it points at the leaf's credentials. */
  if (server->session != NULL)
    gnutls_deinit (server->session);
  moat_leaf_unref (server->leaf);
  g_clear_error (&server->callback_error);
  g_free (server->sni);
  g_free (server->fallback_name);
  g_free (server);
}

/* Receives from the guest and keeps the last ALERT_RECORD_LEN bytes. */
static ssize_t
tls_pull (gnutls_transport_ptr_t transport, void *buffer, size_t size)
{
  MoatTlsServer *server = transport;
  ssize_t n = recv (server->fd, buffer, size, 0);
  gsize keep;

  if (n <= 0)
    return n;
  keep = MIN ((gsize) n, (gsize) ALERT_RECORD_LEN);
  if (server->received_tail_len + keep > ALERT_RECORD_LEN)
    {
      gsize drop = server->received_tail_len + keep - ALERT_RECORD_LEN;

      memmove (server->received_tail, server->received_tail + drop,
               server->received_tail_len - drop);
      server->received_tail_len -= drop;
    }
  memcpy (server->received_tail + server->received_tail_len,
          (const guint8 *) buffer + n - keep, keep);
  server->received_tail_len += keep;
  return n;
}

static int
tls_pull_timeout (gnutls_transport_ptr_t transport, unsigned int ms)
{
  MoatTlsServer *server = transport;
  struct pollfd pollfd = { .fd = server->fd, .events = POLLIN };
  int timeout = ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int) MIN (ms, G_MAXINT);

  return poll (&pollfd, 1, timeout);
}

/*
 * Finds a plaintext alert record at the end of what the client sent.
 * OpenSSL 3.0 clients that reject the certificate in a TLS 1.3 handshake
 * send their alert unencrypted, because they switch to the handshake keys
 * for writing only after checking the server's Finished; GnuTLS then fails
 * to decrypt it and reports GNUTLS_E_DECRYPTION_FAILED.
 */
static gboolean
find_plaintext_alert (const MoatTlsServer *server,
                      gnutls_alert_description_t *alert)
{
  const guint8 *record = server->received_tail;

  if (server->received_tail_len != ALERT_RECORD_LEN
      || record[0] != RECORD_TYPE_ALERT || record[1] != 3 || record[3] != 0
      || record[4] != 2 || (record[5] != GNUTLS_AL_WARNING
                            && record[5] != GNUTLS_AL_FATAL))
    return FALSE;
  *alert = (gnutls_alert_description_t) record[6];
  return TRUE;
}

/*
 * Reads the SNI from the parsed ClientHello and sets the leaf credentials
 * for it. GnuTLS calls this before it chooses a cipher suite, so the
 * credentials are in place when it looks for a certificate.
 */
static int
choose_certificate (gnutls_session_t session)
{
  MoatTlsServer *server = gnutls_session_get_ptr (session);
  /* One byte more than the longest valid name, so that a longer one shows
   * up as GNUTLS_E_SHORT_MEMORY_BUFFER instead of being accepted. */
  char name[MOAT_DNS_NAME_MAX + 2];
  size_t name_len = sizeof name;
  unsigned int type = 0;

  int ret = gnutls_server_name_get (session, name, &name_len, &type, 0);
  if (ret == 0 && type == GNUTLS_NAME_DNS)
    {
      /* GnuTLS NUL-terminates the name and returns its length without
       * the NUL. */
      if (!moat_tls_server_name_is_valid (name, name_len))
        {
          g_autofree char *escaped = g_strescape (name, NULL);
          g_set_error (&server->callback_error, MOAT_ERROR, MOAT_ERROR_TLS,
                       "the client sent an invalid server name \"%s\" (SNI)",
                       escaped);
          return GNUTLS_E_UNRECOGNIZED_NAME;
        }
      g_free (server->sni);
      server->sni = g_ascii_strdown (name, name_len);
    }
  else if (ret == GNUTLS_E_SHORT_MEMORY_BUFFER)
    {
      g_set_error (&server->callback_error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "the client sent a server name (SNI) longer than %d bytes",
                   MOAT_DNS_NAME_MAX);
      return GNUTLS_E_UNRECOGNIZED_NAME;
    }
  else if (ret < 0 && ret != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
    {
      g_set_error (&server->callback_error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "reading the server name (SNI) failed: %s",
                   gnutls_strerror (ret));
      return ret;
    }

  const char *certificate_name =
      server->sni != NULL ? server->sni : server->fallback_name;
  if (certificate_name == NULL)
    {
      g_set_error_literal (&server->callback_error, MOAT_ERROR,
                           MOAT_ERROR_TLS,
                           "the client sent no server name (SNI) and the "
                           "connection has no DNS name to use instead");
      return GNUTLS_E_UNRECOGNIZED_NAME;
    }

  MoatLeaf *leaf =
      moat_ca_ref_leaf (server->ca, certificate_name, &server->callback_error);
  if (leaf == NULL)
    return GNUTLS_E_CERTIFICATE_ERROR;

  ret = gnutls_credentials_set (session, GNUTLS_CRD_CERTIFICATE,
                                moat_leaf_get_credentials (leaf));
  if (ret < 0)
    {
      moat_leaf_unref (leaf);
      g_set_error (&server->callback_error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "setting the certificate for %s failed: %s",
                   certificate_name, gnutls_strerror (ret));
      return ret;
    }

  /* Replace only after the session points at the new credentials. */
  moat_leaf_unref (server->leaf);
  server->leaf = leaf;
  return 0;
}

/**
 * moat_tls_server_new:
 * @ca: the CA that signs leaf certificates; it must outlive the server
 * @fd: a connected non-blocking socket; the caller keeps ownership and
 *   closes it after freeing the server
 * @fallback_name: (nullable): the name for the certificate when the client
 *   sends no SNI, normally the DNS name the guest resolved
 * @error: return location for a MOAT_ERROR_TLS error
 *
 * Creates the TLS server side of a guest connection. The handshake starts
 * with moat_tls_server_handshake().
 *
 * Return: the server, or NULL on error
 */
MoatTlsServer *
moat_tls_server_new (MoatCa *ca, int fd, const char *fallback_name,
                     GError **error)
{
  g_return_val_if_fail (ca != NULL, NULL);
  g_return_val_if_fail (fd >= 0, NULL);

  g_autoptr (MoatTlsServer) server = g_new0 (MoatTlsServer, 1);
  server->ca = ca;
  server->fallback_name = g_strdup (fallback_name);

  /* GNUTLS_NO_SIGNAL: a guest that closes early must not raise SIGPIPE. */
  int ret = gnutls_init (&server->session,
                         GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "creating a TLS session failed: %s", gnutls_strerror (ret));
      return NULL;
    }

  const char *error_position = NULL;
  ret = gnutls_priority_set_direct (server->session, SERVER_PRIORITIES,
                                    &error_position);
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "setting TLS priorities \"%s\" failed at \"%s\": %s",
                   SERVER_PRIORITIES,
                   error_position != NULL ? error_position : "",
                   gnutls_strerror (ret));
      return NULL;
    }

  /* Without a match (a client offering only h2) GnuTLS sends no ALPN
   * extension and the client falls back to HTTP/1.1. */
  const gnutls_datum_t protocols[] = {
    { (unsigned char *) ALPN_HTTP_1_1, sizeof ALPN_HTTP_1_1 - 1 },
  };
  ret = gnutls_alpn_set_protocols (server->session, protocols,
                                   G_N_ELEMENTS (protocols),
                                   GNUTLS_ALPN_SERVER_PRECEDENCE);
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "setting the ALPN protocols failed: %s",
                   gnutls_strerror (ret));
      return NULL;
    }

  gnutls_session_set_ptr (server->session, server);
  gnutls_handshake_set_post_client_hello_function (server->session,
                                                   choose_certificate);
  /* Reads go through tls_pull(), writes through GnuTLS's own send(). */
  server->fd = fd;
  gnutls_transport_set_ptr2 (server->session, server, GINT_TO_POINTER (fd));
  gnutls_transport_set_pull_function (server->session, tls_pull);
  gnutls_transport_set_pull_timeout_function (server->session,
                                              tls_pull_timeout);

  return g_steal_pointer (&server);
}

static gboolean
is_again (int ret)
{
  return ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED;
}

/* Alerts by which a client says that it does not trust the certificate. */
static gboolean
is_certificate_rejection (gnutls_alert_description_t alert)
{
  switch (alert)
    {
    case GNUTLS_A_BAD_CERTIFICATE:
    case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
    case GNUTLS_A_CERTIFICATE_UNKNOWN:
    case GNUTLS_A_UNKNOWN_CA:
      return TRUE;
    default:
      return FALSE;
    }
}

/*
 * Returns the alert's name as RFC 8446 section 6 spells it ("unknown_ca"),
 * derived from the GnuTLS enum name ("GNUTLS_A_UNKNOWN_CA").
 */
static char *
alert_name (gnutls_alert_description_t alert)
{
  const char *name = gnutls_alert_get_strname (alert);
  if (name == NULL)
    return g_strdup_printf ("%u", (unsigned int) alert);
  if (g_str_has_prefix (name, "GNUTLS_A_"))
    name += strlen ("GNUTLS_A_");
  return g_ascii_strdown (name, -1);
}

/*
 * Converts a fatal GnuTLS error of a handshake to a GError with a message
 * for the operator.
 */
static void
set_handshake_error (MoatTlsServer *server, int ret, GError **error)
{
  if (server->callback_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&server->callback_error));
      return;
    }

  gnutls_alert_description_t alert;
  gboolean have_alert = FALSE;

  if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
    {
      alert = gnutls_alert_get (server->session);
      have_alert = TRUE;
    }
  else if (ret == GNUTLS_E_DECRYPTION_FAILED
           || ret == GNUTLS_E_UNEXPECTED_PACKET)
    have_alert = find_plaintext_alert (server, &alert);

  if (have_alert)
    {
      g_autofree char *name = alert_name (alert);
      if (is_certificate_rejection (alert))
        g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                     "client rejected certificate: CA not installed or "
                     "pinned (alert %s)",
                     name);
      else if (alert == GNUTLS_A_CERTIFICATE_EXPIRED)
        g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                     "client rejected certificate as expired or not yet "
                     "valid: check the guest clock (alert %s)",
                     name);
      else
        g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                     "TLS handshake failed: the client sent alert %s",
                     name);
      return;
    }

  if (ret == GNUTLS_E_UNSUPPORTED_VERSION_PACKET)
    {
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_TLS,
                           "TLS handshake failed: the client supports "
                           "neither TLS 1.2 nor TLS 1.3");
      return;
    }

  if (ret == GNUTLS_E_RECEIVED_DISALLOWED_NAME)
    {
      /* GnuTLS rejects names with characters that no DNS name has before
       * choose_certificate() sees them. */
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_TLS,
                           "the client sent an invalid server name (SNI)");
      return;
    }

  if (ret == GNUTLS_E_PREMATURE_TERMINATION || ret == GNUTLS_E_PULL_ERROR
      || ret == GNUTLS_E_PUSH_ERROR)
    {
      /* Some clients close without an alert when they reject the
       * certificate, which looks the same from here. */
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "TLS handshake failed: the client closed the connection "
                   "without an alert (%s); if it rejected the certificate, "
                   "install or unpin the moat CA",
                   gnutls_strerror (ret));
      return;
    }

  g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS, "TLS handshake failed: %s",
               gnutls_strerror (ret));
}

/**
 * moat_tls_server_handshake:
 * @server: the server
 * @error: return location for a MOAT_ERROR_TLS error
 *
 * Advances the handshake with the bytes the socket has. After
 * MOAT_TLS_AGAIN, wait until the fd is writable if
 * moat_tls_server_wants_write() returns TRUE, readable otherwise, and call
 * again.
 *
 * Return: MOAT_TLS_OK once complete, MOAT_TLS_AGAIN, or MOAT_TLS_ERROR
 */
MoatTlsStatus
moat_tls_server_handshake (MoatTlsServer *server, GError **error)
{
  g_return_val_if_fail (server != NULL, MOAT_TLS_ERROR);

  if (server->handshake_done)
    return MOAT_TLS_OK;

  int ret;
  do
    {
      ret = gnutls_handshake (server->session);
      /* TLS 1.2 warning alerts (such as unrecognized_name) do not end the
       * handshake; the next call continues it. */
    }
  while (ret == GNUTLS_E_WARNING_ALERT_RECEIVED);

  if (ret == GNUTLS_E_SUCCESS)
    {
      server->handshake_done = TRUE;
      return MOAT_TLS_OK;
    }
  if (is_again (ret))
    return MOAT_TLS_AGAIN;

  set_handshake_error (server, ret, error);
  /* Best effort: the socket may be full or closed, and the error is
   * reported either way. */
  gnutls_alert_send_appropriate (server->session, ret);
  return MOAT_TLS_ERROR;
}

/**
 * moat_tls_server_get_server_name:
 * @server: the server
 *
 * Return: (nullable): the server name (SNI) the client sent, in lowercase,
 *   or NULL if it sent none or the handshake has not read the ClientHello
 */
const char *
moat_tls_server_get_server_name (const MoatTlsServer *server)
{
  g_return_val_if_fail (server != NULL, NULL);

  return server->sni;
}

/**
 * moat_tls_server_read:
 * @server: the server, after a completed handshake
 * @buffer: where to store plaintext
 * @size: bytes available in @buffer
 * @bytes_read: (out): bytes stored, on MOAT_TLS_OK
 * @error: return location for a MOAT_ERROR_TLS error
 *
 * Reads plaintext from the guest. After MOAT_TLS_OK, more may be buffered
 * inside GnuTLS: see moat_tls_server_has_pending().
 *
 * Return: MOAT_TLS_OK, MOAT_TLS_AGAIN, MOAT_TLS_EOF when the client closed
 *   the connection, or MOAT_TLS_ERROR
 */
MoatTlsStatus
moat_tls_server_read (MoatTlsServer *server, guint8 *buffer, gsize size,
                      gsize *bytes_read, GError **error)
{
  g_return_val_if_fail (server != NULL, MOAT_TLS_ERROR);
  g_return_val_if_fail (buffer != NULL, MOAT_TLS_ERROR);
  g_return_val_if_fail (bytes_read != NULL, MOAT_TLS_ERROR);

  *bytes_read = 0;

  ssize_t ret;
  do
    ret = gnutls_record_recv (server->session, buffer, size);
  /* Each warning alert consumes a record, so this loop ends with the
   * guest's input. */
  while (ret == GNUTLS_E_WARNING_ALERT_RECEIVED);

  if (ret > 0)
    {
      *bytes_read = (gsize) ret;
      return MOAT_TLS_OK;
    }
  if (ret == 0)
    return MOAT_TLS_EOF;
  if (is_again ((int) ret))
    return MOAT_TLS_AGAIN;
  if (ret == GNUTLS_E_PREMATURE_TERMINATION)
    {
      /* Many clients close TCP without close_notify once they have what
       * they need. HTTP framing shows whether the data was complete, so
       * this is EOF here, not an error. */
      g_debug ("the client closed the connection without a TLS "
               "close_notify");
      return MOAT_TLS_EOF;
    }
  if (ret == GNUTLS_E_REHANDSHAKE)
    {
      /* RFC 5246 section 7.2.2: no_renegotiation tells the client why.
       * Best effort, because the connection closes next either way. */
      gnutls_alert_send (server->session, GNUTLS_AL_WARNING,
                         GNUTLS_A_NO_RENEGOTIATION);
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_TLS,
                           "the client requested TLS renegotiation, which "
                           "moat does not support");
      return MOAT_TLS_ERROR;
    }
  if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED)
    {
      g_autofree char *name = alert_name (gnutls_alert_get (server->session));
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "reading from the TLS connection failed: the client sent "
                   "alert %s",
                   name);
      return MOAT_TLS_ERROR;
    }

  g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
               "reading from the TLS connection failed: %s",
               gnutls_strerror ((int) ret));
  return MOAT_TLS_ERROR;
}

/**
 * moat_tls_server_write:
 * @server: the server, after a completed handshake
 * @buffer: plaintext to send
 * @size: bytes in @buffer
 * @bytes_written: (out): bytes of @buffer sent, on MOAT_TLS_OK; may be fewer
 *   than @size
 * @error: return location for a MOAT_ERROR_TLS error
 *
 * Sends plaintext to the guest. After MOAT_TLS_AGAIN, GnuTLS has kept part
 * of a record: call again with the same @buffer and @size once the fd is
 * writable.
 *
 * Return: MOAT_TLS_OK, MOAT_TLS_AGAIN, or MOAT_TLS_ERROR
 */
MoatTlsStatus
moat_tls_server_write (MoatTlsServer *server, const guint8 *buffer,
                       gsize size, gsize *bytes_written, GError **error)
{
  g_return_val_if_fail (server != NULL, MOAT_TLS_ERROR);
  g_return_val_if_fail (buffer != NULL || size == 0, MOAT_TLS_ERROR);
  g_return_val_if_fail (bytes_written != NULL, MOAT_TLS_ERROR);

  *bytes_written = 0;

  ssize_t ret = gnutls_record_send (server->session, buffer, size);
  if (ret >= 0)
    {
      *bytes_written = (gsize) ret;
      return MOAT_TLS_OK;
    }
  if (is_again ((int) ret))
    return MOAT_TLS_AGAIN;

  g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
               "writing to the TLS connection failed: %s",
               gnutls_strerror ((int) ret));
  return MOAT_TLS_ERROR;
}

/**
 * moat_tls_server_has_pending:
 * @server: the server
 *
 * Return: TRUE if GnuTLS has buffered decrypted bytes that a read returns
 *   without
 *   the fd becoming readable
 */
gboolean
moat_tls_server_has_pending (const MoatTlsServer *server)
{
  g_return_val_if_fail (server != NULL, FALSE);

  return gnutls_record_check_pending (server->session) > 0;
}

/**
 * moat_tls_server_wants_write:
 * @server: the server
 *
 * Return: TRUE if the last operation returned MOAT_TLS_AGAIN while writing,
 *   so the caller waits for POLLOUT, FALSE if it waits for POLLIN
 */
gboolean
moat_tls_server_wants_write (const MoatTlsServer *server)
{
  g_return_val_if_fail (server != NULL, FALSE);

  return gnutls_record_get_direction (server->session) == 1;
}

/**
 * moat_tls_server_close:
 * @server: the server
 *
 * Sends close_notify and does not wait for the client's, which HTTP does
 * not need (RFC 8446 section 6.1 lets the sender close its side only).
 *
 * Return: MOAT_TLS_OK when sent, MOAT_TLS_AGAIN to call again once the fd
 *   is writable, or MOAT_TLS_ERROR, after which the caller just closes the
 *   socket
 */
MoatTlsStatus
moat_tls_server_close (MoatTlsServer *server)
{
  g_return_val_if_fail (server != NULL, MOAT_TLS_ERROR);

  int ret = gnutls_bye (server->session, GNUTLS_SHUT_WR);
  if (ret == GNUTLS_E_SUCCESS)
    return MOAT_TLS_OK;
  if (is_again (ret))
    return MOAT_TLS_AGAIN;

  g_debug ("sending TLS close_notify failed: %s", gnutls_strerror (ret));
  return MOAT_TLS_ERROR;
}
