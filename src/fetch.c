/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fetch.c - the host fetch: allowed requests re-issued upstream by libcurl */

/*
 * Theory of operation
 *
 * One CURLM per MoatFetch runs every upstream transfer. libcurl tells us
 * which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION). Both become GLib sources on the main context
 * that was the thread default at moat_fetch_new(). When a source fires we
 * call curl_multi_socket_action() and then drain curl_multi_info_read() for
 * finished transfers. The multi handle keeps its connection cache, so
 * sequential requests to one upstream reuse a connection, and HTTP/2
 * upstreams multiplex concurrent requests on one connection.
 *
 * libcurl rejects curl_multi_add_handle() and curl_multi_remove_handle()
 * from inside its callbacks, yet a user callback may start or cancel any
 * request. So MoatFetch counts how deep it is inside libcurl calls that can
 * run callbacks (@depth). At depth 0 a start adds the handle and a cancel
 * frees the request at once. Inside libcurl, a start leaves the handle out
 * of the multi handle, and a cancel marks the request cancelled so that the
 * callback in progress aborts the transfer. An idle source (@deferred) then
 * adds or frees those requests. Resume calls are also applied from an idle
 * source, because curl_easy_pause() delivers buffered body bytes
 * synchronously and would otherwise run on_body inside the caller.
 *
 * Upstream addresses in private, loopback, link-local and other non-public
 * ranges are rejected when libcurl opens the socket
 * (CURLOPT_OPENSOCKETFUNCTION), unless the request's host and port match a
 * configured connect-to entry that names a target host. Checking there,
 * after resolution, also covers names whose DNS answers point inside the
 * host's networks.
 */

#define G_LOG_DOMAIN "moat-fetch"

#include "fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <glib-unix.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "error.h"
#include "sockets.h"
#include "moat-limits.h"

/*
 * Connections opened to one upstream host at once. Requests beyond this
 * wait for a free connection. Browsers use six per host over HTTP/1.1, and
 * a guest may run several programs at once.
 * TODO: move this to moat-limits.h, which contains every other moat limit.
 */
#define FETCH_HOST_CONNECTIONS_MAX 16

/*
 * Idle upstream connections kept for reuse. libcurl's default keeps four
 * per easy handle in use, so after a burst of short requests it closed
 * connections that the next burst had to open again, with a new TLS
 * handshake and a new parse of the CA bundle each.
 */
#define FETCH_IDLE_CONNECTIONS_MAX 256

/* Seconds to establish the TCP connection and TLS session upstream. */
#define FETCH_CONNECT_TIMEOUT_S 30

/*
 * A transfer that moves less than FETCH_STALL_BYTES_PER_S bytes per second
 * for [upstream] stall-timeout seconds (default 60) has stalled and fails
 * with MOAT_ERROR_TIMEOUT. There is no overall timeout, because a 1 GiB
 * download is legitimate. libcurl 7.88 skips this check while the download
 * is paused (lib/speedcheck.c).
 * NOTE: it does not skip it while only the upload is paused, so a guest
 * that stops sending its request body for that long gets
 * MOAT_ERROR_TIMEOUT.
 */
#define FETCH_STALL_BYTES_PER_S 1

/* System CA bundle used when libcurl reports no default bundle path. */
#define FETCH_SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
/* System CA folder used when libcurl reports no default folder. */
#define FETCH_SYSTEM_CA_PATH "/etc/ssl/certs"

/**
 * ConnectToEntry:
 * @host: host the entry applies to, without brackets, or "" for any host
 * @port: port the entry applies to, or 0 for any port
 * @has_target_host: the entry names the host to connect to instead
 */
typedef struct {
  char *host;
  guint port;
  gboolean has_target_host;
} ConnectToEntry;

/**
 * FetchSocket:
 * @fetch: owner
 * @fd: socket libcurl asked us to watch
 * @source: GLib source watching @fd, or %NULL
 */
typedef struct {
  MoatFetch *fetch;
  curl_socket_t fd;
  GSource *source;
} FetchSocket;

/**
 * MoatFetch:
 * @multi: libcurl multi handle running all transfers
 * @context: main context the GLib sources are attached to
 * @sockets: (element-type int FetchSocket) sockets libcurl watches, by fd
 * @timer: source for libcurl's next timeout, or %NULL
 * @deferred: idle source that adds requests started inside libcurl and
 *   frees requests cancelled there, or %NULL
 * @requests: (element-type MoatFetchRequest) every live request
 * @depth: nesting of libcurl calls in progress that may run callbacks
 * @ca_blob: system CA bundle plus the configured CA file, for
 *   CURLOPT_CAINFO_BLOB, or %NULL
 * @ca_file: configured CA file for CURLOPT_CAINFO when libcurl's TLS
 *   backend has no CURLOPT_CAINFO_BLOB, or %NULL
 * @ca_path: system CA folder loaded next to @ca_file, or %NULL when
 *   @ca_file already contains the system bundle
 * @ca_bundle_fd: memfd behind @ca_file when it is a combined bundle, or -1
 * @connect_to: CURLOPT_CONNECT_TO list, or %NULL
 * @connect_to_entries: (element-type ConnectToEntry) parsed @connect_to
 * @stall_timeout_s: seconds without progress before a transfer fails
 */
struct MoatFetch {
  CURLM *multi;
  GMainContext *context;
  GHashTable *sockets;
  GSource *timer;
  GSource *deferred;
  GQueue requests;
  guint depth;
  GBytes *ca_blob;
  char *ca_file;
  char *ca_path;
  int ca_bundle_fd;
  struct curl_slist *connect_to;
  GArray *connect_to_entries;
  guint stall_timeout_s;
};

typedef enum {
  REQUEST_ACTIVE,
  REQUEST_CANCELLED,
  REQUEST_DONE,
} RequestState;

/**
 * MoatFetchRequest:
 * @fetch: owner
 * @link: this request's link in @fetch->requests
 * @easy: libcurl transfer
 * @added: @easy is in the multi handle
 * @state: active, cancelled while inside libcurl, or finished
 * @callbacks: caller's callbacks
 * @user_data: caller's data for @callbacks
 * @method: request method, for messages
 * @url: request URL, for messages
 * @host: URL host without brackets
 * @connect_to_match: a connect-to entry with a target host applies, so
 *   private upstream addresses are allowed
 * @headers: request header list for CURLOPT_HTTPHEADER
 * @error_buffer: libcurl's message for the last failure
 * @failure: reason recorded by one of our callbacks before it failed the
 *   transfer, preferred over @error_buffer
 * @status: status code of the response head being received, 0 before the
 *   status line
 * @response_headers: (element-type MoatHttpHeader) fields of that head
 * @head_bytes: bytes of response head received so far, interim heads
 *   included
 * @response_reported: on_response has been called
 * @recv_paused: the download is paused, or a resume is pending
 * @send_paused: the upload is paused, or a resume is pending
 * @download_resumes: count of resume_download() calls, to detect a
 *   resume from inside on_body
 * @upload_resumes: count of resume_upload() calls, to detect a resume
 *   from inside read_body
 * @resume: idle source that applies @recv_paused and @send_paused, or %NULL
 */
struct MoatFetchRequest {
  MoatFetch *fetch;
  GList link;
  CURL *easy;
  gboolean added;
  RequestState state;
  MoatFetchCallbacks callbacks;
  gpointer user_data;
  char *method;
  char *url;
  char *host;
  gboolean connect_to_match;
  struct curl_slist *headers;
  char error_buffer[CURL_ERROR_SIZE];
  char *failure;
  guint status;
  GPtrArray *response_headers;
  gsize head_bytes;
  gboolean response_reported;
  gboolean recv_paused;
  gboolean send_paused;
  guint download_resumes;
  guint upload_resumes;
  GSource *resume;
};

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CURLU, curl_url_cleanup)

/* Address classification */

