/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * transport.c - QEMU's stream netdev: length-prefixed frames on a socket
 *
 * QEMU's "-netdev stream" sends each Ethernet frame preceded by its length
 * as a 32-bit big-endian integer, and expects the same in return. The
 * socket is a byte stream, so reads and writes may end anywhere inside a
 * length or a frame. Both directions therefore keep partial state across
 * calls.
 *
 * In listen mode (--socket) moat accepts one QEMU at a time and, when it
 * disconnects (guest reboot, QEMU restart), accepts the next one. With
 * --connect or --fd there is nothing to wait for, and a disconnect is final.
 *
 * TAP mode (moat run) reads and writes a Linux TAP device opened with
 * IFF_NO_PI instead: each read() returns one frame and each write() sends
 * one, with no length prefix. Outgoing frames that the device does not take
 * at once wait in the same queue, still prefixed, so that the queue can
 * tell where each frame ends.
 */
#define G_LOG_DOMAIN "moat-transport"

#include "transport.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <fcntl.h>

#include "error.h"
#include "sockets.h"
#include "fdwatch.h"
#include "moat-limits.h"

#define LENGTH_PREFIX 4
/* Bytes read from the socket per read() call. */
#define READ_CHUNK (256 * 1024)
/* Frames read from a TAP device per wakeup, so that a busy device cannot
 * starve the rest of the main loop. */
#define TAP_READS_PER_WAKEUP 64

struct MoatTransport {
  int listen_fd;
  char *listen_path;
  MoatFdWatch *listen_watch;

  int fd;
  MoatFdWatch *watch;
  /* TRUE when @fd is a TAP device: one frame per read() and write(). */
  gboolean tap;

  /* Received bytes not yet forming a complete frame. */
  guint8 *in;
  gsize in_length;

  /* Frames (with their length prefixes) not yet written. */
  GByteArray *out;
  gsize out_offset;
  guint64 dropped_frames;

  MoatTransportFrameFunc on_frame;
  MoatTransportStateFunc on_state;
  gpointer user_data;
};

static void transport_on_io (GIOCondition revents, gpointer user_data);

static gboolean
set_nonblocking (int fd, GError **error)
{
  int flags = fcntl (fd, F_GETFL);

  if (flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "cannot make socket %d non-blocking: %s", fd,
                   g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

static gboolean
fill_sockaddr (const char *path, struct sockaddr_un *address, GError **error)
{
  memset (address, 0, sizeof *address);
  address->sun_family = AF_UNIX;
  if (strlen (path) >= sizeof address->sun_path)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "socket path \"%s\" is longer than %zu bytes, the limit "
                   "for unix sockets: choose a shorter path", path,
                   sizeof address->sun_path - 1);
      return FALSE;
    }
  memcpy (address->sun_path, path, strlen (path));
  return TRUE;
}

static MoatTransport *
transport_new (MoatTransportFrameFunc on_frame,
               MoatTransportStateFunc on_state, gpointer user_data)
{
  MoatTransport *transport = g_new0 (MoatTransport, 1);

  transport->listen_fd = -1;
  transport->fd = -1;
  transport->in = g_malloc (LENGTH_PREFIX + MOAT_FRAME_MAX + READ_CHUNK);
  transport->out = g_byte_array_new ();
  transport->on_frame = on_frame;
  transport->on_state = on_state;
  transport->user_data = user_data;
  return transport;
}

static void
transport_attach (MoatTransport *transport, int fd)
{
  transport->fd = fd;
  transport->in_length = 0;
  g_byte_array_set_size (transport->out, 0);
  transport->out_offset = 0;
  transport->watch = moat_fd_watch_new (fd, G_IO_IN, transport_on_io,
                                        transport);
  if (transport->listen_watch != NULL)
    moat_fd_watch_set_events (transport->listen_watch, 0);
  if (transport->on_state != NULL)
    transport->on_state (TRUE, transport->user_data);
}

