/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * flow.c - one guest TCP connection: classification, TLS, HTTP, policy
 *
 * Theory of operation
 *
 * A flow starts when libslirp connects to moat's guest forward socket on
 * behalf of a guest TCP connection. The guard attributed it to the guest's
 * address and port and to the synthetic address it was opened to, which
 * the name table maps back to the DNS name. A connection that cannot be
 * attributed to a name is closed at once.
 *
 * Lifecycle:
 *
 *   SNIFF          peek (MSG_PEEK) at the first bytes without consuming
 *                  them. A TLS handshake record starts the TLS server,
 *                  which then reads the same bytes. An HTTP method token
 *                  goes straight to REQUEST_HEAD. Anything else is audited
 *                  as denied and closed.
 *   TLS_HANDSHAKE  GnuTLS completes the handshake with a leaf certificate
 *                  for the SNI (or the DNS name when there is none).
 *   REQUEST_HEAD   bytes are read until a complete request head parses.
 *                  The request is checked (method, Host against the DNS
 *                  name and the SNI, secret placeholders, then the policy
 *                  rules on host, port, method and path). A denied request
 *                  gets a 403 and the connection stays usable when the
 *                  request had no body. In report mode a request that the
 *                  policy would deny goes upstream and is audited as
 *                  "would-deny".
 *   REQUEST        an allowed request runs through the host fetch. The
 *                  request body streams guest -> in -> decoder -> upload ->
 *                  libcurl, the response streams libcurl -> out -> guest.
 *                  After the response, a keep-alive connection returns to
 *                  REQUEST_HEAD.
 *   CLOSING        the remaining output is written, then the flow closes.
 *
 * Backpressure: every buffer has a limit. Reading from the guest stops
 * while `in` or `upload` is full, and libcurl's upload pauses while
 * `upload` is empty. libcurl's download pauses while `out` holds
 * MOAT_BODY_BUFFER_MAX bytes, and resumes when the guest has taken half.
 * libslirp in turn stops reading from its end of the unix socket while the
 * guest's TCP window is closed, so a slow guest slows the upstream down
 * instead of growing memory.
 *
 * Teardown happens from an idle callback, never from inside a GnuTLS,
 * libcurl or fd watch callback, so no caller finds its flow freed under it.
 */
#define G_LOG_DOMAIN "moat-flow"

#include "flow.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib/gprintf.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "sockets.h"
#include "fdwatch.h"
#include "http.h"
#include "moat-limits.h"
#include "packet.h"
#include "secrets.h"

#define TLS_RECORD_TYPE_HANDSHAKE 0x16
/* Maximum length of the method token that the sniffer waits for. The
 * RFC 9110 methods are at most 7 bytes ("OPTIONS"), and extension methods
 * are rarely longer. */
#define METHOD_TOKEN_MAX 16
/* Bytes read from the guest per read call. */
#define READ_CHUNK (64 * 1024)
/* Largest TLS record payload (RFC 8446 section 5.1). */
#define TLS_RECORD_MAX 16384
/* Input buffered beyond a complete request body, for pipelined requests. */
#define IN_BUFFER_MAX (MOAT_HTTP_HEAD_MAX + MOAT_BODY_BUFFER_MAX)

typedef enum {
  FLOW_SNIFF,
  FLOW_TLS_HANDSHAKE,
  FLOW_REQUEST_HEAD,
  FLOW_REQUEST,
  FLOW_CLOSING,
  FLOW_CLOSED,
} FlowState;

typedef enum {
  RESPONSE_BODY_NONE,
  RESPONSE_BODY_LENGTH,
  RESPONSE_BODY_CHUNKED,
  RESPONSE_BODY_UNTIL_CLOSE,
} ResponseFraming;

/**
 * MoatFlow:
 * @session: the session
 * @id: identifier in logs and audit lines
 * @fd: moat's end of the unix connection from libslirp
 * @watch: events wanted on @fd
 * @state: lifecycle state, see the theory of operation
 * @guest: "address:port" of the guest end
 * @host: DNS name the guest connected to
 * @port: destination port the guest connected to
 * @tls: the TLS server, for HTTPS connections
 * @server_name: SNI sent by the guest, or %NULL
 * @tls_write_size: size of a TLS write that returned AGAIN and must be
 *   repeated with the same length, or 0
 * @in: plaintext received from the guest and not yet consumed
 * @out: plaintext for the guest not yet written
 * @out_offset: bytes of @out already written
 * @guest_eof: the guest closed its sending side
 * @timeout_id: head or idle timeout source, or 0
 * @pump_id: idle source that runs flow_pump(), or 0
 * @close_id: idle source that frees the flow, or 0
 * @request: the request being handled, or %NULL
 * @fetch: its upstream transfer, or %NULL
 * @decoder: the request body decoder
 * @upload: decoded request body not yet taken by libcurl
 * @upload_waiting: libcurl paused the upload for lack of data
 * @download_paused: the download is paused until @out drains
 * @response_started: the response head was queued
 * @framing: how the response body is delimited toward the guest
 * @close_after_response: close once the response is written
 * @status: response status sent to the guest
 * @url: upstream URL of the request
 * @bytes_sent: request body bytes sent upstream
 * @bytes_received: response body bytes received from upstream
 * @request_start_us: monotonic time when the request head was complete
 * @policy: the policy the current request started with, kept while it
 *   runs even if a reload installs another
 * @secrets: the secrets the current request started with, or %NULL
 * @rule: name of the rule that decided the current request, or %NULL
 * @would_deny: report mode let through a request the policy denies
 * @would_deny_reason: why the policy would deny it, for the audit log
 * @exfiltration: the request carried a secret's placeholder to a host
 *   that may not receive the secret
 */
struct MoatFlow {
  MoatSession *session;
  guint64 id;
  int fd;
  MoatFdWatch *watch;
  FlowState state;
  char *guest;
  char *host;
  guint16 port;

  MoatTlsServer *tls;
  char *server_name;
  gsize tls_write_size;

  GByteArray *in;
  GByteArray *out;
  gsize out_offset;
  gboolean guest_eof;
  guint timeout_id;
  guint pump_id;
  guint close_id;

  MoatHttpRequest *request;
  MoatFetchRequest *fetch;
  MoatHttpBodyDecoder decoder;
  GByteArray *upload;
  gboolean upload_waiting;
  gboolean download_paused;
  gboolean response_started;
  gboolean request_audited;
  ResponseFraming framing;
  gboolean close_after_response;
  guint status;
  char *url;
  guint64 bytes_sent;
  guint64 bytes_received;
  gint64 request_start_us;