/* IPv4 ranges no upstream connection may use, host byte order. */
static const struct {
  guint32 network;
  guint prefix;
} private_ipv4_ranges[] = {
  { 0x00000000, 8 },  /* "this network", RFC 1122 section 3.2.1.3 */
  { 0x0a000000, 8 },  /* private, RFC 1918 */
  { 0x64400000, 10 }, /* shared address space (CGNAT), RFC 6598 */
  { 0x7f000000, 8 },  /* loopback, RFC 1122 */
  { 0xa9fe0000, 16 }, /* link-local, RFC 3927 */
  { 0xac100000, 12 }, /* private, RFC 1918 */
  { 0xc0a80000, 16 }, /* private, RFC 1918 */
  { 0xe0000000, 4 },  /* multicast, RFC 5771 */
  { 0xf0000000, 4 },  /* reserved, RFC 1112, and broadcast 255.255.255.255 */
};

static gboolean
ipv4_is_private (guint32 address)
{
  for (gsize i = 0; i < G_N_ELEMENTS (private_ipv4_ranges); i++)
    {
      guint32 mask = 0xffffffffu << (32 - private_ipv4_ranges[i].prefix);

      if ((address & mask) == private_ipv4_ranges[i].network)
        return TRUE;
    }
  return FALSE;
}

static guint32
ipv4_from_bytes (const guint8 *bytes)
{
  return ((guint32) bytes[0] << 24) | ((guint32) bytes[1] << 16)
         | ((guint32) bytes[2] << 8) | (guint32) bytes[3];
}

static gboolean
ipv6_is_private (const guint8 *bytes)
{
  static const guint8 mapped_prefix[12]
      = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
  static const guint8 nat64_prefix[12]
      = { 0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
  static const guint8 zero_prefix[12] = { 0 };

  /* IPv4-mapped (RFC 4291 section 2.5.5.2) and NAT64 well-known prefix
   * (RFC 6052) addresses reach the embedded IPv4 address. */
  if (memcmp (bytes, mapped_prefix, 12) == 0
      || memcmp (bytes, nat64_prefix, 12) == 0)
    return ipv4_is_private (ipv4_from_bytes (bytes + 12));

  /* ::/96 contains the unspecified address, loopback ::1 and the deprecated
   * IPv4-compatible addresses (RFC 4291 section 2.5.5.1). */
  if (memcmp (bytes, zero_prefix, 12) == 0)
    return TRUE;

  if ((bytes[0] & 0xfe) == 0xfc) /* unique local fc00::/7, RFC 4193 */
    return TRUE;
  if (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80) /* link-local fe80::/10 */
    return TRUE;
  if (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0xc0) /* site-local fec0::/10 */
    return TRUE;
  if (bytes[0] == 0xff) /* multicast ff00::/8 */
    return TRUE;
  return FALSE;
}

/**
 * moat_fetch_address_is_private:
 * @address: socket address libcurl is about to connect to
 * @length: size of @address in bytes
 *
 * Classifies an upstream address. Loopback, private (RFC 1918, RFC 4193),
 * link-local, shared CGNAT, "this network", multicast, reserved, broadcast
 * and unspecified addresses are private. IPv4-mapped and NAT64 IPv6
 * addresses are classified by their embedded IPv4 address.
 *
 * Return: %TRUE when @address is private, or is not a complete IPv4 or
 *   IPv6 address.
 */
gboolean
moat_fetch_address_is_private (const struct sockaddr *address,
                               socklen_t length)
{
  g_return_val_if_fail (address != NULL, TRUE);

  if (address->sa_family == AF_INET && length >= sizeof (struct sockaddr_in))
    {
      const struct sockaddr_in *ipv4 = (const struct sockaddr_in *) address;

      return ipv4_is_private (ntohl (ipv4->sin_addr.s_addr));
    }

  if (address->sa_family == AF_INET6
      && length >= sizeof (struct sockaddr_in6))
    {
      const struct sockaddr_in6 *ipv6 = (const struct sockaddr_in6 *) address;

      return ipv6_is_private (ipv6->sin6_addr.s6_addr);
    }

  return TRUE;
}

static char *
format_address (const struct sockaddr *address, socklen_t length)
{
  char text[INET6_ADDRSTRLEN] = "";

  if (address->sa_family == AF_INET && length >= sizeof (struct sockaddr_in))
    inet_ntop (AF_INET, &((const struct sockaddr_in *) address)->sin_addr,
               text, sizeof text);
  else if (address->sa_family == AF_INET6
           && length >= sizeof (struct sockaddr_in6))
    inet_ntop (AF_INET6, &((const struct sockaddr_in6 *) address)->sin6_addr,
               text, sizeof text);
  else
    return g_strdup_printf ("(address family %d)", address->sa_family);
  return g_strdup (text);
}

/* Configuration */

static void
connect_to_entry_clear (gpointer data)
{
  ConnectToEntry *entry = data;

  g_free (entry->host);
}

/*
 * Parse one connect-to entry in libcurl's CURLOPT_CONNECT_TO format,
 * "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT". HOST may be an IPv6 address
 * in brackets, and an empty HOST or PORT matches any.
 */
static gboolean
parse_connect_to (const char *text, ConnectToEntry *entry, GError **error)
{
  const char *cursor = text;
  const char *host_end;
  const char *port_end;
  g_autofree char *host = NULL;

  if (*cursor == '[')
    {
      host_end = strchr (cursor, ']');
      if (host_end == NULL || host_end[1] != ':')
        goto invalid;
      host = g_strndup (cursor + 1, host_end - cursor - 1);
      cursor = host_end + 2;
    }
  else
    {
      host_end = strchr (cursor, ':');
      if (host_end == NULL)
        goto invalid;
      host = g_strndup (cursor, host_end - cursor);
      cursor = host_end + 1;
    }

  port_end = strchr (cursor, ':');
  if (port_end == NULL)
    goto invalid;

  entry->port = 0;
  if (port_end > cursor)
    {
      g_autofree char *port_text = g_strndup (cursor, port_end - cursor);
      guint64 port;

      if (!g_ascii_string_to_unsigned (port_text, 10, 1, 65535, &port, NULL))
        goto invalid;
      entry->port = (guint) port;
    }

  cursor = port_end + 1;
  entry->has_target_host = *cursor != '\0' && *cursor != ':';
  entry->host = g_steal_pointer (&host);
  return TRUE;

invalid:
  g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
               "invalid [upstream] connect-to entry \"%s\": expected "
               "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT, "
               "for example example.com:443:127.0.0.1:8443",
               text);
  return FALSE;
}

static gboolean
load_connect_to (MoatFetch *fetch, char **entries, GError **error)
{
  fetch->connect_to_entries = g_array_new (FALSE, TRUE,
                                           sizeof (ConnectToEntry));
  g_array_set_clear_func (fetch->connect_to_entries, connect_to_entry_clear);

  for (gsize i = 0; entries != NULL && entries[i] != NULL; i++)
    {
      ConnectToEntry entry = { 0 };
      struct curl_slist *list;

      if (!parse_connect_to (entries[i], &entry, error))
        return FALSE;
      g_array_append_val (fetch->connect_to_entries, entry);

      list = curl_slist_append (fetch->connect_to, entries[i]);
      if (list == NULL)
        g_error ("out of memory building the connect-to list");
      fetch->connect_to = list;
    }
  return TRUE;
}

static gboolean
backend_has_cainfo_blob (void)
{
  CURL *probe = curl_easy_init ();
  struct curl_blob empty_blob = { (void *) "", 0, CURL_BLOB_COPY };
  CURLcode result;

  if (probe == NULL)
    g_error ("out of memory creating a libcurl handle");
  result = curl_easy_setopt (probe, CURLOPT_CAINFO_BLOB, &empty_blob);
  curl_easy_cleanup (probe);
  return result == CURLE_OK;
}

/*
 * Without a configured CA file, libcurl 7.88 with GnuTLS loads its default
 * CA folder (CURLOPT_CAPATH, /etc/ssl/certs on Debian) for every upstream
 * connection, which parses each certificate three times: see
 * write_trust_bundle(). The system bundle alone, made from the same
 * certificates by update-ca-certificates, parses each once.
 */