static void
transport_detach (MoatTransport *transport, const char *why)
{
  if (transport->fd < 0)
    return;
  g_message ("QEMU disconnected: %s", why);
  moat_fd_watch_free (transport->watch);
  transport->watch = NULL;
  close (transport->fd);
  transport->fd = -1;
  if (transport->listen_watch != NULL)
    moat_fd_watch_set_events (transport->listen_watch, G_IO_IN);
  if (transport->on_state != NULL)
    transport->on_state (FALSE, transport->user_data);
}

static void
transport_on_accept (GIOCondition revents, gpointer user_data)
{
  MoatTransport *transport = user_data;
  int fd = moat_socket_accept (transport->listen_fd);

  if (fd < 0)
    {
      if (errno != EAGAIN && errno != EINTR)
        g_warning ("accepting a QEMU connection on %s failed: %s, ignoring",
                   transport->listen_path, g_strerror (errno));
      return;
    }
  if (transport->fd >= 0)
    {
      g_warning ("a second QEMU connected to %s while one is attached; "
                 "closing the new connection", transport->listen_path);
      close (fd);
      return;
    }
  g_message ("QEMU connected on %s", transport->listen_path);
  transport_attach (transport, fd);
}

/**
 * moat_transport_new_listen:
 * @path: unix socket path to listen on; a stale socket there is replaced
 * @on_frame: frame callback
 * @on_state: connect/disconnect callback
 * @user_data: passed to the callbacks
 * @error: return location for an error
 *
 * Return: the transport, waiting for QEMU to connect.
 */
MoatTransport *
moat_transport_new_listen (const char *path, MoatTransportFrameFunc on_frame,
                           MoatTransportStateFunc on_state,
                           gpointer user_data, GError **error)
{
  g_autoptr (MoatTransport) transport = NULL;
  struct sockaddr_un address;
  struct stat st;

  if (!fill_sockaddr (path, &address, error))
    return NULL;

  /* A socket left behind by an earlier run would make bind() fail, but a
   * regular file at that path is probably a mistake: leave it alone. */
  if (lstat (path, &st) == 0)
    {
      if (!S_ISSOCK (st.st_mode))
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "socket path \"%s\" exists and is not a socket: "
                       "remove it or choose another path", path);
          return NULL;
        }
      unlink (path);
    }

  transport = transport_new (on_frame, on_state, user_data);
  transport->listen_path = g_strdup (path);
  transport->listen_fd = moat_socket_new (AF_UNIX, SOCK_STREAM, 0, TRUE);
  if (transport->listen_fd < 0
      || bind (transport->listen_fd, (struct sockaddr *) &address,
               sizeof address) < 0
      || listen (transport->listen_fd, 4) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "cannot listen on socket \"%s\": %s", path,
                   g_strerror (saved_errno));
      return NULL;
    }
  transport->listen_watch = moat_fd_watch_new (transport->listen_fd, G_IO_IN,
                                               transport_on_accept,
                                               transport);
  return g_steal_pointer (&transport);
}

/**
 * moat_transport_new_connect:
 * @path: unix socket of a QEMU started with "-netdev stream,server=on"
 * @on_frame: frame callback
 * @on_state: connect/disconnect callback
 * @user_data: passed to the callbacks
 * @error: return location for an error
 *
 * Return: the connected transport.
 */
MoatTransport *
moat_transport_new_connect (const char *path, MoatTransportFrameFunc on_frame,
                            MoatTransportStateFunc on_state,
                            gpointer user_data, GError **error)
{
  struct sockaddr_un address;
  int fd;

  if (!fill_sockaddr (path, &address, error))
    return NULL;
  fd = moat_socket_new (AF_UNIX, SOCK_STREAM, 0, FALSE);
  if (fd < 0 || connect (fd, (struct sockaddr *) &address, sizeof address) < 0)
    {
      int saved_errno = errno;
      if (fd >= 0)
        close (fd);
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "cannot connect to QEMU socket \"%s\": %s; start QEMU "
                   "with -netdev stream,server=on,addr.type=unix,"
                   "addr.path=%s first", path, g_strerror (saved_errno),
                   path);
      return NULL;
    }
  return moat_transport_new_fd (fd, on_frame, on_state, user_data, error);
}