  MoatPolicy *policy;
  MoatSecrets *secrets;
  char *rule;
  gboolean would_deny;
  char *would_deny_reason;
  gboolean exfiltration;
};

static void flow_pump (MoatFlow *flow);
static void flow_update_events (MoatFlow *flow);

/* Logging and audit */

#define flow_debug(flow, format, ...) \
  g_debug ("flow %" G_GUINT64_FORMAT " %s -> %s:%u: " format, (flow)->id, \
           (flow)->guest, (flow)->host ? (flow)->host : "?", (flow)->port, \
           ##__VA_ARGS__)

static MoatAuditEvent *
flow_audit_event_new_decision (MoatFlow *flow, const char *event_name,
                               const char *decision, const char *reason)
{
  MoatAuditEvent *event = moat_audit_event_new (event_name);

  moat_audit_event_add_string (event, "decision", decision);
  if (reason != NULL)
    moat_audit_event_add_string (event, "reason", reason);
  moat_audit_event_add_int (event, "flow", (gint64) flow->id);
  moat_audit_event_add_string (event, "guest", flow->guest);
  if (flow->host != NULL)
    moat_audit_event_add_string (event, "host", flow->host);
  moat_audit_event_add_int (event, "port", flow->port);
  return event;
}

static MoatAuditEvent *
flow_audit_event_new (MoatFlow *flow, const char *event_name,
                      gboolean allowed, const char *reason)
{
  return flow_audit_event_new_decision (flow, event_name,
                                        allowed ? "allow" : "deny", reason);
}

static void
flow_audit_connection (MoatFlow *flow, gboolean allowed, const char *protocol,
                       const char *reason)
{
  MoatAuditEvent *event = flow_audit_event_new (flow, "connection", allowed,
                                                reason);

  if (protocol != NULL)
    moat_audit_event_add_string (event, "protocol", protocol);
  if (flow->server_name != NULL)
    moat_audit_event_add_string (event, "sni", flow->server_name);
  moat_audit_emit (flow->session->audit, event);
}

static void
flow_audit_request (MoatFlow *flow, gboolean allowed, const char *reason)
{
  gboolean would_deny = allowed && flow->would_deny;
  const char *decision = "deny";
  gint64 duration_ms = (g_get_monotonic_time () - flow->request_start_us)
                       / 1000;
  MoatAuditEvent *event;

  if (would_deny)
    decision = "would-deny";
  else if (allowed)
    decision = "allow";
  if (reason == NULL && would_deny)
    reason = flow->would_deny_reason;
  event = flow_audit_event_new_decision (flow, "request", decision, reason);

  if (flow->rule != NULL)
    moat_audit_event_add_string (event, "rule", flow->rule);
  if (flow->exfiltration)
    moat_audit_event_add_bool (event, "exfiltration", TRUE);

  moat_audit_event_add_string (event, "method", flow->request->method);
  moat_audit_event_add_string (event, "url", flow->url);
  moat_audit_event_add_int (event, "status", flow->status);
  moat_audit_event_add_int (event, "bytes_sent", (gint64) flow->bytes_sent);
  moat_audit_event_add_int (event, "bytes_received",
                            (gint64) flow->bytes_received);
  moat_audit_event_add_int (event, "duration_ms", duration_ms);
  moat_audit_emit (flow->session->audit, event);
  flow->request_audited = TRUE;
}

/* Teardown */

static gboolean
flow_close_idle (gpointer user_data)
{
  MoatFlow *flow = user_data;

  flow->close_id = 0;
  g_hash_table_remove (flow->session->flows, flow);
  return G_SOURCE_REMOVE;
}

/* Stops all I/O now and frees the flow from the main loop. */
static void
flow_close (MoatFlow *flow)
{
  if (flow->state == FLOW_CLOSED)
    return;
  flow_debug (flow, "closing");
  flow->state = FLOW_CLOSED;
  moat_fd_watch_free (flow->watch);
  flow->watch = NULL;
  if (flow->close_id == 0)
    flow->close_id = g_idle_add (flow_close_idle, flow);
}

/**
 * moat_flow_free:
 * @flow: the flow
 *
 * Cancels the upstream transfer, closes the connection and frees @flow.
 * Called by the session's flow table when the flow is removed from it.
 */
void
moat_flow_free (MoatFlow *flow)
{
  if (flow == NULL)
    return;
  /* A request still running when its connection goes (the guest gave
   * up, QEMU disconnected, moat is stopping) is audited with what it
   * moved so far, so that the log has one line for every request. */
  if (flow->request != NULL && !flow->request_audited)
    flow_audit_request (flow, TRUE,
                        flow->response_started
                          ? "connection closed before the response was "
                            "complete"
                          : "connection closed before the upstream "
                            "answered");
  if (flow->fetch != NULL)
    moat_fetch_request_cancel (flow->fetch);
  moat_fd_watch_free (flow->watch);
  g_clear_handle_id (&flow->timeout_id, g_source_remove);
  g_clear_handle_id (&flow->pump_id, g_source_remove);
  g_clear_handle_id (&flow->close_id, g_source_remove);
  g_clear_pointer (&flow->tls, moat_tls_server_free);
  if (flow->fd >= 0)
    close (flow->fd);
  g_clear_pointer (&flow->request, moat_http_request_free);
  g_byte_array_unref (flow->in);
  g_byte_array_unref (flow->out);
  g_byte_array_unref (flow->upload);
  g_free (flow->server_name);
  g_free (flow->url);
  g_free (flow->rule);
  g_free (flow->would_deny_reason);
  g_clear_pointer (&flow->policy, moat_policy_unref);
  g_clear_pointer (&flow->secrets, moat_secrets_unref);
  g_free (flow->guest);
  g_free (flow->host);
  g_free (flow);
}

static void flow_arm_timeout (MoatFlow *flow, guint seconds);
static void flow_respond (MoatFlow *flow, guint status,
                          const char *denied_reason, const char *body,
                          gboolean keep_open);

/* Seconds a guest has for a TLS handshake or a request head. */
static guint
flow_head_timeout (const MoatFlow *flow)
{
  return flow->session->config->head_timeout_s;
}

/* Answers a request head that did not arrive in time with 408 (RFC 9110
 * section 15.5.9) and closes once the answer is out. */
static void
flow_head_timed_out (MoatFlow *flow)
{
  g_autofree char *reason = g_strdup_printf (
      "the request head was not complete within %u s (%u bytes received)",
      flow_head_timeout (flow), flow->in->len);
  g_autofree char *body = g_strdup_printf ("moat closed this connection: %s\n",
                                           reason);
  MoatAuditEvent *event = flow_audit_event_new (flow, "request", FALSE,
                                                reason);

  moat_audit_event_add_int (event, "status", 408);
  moat_audit_emit (flow->session->audit, event);
  flow_respond (flow, 408, NULL, body, FALSE);
  flow->state = FLOW_CLOSING;
  /* A guest that does not read the answer is closed at the next expiry. */
  flow_arm_timeout (flow, flow_head_timeout (flow));
  flow_pump (flow);
}

static gboolean
flow_timeout (gpointer user_data)
{
  MoatFlow *flow = user_data;

  flow->timeout_id = 0;
  flow_debug (flow, "timed out in state %d", flow->state);
  if (flow->state == FLOW_REQUEST_HEAD && flow->request == NULL
      && flow->in->len > 0)
    {
      flow_head_timed_out (flow);
      return G_SOURCE_REMOVE;
    }
  if (flow->state == FLOW_SNIFF)
    flow_audit_connection (flow, FALSE, NULL,
                           "no data within the connection timeout");
  else if (flow->state == FLOW_TLS_HANDSHAKE)
    {
      g_autofree char *reason = g_strdup_printf (
          "TLS handshake failed: not complete within %u s",
          flow_head_timeout (flow));
      flow_audit_connection (flow, FALSE, "tls", reason);
    }
  flow_close (flow);
  return G_SOURCE_REMOVE;
}

static void
flow_arm_timeout (MoatFlow *flow, guint seconds)
{
  g_clear_handle_id (&flow->timeout_id, g_source_remove);
  if (seconds > 0)
    flow->timeout_id = g_timeout_add_seconds (seconds, flow_timeout, flow);
}

static gboolean
flow_pump_idle (gpointer user_data)
{
  MoatFlow *flow = user_data;

  flow->pump_id = 0;
  flow_pump (flow);
  return G_SOURCE_REMOVE;
}

/* Runs flow_pump() from the main loop, for callers inside libcurl. */
static void
flow_schedule_pump (MoatFlow *flow)
{
  if (flow->pump_id == 0 && flow->state != FLOW_CLOSED)
    flow->pump_id = g_idle_add (flow_pump_idle, flow);
}

/* Output toward the guest */

static gsize
flow_out_pending (const MoatFlow *flow)
{
  return flow->out->len - flow->out_offset;
}

static void
flow_append (MoatFlow *flow, const void *data, gsize length)
{
  /* Drop what was written before the buffer grows again. */
  if (flow->out_offset > 0 && flow->out_offset == flow->out->len)
    {
      g_byte_array_set_size (flow->out, 0);
      flow->out_offset = 0;
    }
  else if (flow->out_offset > MOAT_BODY_BUFFER_MAX)
    {
      g_byte_array_remove_range (flow->out, 0, flow->out_offset);
      flow->out_offset = 0;
    }
  g_byte_array_append (flow->out, data, length);
}

static void G_GNUC_PRINTF (2, 3)
flow_append_printf (MoatFlow *flow, const char *format, ...)
{
  va_list args;
  g_autofree char *text = NULL;
  int length;

  va_start (args, format);
  length = g_vasprintf (&text, format, args);
  va_end (args);
  flow_append (flow, text, length);
}

/* Writes queued output. Returns FALSE if the connection failed. */
static gboolean
flow_flush (MoatFlow *flow)
{
  while (flow_out_pending (flow) > 0 && flow->state != FLOW_CLOSED)
    {
      const guint8 *data = flow->out->data + flow->out_offset;
      gsize length = flow_out_pending (flow);
      gsize written = 0;

      if (flow->tls != NULL)
        {
          g_autoptr (GError) error = NULL;
          MoatTlsStatus status;

          /* GnuTLS requires a write that returned AGAIN to be repeated
           * with the same length. */
          if (flow->tls_write_size > 0)
            length = flow->tls_write_size;
          else
            length = MIN (length, TLS_RECORD_MAX);
          status = moat_tls_server_write (flow->tls, data, length, &written,
                                          &error);
          if (status == MOAT_TLS_AGAIN)
            {
              flow->tls_write_size = length;
              return TRUE;
            }
          flow->tls_write_size = 0;
          if (status != MOAT_TLS_OK)
            {
              flow_debug (flow, "TLS write failed: %s",
                          error ? error->message : "connection closed");
              flow_close (flow);
              return FALSE;
            }
        }
      else
        {
          ssize_t n = send (flow->fd, data, length, MSG_NOSIGNAL);

          if (n < 0)
            {
              if (errno == EINTR)
                continue;
              if (errno == EAGAIN)
                return TRUE;
              flow_debug (flow, "write failed: %s", g_strerror (errno));
              flow_close (flow);
              return FALSE;
            }
          written = n;
        }
      flow->out_offset += written;
    }

  if (flow_out_pending (flow) == 0)
    {
      g_byte_array_set_size (flow->out, 0);
      flow->out_offset = 0;
    }
  if (flow->download_paused && flow->fetch != NULL
      && flow_out_pending (flow) <= MOAT_BODY_BUFFER_MAX / 2)
    {
      flow->download_paused = FALSE;
      moat_fetch_request_resume_download (flow->fetch);
    }
  return TRUE;
}

/* Input from the guest */

static gboolean
flow_wants_input (const MoatFlow *flow)
{
  if (flow->guest_eof || flow->in->len >= IN_BUFFER_MAX)
    return FALSE;
  return flow->state == FLOW_REQUEST_HEAD || flow->state == FLOW_REQUEST;
}

/* Reads what the guest sent. Returns TRUE if bytes arrived or the guest
 * closed its side. */
static gboolean
flow_read (MoatFlow *flow)
{
  gboolean progress = FALSE;

  while (flow_wants_input (flow))
    {
      gsize old_length = flow->in->len;
      gsize room = MIN (READ_CHUNK, IN_BUFFER_MAX - old_length);
      gsize received = 0;

      g_byte_array_set_size (flow->in, old_length + room);
      if (flow->tls != NULL)
        {
          g_autoptr (GError) error = NULL;
          MoatTlsStatus status = moat_tls_server_read (flow->tls,
                                                       flow->in->data
                                                       + old_length, room,
                                                       &received, &error);
          g_byte_array_set_size (flow->in, old_length + received);
          if (status == MOAT_TLS_AGAIN)
            break;
          if (status == MOAT_TLS_EOF)
            {
              flow->guest_eof = TRUE;
              return TRUE;
            }
          if (status == MOAT_TLS_ERROR)
            {
              /* A renegotiation attempt or a fatal alert from the guest. */
              flow_debug (flow, "TLS read failed: %s", error->message);
              flow_audit_connection (flow, FALSE, "tls", error->message);
              flow->guest_eof = TRUE;
              return TRUE;
            }
        }
      else
        {
          ssize_t n = recv (flow->fd, flow->in->data + old_length, room, 0);

          if (n < 0)
            {
              g_byte_array_set_size (flow->in, old_length);
              if (errno == EINTR)
                continue;
              if (errno == EAGAIN)
                break;
              flow_debug (flow, "read failed: %s", g_strerror (errno));
              flow->guest_eof = TRUE;
              return TRUE;
            }
          g_byte_array_set_size (flow->in, old_length + n);
          if (n == 0)
            {
              flow->guest_eof = TRUE;
              return TRUE;
            }
          received = n;
        }
      progress = TRUE;
      /* A short read means the socket is drained, unless GnuTLS still
       * buffers decrypted bytes. */
      if (received < room
          && (flow->tls == NULL || !moat_tls_server_has_pending (flow->tls)))
        break;
    }
  return progress;
}

/* Responses that moat writes itself */

/* Copies @text into a header value, replacing control characters. */
static char *
sanitize_header_value (const char *text)
{
  char *value = g_strdup (text);
  char *p;

  for (p = value; *p != '\0'; p++)
    if ((guchar) *p < 0x20 || (guchar) *p == 0x7f)
      *p = '?';
  return value;
}

/**
 * flow_respond:
 * @flow: the flow
 * @status: HTTP status
 * @denied_reason: for a denial, the reason for the X-Moat-Denied field;
 *   %NULL otherwise
 * @body: the text body
 * @keep_open: whether the connection may serve another request
 *
 * Queues a complete response written by moat itself.
 */
static void
flow_respond (MoatFlow *flow, guint status, const char *denied_reason,
              const char *body, gboolean keep_open)
{
  gboolean head = flow->request != NULL
                  && g_strcmp0 (flow->request->method, "HEAD") == 0;

  flow->status = status;
  flow->response_started = TRUE;
  flow_append_printf (flow,
                      "HTTP/1.1 %u %s\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n",
                      status, moat_http_status_reason (status), strlen (body));
  if (denied_reason != NULL)
    {
      g_autofree char *value = sanitize_header_value (denied_reason);

      flow_append_printf (flow, "X-Moat-Denied: %s: %s\r\n",
                          flow->host ? flow->host : "unknown host", value);
    }
  flow_append_printf (flow, "Connection: %s\r\n\r\n",
                      keep_open ? "keep-alive" : "close");
  if (!head)
    flow_append (flow, body, strlen (body));
  if (!keep_open)
    flow->close_after_response = TRUE;
}

static gboolean
request_has_body (const MoatHttpRequest *request)
{
  return request->chunked || request->content_length > 0;
}

/* Ends the current request and makes the flow ready for the next one. */
static void
flow_finish_request (MoatFlow *flow)
{
  gboolean close_now = flow->close_after_response || flow->guest_eof
                       || !flow->request->keep_alive
                       || !moat_http_body_decoder_is_done (&flow->decoder);

  g_clear_pointer (&flow->request, moat_http_request_free);
  g_clear_pointer (&flow->url, g_free);
  g_clear_pointer (&flow->rule, g_free);
  g_clear_pointer (&flow->would_deny_reason, g_free);
  g_clear_pointer (&flow->policy, moat_policy_unref);
  g_clear_pointer (&flow->secrets, moat_secrets_unref);
  flow->would_deny = FALSE;
  flow->exfiltration = FALSE;
  g_byte_array_set_size (flow->upload, 0);
  flow->upload_waiting = FALSE;
  flow->download_paused = FALSE;
  flow->response_started = FALSE;
  flow->request_audited = FALSE;
  flow->close_after_response = FALSE;
  flow->status = 0;
  flow->bytes_sent = 0;
  flow->bytes_received = 0;

  if (close_now)
    {
      flow->state = FLOW_CLOSING;
      return;
    }
  flow->state = FLOW_REQUEST_HEAD;
  flow_arm_timeout (flow, MOAT_HTTP_IDLE_TIMEOUT_S);
}

/* Sends the denial response for the current request and audits it. */
static void
flow_deny_request (MoatFlow *flow, guint status, const char *reason)
{
  g_autofree char *body = NULL;
  /* Without reading the body the next request cannot be found, so a
   * request with a body ends the connection. So does a refused CONNECT,
   * because a client that sends tunnel bytes before the answer would have
   * them read as its next request. */
  gboolean keep_open = flow->request->keep_alive
                       && !request_has_body (flow->request)
                       && !flow->guest_eof
                       && g_ascii_strcasecmp (flow->request->method,
                                              "CONNECT") != 0;

  flow_debug (flow, "denied %s %s: %s", flow->request->method,
              flow->request->target, reason);
  body = g_strdup_printf ("moat denied this request to %s: %s\n",
                          flow->host ? flow->host : "an unknown host",
                          reason);
  flow_respond (flow, status, reason, body, keep_open);
  flow_audit_request (flow, FALSE, reason);
  flow_finish_request (flow);
}

/* Upstream callbacks */

static void
flow_on_response (MoatFetchRequest *fetch, guint status, GPtrArray *headers,
                  gpointer user_data)
{
  MoatFlow *flow = user_data;
  MoatHttpRequest *request = flow->request;
  g_autoptr (GPtrArray) connection_tokens = g_ptr_array_new_with_free_func (
      g_free);
  const char *content_length = NULL;
  gboolean transfer_encoding = FALSE;
  gboolean no_body;
  guint i;

  if (flow->state == FLOW_CLOSED)
    return;

  /* Fields listed in Connection are hop-by-hop too (RFC 9110 section
   * 7.6.1). */
  for (i = 0; i < headers->len; i++)
    {
      MoatHttpHeader *header = headers->pdata[i];

      if (g_ascii_strcasecmp (header->name, "Connection") == 0)
        {
          g_auto (GStrv) tokens = g_strsplit (header->value, ",", -1);
          char **token;

          for (token = tokens; *token != NULL; token++)
            g_ptr_array_add (connection_tokens,
                             g_strstrip (g_strdup (*token)));
        }
      else if (g_ascii_strcasecmp (header->name, "Content-Length") == 0)
        content_length = header->value;
      else if (g_ascii_strcasecmp (header->name, "Transfer-Encoding") == 0)
        transfer_encoding = TRUE;
    }

  no_body = g_strcmp0 (request->method, "HEAD") == 0 || status == 204
            || status == 304 || status < 200;
  if (no_body)
    flow->framing = RESPONSE_BODY_NONE;
  else if (content_length != NULL && !transfer_encoding)
    flow->framing = RESPONSE_BODY_LENGTH;
  else if (request->version_minor >= 1)
    flow->framing = RESPONSE_BODY_CHUNKED;
  else
    {
      flow->framing = RESPONSE_BODY_UNTIL_CLOSE;
      flow->close_after_response = TRUE;
    }
  if (!request->keep_alive)
    flow->close_after_response = TRUE;

  flow->status = status;
  flow->response_started = TRUE;
  flow_append_printf (flow, "HTTP/1.1 %u %s\r\n", status,
                      moat_http_status_reason (status));
  for (i = 0; i < headers->len; i++)
    {
      MoatHttpHeader *header = headers->pdata[i];
      gboolean listed = FALSE;
      guint j;
      g_autofree char *scrubbed = NULL;

      if (moat_http_header_is_hop_by_hop (header->name))
        continue;
      if (transfer_encoding
          && g_ascii_strcasecmp (header->name, "Content-Length") == 0)
        continue;
      for (j = 0; j < connection_tokens->len && !listed; j++)
        listed = g_ascii_strcasecmp (header->name,
                                     connection_tokens->pdata[j]) == 0;
      if (listed)
        continue;
      /* A real secret value never reaches the guest, even when the
       * upstream echoes it. */
      scrubbed = moat_secrets_scrub (flow->secrets, header->value);
      flow_append_printf (flow, "%s: %s\r\n", header->name,
                          scrubbed != NULL ? scrubbed : header->value);
    }
  if (flow->framing == RESPONSE_BODY_CHUNKED)
    flow_append_printf (flow, "Transfer-Encoding: chunked\r\n");
  if (flow->close_after_response)
    flow_append_printf (flow, "Connection: close\r\n");
  else if (request->version_minor == 0)
    flow_append_printf (flow, "Connection: keep-alive\r\n");
  flow_append (flow, "\r\n", 2);
  flow_flush (flow);
  flow_update_events (flow);
}

static gboolean
flow_on_body (MoatFetchRequest *fetch, const guint8 *data, gsize length,
              gpointer user_data)
{
  MoatFlow *flow = user_data;

  if (flow->state == FLOW_CLOSED)
    return TRUE;
  if (flow->framing == RESPONSE_BODY_NONE)
    return TRUE;
  if (flow_out_pending (flow) >= MOAT_BODY_BUFFER_MAX)
    {
      flow->download_paused = TRUE;
      return FALSE;
    }
  if (flow->framing == RESPONSE_BODY_CHUNKED)
    flow_append_printf (flow, "%zx\r\n", length);
  flow_append (flow, data, length);
  if (flow->framing == RESPONSE_BODY_CHUNKED)
    flow_append (flow, "\r\n", 2);
  flow->bytes_received += length;
  flow_flush (flow);
  flow_update_events (flow);
  return TRUE;
}

static gssize
flow_read_body (MoatFetchRequest *fetch, guint8 *buffer, gsize size,
                gpointer user_data)
{
  MoatFlow *flow = user_data;
  gsize length;

  if (flow->state == FLOW_CLOSED)
    return 0;
  if (flow->upload->len == 0)
    {
      if (moat_http_body_decoder_is_done (&flow->decoder))
        return 0;
      flow->upload_waiting = TRUE;
      flow_schedule_pump (flow);
      return -1;
    }
  length = MIN (size, flow->upload->len);
  memcpy (buffer, flow->upload->data, length);
  g_byte_array_remove_range (flow->upload, 0, length);
  flow->bytes_sent += length;
  /* Room in the upload buffer: decode more of what the guest sent. */
  flow_schedule_pump (flow);
  return length;
}

static void
flow_on_done (MoatFetchRequest *fetch, const GError *error,
              gpointer user_data)
{
  MoatFlow *flow = user_data;

  flow->fetch = NULL;
  if (flow->state == FLOW_CLOSED)
    return;

  if (error != NULL)
    {
      guint status = g_error_matches (error, MOAT_ERROR, MOAT_ERROR_TIMEOUT)
                     ? 504 : 502;

      g_message ("flow %" G_GUINT64_FORMAT ": %s %s failed upstream: %s",
                 flow->id, flow->request->method, flow->url, error->message);
      if (!flow->response_started)
        {
          g_autofree char *body = g_strdup_printf (
              "moat could not complete this request to %s: %s\n",
              flow->host, error->message);
          flow_respond (flow, status, NULL, body, FALSE);
          flow_audit_request (flow, TRUE, error->message);
        }
      else
        {
          /* Part of the response is already out, so closing the
           * connection is the only way to show the guest that the body
           * is incomplete. */
          flow_audit_request (flow, TRUE, error->message);
          flow_close (flow);
          return;
        }
    }
  else
    {
      if (flow->framing == RESPONSE_BODY_CHUNKED)
        flow_append (flow, "0\r\n\r\n", 5);
      flow_audit_request (flow, TRUE, NULL);
    }
  flow_finish_request (flow);
  flow_pump (flow);
}

static const MoatFetchCallbacks flow_fetch_callbacks = {
  .on_response = flow_on_response,
  .on_body = flow_on_body,
  .read_body = flow_read_body,
  .on_done = flow_on_done,
};

/* Request handling */

/* Returns the path and query of the request target, or %NULL when the
 * target has no path moat can forward (authority or asterisk form). */
static const char *
request_path (const MoatHttpRequest *request)
{
  const char *target = request->target;
  const char *authority;

  if (target[0] == '/')
    return target;
  authority = strstr (target, "://");
  if (authority == NULL)
    return NULL;
  authority += 3;
  target = strpbrk (authority, "/?");
  if (target == NULL)
    return "/";
  return target;
}

/* Returns why the request must be denied, or %NULL if the policy may
 * decide. */
static char *
flow_check_request (MoatFlow *flow, guint *status)
{
  MoatHttpRequest *request = flow->request;

  *status = 403;
  if (g_ascii_strcasecmp (request->method, "CONNECT") == 0)
    {
      *status = 405;
      return g_strdup ("CONNECT is not supported: moat intercepts HTTP and "
                       "HTTPS directly, so connect without a proxy");
    }
  if (request_path (request) == NULL)
    {
      *status = 400;
      return g_strdup_printf ("request target \"%s\" cannot be forwarded",
                              request->target);
    }
  if (flow->server_name != NULL
      && g_ascii_strcasecmp (flow->server_name, flow->host) != 0)
    return g_strdup_printf ("TLS server name \"%s\" does not match the DNS "
                            "name \"%s\" the connection was opened to",
                            flow->server_name, flow->host);
  if (request->host == NULL || strcmp (request->host, flow->host) != 0)
    return g_strdup_printf ("Host \"%s\" does not match the DNS name \"%s\" "
                            "the connection was opened to",
                            request->host ? request->host : "",
                            flow->host);
  if (request->port != 0 && request->port != flow->port)
    return g_strdup_printf ("Host port %u does not match the port %u the "
                            "connection was opened to", request->port,
                            flow->port);
  return NULL;
}

static char *
flow_build_url (MoatFlow *flow)
{
  gboolean https = flow->tls != NULL;
  guint default_port = https ? 443 : 80;
  const char *path = request_path (flow->request);

  if (flow->port == default_port)
    return g_strdup_printf ("%s://%s%s", https ? "https" : "http", flow->host,
                            path);
  return g_strdup_printf ("%s://%s:%u%s", https ? "https" : "http",
                          flow->host, flow->port, path);
}

/* Copies the end-to-end header fields of the request for the upstream. */
static GPtrArray *
flow_upstream_headers (const MoatHttpRequest *request)
{
  GPtrArray *headers = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_http_header_free);
  const char *connection = moat_http_request_get_header (request, "Connection");
  g_auto (GStrv) listed = g_strsplit (connection ? connection : "", ",", -1);
  guint i;

  for (i = 0; i < request->headers->len; i++)
    {
      MoatHttpHeader *header = request->headers->pdata[i];
      gboolean skip = moat_http_header_is_hop_by_hop (header->name)
                      || g_ascii_strcasecmp (header->name, "Expect") == 0
                      || g_ascii_strcasecmp (header->name, "Content-Length")
                         == 0;
      char **token;

      for (token = listed; *token != NULL && !skip; token++)
        skip = g_ascii_strcasecmp (g_strstrip (*token), header->name) == 0;
      if (!skip)
        g_ptr_array_add (headers, moat_http_header_new (header->name,
                                                        header->value));
    }
  return headers;
}