static void
load_system_trust (MoatFetch *fetch)
{
  const curl_version_info_data *version = curl_version_info (CURLVERSION_NOW);
  const char *system_path = version->cainfo != NULL ? version->cainfo
                                                    : FETCH_SYSTEM_CA_BUNDLE;

  if (version->capath == NULL || backend_has_cainfo_blob ()
      || !g_file_test (system_path, G_FILE_TEST_IS_REGULAR))
    return;
  fetch->ca_file = g_strdup (system_path);
}

/* Writes @length bytes of @data to @fd, retrying short writes. */
static gboolean
write_all (int fd, const void *data, gsize length)
{
  const char *cursor = data;

  while (length > 0)
    {
      ssize_t written = write (fd, cursor, length);

      if (written < 0 && errno == EINTR)
        continue;
      if (written <= 0)
        return FALSE;
      cursor += written;
      length -= written;
    }
  return TRUE;
}

/*
 * Read the configured CA file and check that it contains at least one PEM
 * certificate, so that a wrong path fails at startup rather than at the
 * first HTTPS request.
 */
/* NOTE: a ca-file above glibc's 128 KiB mmap threshold raises it when
 * freed, as copy_file() describes, and then costs memory per connection. */
static GBytes *
read_ca_file (const char *path, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autofree char *contents = NULL;
  gsize length = 0;
  gnutls_x509_crt_t *certificates = NULL;
  unsigned int count = 0;
  gnutls_datum_t datum;
  int result;

  if (!g_file_get_contents (path, &contents, &length, &local_error))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "cannot read the [upstream] ca-file %s: %s", path,
                   local_error->message);
      return NULL;
    }

  datum.data = (unsigned char *) contents;
  datum.size = (unsigned int) MIN (length, G_MAXUINT);
  result = gnutls_x509_crt_list_import2 (&certificates, &count, &datum,
                                         GNUTLS_X509_FMT_PEM, 0);
  if (result < 0 || count == 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "the [upstream] ca-file %s contains no valid PEM "
                   "certificate (%s); give a file of CA certificates "
                   "in PEM format",
                   path, result < 0 ? gnutls_strerror (result) : "none found");
      return NULL;
    }
  for (unsigned int i = 0; i < count; i++)
    gnutls_x509_crt_deinit (certificates[i]);
  gnutls_free (certificates);

  return g_bytes_new_take (g_steal_pointer (&contents), length);
}

/*
 * Appends the file at @path to @out_fd through a small buffer. Reading the
 * 220 KB system bundle in one allocation and freeing it raised glibc's
 * dynamic mmap threshold, so later buffers of that size came from the
 * heap and stayed resident: memory per idle guest connection grew from
 * about 40 to 146 KiB in bench/bench.py.
 */
static gboolean
copy_file (int out_fd, const char *path)
{
  char buffer[16384];
  int in_fd = open (path, O_RDONLY | O_CLOEXEC);
  gboolean ok = in_fd >= 0;

  while (ok)
    {
      ssize_t n = read (in_fd, buffer, sizeof buffer);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          ok = n == 0;
          break;
        }
      ok = write_all (out_fd, buffer, n);
    }
  if (in_fd >= 0)
    {
      int saved_errno = errno;

      close (in_fd);
      errno = saved_errno;
    }
  return ok;
}

/*
 * Writes the system bundle at @system_path and @extra into a memfd, and
 * points @fetch->ca_file at it. libcurl 7.88 with GnuTLS parses its CA
 * files anew for every upstream connection, and loading the system folder
 * through CURLOPT_CAPATH parses each certificate there three times: from
 * its own file, from its hash link and from ca-certificates.crt. One
 * combined file parses each once, so a new HTTPS connection costs less.
 * Returns FALSE, after a warning, when the bundle cannot be built.
 */
static gboolean
write_trust_bundle (MoatFetch *fetch, const char *system_path, GBytes *extra)
{
  g_autofree char *bundle_path = NULL;
  int fd;

  fd = memfd_create ("moat-ca-bundle", MFD_CLOEXEC);
  if (fd < 0)
    {
      g_warning ("cannot create a file for the combined CA bundle, loading "
                 "the CA folder for each upstream connection instead: %s",
                 g_strerror (errno));
      return FALSE;
    }
  if (!copy_file (fd, system_path))
    {
      g_warning ("cannot copy the system CA bundle %s, loading the CA "
                 "folder for each upstream connection instead: %s",
                 system_path, g_strerror (errno));
      close (fd);
      return FALSE;
    }

  /* GnuTLS opens the bundle by name, and /proc/self/fd/N opens the memfd
   * anew at offset 0. */
  bundle_path = g_strdup_printf ("/proc/self/fd/%d", fd);
  if (!write_all (fd, "\n", 1)
      || !write_all (fd, g_bytes_get_data (extra, NULL),
                     g_bytes_get_size (extra))
      || access (bundle_path, R_OK) < 0)
    {
      g_warning ("cannot write the combined CA bundle to %s, loading the "
                 "CA folder for each upstream connection instead: %s",
                 bundle_path, g_strerror (errno));
      close (fd);
      return FALSE;
    }

  fetch->ca_bundle_fd = fd;
  fetch->ca_file = g_steal_pointer (&bundle_path);
  return TRUE;
}

/*
 * Set up trust in the system store plus @path. CURLOPT_CAINFO replaces
 * libcurl's default bundle, so where the TLS backend supports
 * CURLOPT_CAINFO_BLOB we pass the system bundle and @path concatenated.
 * libcurl 7.88 with GnuTLS (Debian 12's libcurl3-gnutls) lacks
 * CURLOPT_CAINFO_BLOB, so there the same concatenation goes to a memfd
 * named by CURLOPT_CAINFO. Should that fail, @path goes to CAINFO and the
 * system folder to CURLOPT_CAPATH.
 */
static gboolean
load_trust (MoatFetch *fetch, const char *path, GError **error)
{
  const curl_version_info_data *version = curl_version_info (CURLVERSION_NOW);
  g_autoptr (GBytes) extra = NULL;

  extra = read_ca_file (path, error);
  if (extra == NULL)
    return FALSE;

  if (backend_has_cainfo_blob ())
    {
      /* NOTE: Debian 12's GnuTLS build of libcurl never takes this path,
       * so the unit tests do not run it. */
      const char *system_path = version->cainfo != NULL
                                    ? version->cainfo
                                    : FETCH_SYSTEM_CA_BUNDLE;
      g_autoptr (GError) local_error = NULL;
      g_autofree char *system_bundle = NULL;
      gsize system_length = 0;
      GByteArray *bundle = g_byte_array_new ();

      if (!g_file_get_contents (system_path, &system_bundle, &system_length,
                                &local_error))
        g_warning ("cannot read the system CA bundle %s, trusting only %s: "
                   "%s", system_path, path, local_error->message);
      else
        {
          g_byte_array_append (bundle, (const guint8 *) system_bundle,
                               system_length);
          g_byte_array_append (bundle, (const guint8 *) "\n", 1);
        }
      g_byte_array_append (bundle, g_bytes_get_data (extra, NULL),
                           g_bytes_get_size (extra));
      fetch->ca_blob = g_byte_array_free_to_bytes (bundle);
      return TRUE;
    }

  if (write_trust_bundle (fetch, version->cainfo != NULL
                                     ? version->cainfo
                                     : FETCH_SYSTEM_CA_BUNDLE,
                          extra))
    return TRUE;
  fetch->ca_file = g_strdup (path);
  fetch->ca_path = g_strdup (version->capath != NULL ? version->capath
                                                     : FETCH_SYSTEM_CA_PATH);
  return TRUE;
}

/* GLib main loop integration */

static void process_completed (MoatFetch *fetch);

static void
destroy_source (GSource **source)
{
  if (*source == NULL)
    return;
  g_source_destroy (*source);
  g_source_unref (*source);
  *source = NULL;
}