/**
 * moat_transport_new_fd:
 * @fd: a connected stream socket; the transport takes ownership
 * @on_frame: frame callback
 * @on_state: connect/disconnect callback
 * @user_data: passed to the callbacks
 * @error: return location for an error
 *
 * Return: the transport.
 */
MoatTransport *
moat_transport_new_fd (int fd, MoatTransportFrameFunc on_frame,
                       MoatTransportStateFunc on_state, gpointer user_data,
                       GError **error)
{
  MoatTransport *transport;
  int type = 0;
  socklen_t type_length = sizeof type;

  if (getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &type_length) < 0
      || type != SOCK_STREAM)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "file descriptor %d is not a connected stream socket: "
                   "pass a socket connected to QEMU's -netdev stream", fd);
      return NULL;
    }
  if (!set_nonblocking (fd, error))
    return NULL;
  fcntl (fd, F_SETFD, FD_CLOEXEC);
  transport = transport_new (on_frame, on_state, user_data);
  transport_attach (transport, fd);
  return transport;
}

/**
 * moat_transport_new_tap:
 * @fd: a TAP device opened with IFF_TAP | IFF_NO_PI; the transport takes
 *   ownership
 * @on_frame: frame callback
 * @on_state: connect/disconnect callback, called once with %TRUE now
 * @user_data: passed to the callbacks
 * @error: return location for an error
 *
 * A disconnect (the device failing) is final, as with --fd.
 *
 * Return: the transport.
 */
MoatTransport *
moat_transport_new_tap (int fd, MoatTransportFrameFunc on_frame,
                        MoatTransportStateFunc on_state, gpointer user_data,
                        GError **error)
{
  MoatTransport *transport;

  if (!set_nonblocking (fd, error))
    return NULL;
  fcntl (fd, F_SETFD, FD_CLOEXEC);
  transport = transport_new (on_frame, on_state, user_data);
  transport->tap = TRUE;
  transport_attach (transport, fd);
  return transport;
}

void
moat_transport_free (MoatTransport *transport)
{
  if (transport == NULL)
    return;
  moat_fd_watch_free (transport->watch);
  if (transport->fd >= 0)
    close (transport->fd);
  moat_fd_watch_free (transport->listen_watch);
  if (transport->listen_fd >= 0)
    {
      close (transport->listen_fd);
      unlink (transport->listen_path);
    }
  g_free (transport->listen_path);
  g_free (transport->in);
  g_byte_array_unref (transport->out);
  g_free (transport);
}

gboolean
moat_transport_is_connected (const MoatTransport *transport)
{
  return transport->fd >= 0;
}

/* Returns whether a new QEMU can connect after a disconnect. */
gboolean
moat_transport_can_reconnect (const MoatTransport *transport)
{
  return transport->listen_fd >= 0;
}

static guint32
read_be32 (const guint8 *p)
{
  return ((guint32) p[0] << 24) | ((guint32) p[1] << 16)
         | ((guint32) p[2] << 8) | p[3];
}

/**
 * moat_transport_deframe:
 * @buffer: bytes received from QEMU, starting at a length prefix
 * @length: number of bytes in @buffer
 * @frame: (out): the first frame, pointing into @buffer
 * @frame_length: (out): its length in bytes
 * @error: return location for an error
 *
 * Splits the first frame off a stream of 32-bit big-endian length prefixes,
 * each followed by that many bytes of Ethernet frame. A length of 0 or
 * above %MOAT_FRAME_MAX is an error, because a stream that carries one
 * cannot be resynchronised.
 *
 * Return: the bytes the frame takes in @buffer (prefix and frame), 0 when
 *   @buffer ends before the frame does, or -1 with @error set.
 */