/* Starts the upstream transfer with @headers, which may hold real secret
 * values. */
static void
flow_start_fetch (MoatFlow *flow, GPtrArray *headers)
{
  MoatHttpRequest *request = flow->request;
  g_autoptr (GError) error = NULL;
  MoatFetchRequestInfo info = {
    .method = request->method,
    .url = flow->url,
    .headers = headers,
    .body_length = request->chunked ? -1
                   : MAX (request->content_length, (gint64) 0),
  };

  if (request->expect_continue && request_has_body (request))
    flow_append_printf (flow, "HTTP/1.1 100 Continue\r\n\r\n");

  flow->fetch = moat_fetch_start (flow->session->fetch, &info,
                                  &flow_fetch_callbacks, flow, &error);
  if (flow->fetch == NULL)
    {
      g_autofree char *body = g_strdup_printf (
          "moat could not start this request to %s: %s\n", flow->host,
          error->message);
      flow_respond (flow, 502, NULL, body, FALSE);
      flow_audit_request (flow, TRUE, error->message);
      flow_finish_request (flow);
    }
}

/**
 * flow_decide:
 * @flow: the flow, with its request
 * @headers: (element-type MoatHttpHeader): the fields for the upstream;
 *   placeholders of the secrets of this host are replaced in place
 * @decision: (out caller-allocates): the decision
 *
 * Decides the request under the policy and secrets it started with. A
 * placeholder on its way to a host that may not receive the secret is
 * denied by the rule "secret.NAME" before the policy rules are consulted.
 */
