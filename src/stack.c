/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * stack.c - libslirp in restricted mode, driven from the GLib main loop
 *
 * Theory of operation
 *
 * libslirp terminates the guest's TCP. In restricted mode it opens no host
 * socket of its own. A guest TCP connection is accepted only when its
 * destination (address, port) has a guest forward. For moat, every guest
 * forward points at one unix socket that moat listens on. libslirp
 * completes the guest's handshake, then connect()s to that socket, one
 * unix connection per guest connection, from inside slirp_input().
 *
 * The connect is blocking, so the listener must have backlog room, and
 * the new connection carries no trace of the guest connection it belongs
 * to. Both are solved in moat_stack_input(): right after slirp_input()
 * returns, the listener is drained with accept(), and a connection found
 * then was created by the packet just fed in, whose addresses the guard
 * passed along.
 *
 * libslirp's own sockets (its ends of those unix connections) are polled
 * by a GSource that calls slirp_pollfds_fill() when the loop prepares and
 * slirp_pollfds_poll() when it dispatches. libslirp's TCP timers run from
 * slirp_pollfds_poll() too, so the source also wakes at the timeout that
 * slirp_pollfds_fill() asks for.
 */
#define G_LOG_DOMAIN "moat-stack"

#include "stack.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <slirp/libslirp.h>

#include "error.h"
#include "sockets.h"
#include "moat-limits.h"

/* Name of the guest forward socket inside the session directory. */
#define FORWARD_SOCKET_NAME "fwd"

/*
 * Largest MTU handed to libslirp, in bytes: an MSS of 21845 (a third of
 * 65535) plus 40 bytes of IPv4 and TCP headers. libslirp 4.7 negotiates no
 * window scaling, so its window is at most 65535 bytes. After it writes
 * buffered guest data to moat's socket, tcp_output() sends a window update
 * only when the window grew by two segments (adv >= 2 * t_maxseg), because
 * its other test (2 * adv >= receive buffer) cannot pass with a 128 KiB
 * buffer. With segments near 32 KiB (libslirp's cap at MTU 65520), a guest
 * that held back a last partial segment got no update. It waited for its
 * persist timer, about 200 ms, so uploads fell to about 2 MB/s whenever
 * moat's socket filled. A guest holds back only a window r smaller than a
 * segment, and draining the buffer then grows the window by 65535 - r,
 * which is more than two segments when a segment is at most 65535 / 3.
 * The guest keeps the configured MTU: libslirp uses the MRU only to pick
 * its MSS.
 */
#define STACK_SLIRP_MTU_MAX (21845 + 40)

/*
 * GLib signals its wakeup eventfd whenever a poll record is added or
 * removed, which makes the next poll() return at once. Re-registering
 * libslirp's descriptors on every prepare therefore kept the loop
 * spinning, so records are kept per descriptor and only their events are
 * updated in place: GLib reads GPollFD.events anew on every iteration.
 */
typedef struct {
  GSource source;
  MoatStack *stack;
  /* Registered records by descriptor: int fd -> GPollFD *. */
  GHashTable *records;
  /* Records in the order of this iteration's slirp_pollfds_fill(); the
   * index that add_poll returns points in here. */
  GPtrArray *active;
  guint64 generation;
  gint64 deadline_us;
} SlirpSource;

/* A registered record, tagged with the iteration that last used it. */
typedef struct {
  GPollFD pollfd;
  guint64 generation;
} SlirpPollRecord;

typedef struct {
  MoatStack *stack;
  SlirpTimerId id;
  void *cb_opaque;
  guint source_id;
} StackTimer;

struct MoatStack {
  Slirp *slirp;
  SlirpSource *source;
  char *socket_path;
  int listen_fd;
  /* Keys (address << 16 | port, see forward_key()) of the registered
   * guest forwards. */
  GHashTable *forwards;
  MoatStackOutputFunc output;
  MoatStackAcceptFunc accept_func;
  gpointer user_data;
  guint64 guest_errors;
  /* Guest SYNs (or unreadable frames) not yet matched by an accepted
   * connection, and when the last one arrived (monotonic, µs). */
  guint handshakes_pending;
  gint64 last_syn_us;
};

/* libslirp callbacks */

static ssize_t
stack_send_packet (const void *buffer, size_t length, void *opaque)
{
  MoatStack *stack = opaque;

  stack->output (buffer, length, stack->user_data);
  return length;
}

static void
stack_guest_error (const char *message, void *opaque)
{
  MoatStack *stack = opaque;

  /* The guest controls how often this happens: log the first ones and
   * then every 1000th. */
  if (stack->guest_errors++ < 10 || stack->guest_errors % 1000 == 0)
    g_warning ("libslirp reported a guest error (%" G_GUINT64_FORMAT
               " so far): %s", stack->guest_errors, message);
}