gssize
moat_transport_deframe (const guint8 *buffer, gsize length,
                        const guint8 **frame, gsize *frame_length,
                        GError **error)
{
  guint32 prefixed_length;

  if (length < LENGTH_PREFIX)
    return 0;
  prefixed_length = read_be32 (buffer);
  if (prefixed_length == 0 || prefixed_length > MOAT_FRAME_MAX)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "QEMU sent a frame length of %u bytes (valid: 1 to %d); "
                   "closing the connection because the stream cannot be "
                   "resynchronised", prefixed_length, MOAT_FRAME_MAX);
      return -1;
    }
  if (length - LENGTH_PREFIX < prefixed_length)
    return 0;
  *frame = buffer + LENGTH_PREFIX;
  *frame_length = prefixed_length;
  return LENGTH_PREFIX + prefixed_length;
}

/* Delivers every complete frame in the input buffer. Returns FALSE if a
 * length prefix is invalid, after which the stream cannot be resynchronised. */
static gboolean
transport_deliver_frames (MoatTransport *transport)
{
  gsize offset = 0;

  for (;;)
    {
      g_autoptr (GError) error = NULL;
      const guint8 *frame = NULL;
      gsize frame_length = 0;
      gssize consumed = moat_transport_deframe (transport->in + offset,
                                                transport->in_length - offset,
                                                &frame, &frame_length,
                                                &error);

      if (consumed < 0)
        {
          g_warning ("%s", error->message);
          return FALSE;
        }
      if (consumed == 0)
        break;
      transport->on_frame (frame, frame_length, transport->user_data);
      /* The callback may have detached the transport. */
      if (transport->fd < 0)
        return TRUE;
      offset += consumed;
    }
  memmove (transport->in, transport->in + offset,
           transport->in_length - offset);
  transport->in_length -= offset;
  return TRUE;
}

static void
transport_read (MoatTransport *transport)
{
  gsize capacity = LENGTH_PREFIX + MOAT_FRAME_MAX + READ_CHUNK;
  ssize_t n = read (transport->fd, transport->in + transport->in_length,
                    capacity - transport->in_length);

  if (n < 0)
    {
      if (errno == EAGAIN || errno == EINTR)
        return;
      transport_detach (transport, g_strerror (errno));
      return;
    }
  if (n == 0)
    {
      transport_detach (transport, "end of stream");
      return;
    }
  transport->in_length += n;
  if (!transport_deliver_frames (transport))
    transport_detach (transport, "invalid frame length");
}

/* Reads up to TAP_READS_PER_WAKEUP frames, one per read(). */
static void
transport_read_tap (MoatTransport *transport)
{
  for (int i = 0; i < TAP_READS_PER_WAKEUP && transport->fd >= 0; i++)
    {
      ssize_t n = read (transport->fd, transport->in, MOAT_FRAME_MAX);

      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno != EAGAIN)
            transport_detach (transport, g_strerror (errno));
          return;
        }
      if (n == 0)
        {
          transport_detach (transport, "end of file on the TAP device");
          return;
        }
      transport->on_frame (transport->in, n, transport->user_data);
    }
}

typedef enum {
  TAP_WRITE_DONE,
  TAP_WRITE_AGAIN,
  TAP_WRITE_DETACHED,
} TapWriteResult;

/* Writes one frame to a TAP device, which takes a whole frame or none.
 * DONE also covers a frame the kernel dropped. */
static TapWriteResult
transport_write_tap_frame (MoatTransport *transport, const guint8 *frame,
                           gsize length)
{
  for (;;)
    {
      ssize_t n = write (transport->fd, frame, length);

      if (n >= 0)
        return TAP_WRITE_DONE;
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        return TAP_WRITE_AGAIN;
      /* EIO while the interface is down and the like: the kernel drops
       * the frame, as a cable would. */
      if (errno != EIO && errno != ENOBUFS)
        {
          transport_detach (transport, g_strerror (errno));
          return TAP_WRITE_DETACHED;
        }
      transport->dropped_frames++;
      return TAP_WRITE_DONE;
    }
}