static void
flow_decide (MoatFlow *flow, GPtrArray *headers,
             MoatPolicyDecision *decision)
{
  MoatHttpRequest *request = flow->request;
  MoatPolicyRequest policy_request = {
    .host = flow->host,
    .port = flow->port,
    .method = request->method,
    .path = request_path (request),
  };
  const char *misplaced = NULL;

  if (!moat_secrets_inject (flow->secrets, flow->host, headers, &misplaced)
      || (misplaced = moat_secrets_find_misplaced (flow->secrets, flow->host,
                                                   request->target)) != NULL)
    {
      flow->exfiltration = TRUE;
      decision->allowed = FALSE;
      decision->rule = g_strdup_printf ("secret.%s", misplaced);
      decision->reason = g_strdup_printf (
          "possible exfiltration: the request carries the placeholder of "
          "secret \"%s\" to host \"%s\", which is not one of the secret's "
          "hosts", misplaced, flow->host);
      return;
    }

  moat_policy_decide (flow->policy, &policy_request, decision);
}

static void
flow_handle_request (MoatFlow *flow)
{
  g_autofree char *reason = NULL;
  g_autoptr (GPtrArray) headers = NULL;
  MoatPolicyDecision decision = { 0 };
  guint status;

  flow->request_start_us = g_get_monotonic_time ();
  flow->state = FLOW_REQUEST;
  flow_arm_timeout (flow, 0);
  moat_http_body_decoder_init (&flow->decoder, flow->request);
  flow->url = flow_build_url (flow);

  reason = flow_check_request (flow, &status);
  if (reason != NULL)
    {
      flow_deny_request (flow, status, reason);
      return;
    }

  /* A reload swaps the session's policy and secrets; this request keeps
   * the ones it started with until it ends. */
  flow->policy = moat_policy_ref (flow->session->policy);
  if (flow->session->secrets != NULL)
    flow->secrets = moat_secrets_ref (flow->session->secrets);
  headers = flow_upstream_headers (flow->request);
  flow_decide (flow, headers, &decision);
  flow->rule = g_strdup (decision.rule);

  if (!decision.allowed
      && moat_policy_get_mode (flow->policy) == MOAT_POLICY_MODE_ENFORCE)
    {
      g_autofree char *denial = g_strdup_printf ("rule \"%s\": %s",
                                                 decision.rule,
                                                 decision.reason);

      flow_deny_request (flow, 403, denial);
      moat_policy_decision_clear (&decision);
      return;
    }

  flow->would_deny = !decision.allowed;
  /* The same form as the reason of a denial in enforce mode. */
  if (flow->would_deny)
    flow->would_deny_reason = g_strdup_printf ("rule \"%s\": %s",
                                               decision.rule,
                                               decision.reason);
  flow_debug (flow, "%s %s %s: %s",
              decision.allowed ? "allowed" : "would deny (report mode)",
              flow->request->method, flow->url, decision.reason);
  moat_policy_decision_clear (&decision);
  flow_start_fetch (flow, headers);
}