static GSource *
attach_idle (MoatFetch *fetch, GSourceFunc function, gpointer data)
{
  GSource *source = g_idle_source_new ();

  g_source_set_callback (source, function, data, NULL);
  g_source_attach (source, fetch->context);
  return source;
}

static void
run_socket_action (MoatFetch *fetch, curl_socket_t fd, int events)
{
  int running = 0;
  CURLMcode result;

  fetch->depth++;
  result = curl_multi_socket_action (fetch->multi, fd, events, &running);
  fetch->depth--;
  if (result != CURLM_OK)
    g_warning ("curl_multi_socket_action failed on fd %d: %s", (int) fd,
               curl_multi_strerror (result));

  process_completed (fetch);
}

static gboolean
on_socket_ready (gint fd, GIOCondition condition, gpointer data)
{
  FetchSocket *socket_entry = data;
  int events = 0;

  if (condition & G_IO_IN)
    events |= CURL_CSELECT_IN;
  if (condition & G_IO_OUT)
    events |= CURL_CSELECT_OUT;
  if (condition & (G_IO_ERR | G_IO_HUP))
    events |= CURL_CSELECT_ERR;

  /* socket_entry may be freed inside, when libcurl stops watching fd. */
  run_socket_action (socket_entry->fetch, fd, events);
  return G_SOURCE_CONTINUE;
}