/* Writes queued frames to a TAP device, one frame per write(). */
static gboolean
transport_flush_tap (MoatTransport *transport)
{
  while (transport->out->len - transport->out_offset >= LENGTH_PREFIX)
    {
      const guint8 *entry = transport->out->data + transport->out_offset;
      guint32 frame_length = read_be32 (entry);

      switch (transport_write_tap_frame (transport, entry + LENGTH_PREFIX,
                                         frame_length))
        {
        case TAP_WRITE_AGAIN:
          return TRUE;
        case TAP_WRITE_DETACHED:
          return FALSE;
        case TAP_WRITE_DONE:
          break;
        }
      transport->out_offset += LENGTH_PREFIX + frame_length;
    }
  return TRUE;
}

/* Writes queued bytes to a stream socket. */
static gboolean
transport_flush_stream (MoatTransport *transport)
{
  while (transport->out_offset < transport->out->len)
    {
      ssize_t n = write (transport->fd,
                         transport->out->data + transport->out_offset,
                         transport->out->len - transport->out_offset);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN)
            break;
          transport_detach (transport, g_strerror (errno));
          return FALSE;
        }
      transport->out_offset += n;
    }
  return TRUE;
}

static void
transport_flush (MoatTransport *transport)
{
  gboolean attached = transport->tap ? transport_flush_tap (transport)
                                     : transport_flush_stream (transport);

  if (!attached)
    return;
  if (transport->out_offset == transport->out->len)
    {
      g_byte_array_set_size (transport->out, 0);
      transport->out_offset = 0;
      moat_fd_watch_set_events (transport->watch, G_IO_IN);
    }
  else
    {
      moat_fd_watch_set_events (transport->watch, G_IO_IN | G_IO_OUT);
    }
}

static void
transport_on_io (GIOCondition revents, gpointer user_data)
{
  MoatTransport *transport = user_data;

  if (revents & G_IO_OUT)
    transport_flush (transport);
  if (transport->fd < 0 || !(revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
    return;
  if (transport->tap)
    transport_read_tap (transport);
  else
    transport_read (transport);
}

/**
 * moat_transport_send:
 * @transport: the transport
 * @frame: an Ethernet frame for the guest
 * @length: its length
 *
 * Queues the frame and writes as much as the socket takes. Frames are
 * dropped while QEMU is not connected or when MOAT_TRANSPORT_QUEUE_MAX
 * bytes are already queued; the guest's TCP retransmits them.
 */
void
moat_transport_send (MoatTransport *transport, const guint8 *frame,
                     gsize length)
{
  guint8 prefix[LENGTH_PREFIX];

  if (transport->fd < 0 || length == 0 || length > MOAT_FRAME_MAX)
    return;
  if (transport->out->len - transport->out_offset + length
      > MOAT_TRANSPORT_QUEUE_MAX)
    {
      /* Log the first drop and then every 1000th, so a stalled QEMU does
       * not flood the log. */
      if (transport->dropped_frames++ % 1000 == 0)
        g_warning ("QEMU is not reading; dropped %" G_GUINT64_FORMAT
                   " frames so far", transport->dropped_frames);
      return;
    }
  /* With nothing queued, a frame goes to a TAP device straight from the
   * caller's buffer, saving a copy per frame. */
  if (transport->tap && transport->out_offset == transport->out->len)
    {
      TapWriteResult result = transport_write_tap_frame (transport, frame,
                                                         length);

      if (result != TAP_WRITE_AGAIN)
        return;
    }
  prefix[0] = length >> 24;
  prefix[1] = (length >> 16) & 0xff;
  prefix[2] = (length >> 8) & 0xff;
  prefix[3] = length & 0xff;
  g_byte_array_append (transport->out, prefix, sizeof prefix);
  g_byte_array_append (transport->out, frame, length);
  transport_flush (transport);
}