static int64_t
stack_clock_get_ns (void *opaque)
{
  return g_get_monotonic_time () * 1000;
}

static gboolean
stack_timer_fire (gpointer user_data)
{
  StackTimer *timer = user_data;

  timer->source_id = 0;
  slirp_handle_timer (timer->stack->slirp, timer->id, timer->cb_opaque);
  return G_SOURCE_REMOVE;
}

static void *
stack_timer_new_opaque (SlirpTimerId id, void *cb_opaque, void *opaque)
{
  StackTimer *timer = g_new0 (StackTimer, 1);

  timer->stack = opaque;
  timer->id = id;
  timer->cb_opaque = cb_opaque;
  return timer;
}

static void
stack_timer_free (void *timer_pointer, void *opaque)
{
  StackTimer *timer = timer_pointer;

  if (timer->source_id != 0)
    g_source_remove (timer->source_id);
  g_free (timer);
}

/* @expire_time is in milliseconds on the clock of stack_clock_get_ns(). */
static void
stack_timer_mod (void *timer_pointer, int64_t expire_time, void *opaque)
{
  StackTimer *timer = timer_pointer;
  gint64 now_ms = g_get_monotonic_time () / 1000;
  gint64 delay_ms = MAX (expire_time - now_ms, 0);

  if (timer->source_id != 0)
    g_source_remove (timer->source_id);
  timer->source_id = g_timeout_add ((guint) MIN (delay_ms, G_MAXUINT),
                                    stack_timer_fire, timer);
}

static void
stack_register_poll_fd (int fd, void *opaque)
{
  /* Descriptors are collected on every loop iteration by
   * slirp_pollfds_fill(), so there is nothing to remember here. */
}

static void slirp_source_remove_fd (SlirpSource *source, int fd);

/* libslirp 4.7 calls this before it closes a TCP socket. */
static void
stack_unregister_poll_fd (int fd, void *opaque)
{
  MoatStack *stack = opaque;

  if (stack->source != NULL)
    slirp_source_remove_fd (stack->source, fd);
}

static void
stack_notify (void *opaque)
{
  /* libslirp runs only on the main loop's thread, and the next prepare
   * collects whatever changed. Waking the loop here made it spin: libslirp
   * calls this for every segment that frees buffer space. */
}

static const SlirpCb stack_callbacks = {
  .send_packet = stack_send_packet,
  .guest_error = stack_guest_error,
  .clock_get_ns = stack_clock_get_ns,
  .timer_free = stack_timer_free,
  .timer_mod = stack_timer_mod,
  .register_poll_fd = stack_register_poll_fd,
  .unregister_poll_fd = stack_unregister_poll_fd,
  .notify = stack_notify,
  .timer_new_opaque = stack_timer_new_opaque,
};

/* The GSource that polls libslirp's sockets */

static int
slirp_source_add_poll (int fd, int events, void *opaque)
{
  SlirpSource *source = opaque;
  SlirpPollRecord *record = g_hash_table_lookup (source->records,
                                                 GINT_TO_POINTER (fd));
  gushort wanted = 0;

  if (events & SLIRP_POLL_IN)
    wanted |= G_IO_IN;
  if (events & SLIRP_POLL_OUT)
    wanted |= G_IO_OUT;
  if (events & SLIRP_POLL_PRI)
    wanted |= G_IO_PRI;
  if (events & SLIRP_POLL_ERR)
    wanted |= G_IO_ERR;
  if (events & SLIRP_POLL_HUP)
    wanted |= G_IO_HUP;

  if (record == NULL)
    {
      record = g_new0 (SlirpPollRecord, 1);
      record->pollfd.fd = fd;
      g_hash_table_insert (source->records, GINT_TO_POINTER (fd), record);
      g_source_add_poll ((GSource *) source, &record->pollfd);
    }
  record->pollfd.events = wanted;
  record->generation = source->generation;
  g_ptr_array_add (source->active, record);
  return source->active->len - 1;
}

static int
slirp_source_get_revents (int index, void *opaque)
{
  SlirpSource *source = opaque;
  SlirpPollRecord *record;
  int revents = 0;

  if (index < 0 || (guint) index >= source->active->len)
    return 0;
  record = source->active->pdata[index];
  if (record == NULL)
    return 0;
  if (record->pollfd.revents & G_IO_IN)
    revents |= SLIRP_POLL_IN;
  if (record->pollfd.revents & G_IO_OUT)
    revents |= SLIRP_POLL_OUT;
  if (record->pollfd.revents & G_IO_PRI)
    revents |= SLIRP_POLL_PRI;
  if (record->pollfd.revents & G_IO_ERR)
    revents |= SLIRP_POLL_ERR;
  if (record->pollfd.revents & G_IO_HUP)
    revents |= SLIRP_POLL_HUP;
  return revents;
}