/* Parses a request head from the input. Returns TRUE on progress. */
static gboolean
flow_process_head (MoatFlow *flow)
{
  g_autoptr (GError) error = NULL;
  MoatHttpRequest *request = NULL;
  gsize consumed = 0;
  guint error_status = 400;
  MoatHttpParseResult result;

  if (flow->in->len == 0)
    {
      if (flow->guest_eof)
        flow->state = FLOW_CLOSING;
      return flow->guest_eof;
    }
  if (flow->timeout_id == 0)
    flow_arm_timeout (flow, flow_head_timeout (flow));

  result = moat_http_parse_request_head (flow->in->data, flow->in->len,
                                         &request, &consumed, &error_status,
                                         &error);
  if (result == MOAT_HTTP_PARSE_INCOMPLETE)
    {
      if (flow->guest_eof)
        flow->state = FLOW_CLOSING;
      return flow->guest_eof;
    }
  if (result == MOAT_HTTP_PARSE_ERROR)
    {
      g_autofree char *body = g_strdup_printf (
          "moat could not parse this request: %s\n", error->message);
      MoatAuditEvent *event = flow_audit_event_new (flow, "request", FALSE,
                                                    error->message);

      moat_audit_event_add_int (event, "status", error_status);
      moat_audit_emit (flow->session->audit, event);
      flow_respond (flow, error_status, NULL, body, FALSE);
      flow->state = FLOW_CLOSING;
      return TRUE;
    }

  g_byte_array_remove_range (flow->in, 0, consumed);
  flow->request = request;
  flow_handle_request (flow);
  return TRUE;
}