static void
fetch_socket_free (gpointer data)
{
  FetchSocket *socket_entry = data;

  destroy_source (&socket_entry->source);
  g_free (socket_entry);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching @fd. */
static int
on_curl_socket (CURL *easy, curl_socket_t fd, int what, void *data,
                void *socket_data)
{
  MoatFetch *fetch = data;
  FetchSocket *socket_entry = socket_data;
  GIOCondition condition = 0;

  if (what == CURL_POLL_REMOVE)
    {
      if (socket_entry != NULL)
        {
          curl_multi_assign (fetch->multi, fd, NULL);
          g_hash_table_remove (fetch->sockets, GINT_TO_POINTER (fd));
        }
      return 0;
    }

  if (socket_entry == NULL)
    {
      socket_entry = g_new0 (FetchSocket, 1);
      socket_entry->fetch = fetch;
      socket_entry->fd = fd;
      g_hash_table_replace (fetch->sockets, GINT_TO_POINTER (fd),
                            socket_entry);
      curl_multi_assign (fetch->multi, fd, socket_entry);
    }

  destroy_source (&socket_entry->source);
  if (what & CURL_POLL_IN)
    condition |= G_IO_IN;
  if (what & CURL_POLL_OUT)
    condition |= G_IO_OUT;

  socket_entry->source = g_unix_fd_source_new (fd, condition);
  g_source_set_callback (socket_entry->source, G_SOURCE_FUNC (on_socket_ready),
                         socket_entry, NULL);
  g_source_attach (socket_entry->source, fetch->context);
  return 0;
}

static gboolean
on_timer_expired (gpointer data)
{
  MoatFetch *fetch = data;

  /* libcurl may set the next timer from inside the socket action. */
  destroy_source (&fetch->timer);
  run_socket_action (fetch, CURL_SOCKET_TIMEOUT, 0);
  return G_SOURCE_REMOVE;
}

/* CURLMOPT_TIMERFUNCTION: call libcurl back in @timeout_ms, -1 for never. */
static int
on_curl_timer (CURLM *multi, long timeout_ms, void *data)
{
  MoatFetch *fetch = data;

  destroy_source (&fetch->timer);
  if (timeout_ms < 0)
    return 0;

  fetch->timer = g_timeout_source_new ((guint) MIN (timeout_ms, G_MAXUINT));
  g_source_set_callback (fetch->timer, on_timer_expired, fetch, NULL);
  g_source_attach (fetch->timer, fetch->context);
  return 0;
}

/**
 * moat_fetch_new:
 * @config: configuration; upstream_ca_file, connect_to and
 *   stall_timeout_s are used
 * @error: return location for a %MOAT_ERROR_CONFIG error
 *
 * Creates the host fetch, attached to the thread-default main context.
 *
 * Return: (transfer full): the fetch, or %NULL when the CA file cannot be
 *   read or a connect-to entry is invalid.
 */
MoatFetch *
moat_fetch_new (const MoatConfig *config, GError **error)
{
  g_autoptr (MoatFetch) fetch = NULL;
  CURLcode global_result;

  g_return_val_if_fail (config != NULL, NULL);

  /* curl_global_init is reference counted and, since libcurl 7.84, thread
   * safe; moat_fetch_free drops the reference. */
  global_result = curl_global_init (CURL_GLOBAL_DEFAULT);
  if (global_result != CURLE_OK)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "cannot initialize libcurl: %s",
                   curl_easy_strerror (global_result));
      return NULL;
    }

  fetch = g_new0 (MoatFetch, 1);
  fetch->ca_bundle_fd = -1;
  fetch->context = g_main_context_ref_thread_default ();
  fetch->sockets = g_hash_table_new_full (g_direct_hash, g_direct_equal,
                                          NULL, fetch_socket_free);
  g_queue_init (&fetch->requests);

  fetch->multi = curl_multi_init ();
  if (fetch->multi == NULL)
    g_error ("out of memory creating the libcurl multi handle");
  curl_multi_setopt (fetch->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt (fetch->multi, CURLMOPT_SOCKETDATA, fetch);
  curl_multi_setopt (fetch->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt (fetch->multi, CURLMOPT_TIMERDATA, fetch);
  curl_multi_setopt (fetch->multi, CURLMOPT_PIPELINING,
                     (long) CURLPIPE_MULTIPLEX);
  curl_multi_setopt (fetch->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                     (long) FETCH_HOST_CONNECTIONS_MAX);
  curl_multi_setopt (fetch->multi, CURLMOPT_MAXCONNECTS,
                     (long) FETCH_IDLE_CONNECTIONS_MAX);

  /* 0 in a MoatConfig built without moat_config_new() means the default. */
  fetch->stall_timeout_s = config->stall_timeout_s > 0
                           ? config->stall_timeout_s
                           : MOAT_UPSTREAM_STALL_TIMEOUT_S;
  if (!load_connect_to (fetch, config->connect_to, error))
    return NULL;

  if (config->upstream_ca_file != NULL)
    {
      if (!load_trust (fetch, config->upstream_ca_file, error))
        return NULL;
    }
  else
    {
      load_system_trust (fetch);
    }

  return g_steal_pointer (&fetch);
}

/* Requests */

static void
request_free (MoatFetchRequest *request)
{
  MoatFetch *fetch = request->fetch;

  /* libcurl rejects removing a handle from inside its callbacks. */
  g_assert (!request->added || fetch->depth == 0);

  destroy_source (&request->resume);
  if (request->added)
    curl_multi_remove_handle (fetch->multi, request->easy);
  if (request->easy != NULL)
    curl_easy_cleanup (request->easy);
  curl_slist_free_all (request->headers);
  g_queue_unlink (&fetch->requests, &request->link);
  g_clear_pointer (&request->response_headers, g_ptr_array_unref);
  g_free (request->method);
  g_free (request->url);
  g_free (request->host);
  g_free (request->failure);
  g_free (request);
}

/**
 * moat_fetch_free:
 * @fetch: (nullable): the fetch
 *
 * Cancels every request without calling on_done and frees @fetch. Must not
 * be called from inside a fetch callback.
 */
void
moat_fetch_free (MoatFetch *fetch)
{
  if (fetch == NULL)
    return;

  g_return_if_fail (fetch->depth == 0);

  while (fetch->requests.head != NULL)
    request_free (fetch->requests.head->data);
  destroy_source (&fetch->deferred);

  if (fetch->multi != NULL)
    curl_multi_cleanup (fetch->multi);
  destroy_source (&fetch->timer);
  g_hash_table_destroy (fetch->sockets);

  curl_slist_free_all (fetch->connect_to);
  g_clear_pointer (&fetch->connect_to_entries, g_array_unref);
  g_clear_pointer (&fetch->ca_blob, g_bytes_unref);
  g_free (fetch->ca_file);
  g_free (fetch->ca_path);
  if (fetch->ca_bundle_fd >= 0)
    close (fetch->ca_bundle_fd);
  g_main_context_unref (fetch->context);
  g_free (fetch);
  curl_global_cleanup ();
}

static void
record_failure (MoatFetchRequest *request, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static void
record_failure (MoatFetchRequest *request, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_free (request->failure);
  request->failure = g_strdup_vprintf (format, args);
  va_end (args);
}

/*
 * Convert a libcurl result to the GError given to on_done. This is the only
 * place where CURLcode values become moat errors.
 */
static GError *
error_from_curl (const MoatFetchRequest *request, CURLcode code)
{
  const char *summary;
  const char *detail;

  if (request->failure != NULL)
    detail = request->failure;
  else if (request->error_buffer[0] != '\0')
    detail = request->error_buffer;
  else
    detail = curl_easy_strerror (code);

  switch (code)
    {
    case CURLE_OPERATION_TIMEDOUT:
      return g_error_new (MOAT_ERROR, MOAT_ERROR_TIMEOUT,
                          "upstream request %s %s timed out: %s",
                          request->method, request->url, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
      summary = "cannot resolve the host name";
      break;
    case CURLE_COULDNT_CONNECT:
      summary = "connection failed";
      break;
    case CURLE_PEER_FAILED_VERIFICATION:
      summary = "TLS certificate verification failed";
      break;
    case CURLE_SSL_CONNECT_ERROR:
      summary = "TLS handshake failed";
      break;
    case CURLE_SSL_CACERT_BADFILE:
      summary = "cannot load the trusted CA certificates";
      break;
    case CURLE_SEND_ERROR:
      summary = "sending the request failed";
      break;
    case CURLE_RECV_ERROR:
      summary = "receiving the response failed";
      break;
    case CURLE_PARTIAL_FILE:
      summary = "the connection closed before the end of the response body";
      break;
    case CURLE_GOT_NOTHING:
      summary = "the upstream closed the connection without a response";
      break;
    case CURLE_WEIRD_SERVER_REPLY:
    /* moat builds only http and https URLs, so this is libcurl refusing
     * a response without a status line (HTTP/0.9). */
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      summary = "invalid response";
      break;
    default:
      summary = curl_easy_strerror (code);
      break;
    }

  /* libcurl's text for an unknown issuer ends in "CAfile: none CRLfile:
   * none" with GnuTLS, which does not say what to change in moat. A name
   * mismatch ("... does not match target host name") needs another fix. */
  if (code == CURLE_PEER_FAILED_VERIFICATION
      && strstr (detail, "does not match") == NULL)
    return g_error_new (MOAT_ERROR, MOAT_ERROR_UPSTREAM,
                        "upstream request %s %s failed: %s: %s; if a "
                        "private CA signed the upstream's certificate, "
                        "trust it with [upstream] ca-file",
                        request->method, request->url, summary, detail);
  return g_error_new (MOAT_ERROR, MOAT_ERROR_UPSTREAM,
                      "upstream request %s %s failed: %s: %s",
                      request->method, request->url, summary, detail);
}

/*
 * Finish @request: report it through on_done and free it. Runs from the
 * main loop, outside libcurl callbacks.
 */
/*
 * Whether the response body ends where the connection ends: an HTTP/1.x
 * response with neither Content-Length nor Transfer-Encoding (RFC 9112
 * section 6.3, rule 8).
 */
static gboolean
response_is_close_delimited (MoatFetchRequest *request)
{
  long version = 0;
  guint i;

  curl_easy_getinfo (request->easy, CURLINFO_HTTP_VERSION, &version);
  if (version != CURL_HTTP_VERSION_1_0 && version != CURL_HTTP_VERSION_1_1)
    return FALSE;
  for (i = 0; i < request->response_headers->len; i++)
    {
      MoatHttpHeader *header = request->response_headers->pdata[i];

      if (g_ascii_strcasecmp (header->name, "Content-Length") == 0
          || g_ascii_strcasecmp (header->name, "Transfer-Encoding") == 0)
        return FALSE;
    }
  return TRUE;
}

static void
complete_request (MoatFetchRequest *request, CURLcode result)
{
  g_autoptr (GError) error = NULL;

  /* Many HTTPS servers end a close-delimited body by closing TCP without
   * a TLS close_notify. libcurl with GnuTLS reports that as a receive
   * error (GNUTLS_E_PREMATURE_TERMINATION) although the body is complete
   * by the framing the server chose; browsers and OpenSSL-based clients
   * accept it, so moat does too. */
  if (result == CURLE_RECV_ERROR && request->response_reported
      && request->failure == NULL && response_is_close_delimited (request)
      && strstr (request->error_buffer, "non-properly terminated") != NULL)
    {
      g_debug ("upstream %s ended a close-delimited body without TLS "
               "close_notify; treating the body as complete", request->url);
      result = CURLE_OK;
    }

  if (result != CURLE_OK)
    error = error_from_curl (request, result);
  else if (!request->response_reported)
    error = g_error_new (MOAT_ERROR, MOAT_ERROR_UPSTREAM,
                         "upstream request %s %s failed: "
                         "the transfer ended without a response head",
                         request->method, request->url);

  if (error != NULL)
    g_debug ("%s", error->message);

  request->state = REQUEST_DONE;
  curl_multi_remove_handle (request->fetch->multi, request->easy);
  request->added = FALSE;

  if (request->callbacks.on_done != NULL)
    request->callbacks.on_done (request, error, request->user_data);
  request_free (request);
}

static void
process_completed (MoatFetch *fetch)
{
  CURLMsg *message;
  int queued;

  while ((message = curl_multi_info_read (fetch->multi, &queued)) != NULL)
    {
      /* on_done may remove other handles, which frees their messages. */
      CURL *easy = message->easy_handle;
      CURLcode result = message->data.result;
      char *private_data = NULL;
      MoatFetchRequest *request;

      if (message->msg != CURLMSG_DONE)
        continue;
      curl_easy_getinfo (easy, CURLINFO_PRIVATE, &private_data);
      request = (MoatFetchRequest *) private_data;
      if (request == NULL || request->state != REQUEST_ACTIVE)
        continue; /* cancelled: run_deferred frees it */
      complete_request (request, result);
    }
}

/*
 * Add @request's handle to the multi handle. On failure, report it through
 * on_done (when @report) and free the request.
 */
static gboolean
add_request (MoatFetchRequest *request, gboolean report, GError **error)
{
  CURLMcode result = curl_multi_add_handle (request->fetch->multi,
                                            request->easy);
  g_autoptr (GError) local_error = NULL;

  if (result == CURLM_OK)
    {
      request->added = TRUE;
      return TRUE;
    }

  local_error = g_error_new (MOAT_ERROR, MOAT_ERROR_UPSTREAM,
                             "cannot start the upstream request %s %s: %s",
                             request->method, request->url,
                             curl_multi_strerror (result));
  g_warning ("%s", local_error->message);
  if (report && request->callbacks.on_done != NULL)
    {
      request->state = REQUEST_DONE;
      request->callbacks.on_done (request, local_error, request->user_data);
    }
  request_free (request);
  g_propagate_error (error, g_steal_pointer (&local_error));
  return FALSE;
}

static gboolean
run_deferred (gpointer data)
{
  MoatFetch *fetch = data;
  GList *link = fetch->requests.head;

  destroy_source (&fetch->deferred);
  while (link != NULL)
    {
      MoatFetchRequest *request = link->data;

      link = link->next;
      if (request->state == REQUEST_CANCELLED)
        request_free (request);
      else if (request->state == REQUEST_ACTIVE && !request->added)
        add_request (request, TRUE, NULL);
    }
  return G_SOURCE_REMOVE;
}

static void
schedule_deferred (MoatFetch *fetch)
{
  if (fetch->deferred == NULL)
    fetch->deferred = attach_idle (fetch, run_deferred, fetch);
}

/* libcurl callbacks of one transfer */

static void
clear_response_head (MoatFetchRequest *request)
{
  request->status = 0;
  g_ptr_array_set_size (request->response_headers, 0);
}

/*
 * Parse the status line "HTTP/x[.y] NNN reason" as libcurl delivers it for
 * HTTP/1.x and HTTP/2 (RFC 9112 section 4). Return the status or 0.
 */
static guint
parse_status_line (const char *line, gsize length)
{
  const char *end = line + length;
  const char *cursor = line + strlen ("HTTP/");
  guint status = 0;

  while (cursor < end && *cursor != ' ')
    cursor++;
  if (end - cursor < 4 || *cursor != ' ')
    return 0;
  cursor++;

  for (int i = 0; i < 3; i++)
    {
      if (!g_ascii_isdigit (cursor[i]))
        return 0;
      status = status * 10 + (guint) (cursor[i] - '0');
    }
  if (end - cursor > 3 && cursor[3] != ' ')
    return 0;
  if (status < 100 || status > 599)
    return 0;
  return status;
}

static gboolean
add_header_line (MoatFetchRequest *request, const char *line, gsize length)
{
  const char *end = line + length;
  const char *colon = memchr (line, ':', length);
  const char *value;
  g_autofree char *name = NULL;
  g_autofree char *value_text = NULL;

  /* Obsolete line folding continues the previous field's value
   * (RFC 9112 section 5.2); it is replaced by one space. */
  if (line[0] == ' ' || line[0] == '\t')
    {
      GPtrArray *headers = request->response_headers;
      MoatHttpHeader *previous;
      g_autofree char *continuation = NULL;
      char *joined;

      if (headers->len == 0)
        return FALSE;
      previous = g_ptr_array_index (headers, headers->len - 1);
      continuation = g_strstrip (g_strndup (line, length));
      joined = g_strconcat (previous->value, " ", continuation, NULL);
      g_free (previous->value);
      previous->value = joined;
      return TRUE;
    }

  if (colon == NULL || colon == line)
    return FALSE;
  for (const char *p = line; p < colon; p++)
    if (*p == ' ' || *p == '\t')
      return FALSE; /* no whitespace before the colon, RFC 9112 5.1 */

  value = colon + 1;
  name = g_strndup (line, colon - line);
  value_text = g_strstrip (g_strndup (value, end - value));
  g_ptr_array_add (request->response_headers,
                   moat_http_header_new (name, value_text));
  return TRUE;
}

/* CURLOPT_HEADERFUNCTION: one line of a response head, interim heads too. */
static size_t
on_curl_header (char *buffer, size_t size, size_t count, void *data)
{
  MoatFetchRequest *request = data;
  gsize length = size * count;
  gsize line_length = length;

  if (request->state != REQUEST_ACTIVE)
    return 0;
  /* Trailer fields after a chunked body are not passed on. */
  if (request->response_reported)
    return length;

  request->head_bytes += length;
  if (request->head_bytes > MOAT_HTTP_HEAD_MAX)
    {
      record_failure (request,
                      "the response head is larger than %d bytes",
                      MOAT_HTTP_HEAD_MAX);
      return 0;
    }

  while (line_length > 0 && (buffer[line_length - 1] == '\n'
                             || buffer[line_length - 1] == '\r'))
    line_length--;
  if (memchr (buffer, '\0', line_length) != NULL)
    {
      record_failure (request, "the response head contains a NUL byte");
      return 0;
    }

  if (line_length == 0)
    {
      if (request->status == 0)
        {
          record_failure (request, "the response head has no status line");
          return 0;
        }
      if (request->status < 200)
        {
          /* 1xx interim response (RFC 9110 section 15.2): wait for the
           * final one. */
          clear_response_head (request);
          return length;
        }

      request->response_reported = TRUE;
      if (request->callbacks.on_response != NULL)
        request->callbacks.on_response (request, request->status,
                                        request->response_headers,
                                        request->user_data);
      return request->state == REQUEST_ACTIVE ? length : 0;
    }

  if (line_length >= 5 && memcmp (buffer, "HTTP/", 5) == 0)
    {
      clear_response_head (request);
      request->status = parse_status_line (buffer, line_length);
      if (request->status == 0)
        {
          g_autofree char *line = g_strndup (buffer, MIN (line_length, 80));

          record_failure (request, "invalid status line \"%s\"", line);
          return 0;
        }
      return length;
    }

  if (request->status == 0 || !add_header_line (request, buffer, line_length))
    {
      g_autofree char *line = g_strndup (buffer, MIN (line_length, 80));

      record_failure (request, "invalid response header line \"%s\"", line);
      return 0;
    }
  return length;
}

/* CURLOPT_WRITEFUNCTION: response body bytes, transfer coding removed. */
static size_t
on_curl_write (char *buffer, size_t size, size_t count, void *data)
{
  MoatFetchRequest *request = data;
  gsize length = size * count;
  guint resumes = request->download_resumes;
  gboolean accepted;

  if (request->state != REQUEST_ACTIVE)
    return CURL_WRITEFUNC_ERROR;
  if (!request->response_reported)
    {
      record_failure (request, "body bytes arrived before the response head");
      return CURL_WRITEFUNC_ERROR;
    }
  if (length == 0)
    return 0;

  accepted = request->callbacks.on_body == NULL
             || request->callbacks.on_body (request, (const guint8 *) buffer,
                                            length, request->user_data);
  if (request->state != REQUEST_ACTIVE)
    return CURL_WRITEFUNC_ERROR;
  if (accepted)
    return length;

  /* A resume from inside on_body is already scheduled: leave the flag
   * clear so that the resume unpauses. */
  if (request->download_resumes == resumes)
    request->recv_paused = TRUE;
  return CURL_WRITEFUNC_PAUSE;
}

/* CURLOPT_READFUNCTION: request body bytes for the upload. */
static size_t
on_curl_read (char *buffer, size_t size, size_t count, void *data)
{
  MoatFetchRequest *request = data;
  gsize capacity = size * count;
  guint resumes = request->upload_resumes;
  gssize filled;

  if (request->state != REQUEST_ACTIVE)
    return CURL_READFUNC_ABORT;

  filled = request->callbacks.read_body (request, (guint8 *) buffer, capacity,
                                         request->user_data);
  if (request->state != REQUEST_ACTIVE)
    return CURL_READFUNC_ABORT;

  if (filled == -1)
    {
      if (request->upload_resumes == resumes)
        request->send_paused = TRUE;
      return CURL_READFUNC_PAUSE;
    }
  if (filled < 0 || (gsize) filled > capacity)
    {
      g_critical ("read_body returned %" G_GSSIZE_FORMAT " for a buffer of "
                  "%" G_GSIZE_FORMAT " bytes", filled, capacity);
      record_failure (request, "reading the request body failed");
      return CURL_READFUNC_ABORT;
    }
  return (size_t) filled;
}

/*
 * CURLOPT_OPENSOCKETFUNCTION: reject private upstream addresses unless a
 * connect-to entry sends this request there on purpose.
 */
static curl_socket_t
on_curl_open_socket (void *data, curlsocktype purpose,
                     struct curl_sockaddr *address)
{
  MoatFetchRequest *request = data;

  if (!request->connect_to_match
      && moat_fetch_address_is_private (&address->addr, address->addrlen))
    {
      g_autofree char *text = format_address (&address->addr,
                                              address->addrlen);

      record_failure (request,
                      "upstream address %s for host %s is in a private "
                      "range and not allowed",
                      text, request->host);
      return CURL_SOCKET_BAD;
    }

  return moat_socket_new (address->family, address->socktype,
                          address->protocol, FALSE);
}

static gboolean
apply_pause_state (gpointer data)
{
  MoatFetchRequest *request = data;
  MoatFetch *fetch = request->fetch;
  int mask = 0;
  CURLcode result;

  destroy_source (&request->resume);
  if (request->state != REQUEST_ACTIVE)
    return G_SOURCE_REMOVE;

  if (request->recv_paused)
    mask |= CURLPAUSE_RECV;
  if (request->send_paused)
    mask |= CURLPAUSE_SEND;

  /* Unpausing the download delivers buffered bytes to on_body at once. */
  fetch->depth++;
  result = curl_easy_pause (request->easy, mask);
  fetch->depth--;

  /* A failure inside curl_easy_pause does not reach the multi handle's
   * message queue, so finish the request here. */
  if (result != CURLE_OK && request->state == REQUEST_ACTIVE)
    complete_request (request, result);
  else
    process_completed (fetch);
  return G_SOURCE_REMOVE;
}

static void
schedule_pause_update (MoatFetchRequest *request)
{
  if (request->resume == NULL)
    request->resume = attach_idle (request->fetch, apply_pause_state, request);
}

/**
 * moat_fetch_request_resume_download:
 * @request: a request whose on_body returned %FALSE
 *
 * Resumes the download on a later main loop iteration; on_body is then
 * offered the bytes it declined. Does nothing for a finished request.
 */
void
moat_fetch_request_resume_download (MoatFetchRequest *request)
{
  g_return_if_fail (request != NULL);

  if (request->state != REQUEST_ACTIVE)
    return;
  request->download_resumes++;
  request->recv_paused = FALSE;
  schedule_pause_update (request);
}

/**
 * moat_fetch_request_resume_upload:
 * @request: a request whose read_body returned -1
 *
 * Resumes the upload on a later main loop iteration by calling read_body
 * again. Does nothing for a finished request.
 */
void
moat_fetch_request_resume_upload (MoatFetchRequest *request)
{
  g_return_if_fail (request != NULL);

  if (request->state != REQUEST_ACTIVE)
    return;
  request->upload_resumes++;
  request->send_paused = FALSE;
  schedule_pause_update (request);
}

/**
 * moat_fetch_request_cancel:
 * @request: (nullable): a request
 *
 * Stops @request without calling on_done. No callback of @request runs
 * after this returns, and @request must not be used again. Inside on_done,
 * where the request is finished anyway, this does nothing.
 */
void
moat_fetch_request_cancel (MoatFetchRequest *request)
{
  MoatFetch *fetch;

  if (request == NULL || request->state != REQUEST_ACTIVE)
    return;

  fetch = request->fetch;
  if (fetch->depth == 0)
    {
      request_free (request);
      return;
    }

  /* Inside libcurl: the callback in progress aborts the transfer, and
   * run_deferred frees the request. */
  request->state = REQUEST_CANCELLED;
  destroy_source (&request->resume);
  schedule_deferred (fetch);
}

/**
 * moat_fetch_request_get_remote_address:
 * @request: a request
 *
 * Return: the upstream IP address in text form once libcurl has connected
 *   or picked a cached connection, otherwise %NULL. The string belongs to
 *   @request and stays valid until on_done returns.
 */
const char *
moat_fetch_request_get_remote_address (const MoatFetchRequest *request)
{
  char *address = NULL;

  g_return_val_if_fail (request != NULL, NULL);

  if (curl_easy_getinfo (request->easy, CURLINFO_PRIMARY_IP, &address)
          != CURLE_OK
      || address == NULL || address[0] == '\0')
    return NULL;
  return address;
}

/* Starting a request */

static gboolean
is_token (const char *text)
{
  /* tchar, RFC 9110 section 5.6.2 */
  static const char symbols[] = "!#$%&'*+-.^_`|~";

  if (text == NULL || *text == '\0')
    return FALSE;
  for (const char *p = text; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && strchr (symbols, *p) == NULL)
      return FALSE;
  return TRUE;
}

static gboolean
is_field_value (const char *text)
{
  for (const char *p = text; *p != '\0'; p++)
    if (*p == '\r' || *p == '\n')
      return FALSE;
  return TRUE;
}

static gboolean
has_header (GPtrArray *headers, const char *name)
{
  for (guint i = 0; headers != NULL && i < headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (headers, i);

      if (g_ascii_strcasecmp (header->name, name) == 0)
        return TRUE;
    }
  return FALSE;
}

static struct curl_slist *
append_header_line (struct curl_slist *list, const char *line)
{
  struct curl_slist *appended = curl_slist_append (list, line);

  if (appended == NULL)
    g_error ("out of memory building request headers");
  return appended;
}

/*
 * Build the header list for CURLOPT_HTTPHEADER: exactly the caller's
 * fields, plus "Name:" entries that stop libcurl from adding Accept,
 * Expect and Content-Type fields of its own. libcurl still adds
 * Content-Length or "Transfer-Encoding: chunked" for a body when the
 * caller sent no Content-Length, because the upstream needs framing.
 */
static struct curl_slist *
build_header_list (const MoatFetchRequestInfo *info, GError **error)
{
  static const char *const suppressed[] = { "Accept", "Expect",
                                            "Content-Type" };
  struct curl_slist *list = NULL;

  for (guint i = 0; info->headers != NULL && i < info->headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (info->headers, i);
      g_autofree char *line = NULL;

      if (!is_token (header->name) || !is_field_value (header->value))
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                       "invalid request header field \"%s\" for %s",
                       header->name, info->url);
          curl_slist_free_all (list);
          return NULL;
        }

      /* libcurl sends "Name;" as a field with an empty value, while
       * "Name:" would remove the field. */
      if (header->value[0] == '\0')
        line = g_strconcat (header->name, ";", NULL);
      else
        line = g_strconcat (header->name, ": ", header->value, NULL);
      list = append_header_line (list, line);
    }

  for (gsize i = 0; i < G_N_ELEMENTS (suppressed); i++)
    if (!has_header (info->headers, suppressed[i]))
      {
        g_autofree char *line = g_strconcat (suppressed[i], ":", NULL);

        list = append_header_line (list, line);
      }

  return list;
}

/*
 * Extract the host and port of @url, and check that its scheme is http or
 * https.
 */
static gboolean
parse_request_url (const char *url, char **host, guint *port, GError **error)
{
  g_autoptr (CURLU) parsed = curl_url ();
  char *scheme = NULL;
  char *host_part = NULL;
  char *port_part = NULL;
  gboolean valid;
  guint64 port_number = 0;
  gsize host_length;

  if (parsed == NULL)
    g_error ("out of memory parsing a URL");

  valid = curl_url_set (parsed, CURLUPART_URL, url, 0) == CURLUE_OK
          && curl_url_get (parsed, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK
          && (g_strcmp0 (scheme, "http") == 0
              || g_strcmp0 (scheme, "https") == 0)
          && curl_url_get (parsed, CURLUPART_HOST, &host_part, 0) == CURLUE_OK
          && curl_url_get (parsed, CURLUPART_PORT, &port_part,
                           CURLU_DEFAULT_PORT) == CURLUE_OK
          && g_ascii_string_to_unsigned (port_part, 10, 1, 65535,
                                         &port_number, NULL);

  if (valid)
    {
      host_length = strlen (host_part);
      if (host_length >= 2 && host_part[0] == '['
          && host_part[host_length - 1] == ']')
        *host = g_strndup (host_part + 1, host_length - 2);
      else
        *host = g_strdup (host_part);
      *port = (guint) port_number;
    }
  else
    g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                 "invalid upstream URL \"%s\": expected an absolute http "
                 "or https URL",
                 url);

  curl_free (scheme);
  curl_free (host_part);
  curl_free (port_part);
  return valid;
}

static gboolean
matches_connect_to (const MoatFetch *fetch, const char *host, guint port)
{
  for (guint i = 0; i < fetch->connect_to_entries->len; i++)
    {
      const ConnectToEntry *entry = &g_array_index (fetch->connect_to_entries,
                                                    ConnectToEntry, i);

      if ((entry->host[0] != '\0'
           && g_ascii_strcasecmp (entry->host, host) != 0)
          || (entry->port != 0 && entry->port != port))
        continue;
      /* libcurl applies the first matching entry. An entry without a
       * target host still resolves the real name, so it exempts nothing. */
      return entry->has_target_host;
    }
  return FALSE;
}

/*
 * Choose how libcurl sends the method and body. HEAD uses CURLOPT_NOBODY so
 * that libcurl does not wait for a body. PUT with a body uses CURLOPT_UPLOAD,
 * every other method with a body uses CURLOPT_POST with the method as
 * CURLOPT_CUSTOMREQUEST. A body length of -1 makes libcurl send the body
 * chunked over HTTP/1.1 and as plain DATA frames over HTTP/2.
 */
static void
set_method_and_body (MoatFetchRequest *request,
                     const MoatFetchRequestInfo *info)
{
  CURL *easy = request->easy;
  const char *method = info->method;

  if (strcmp (method, "HEAD") == 0)
    {
      curl_easy_setopt (easy, CURLOPT_NOBODY, 1L);
      return;
    }

  if (info->body_length == 0)
    {
      if (strcmp (method, "POST") == 0)
        {
          curl_easy_setopt (easy, CURLOPT_POST, 1L);
          curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t) 0);
        }
      else
        curl_easy_setopt (easy, CURLOPT_HTTPGET, 1L);
    }
  else
    {
      if (strcmp (method, "PUT") == 0)
        {
          curl_easy_setopt (easy, CURLOPT_UPLOAD, 1L);
          curl_easy_setopt (easy, CURLOPT_INFILESIZE_LARGE,
                            (curl_off_t) info->body_length);
        }
      else
        {
          curl_easy_setopt (easy, CURLOPT_POST, 1L);
          curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t) info->body_length);
        }
      curl_easy_setopt (easy, CURLOPT_READFUNCTION, on_curl_read);
      curl_easy_setopt (easy, CURLOPT_READDATA, request);
    }

  if (strcmp (method, "GET") != 0 && strcmp (method, "POST") != 0)
    curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, method);
}