/*
 * Clears the events of records that libslirp did not poll this iteration,
 * or unregisters all records when @all is set. A socket whose buffers are
 * full or empty drops out of slirp_pollfds_fill() and comes back many
 * times a second, and unregistering it each time woke the loop twice.
 * poll() still reports hang-ups and errors with no events requested, and
 * POLLNVAL for a descriptor closed without stack_unregister_poll_fd(),
 * so such a record is unregistered to keep the loop from spinning.
 */
static void
slirp_source_remove_stale (SlirpSource *source, gboolean all)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, source->records);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      SlirpPollRecord *record = value;

      if (!all && record->generation == source->generation)
        continue;
      if (!all
          && !(record->pollfd.revents & (G_IO_HUP | G_IO_ERR | G_IO_NVAL)))
        {
          record->pollfd.events = 0;
          continue;
        }
      g_source_remove_poll ((GSource *) source, &record->pollfd);
      g_hash_table_iter_remove (&iter);
    }
}

/* Unregisters the record of @fd, which libslirp is about to close. */
static void
slirp_source_remove_fd (SlirpSource *source, int fd)
{
  SlirpPollRecord *record = g_hash_table_lookup (source->records,
                                                 GINT_TO_POINTER (fd));
  guint i;

  if (record == NULL)
    return;
  /* libslirp may close a socket in the middle of an iteration. */
  for (i = 0; i < source->active->len; i++)
    if (source->active->pdata[i] == record)
      source->active->pdata[i] = NULL;
  g_source_remove_poll ((GSource *) source, &record->pollfd);
  g_hash_table_remove (source->records, GINT_TO_POINTER (fd));
}

static gboolean
slirp_source_prepare (GSource *gsource, gint *timeout)
{
  SlirpSource *source = (SlirpSource *) gsource;
  uint32_t slirp_timeout = 1000;

  source->generation++;
  g_ptr_array_set_size (source->active, 0);
  slirp_pollfds_fill (source->stack->slirp, &slirp_timeout,
                      slirp_source_add_poll, source);
  slirp_source_remove_stale (source, FALSE);

  source->deadline_us = g_get_monotonic_time () + slirp_timeout * 1000LL;
  *timeout = (gint) MIN (slirp_timeout, (uint32_t) G_MAXINT);
  return FALSE;
}

static gboolean
slirp_source_check (GSource *gsource)
{
  SlirpSource *source = (SlirpSource *) gsource;
  guint i;

  for (i = 0; i < source->active->len; i++)
    {
      SlirpPollRecord *record = source->active->pdata[i];

      if (record != NULL && record->pollfd.revents != 0)
        return TRUE;
    }
  return g_get_monotonic_time () >= source->deadline_us;
}

static gboolean
slirp_source_dispatch (GSource *gsource, GSourceFunc callback, gpointer data)
{
  SlirpSource *source = (SlirpSource *) gsource;

  slirp_pollfds_poll (source->stack->slirp, 0, slirp_source_get_revents,
                      source);
  return G_SOURCE_CONTINUE;
}

static void
slirp_source_finalize (GSource *gsource)
{
  SlirpSource *source = (SlirpSource *) gsource;

  g_hash_table_unref (source->records);
  g_ptr_array_unref (source->active);
}

static GSourceFuncs slirp_source_funcs = {
  .prepare = slirp_source_prepare,
  .check = slirp_source_check,
  .dispatch = slirp_source_dispatch,
  .finalize = slirp_source_finalize,
};

/* The guest forward listener */

static gboolean
stack_listen (MoatStack *stack, GError **error)
{
  struct sockaddr_un address = { .sun_family = AF_UNIX };

  if (strlen (stack->socket_path) >= sizeof address.sun_path)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "guest forward socket path \"%s\" is longer than %zu "
                   "bytes: set TMPDIR or XDG_RUNTIME_DIR to a shorter "
                   "directory", stack->socket_path,
                   sizeof address.sun_path - 1);
      return FALSE;
    }
  memcpy (address.sun_path, stack->socket_path, strlen (stack->socket_path));

  stack->listen_fd = moat_socket_new (AF_UNIX, SOCK_STREAM, 0, TRUE);
  if (stack->listen_fd < 0
      || bind (stack->listen_fd, (struct sockaddr *) &address,
               sizeof address) < 0
      || listen (stack->listen_fd, SOMAXCONN) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "cannot listen on guest forward socket \"%s\": %s",
                   stack->socket_path, g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

static void
stack_accept_pending (MoatStack *stack, const MoatFlowKey *key)
{
  for (;;)
    {
      int fd = moat_socket_accept (stack->listen_fd);
      if (fd < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno != EAGAIN)
            g_warning ("accepting a guest connection failed: %s, ignoring",
                       g_strerror (errno));
          return;
        }
      if (stack->handshakes_pending > 0)
        stack->handshakes_pending--;
      stack->accept_func (fd, key, stack->user_data);
      /* A second connection after the same packet cannot belong to it. */
      key = NULL;
    }
}