/* Moves request body bytes from the input to the upload buffer. Returns
 * TRUE on progress. */
static gboolean
flow_process_body (MoatFlow *flow)
{
  gsize offset = 0;
  gboolean decoded = FALSE;

  if (flow->fetch == NULL)
    return FALSE;

  while (offset < flow->in->len
         && flow->upload->len < MOAT_BODY_BUFFER_MAX
         && !moat_http_body_decoder_is_done (&flow->decoder))
    {
      g_autoptr (GError) error = NULL;
      const guint8 *data = NULL;
      gsize data_length = 0;
      gsize room = MOAT_BODY_BUFFER_MAX - flow->upload->len;
      gsize input_length = MIN (flow->in->len - offset, room);
      gssize consumed = moat_http_body_decoder_feed (&flow->decoder,
                                                     flow->in->data + offset,
                                                     input_length, &data,
                                                     &data_length, &error);
      if (consumed < 0)
        {
          flow_debug (flow, "invalid request body: %s", error->message);
          flow_close (flow);
          return TRUE;
        }
      if (consumed == 0)
        break;
      g_byte_array_append (flow->upload, data, data_length);
      offset += consumed;
      decoded = TRUE;
    }
  if (offset > 0)
    g_byte_array_remove_range (flow->in, 0, offset);

  if (flow->guest_eof && !moat_http_body_decoder_is_done (&flow->decoder)
      && flow->in->len == 0)
    {
      flow_debug (flow, "guest closed the connection inside a request body");
      flow_close (flow);
      return TRUE;
    }
  if ((decoded || moat_http_body_decoder_is_done (&flow->decoder))
      && flow->upload_waiting)
    {
      flow->upload_waiting = FALSE;
      moat_fetch_request_resume_upload (flow->fetch);
    }
  return decoded;
}