static void
set_transfer_options (MoatFetchRequest *request)
{
  MoatFetch *fetch = request->fetch;
  CURL *easy = request->easy;

  curl_easy_setopt (easy, CURLOPT_URL, request->url);
  curl_easy_setopt (easy, CURLOPT_PRIVATE, request);
  curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, request->error_buffer);
  curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt (easy, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt (easy, CURLOPT_FOLLOWLOCATION, 0L);
  /* Send the guest's path unchanged: no "/../" squashing. */
  curl_easy_setopt (easy, CURLOPT_PATH_AS_IS, 1L);
  /* Pass Content-Encoding through; ACCEPT_ENCODING stays unset. */
  curl_easy_setopt (easy, CURLOPT_HTTP_CONTENT_DECODING, 0L);
  /* The configuration has no proxy setting, so ignore http_proxy and
   * friends from the environment. */
  curl_easy_setopt (easy, CURLOPT_PROXY, "");
  curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT, (long) FETCH_CONNECT_TIMEOUT_S);
  curl_easy_setopt (easy, CURLOPT_LOW_SPEED_LIMIT, (long) FETCH_STALL_BYTES_PER_S);
  curl_easy_setopt (easy, CURLOPT_LOW_SPEED_TIME, (long) fetch->stall_timeout_s);
  curl_easy_setopt (easy, CURLOPT_TCP_KEEPALIVE, 1L);

  curl_easy_setopt (easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt (easy, CURLOPT_SSL_VERIFYHOST, 2L);
  if (fetch->ca_blob != NULL)
    {
      struct curl_blob blob = {
        (void *) g_bytes_get_data (fetch->ca_blob, NULL),
        g_bytes_get_size (fetch->ca_blob),
        CURL_BLOB_NOCOPY, /* fetch->ca_blob outlives every handle */
      };

      curl_easy_setopt (easy, CURLOPT_CAINFO_BLOB, &blob);
    }
  else if (fetch->ca_file != NULL)
    {
      curl_easy_setopt (easy, CURLOPT_CAINFO, fetch->ca_file);
      curl_easy_setopt (easy, CURLOPT_CAPATH, fetch->ca_path);
    }

  if (fetch->connect_to != NULL)
    curl_easy_setopt (easy, CURLOPT_CONNECT_TO, fetch->connect_to);
  curl_easy_setopt (easy, CURLOPT_OPENSOCKETFUNCTION, on_curl_open_socket);
  curl_easy_setopt (easy, CURLOPT_OPENSOCKETDATA, request);

  curl_easy_setopt (easy, CURLOPT_HTTPHEADER, request->headers);
  curl_easy_setopt (easy, CURLOPT_HEADERFUNCTION, on_curl_header);
  curl_easy_setopt (easy, CURLOPT_HEADERDATA, request);
  curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, on_curl_write);
  curl_easy_setopt (easy, CURLOPT_WRITEDATA, request);
}