/*
 * Returns whether @frame starts a guest TCP handshake: an IPv4 TCP
 * segment with SYN set, or an IPv4 frame this check cannot read (a
 * fragment, a truncated header). For a guest forward, libslirp 4.7
 * connects to the forward socket later, when the segment that completes
 * the handshake arrives.
 */
static gboolean
frame_starts_handshake (const guint8 *frame, gsize length)
{
  const guint8 *ip = frame + MOAT_ETH_HEADER_LEN;
  gsize ip_header_length;

  /* libslirp runs without IPv6, so only IPv4 reaches a guest forward. */
  if (length < MOAT_ETH_HEADER_LEN || frame[12] != 0x08 || frame[13] != 0x00)
    return FALSE;
  if (length < MOAT_ETH_HEADER_LEN + 20 || (ip[0] >> 4) != 4)
    return TRUE;
  if (ip[9] != IPPROTO_TCP)
    return FALSE;
  /* MF set or a non-zero offset: the TCP header is not readable here. */
  if ((ip[6] & 0x3f) != 0 || ip[7] != 0)
    return TRUE;
  ip_header_length = (gsize) (ip[0] & 0x0f) * 4;
  /* The flags are byte 13 of the TCP header (RFC 9293 section 3.1). */
  if (length < MOAT_ETH_HEADER_LEN + ip_header_length + 14)
    return TRUE;
  return (ip[ip_header_length + 13] & 0x02) != 0;
}

/**
 * moat_stack_new:
 * @config: the virtual network layout
 * @output: receives frames for the guest
 * @accept_func: receives new guest TCP connections
 * @user_data: passed to the callbacks
 * @error: return location for an error
 *
 * Return: the stack, polled from the default main context.
 */
MoatStack *
moat_stack_new (const MoatStackConfig *config, MoatStackOutputFunc output,
                MoatStackAcceptFunc accept_func, gpointer user_data,
                GError **error)
{
  g_autoptr (MoatStack) stack = g_new0 (MoatStack, 1);
  SlirpConfig slirp_config = {
    /* Version 4 adds disable_dhcp; version 3 adds disable_dns. */
    .version = 4,
    .restricted = 1,
    .in_enabled = true,
    .vnetwork = config->network,
    .vnetmask = config->netmask,
    .vhost = config->gateway,
    .in6_enabled = false,
    .vdhcp_start = config->guest,
    .vnameserver = config->dns,
    .if_mtu = MIN (config->mtu, STACK_SLIRP_MTU_MAX),
    .if_mru = MIN (config->mtu, STACK_SLIRP_MTU_MAX),
    .disable_host_loopback = true,
    /* The emulation helpers (FTP, IRC and others) and TFTP are where most
     * of libslirp's CVEs were found. */
    .enable_emu = false,
    .disable_dns = true,
    .disable_dhcp = true,
  };

  stack->listen_fd = -1;
  stack->output = output;
  stack->accept_func = accept_func;
  stack->user_data = user_data;
  stack->forwards = g_hash_table_new (g_direct_hash, g_direct_equal);
  stack->socket_path = g_build_filename (config->socket_dir,
                                         FORWARD_SOCKET_NAME, NULL);
  if (!stack_listen (stack, error))
    return NULL;

  stack->slirp = slirp_new (&slirp_config, &stack_callbacks, stack);
  if (stack->slirp == NULL)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "libslirp rejected the virtual network configuration "
                   "(MTU %u)", config->mtu);
      return NULL;
    }

  stack->source = (SlirpSource *) g_source_new (&slirp_source_funcs,
                                                sizeof (SlirpSource));
  stack->source->stack = stack;
  stack->source->records = g_hash_table_new_full (g_direct_hash,
                                                  g_direct_equal, NULL,
                                                  g_free);
  stack->source->active = g_ptr_array_new ();
  /* As for MoatFdWatch: no extra wakeups around each dispatch. */
  g_source_set_can_recurse ((GSource *) stack->source, TRUE);
  g_source_attach ((GSource *) stack->source, NULL);
  return g_steal_pointer (&stack);
}