/* Classification */

static gboolean
is_method_char (guint8 c)
{
  return c >= 'A' && c <= 'Z';
}

/* Peeks at the first bytes and picks TLS, HTTP or neither. */
static void
flow_sniff (MoatFlow *flow)
{
  guint8 buffer[MOAT_SNIFF_MAX];
  ssize_t n = recv (flow->fd, buffer, sizeof buffer, MSG_PEEK);
  gsize i;

  if (n < 0)
    {
      if (errno != EAGAIN && errno != EINTR)
        flow_close (flow);
      return;
    }
  if (n == 0)
    {
      flow_audit_connection (flow, FALSE, NULL,
                             "connection closed before any data");
      flow_close (flow);
      return;
    }

  if (buffer[0] == TLS_RECORD_TYPE_HANDSHAKE)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *server_name = NULL;
      MoatTlsHelloResult result = moat_tls_hello_parse (buffer, n,
                                                        &server_name, &error);

      if (result == MOAT_TLS_HELLO_INCOMPLETE && n < MOAT_SNIFF_MAX)
        return;
      if (result != MOAT_TLS_HELLO_OK)
        {
          g_autofree char *reason = g_strdup_printf (
              "invalid TLS ClientHello: %s",
              error ? error->message : "larger than the sniff limit");
          flow_audit_connection (flow, FALSE, "tls", reason);
          flow_close (flow);
          return;
        }
      flow->server_name = g_steal_pointer (&server_name);
      flow->tls = moat_tls_server_new (flow->session->ca, flow->fd,
                                       flow->host, &error);
      if (flow->tls == NULL)
        {
          flow_audit_connection (flow, FALSE, "tls", error->message);
          flow_close (flow);
          return;
        }
      flow_audit_connection (flow, TRUE, "tls", NULL);
      flow->state = FLOW_TLS_HANDSHAKE;
      flow_arm_timeout (flow, flow_head_timeout (flow));
      return;
    }

  for (i = 0; i < (gsize) n && i <= METHOD_TOKEN_MAX; i++)
    {
      if (buffer[i] == ' ' && i > 0)
        {
          flow_audit_connection (flow, TRUE, "http", NULL);
          flow->state = FLOW_REQUEST_HEAD;
          flow_arm_timeout (flow, flow_head_timeout (flow));
          return;
        }
      if (!is_method_char (buffer[i]))
        break;
    }
  if (i == (gsize) n && i <= METHOD_TOKEN_MAX)
    return;

  flow_audit_connection (flow, FALSE, "other",
                         "protocol is neither HTTP nor TLS");
  flow_close (flow);
}