/**
 * moat_fetch_start:
 * @fetch: the fetch
 * @info: method, URL, header fields and body length; copied
 * @callbacks: callbacks for the request; copied. read_body is required
 *   when @info has a body.
 * @user_data: data for @callbacks
 * @error: return location for a %MOAT_ERROR_PROTOCOL error, or
 *   %MOAT_ERROR_UPSTREAM when libcurl cannot take the transfer
 *
 * Starts an upstream request. The transfer runs on the main loop, and all
 * callbacks come from there.
 *
 * Return: (transfer none): the request, valid until on_done returns or
 *   moat_fetch_request_cancel() is called; %NULL when @info is invalid.
 */
MoatFetchRequest *
moat_fetch_start (MoatFetch *fetch, const MoatFetchRequestInfo *info,
                  const MoatFetchCallbacks *callbacks, gpointer user_data,
                  GError **error)
{
  MoatFetchRequest *request;
  g_autofree char *host = NULL;
  guint port = 0;
  struct curl_slist *headers;

  g_return_val_if_fail (fetch != NULL, NULL);
  g_return_val_if_fail (info != NULL && info->url != NULL, NULL);
  g_return_val_if_fail (callbacks != NULL, NULL);
  g_return_val_if_fail (info->body_length >= -1, NULL);
  g_return_val_if_fail (info->body_length == 0
                            || g_strcmp0 (info->method, "HEAD") == 0
                            || callbacks->read_body != NULL,
                        NULL);

  /* CONNECT would make libcurl open a tunnel (RFC 9110 section 9.3.6). */
  if (!is_token (info->method) || strcmp (info->method, "CONNECT") == 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "invalid or unsupported request method \"%s\" for %s",
                   info->method != NULL ? info->method : "", info->url);
      return NULL;
    }
  if (strcmp (info->method, "HEAD") == 0 && info->body_length != 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL,
                   "a HEAD request with a body is not supported (%s)",
                   info->url);
      return NULL;
    }

  if (!parse_request_url (info->url, &host, &port, error))
    return NULL;
  headers = build_header_list (info, error);
  if (headers == NULL && error != NULL && *error != NULL)
    return NULL;

  request = g_new0 (MoatFetchRequest, 1);
  request->fetch = fetch;
  request->link.data = request;
  request->state = REQUEST_ACTIVE;
  request->callbacks = *callbacks;
  request->user_data = user_data;
  request->method = g_strdup (info->method);
  request->url = g_strdup (info->url);
  request->host = g_steal_pointer (&host);
  request->connect_to_match = matches_connect_to (fetch, request->host, port);
  request->headers = headers;
  request->response_headers = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_http_header_free);
  g_queue_push_tail_link (&fetch->requests, &request->link);

  request->easy = curl_easy_init ();
  if (request->easy == NULL)
    g_error ("out of memory creating a libcurl handle");
  set_transfer_options (request);
  set_method_and_body (request, info);

  if (fetch->depth > 0)
    {
      /* Inside a libcurl callback: run_deferred adds the handle. */
      schedule_deferred (fetch);
      return request;
    }
  if (!add_request (request, FALSE, error))
    return NULL;
  return request;
}