void
moat_stack_free (MoatStack *stack)
{
  if (stack == NULL)
    return;
  if (stack->source != NULL)
    {
      slirp_source_remove_stale (stack->source, TRUE);
      g_source_destroy ((GSource *) stack->source);
      g_source_unref ((GSource *) stack->source);
      /* slirp_cleanup() below unregisters every socket. */
      stack->source = NULL;
    }
  if (stack->slirp != NULL)
    slirp_cleanup (stack->slirp);
  if (stack->listen_fd >= 0)
    {
      close (stack->listen_fd);
      unlink (stack->socket_path);
    }
  g_hash_table_unref (stack->forwards);
  g_free (stack->socket_path);
  g_free (stack);
}

/**
 * moat_stack_input:
 * @stack: the stack
 * @frame: a frame from the guest that the guard let through
 * @length: its length
 * @key: for a TCP segment, its addresses and ports; %NULL otherwise
 *
 * Feeds the frame to libslirp, then accepts the unix connection that the
 * frame may have caused and hands it over, attributed to @key.
 */
void
moat_stack_input (MoatStack *stack, const guint8 *frame, gsize length,
                  const MoatFlowKey *key)
{
  gint64 now_us;

  slirp_input (stack->slirp, frame, (int) length);

  /* accept() after every frame cost one failing system call per ACK of a
   * download. So it runs only while a handshake may still complete, from
   * a SYN until each SYN got its connection or libslirp dropped the
   * half-open connection. */
  if (frame_starts_handshake (frame, length))
    {
      if (stack->handshakes_pending < G_MAXUINT)
        stack->handshakes_pending++;
      stack->last_syn_us = g_get_monotonic_time ();
    }
  if (stack->handshakes_pending == 0)
    return;
  now_us = g_get_monotonic_time ();
  if (now_us - stack->last_syn_us
      > (MOAT_HANDSHAKE_TIMEOUT_S + 1) * G_USEC_PER_SEC)
    {
      stack->handshakes_pending = 0;
      return;
    }
  stack_accept_pending (stack, key);
}

/* Needs a 64-bit gsize to hold all 48 bits, as on every platform moat
 * supports (x86_64 and arm64). */
G_STATIC_ASSERT (sizeof (gsize) >= 8);

static gpointer
forward_key (struct in_addr address, guint16 port)
{
  return GSIZE_TO_POINTER (((gsize) ntohl (address.s_addr) << 16) | port);
}

/**
 * moat_stack_forward:
 * @stack: the stack
 * @address: a synthetic address handed out by DNS
 * @port: TCP port, host byte order
 * @error: return location for an error
 *
 * Registers a guest forward for (@address, @port) unless it exists, so
 * that libslirp accepts guest connections to it.
 *
 * Return: %TRUE if the forward exists afterwards.
 */
gboolean
moat_stack_forward (MoatStack *stack, struct in_addr address, guint16 port,
                    GError **error)
{
  gpointer key = forward_key (address, port);
  char text[INET_ADDRSTRLEN];

  if (g_hash_table_contains (stack->forwards, key))
    return TRUE;
  /* NOTE: forwards are removed only when their address is reused, so a
   * guest that has touched this many ports gets no new ones until then. */
  if (g_hash_table_size (stack->forwards) >= MOAT_FORWARDS_MAX)
    {
      inet_ntop (AF_INET, &address, text, sizeof text);
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT,
                   "too many forwarded ports: %s:%u would exceed %d "
                   "(address, port) pairs", text, port, MOAT_FORWARDS_MAX);
      return FALSE;
    }
  if (slirp_add_unix (stack->slirp, stack->socket_path, &address, port) < 0)
    {
      inet_ntop (AF_INET, &address, text, sizeof text);
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "libslirp rejected a guest forward for %s:%u", text, port);
      return FALSE;
    }
  g_hash_table_add (stack->forwards, key);
  return TRUE;
}

/* Removes every guest forward of @address, before it is reused. */
void
moat_stack_unforward_address (MoatStack *stack, struct in_addr address)
{
  GHashTableIter iter;
  gpointer key;

  g_hash_table_iter_init (&iter, stack->forwards);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      gsize value = GPOINTER_TO_SIZE (key);
      guint16 port = (guint16) (value & 0xffff);

      if ((value >> 16) != ntohl (address.s_addr))
        continue;
      slirp_remove_guestfwd (stack->slirp, address, port);
      g_hash_table_iter_remove (&iter);
    }
}