static void
flow_handshake (MoatFlow *flow)
{
  g_autoptr (GError) error = NULL;
  MoatTlsStatus status = moat_tls_server_handshake (flow->tls, &error);

  if (status == MOAT_TLS_AGAIN)
    return;
  if (status != MOAT_TLS_OK)
    {
      /* tls.c's messages start with "TLS handshake failed". */
      flow_audit_connection (flow, FALSE, "tls",
                             error ? error->message
                                   : "TLS handshake failed: connection "
                                     "closed");
      flow_close (flow);
      return;
    }
  flow_debug (flow, "TLS handshake done, SNI %s",
              flow->server_name ? flow->server_name : "(none)");
  flow->state = FLOW_REQUEST_HEAD;
}

/* Event loop glue */

static void
flow_update_events (MoatFlow *flow)
{
  GIOCondition events = 0;

  if (flow->state == FLOW_CLOSED || flow->watch == NULL)
    return;
  switch (flow->state)
    {
    case FLOW_SNIFF:
      events = G_IO_IN;
      break;
    case FLOW_TLS_HANDSHAKE:
      events = moat_tls_server_wants_write (flow->tls) ? G_IO_OUT : G_IO_IN;
      break;
    default:
      if (flow_wants_input (flow))
        events |= G_IO_IN;
      if (flow_out_pending (flow) > 0)
        events |= G_IO_OUT;
      if (flow->tls != NULL && flow->tls_write_size > 0
          && moat_tls_server_wants_write (flow->tls))
        events |= G_IO_OUT;
      break;
    }
  moat_fd_watch_set_events (flow->watch, events);
}

/* Runs reads, parsing, body decoding and writes until nothing moves. */
static void
flow_pump (MoatFlow *flow)
{
  gboolean progress = TRUE;
  guint rounds = 0;

  while (progress && flow->state != FLOW_CLOSED && rounds++ < 64)
    {
      progress = FALSE;
      if (flow->state == FLOW_SNIFF)
        {
          flow_sniff (flow);
          progress = flow->state != FLOW_SNIFF;
          continue;
        }
      if (flow->state == FLOW_TLS_HANDSHAKE)
        {
          flow_handshake (flow);
          progress = flow->state != FLOW_TLS_HANDSHAKE;
          continue;
        }

      if (!flow_flush (flow))
        return;
      if (flow_read (flow))
        progress = TRUE;
      switch (flow->state)
        {
        case FLOW_REQUEST_HEAD:
          progress |= flow_process_head (flow);
          break;
        case FLOW_REQUEST:
          progress |= flow_process_body (flow);
          break;
        case FLOW_CLOSING:
          if (flow_out_pending (flow) == 0)
            {
              if (flow->tls != NULL)
                moat_tls_server_close (flow->tls);
              flow_close (flow);
            }
          break;
        default:
          break;
        }
      if (flow->state != FLOW_CLOSED && !flow_flush (flow))
        return;
    }
  /* The loop stopped on its round limit with work left: continue from
   * the main loop so other flows get their turn. */
  if (progress && flow->state != FLOW_CLOSED)
    flow_schedule_pump (flow);
  flow_update_events (flow);
}

static void
flow_on_io (GIOCondition revents, gpointer user_data)
{
  MoatFlow *flow = user_data;

  /* With reading paused, a hang-up would be reported on every loop
   * iteration: treat it as the end of the guest's data. */
  if ((revents & (G_IO_HUP | G_IO_ERR)) && !(revents & G_IO_IN)
      && flow->state != FLOW_SNIFF && flow->state != FLOW_TLS_HANDSHAKE)
    flow->guest_eof = TRUE;
  if ((revents & G_IO_ERR) && flow_out_pending (flow) > 0)
    {
      flow_close (flow);
      return;
    }
  flow_pump (flow);
}

/**
 * moat_flow_new:
 * @session: the session; the flow adds itself to its flow table
 * @fd: moat's end of a new unix connection from libslirp; the flow owns it
 * @key: the guest connection it belongs to, or %NULL if unknown
 *
 * Return: the flow, or %NULL if it was refused and @fd closed.
 */
MoatFlow *
moat_flow_new (MoatSession *session, int fd, const MoatFlowKey *key)
{
  MoatFlow *flow = g_new0 (MoatFlow, 1);
  const char *name = NULL;

  flow->session = session;
  flow->id = ++session->next_flow_id;
  flow->fd = fd;
  flow->in = g_byte_array_new ();
  flow->out = g_byte_array_new ();
  flow->upload = g_byte_array_new ();
  if (key != NULL)
    {
      flow->guest = moat_packet_format_endpoint (key->guest, key->guest_port);
      flow->port = key->destination_port;
      name = moat_names_lookup (session->names, key->destination);
    }
  else
    flow->guest = g_strdup ("unknown");
  flow->host = g_strdup (name);

  if (flow->host == NULL
      || g_hash_table_size (session->flows) >= MOAT_FLOWS_MAX)
    {
      flow_audit_connection (flow, FALSE, NULL,
                             flow->host == NULL
                               ? "connection cannot be attributed to a DNS "
                                 "name"
                               : "too many connections");
      moat_flow_free (flow);
      return NULL;
    }

  g_hash_table_add (session->flows, flow);
  flow->state = FLOW_SNIFF;
  flow->watch = moat_fd_watch_new (fd, G_IO_IN, flow_on_io, flow);
  flow_arm_timeout (flow, MOAT_SNIFF_TIMEOUT_S);
  flow_debug (flow, "new connection");
  return flow;
}
