/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-fetch.c - unit tests for the host fetch against loopback upstreams */
#include <arpa/inet.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "fetch.h"

/* Seconds one transfer may take before the test fails. */
#define TRANSFER_TIMEOUT_S 30

/* Loopback upstreams started by tests/unit/fetch/upstream.py. */
static struct {
  GSubprocess *process;
  char *folder;
  char *ca_file;
  guint http_port;
  guint https_port;
  guint wrong_port;
  guint h2_port; /* 0 when nginx is not installed */
  guint closed_port;
} upstream;

/* Find a TCP port on 127.0.0.1 with no listener. */
static guint
find_closed_port (void)
{
  struct sockaddr_in address = { .sin_family = AF_INET };
  socklen_t length = sizeof address;
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert_cmpint (bind (fd, (struct sockaddr *) &address, sizeof address),
                   ==, 0);
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) &address, &length),
                   ==, 0);
  close (fd);
  return ntohs (address.sin_port);
}

static void
start_upstream (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *script = NULL;
  g_autofree char *line = NULL;
  g_auto (GStrv) words = NULL;
  g_autoptr (GDataInputStream) output = NULL;
  guint64 ports[4];

  script = g_test_build_filename (G_TEST_DIST, "unit", "fetch", "upstream.py",
                                  NULL);
  upstream.folder = g_dir_make_tmp ("moat-fetch-XXXXXX", &error);
  g_assert_no_error (error);
  upstream.ca_file = g_build_filename (upstream.folder, "ca.pem", NULL);

  upstream.process = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE
                                           | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                                       &error, "python3", script,
                                       upstream.folder, NULL);
  g_assert_no_error (error);

  output = g_data_input_stream_new (
      g_subprocess_get_stdout_pipe (upstream.process));
  line = g_data_input_stream_read_line (output, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);

  words = g_strsplit (line, " ", -1);
  g_assert_cmpuint (g_strv_length (words), ==, 5);
  g_assert_cmpstr (words[0], ==, "ports");
  for (int i = 0; i < 4; i++)
    {
      g_assert_true (g_ascii_string_to_unsigned (words[i + 1], 10, 0, 65535,
                                                 &ports[i], &error));
      g_assert_no_error (error);
    }
  upstream.http_port = (guint) ports[0];
  upstream.https_port = (guint) ports[1];
  upstream.wrong_port = (guint) ports[2];
  upstream.h2_port = (guint) ports[3];
  upstream.closed_port = find_closed_port ();
}

static void
remove_folder (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir == NULL)
    return;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *file = g_build_filename (path, name, NULL);

      /* nginx leaves folders of its own (client_body_temp and others). */
      if (g_file_test (file, G_FILE_TEST_IS_DIR)
          && !g_file_test (file, G_FILE_TEST_IS_SYMLINK))
        remove_folder (file);
      else
        g_unlink (file);
    }
  g_rmdir (path);
}

static void
stop_upstream (void)
{
  g_autoptr (GError) error = NULL;

  /* Closing stdin ends the server. */
  g_output_stream_close (g_subprocess_get_stdin_pipe (upstream.process), NULL,
                         NULL);
  g_subprocess_wait (upstream.process, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&upstream.process);
  remove_folder (upstream.folder);
  g_clear_pointer (&upstream.folder, g_free);
  g_clear_pointer (&upstream.ca_file, g_free);
}

/*
 * TestConfig: a MoatConfig that maps the test names to the loopback
 * upstreams. Built by hand so that this test does not depend on the
 * configuration parser.
 */
typedef struct {
  MoatConfig config;
  GStrv connect_to;
} TestConfig;

static TestConfig *
test_config_new (gboolean with_ca)
{
  TestConfig *test_config = g_new0 (TestConfig, 1);
  GStrvBuilder *builder = g_strv_builder_new ();
  g_autofree char *http = NULL;
  g_autofree char *https = NULL;
  g_autofree char *wrong = NULL;
  g_autofree char *refused = NULL;
  g_autofree char *h2 = NULL;

  http = g_strdup_printf ("upstream.test:80:127.0.0.1:%u",
                          upstream.http_port);
  https = g_strdup_printf ("upstream.test:443:127.0.0.1:%u",
                           upstream.https_port);
  wrong = g_strdup_printf ("upstream.test:8443:127.0.0.1:%u",
                           upstream.wrong_port);
  refused = g_strdup_printf ("refused.test:80:127.0.0.1:%u",
                             upstream.closed_port);
  g_strv_builder_add_many (builder, http, https, wrong, refused, NULL);
  if (upstream.h2_port != 0)
    {
      h2 = g_strdup_printf ("upstream.test:9443:127.0.0.1:%u",
                            upstream.h2_port);
      g_strv_builder_add (builder, h2);
    }
  test_config->connect_to = g_strv_builder_end (builder);
  g_strv_builder_unref (builder);

  test_config->config.fd = -1;
  test_config->config.connect_to = test_config->connect_to;
  if (with_ca)
    test_config->config.upstream_ca_file = upstream.ca_file;
  return test_config;
}

static void
test_config_free (TestConfig *test_config)
{
  g_strfreev (test_config->connect_to);
  g_free (test_config);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestConfig, test_config_free)

static MoatFetch *
new_fetch (gboolean with_ca)
{
  g_autoptr (TestConfig) test_config = test_config_new (with_ca);
  g_autoptr (GError) error = NULL;
  MoatFetch *fetch;

  /* moat_fetch_new copies what it keeps from the configuration. */
  fetch = moat_fetch_new (&test_config->config, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fetch);
  return fetch;
}

/**
 * Transfer:
 * Outcome of one request, filled by the callbacks below.
 * @pause_every: on_body declines every Nth call and resumes from a timeout
 * @stay_paused: on_body declines without scheduling a resume
 * @resume_inside: on_body resumes before it declines
 * @chained: a request that on_response starts on @fetch
 * @upload: request body to send
 * @upload_step: bytes read_body hands out per call, 0 for as many as fit
 * @upload_pause_every: read_body returns -1 every Nth call and resumes
 * @cancel_in_response: cancel the request from on_response
 */
typedef struct Transfer {
  GMainLoop *loop;
  MoatFetchRequest *request;
  guint pause_every;
  gboolean stay_paused;
  gboolean resume_inside;
  MoatFetch *fetch;
  struct Transfer *chained;
  const guint8 *upload;
  gsize upload_length;
  gsize upload_step;
  guint upload_pause_every;
  gboolean cancel_in_response;

  guint response_calls;
  guint status;
  GPtrArray *headers;
  GByteArray *body;
  guint body_calls;
  guint pauses;
  gsize upload_offset;
  guint read_calls;
  guint upload_pauses;
  gboolean done;
  GError *error;
  char *remote_address;
} Transfer;

static Transfer *
transfer_new (void)
{
  Transfer *transfer = g_new0 (Transfer, 1);

  transfer->loop = g_main_loop_new (NULL, FALSE);
  transfer->headers = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_http_header_free);
  transfer->body = g_byte_array_new ();
  return transfer;
}

static void
transfer_free (Transfer *transfer)
{
  g_main_loop_unref (transfer->loop);
  g_ptr_array_unref (transfer->headers);
  g_byte_array_unref (transfer->body);
  g_clear_error (&transfer->error);
  g_free (transfer->remote_address);
  g_free (transfer);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Transfer, transfer_free)

static const char *
transfer_get_header (const Transfer *transfer, const char *name)
{
  for (guint i = 0; i < transfer->headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (transfer->headers, i);

      if (g_ascii_strcasecmp (header->name, name) == 0)
        return header->value;
    }
  return NULL;
}

static void start_transfer (MoatFetch *fetch, Transfer *transfer,
                            const char *method, const char *url,
                            gint64 body_length,
                            const char *const *header_pairs);

static void
on_response (MoatFetchRequest *request, guint status, GPtrArray *headers,
             gpointer user_data)
{
  Transfer *transfer = user_data;
  const char *address = moat_fetch_request_get_remote_address (request);

  transfer->response_calls++;
  transfer->status = status;
  for (guint i = 0; i < headers->len; i++)
    {
      const MoatHttpHeader *header = g_ptr_array_index (headers, i);

      g_ptr_array_add (transfer->headers,
                       moat_http_header_new (header->name, header->value));
    }
  g_free (transfer->remote_address);
  transfer->remote_address = g_strdup (address);

  if (transfer->chained != NULL)
    {
      const char *const chained_headers[] = { "Host", "upstream.test", NULL };

      start_transfer (transfer->fetch, transfer->chained, "GET",
                      "http://upstream.test/hello", 0, chained_headers);
    }

  if (transfer->cancel_in_response)
    {
      moat_fetch_request_cancel (request);
      g_main_loop_quit (transfer->loop);
    }
}

static gboolean
resume_download_later (gpointer data)
{
  Transfer *transfer = data;

  moat_fetch_request_resume_download (transfer->request);
  return G_SOURCE_REMOVE;
}

static gboolean
on_body (MoatFetchRequest *request, const guint8 *data, gsize length,
         gpointer user_data)
{
  Transfer *transfer = user_data;

  transfer->body_calls++;
  if (transfer->pause_every != 0
      && transfer->body_calls % transfer->pause_every == 0)
    {
      transfer->pauses++;
      if (transfer->resume_inside)
        moat_fetch_request_resume_download (request);
      else if (!transfer->stay_paused)
        g_timeout_add (1, resume_download_later, transfer);
      return FALSE;
    }
  g_byte_array_append (transfer->body, data, (guint) length);
  return TRUE;
}

static gboolean
resume_upload_later (gpointer data)
{
  Transfer *transfer = data;

  moat_fetch_request_resume_upload (transfer->request);
  return G_SOURCE_REMOVE;
}

static gssize
read_body (MoatFetchRequest *request, guint8 *buffer, gsize size,
           gpointer user_data)
{
  Transfer *transfer = user_data;
  gsize count = MIN (size, transfer->upload_length - transfer->upload_offset);

  transfer->read_calls++;
  if (transfer->upload_pause_every != 0
      && transfer->read_calls % transfer->upload_pause_every == 0)
    {
      transfer->upload_pauses++;
      g_timeout_add (1, resume_upload_later, transfer);
      return -1;
    }
  if (transfer->upload_step != 0)
    count = MIN (count, transfer->upload_step);
  memcpy (buffer, transfer->upload + transfer->upload_offset, count);
  transfer->upload_offset += count;
  return (gssize) count;
}

static void
on_done (MoatFetchRequest *request, const GError *error, gpointer user_data)
{
  Transfer *transfer = user_data;

  g_assert_false (transfer->done);
  transfer->done = TRUE;
  if (error != NULL)
    transfer->error = g_error_copy (error);
  g_main_loop_quit (transfer->loop);
}

static const MoatFetchCallbacks callbacks = {
  .on_response = on_response,
  .on_body = on_body,
  .read_body = read_body,
  .on_done = on_done,
};

static gboolean
on_transfer_timeout (gpointer data)
{
  g_error ("a transfer took longer than %d s", TRANSFER_TIMEOUT_S);
  return G_SOURCE_REMOVE;
}

/*
 * Start one request. @header_pairs lists name, value, name, value, ... and
 * ends with NULL.
 */
static void
start_transfer (MoatFetch *fetch, Transfer *transfer, const char *method,
                const char *url, gint64 body_length,
                const char *const *header_pairs)
{
  g_autoptr (GPtrArray) headers = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_http_header_free);
  g_autoptr (GError) error = NULL;
  MoatFetchRequestInfo info = {
    .method = method,
    .url = url,
    .headers = headers,
    .body_length = body_length,
  };

  for (gsize i = 0; header_pairs != NULL && header_pairs[i] != NULL; i += 2)
    g_ptr_array_add (headers,
                     moat_http_header_new (header_pairs[i],
                                           header_pairs[i + 1]));

  transfer->request = moat_fetch_start (fetch, &info, &callbacks, transfer,
                                        &error);
  g_assert_no_error (error);
  g_assert_nonnull (transfer->request);
}

/* Run the main loop until @transfer quits it. */
static void
wait_for_transfer (Transfer *transfer)
{
  guint timeout = g_timeout_add_seconds (TRANSFER_TIMEOUT_S,
                                         on_transfer_timeout, NULL);

  if (!transfer->done)
    g_main_loop_run (transfer->loop);
  g_source_remove (timeout);
}

static void
run_transfer (MoatFetch *fetch, Transfer *transfer, const char *method,
              const char *url, gint64 body_length,
              const char *const *header_pairs)
{
  start_transfer (fetch, transfer, method, url, body_length, header_pairs);
  wait_for_transfer (transfer);
}

/* Run the main loop for @milliseconds, so late callbacks would show up. */
static void
spin_main_loop (guint milliseconds)
{
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  g_timeout_add (milliseconds, G_SOURCE_FUNC (g_main_loop_quit), loop);
  g_main_loop_run (loop);
}

static char *
upstream_url (const char *path)
{
  return g_strconcat ("http://upstream.test", path, NULL);
}

/* Requests over plain HTTP */

static void
test_get_body (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *url = upstream_url ("/hello");
  const char *const headers[] = { "Host", "upstream.test", NULL };

  run_transfer (fetch, transfer, "GET", url, 0, headers);

  g_assert_no_error (transfer->error);
  g_assert_true (transfer->done);
  g_assert_cmpuint (transfer->response_calls, ==, 1);
  g_assert_cmpuint (transfer->status, ==, 200);
  g_assert_cmpstr (transfer_get_header (transfer, "X-Test"), ==, "one");
  g_assert_cmpstr (transfer_get_header (transfer, "Content-Length"), ==, "12");
  g_assert_cmpmem (transfer->body->data, transfer->body->len,
                   "hello world\n", 12);
  g_assert_cmpstr (transfer->remote_address, ==, "127.0.0.1");
}

static void
test_head (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *url = upstream_url ("/hello");
  const char *const headers[] = { "Host", "upstream.test", NULL };

  run_transfer (fetch, transfer, "HEAD", url, 0, headers);

  g_assert_no_error (transfer->error);
  g_assert_cmpuint (transfer->status, ==, 200);
  g_assert_cmpstr (transfer_get_header (transfer, "Content-Length"), ==, "12");
  g_assert_cmpuint (transfer->body_calls, ==, 0);
}

static void
test_interim_responses (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *url = upstream_url ("/interim");
  const char *const headers[] = { "Host", "upstream.test", NULL };

  run_transfer (fetch, transfer, "GET", url, 0, headers);

  g_assert_no_error (transfer->error);
  g_assert_cmpuint (transfer->response_calls, ==, 1);
  g_assert_cmpuint (transfer->status, ==, 200);
  g_assert_cmpstr (transfer_get_header (transfer, "X-Final"), ==, "yes");
  /* The Link field belongs to the 103 response only. */
  g_assert_null (transfer_get_header (transfer, "Link"));
  g_assert_cmpmem (transfer->body->data, transfer->body->len, "final", 5);
}

typedef struct {
  const char *description;
  const char *method;
  /* Content-Length field from the guest, or NULL for none */
  const char *content_length;
  gint64 body_length;
  gsize body_size;
  gsize upload_step;
  guint upload_pause_every;
  const char *expected_names;
  const char *expected_transfer_encoding;
  const char *expected_content_length;
} UploadCase;

static const UploadCase upload_cases[] = {
  { "GET without a body gets no field from libcurl", "GET", NULL, 0, 0, 0, 0,
    "host,x-guest", "", "" },
  { "POST with the guest's Content-Length", "POST", "14", 14, 14, 0, 0,
    "content-length,host,x-guest", "", "14" },
  { "POST framed by libcurl", "POST", NULL, 14, 14, 0, 0,
    "content-length,host,x-guest", "", "14" },
  { "PUT with a body", "PUT", "14", 14, 14, 0, 0,
    "content-length,host,x-guest", "", "14" },
  { "PATCH keeps its method", "PATCH", "14", 14, 14, 0, 0,
    "content-length,host,x-guest", "", "14" },
  { "DELETE without a body", "DELETE", NULL, 0, 0, 0, 0, "host,x-guest", "",
    "" },
  { "POST of unknown length goes chunked", "POST", NULL, -1, 100000, 1000, 0,
    "host,transfer-encoding,x-guest", "chunked", "" },
  { "PUT of unknown length goes chunked", "PUT", NULL, -1, 5000, 100, 0,
    "host,transfer-encoding,x-guest", "chunked", "" },
  { "chunked upload that pauses", "POST", NULL, -1, 300000, 7000, 3,
    "host,transfer-encoding,x-guest", "chunked", "" },
  { "sized upload that pauses", "POST", "300000", 300000, 300000, 7000, 2,
    "content-length,host,x-guest", "", "300000" },
};

static int
compare_strings (const void *a, const void *b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

static char *
sorted_names (const char *names)
{
  g_auto (GStrv) list = g_strsplit (names, ",", -1);

  qsort (list, g_strv_length (list), sizeof (char *), compare_strings);
  return g_strjoinv (",", list);
}

static void
test_uploads (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (upload_cases); i++)
    {
      const UploadCase *upload_case = &upload_cases[i];
      g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
      g_autoptr (Transfer) transfer = transfer_new ();
      g_autofree char *url = upstream_url ("/echo");
      g_autofree guint8 *body = g_malloc (MAX (upload_case->body_size, 1));
      g_autofree char *names = NULL;
      const char *headers[] = { "Host", "upstream.test", "X-Guest", "1",
                                NULL, NULL, NULL };

      g_test_message ("upload case: %s", upload_case->description);
      for (gsize j = 0; j < upload_case->body_size; j++)
        body[j] = (guint8) ('a' + j % 26);
      if (upload_case->content_length != NULL)
        {
          headers[4] = "Content-Length";
          headers[5] = upload_case->content_length;
        }
      transfer->upload = body;
      transfer->upload_length = upload_case->body_size;
      transfer->upload_step = upload_case->upload_step;
      transfer->upload_pause_every = upload_case->upload_pause_every;

      run_transfer (fetch, transfer, upload_case->method, url,
                    upload_case->body_length, headers);

      g_assert_no_error (transfer->error);
      g_assert_cmpuint (transfer->status, ==, 200);
      g_assert_cmpstr (transfer_get_header (transfer, "X-Seen-Method"), ==,
                       upload_case->method);
      names = sorted_names (
          transfer_get_header (transfer, "X-Seen-Header-Names"));
      g_assert_cmpstr (names, ==, upload_case->expected_names);
      g_assert_cmpstr (
          transfer_get_header (transfer, "X-Seen-Transfer-Encoding"), ==,
          upload_case->expected_transfer_encoding);
      g_assert_cmpstr (transfer_get_header (transfer, "X-Seen-Content-Length"),
                       ==, upload_case->expected_content_length);
      g_assert_cmpmem (transfer->body->data, transfer->body->len, body,
                       upload_case->body_size);
      if (upload_case->upload_pause_every != 0)
        g_assert_cmpuint (transfer->upload_pauses, >, 0);
    }
}

static void
test_large_download_paused (void)
{
  const gsize size = 8 * 1024 * 1024 + 17;
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *path = g_strdup_printf ("/large?size=%" G_GSIZE_FORMAT,
                                           size);
  g_autofree char *url = upstream_url (path);
  const char *const headers[] = { "Host", "upstream.test", NULL };
  gsize mismatch = G_MAXSIZE;

  transfer->pause_every = 3;
  run_transfer (fetch, transfer, "GET", url, 0, headers);

  g_assert_no_error (transfer->error);
  g_assert_cmpuint (transfer->status, ==, 200);
  g_assert_cmpuint (transfer->pauses, >, 0);
  g_assert_cmpuint (transfer->body->len, ==, size);
  for (gsize i = 0; i < size; i++)
    if (transfer->body->data[i] != (guint8) (i % 251))
      {
        mismatch = i;
        break;
      }
  g_assert_cmpuint (mismatch, ==, G_MAXSIZE);
}

/* HTTP/2 through nginx */

static gboolean
skip_without_nginx (void)
{
  if (upstream.h2_port != 0)
    return FALSE;
  g_test_skip ("nginx is not installed, so there is no HTTP/2 upstream");
  return TRUE;
}

static void
test_http2_multiplex (void)
{
  g_autoptr (MoatFetch) fetch = NULL;
  g_autoptr (Transfer) first = transfer_new ();
  g_autoptr (Transfer) second = transfer_new ();
  const char *const headers[] = { "Host", "upstream.test:9443", NULL };
  const char *url = "https://upstream.test:9443/connection";
  g_autofree char *first_text = NULL;

  if (skip_without_nginx ())
    return;

  fetch = new_fetch (TRUE);
  start_transfer (fetch, first, "GET", url, 0, headers);
  start_transfer (fetch, second, "GET", url, 0, headers);
  wait_for_transfer (first);
  wait_for_transfer (second);

  g_assert_no_error (first->error);
  g_assert_no_error (second->error);
  g_assert_cmpuint (first->status, ==, 200);
  g_assert_cmpuint (second->status, ==, 200);
  /* HTTP/2 field names arrive in lowercase. */
  g_assert_cmpstr (transfer_get_header (first, "content-type"), ==,
                   "text/plain");
  first_text = g_strndup ((const char *) first->body->data, first->body->len);
  g_assert_true (g_str_has_suffix (first_text, " HTTP/2.0"));
  /* Both streams ran on the connection nginx numbered first. */
  g_assert_cmpmem (first->body->data, first->body->len, second->body->data,
                   second->body->len);
}

static void
test_http2_chunked_upload (void)
{
  const gsize size = 200000;
  g_autoptr (MoatFetch) fetch = NULL;
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree guint8 *body = g_malloc (size);
  const char *const headers[] = { "Host", "upstream.test:9443", NULL };

  if (skip_without_nginx ())
    return;

  for (gsize i = 0; i < size; i++)
    body[i] = (guint8) ('A' + i % 26);
  transfer->upload = body;
  transfer->upload_length = size;
  transfer->upload_step = 5000;
  transfer->upload_pause_every = 4;

  fetch = new_fetch (TRUE);
  run_transfer (fetch, transfer, "POST", "https://upstream.test:9443/echo", -1,
                headers);

  g_assert_no_error (transfer->error);
  g_assert_cmpuint (transfer->status, ==, 200);
  g_assert_cmpuint (transfer->upload_pauses, >, 0);
  /* A chunked coding inside HTTP/2 DATA frames would show up here. */
  g_assert_cmpmem (transfer->body->data, transfer->body->len, body, size);
}

static void
test_http2_large_download_paused (void)
{
  const gsize size = 4 * 1024 * 1024 + 3;
  g_autoptr (MoatFetch) fetch = NULL;
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *url = g_strdup_printf (
      "https://upstream.test:9443/large?size=%" G_GSIZE_FORMAT, size);
  const char *const headers[] = { "Host", "upstream.test:9443", NULL };
  gsize mismatch = G_MAXSIZE;

  if (skip_without_nginx ())
    return;

  transfer->pause_every = 3;
  fetch = new_fetch (TRUE);
  run_transfer (fetch, transfer, "GET", url, 0, headers);

  g_assert_no_error (transfer->error);
  g_assert_cmpuint (transfer->status, ==, 200);
  g_assert_cmpuint (transfer->pauses, >, 0);
  g_assert_cmpuint (transfer->body->len, ==, size);
  for (gsize i = 0; i < size; i++)
    if (transfer->body->data[i] != (guint8) (i % 251))
      {
        mismatch = i;
        break;
      }
  g_assert_cmpuint (mismatch, ==, G_MAXSIZE);
}

/* Requests that fail */

static void
test_connection_refused (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  const char *const headers[] = { "Host", "refused.test", NULL };

  run_transfer (fetch, transfer, "GET", "http://refused.test/", 0, headers);

  g_assert_error (transfer->error, MOAT_ERROR, MOAT_ERROR_UPSTREAM);
  g_assert_nonnull (strstr (transfer->error->message, "http://refused.test/"));
  g_assert_nonnull (strstr (transfer->error->message, "connection failed"));
  g_assert_cmpuint (transfer->response_calls, ==, 0);
}

static void
test_truncated_body (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *url = upstream_url ("/truncated");
  const char *const headers[] = { "Host", "upstream.test", NULL };

  run_transfer (fetch, transfer, "GET", url, 0, headers);

  g_assert_error (transfer->error, MOAT_ERROR, MOAT_ERROR_UPSTREAM);
  g_assert_nonnull (strstr (transfer->error->message,
                            "closed before the end of the response body"));
  g_assert_cmpuint (transfer->status, ==, 200);
  g_assert_cmpmem (transfer->body->data, transfer->body->len, "0123456789",
                   10);
}

/* HTTPS */

static void
test_https_with_ca_file (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (TRUE);
  g_autoptr (Transfer) transfer = transfer_new ();
  const char *const headers[] = { "Host", "upstream.test", NULL };

  run_transfer (fetch, transfer, "GET", "https://upstream.test/hello", 0,
                headers);

  g_assert_no_error (transfer->error);
  g_assert_cmpuint (transfer->status, ==, 200);
  g_assert_cmpmem (transfer->body->data, transfer->body->len,
                   "hello world\n", 12);
}

static void
test_https_without_ca_file (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  const char *const headers[] = { "Host", "upstream.test", NULL };

  run_transfer (fetch, transfer, "GET", "https://upstream.test/hello", 0,
                headers);

  g_assert_error (transfer->error, MOAT_ERROR, MOAT_ERROR_UPSTREAM);
  g_assert_nonnull (strstr (transfer->error->message,
                            "TLS certificate verification failed"));
  g_assert_true (g_str_has_suffix (transfer->error->message,
                                   "trust it with [upstream] ca-file"));
  g_assert_cmpuint (transfer->response_calls, ==, 0);
}

static void
test_https_wrong_name (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (TRUE);
  g_autoptr (Transfer) transfer = transfer_new ();
  const char *const headers[] = { "Host", "upstream.test:8443", NULL };

  run_transfer (fetch, transfer, "GET", "https://upstream.test:8443/hello", 0,
                headers);

  g_assert_error (transfer->error, MOAT_ERROR, MOAT_ERROR_UPSTREAM);
  g_assert_nonnull (strstr (transfer->error->message,
                            "TLS certificate verification failed"));
  g_assert_nonnull (strstr (transfer->error->message, "other.test"));
  g_assert_nonnull (strstr (transfer->error->message, "upstream.test"));
  /* A name mismatch is not fixed by trusting another CA. */
  g_assert_null (strstr (transfer->error->message, "[upstream] ca-file"));
  g_assert_cmpuint (transfer->response_calls, ==, 0);
}

/* Private upstream addresses */

/* Fetch /connection on a new connection and return its number. */
static guint64
count_connections (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *url = upstream_url ("/connection");
  g_autofree char *text = NULL;
  const char *const headers[] = { "Host", "upstream.test", NULL };
  guint64 number = 0;
  g_autoptr (GError) error = NULL;

  run_transfer (fetch, transfer, "GET", url, 0, headers);
  g_assert_no_error (transfer->error);
  text = g_strndup ((const char *) transfer->body->data, transfer->body->len);
  g_assert_true (g_ascii_string_to_unsigned (text, 10, 1, G_MAXUINT64,
                                             &number, &error));
  g_assert_no_error (error);
  return number;
}

static void
test_private_localhost (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *url = g_strdup_printf ("http://localhost:%u/hello",
                                          upstream.http_port);
  g_autofree char *host = g_strdup_printf ("localhost:%u", upstream.http_port);
  const char *const headers[] = { "Host", host, NULL };
  guint64 before = count_connections ();

  run_transfer (fetch, transfer, "GET", url, 0, headers);

  g_assert_error (transfer->error, MOAT_ERROR, MOAT_ERROR_UPSTREAM);
  g_assert_nonnull (strstr (transfer->error->message, "upstream address "));
  g_assert_nonnull (strstr (transfer->error->message,
                            " for host localhost is in a private range and "
                            "not allowed"));
  g_assert_cmpuint (transfer->response_calls, ==, 0);
  /* Only the second counting connection reached the server. */
  g_assert_cmpuint (count_connections (), ==, before + 1);
}

typedef struct {
  const char *description;
  const char *host;
  const char *expected_address;
} LiteralCase;

static void
test_private_literals (void)
{
  static const LiteralCase cases[] = {
    { "IPv4 loopback", "127.0.0.1", "127.0.0.1" },
    { "other IPv4 loopback", "127.5.6.7", "127.5.6.7" },
    { "IPv6 loopback", "[::1]", "::1" },
    { "IPv4-mapped loopback", "[::ffff:127.0.0.1]", "::ffff:127.0.0.1" },
    { "IPv4 this-network", "0.0.0.0", "0.0.0.0" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
      g_autoptr (Transfer) transfer = transfer_new ();
      g_autofree char *url = g_strdup_printf ("http://%s:%u/hello",
                                              cases[i].host,
                                              upstream.http_port);
      g_autofree char *expected = g_strdup_printf ("upstream address %s for "
                                                   "host ",
                                                   cases[i].expected_address);
      const char *const headers[] = { "Host", "upstream.test", NULL };

      g_test_message ("literal case: %s", cases[i].description);
      run_transfer (fetch, transfer, "GET", url, 0, headers);

      g_assert_error (transfer->error, MOAT_ERROR, MOAT_ERROR_UPSTREAM);
      g_assert_nonnull (strstr (transfer->error->message, expected));
      g_assert_nonnull (strstr (transfer->error->message,
                                "is in a private range and not allowed"));
    }
}

typedef struct {
  const char *address;
  gboolean is_private;
} AddressCase;

static void
test_address_classification (void)
{
  static const AddressCase cases[] = {
    { "0.0.0.0", TRUE },
    { "0.255.255.255", TRUE },
    { "1.1.1.1", FALSE },
    { "8.8.8.8", FALSE },
    { "9.255.255.255", FALSE },
    { "10.1.2.3", TRUE },
    { "11.0.0.0", FALSE },
    { "100.63.255.255", FALSE },
    { "100.64.0.1", TRUE },
    { "100.127.255.255", TRUE },
    { "100.128.0.0", FALSE },
    { "127.0.0.1", TRUE },
    { "169.254.169.254", TRUE },
    { "169.255.0.1", FALSE },
    { "172.15.255.255", FALSE },
    { "172.16.0.1", TRUE },
    { "172.31.255.255", TRUE },
    { "172.32.0.0", FALSE },
    { "192.168.1.1", TRUE },
    { "192.169.0.1", FALSE },
    { "223.255.255.255", FALSE },
    { "224.0.0.1", TRUE },
    { "239.255.255.250", TRUE },
    { "240.0.0.1", TRUE },
    { "255.255.255.255", TRUE },
    { "::", TRUE },
    { "::1", TRUE },
    { "::10.1.2.3", TRUE },
    { "::ffff:10.1.2.3", TRUE },
    { "::ffff:127.0.0.1", TRUE },
    { "::ffff:8.8.8.8", FALSE },
    { "64:ff9b::a01:203", TRUE },
    { "64:ff9b::808:808", FALSE },
    { "fc00::1", TRUE },
    { "fd12:3456::1", TRUE },
    { "fe80::1", TRUE },
    { "febf::1", TRUE },
    { "fec0::1", TRUE },
    { "ff02::1", TRUE },
    { "2001:4860:4860::8888", FALSE },
    { "2606:4700::1111", FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      struct sockaddr_in ipv4 = { .sin_family = AF_INET };
      struct sockaddr_in6 ipv6 = { .sin6_family = AF_INET6 };
      gboolean is_private;

      g_test_message ("address %s", cases[i].address);
      if (inet_pton (AF_INET, cases[i].address, &ipv4.sin_addr) == 1)
        is_private = moat_fetch_address_is_private (
            (const struct sockaddr *) &ipv4, sizeof ipv4);
      else
        {
          g_assert_cmpint (inet_pton (AF_INET6, cases[i].address,
                                      &ipv6.sin6_addr),
                           ==, 1);
          is_private = moat_fetch_address_is_private (
              (const struct sockaddr *) &ipv6, sizeof ipv6);
        }
      g_assert_cmpint (is_private, ==, cases[i].is_private);
    }
}

static void
test_address_truncated (void)
{
  struct sockaddr_in ipv4 = { .sin_family = AF_INET };

  inet_pton (AF_INET, "8.8.8.8", &ipv4.sin_addr);
  g_assert_false (moat_fetch_address_is_private (
      (const struct sockaddr *) &ipv4, sizeof ipv4));
  g_assert_true (moat_fetch_address_is_private (
      (const struct sockaddr *) &ipv4, sizeof ipv4 - 1));
}

/* Connection reuse and cancellation */

static char *
fetch_connection_number (MoatFetch *fetch)
{
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *url = upstream_url ("/connection");
  const char *const headers[] = { "Host", "upstream.test", NULL };

  run_transfer (fetch, transfer, "GET", url, 0, headers);
  g_assert_no_error (transfer->error);
  return g_strndup ((const char *) transfer->body->data, transfer->body->len);
}

static void
test_connection_reuse (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (MoatFetch) other_fetch = new_fetch (FALSE);
  g_autofree char *first = fetch_connection_number (fetch);
  g_autofree char *second = fetch_connection_number (fetch);
  g_autofree char *third = fetch_connection_number (other_fetch);

  g_assert_cmpstr (first, ==, second);
  /* A separate fetch has its own connection cache. */
  g_assert_cmpstr (first, !=, third);
}

static void
test_cancel_in_response (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autoptr (Transfer) next = transfer_new ();
  g_autofree char *url = upstream_url ("/large?size=4000000");
  g_autofree char *hello = upstream_url ("/hello");
  const char *const headers[] = { "Host", "upstream.test", NULL };

  transfer->cancel_in_response = TRUE;
  run_transfer (fetch, transfer, "GET", url, 0, headers);
  spin_main_loop (200);

  g_assert_cmpuint (transfer->response_calls, ==, 1);
  g_assert_cmpuint (transfer->body_calls, ==, 0);
  g_assert_false (transfer->done);

  /* The fetch keeps working after the cancel. */
  run_transfer (fetch, next, "GET", hello, 0, headers);
  g_assert_no_error (next->error);
  g_assert_cmpuint (next->status, ==, 200);
}

static void
test_start_inside_callback (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autoptr (Transfer) chained = transfer_new ();
  g_autofree char *url = upstream_url ("/large?size=1000000");
  const char *const headers[] = { "Host", "upstream.test", NULL };

  transfer->fetch = fetch;
  transfer->chained = chained;
  start_transfer (fetch, transfer, "GET", url, 0, headers);
  wait_for_transfer (transfer);
  wait_for_transfer (chained);

  g_assert_no_error (transfer->error);
  g_assert_cmpuint (transfer->body->len, ==, 1000000);
  g_assert_no_error (chained->error);
  g_assert_cmpmem (chained->body->data, chained->body->len, "hello world\n",
                   12);
}

static void
test_resume_inside_on_body (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autofree char *url = upstream_url ("/large?size=1000000");
  const char *const headers[] = { "Host", "upstream.test", NULL };
  gsize mismatch = G_MAXSIZE;

  transfer->pause_every = 2;
  transfer->resume_inside = TRUE;
  run_transfer (fetch, transfer, "GET", url, 0, headers);

  g_assert_no_error (transfer->error);
  g_assert_cmpuint (transfer->pauses, >, 0);
  g_assert_cmpuint (transfer->body->len, ==, 1000000);
  for (gsize i = 0; i < transfer->body->len; i++)
    if (transfer->body->data[i] != (guint8) (i % 251))
      {
        mismatch = i;
        break;
      }
  g_assert_cmpuint (mismatch, ==, G_MAXSIZE);
}

static void
test_cancel_before_running (void)
{
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autoptr (GPtrArray) headers = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_http_header_free);
  g_autoptr (GError) error = NULL;
  MoatFetchRequestInfo info = {
    .method = "GET",
    .url = "http://upstream.test/hello",
    .headers = headers,
  };
  MoatFetchRequest *request;

  g_ptr_array_add (headers, moat_http_header_new ("Host", "upstream.test"));
  request = moat_fetch_start (fetch, &info, &callbacks, transfer, &error);
  g_assert_no_error (error);
  moat_fetch_request_cancel (request);
  spin_main_loop (200);

  g_assert_cmpuint (transfer->response_calls, ==, 0);
  g_assert_false (transfer->done);
}

static void
test_free_with_active_request (void)
{
  g_autoptr (Transfer) transfer = transfer_new ();
  g_autoptr (GPtrArray) headers = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_http_header_free);
  g_autoptr (GError) error = NULL;
  MoatFetch *fetch = new_fetch (FALSE);
  MoatFetchRequestInfo info = {
    .method = "GET",
    .url = "http://upstream.test/large?size=4000000",
    .headers = headers,
  };

  g_ptr_array_add (headers, moat_http_header_new ("Host", "upstream.test"));
  transfer->pause_every = 1;
  transfer->stay_paused = TRUE;
  g_assert_nonnull (moat_fetch_start (fetch, &info, &callbacks, transfer,
                                      &error));
  g_assert_no_error (error);
  while (transfer->pauses == 0)
    g_main_context_iteration (NULL, TRUE);

  moat_fetch_free (fetch);
  spin_main_loop (100);
  g_assert_false (transfer->done);
}

/* Configuration and request errors */

static void
test_missing_ca_file (void)
{
  g_autoptr (TestConfig) test_config = test_config_new (FALSE);
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatFetch) fetch = NULL;

  test_config->config.upstream_ca_file = "/nonexistent/moat-test-ca.pem";
  fetch = moat_fetch_new (&test_config->config, &error);

  g_assert_null (fetch);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "/nonexistent/moat-test-ca.pem"));
}

static void
test_ca_file_without_certificate (void)
{
  g_autoptr (TestConfig) test_config = test_config_new (FALSE);
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatFetch) fetch = NULL;
  g_autofree char *path = g_build_filename (upstream.folder, "ca.key", NULL);

  /* A private key is PEM, but not a certificate. */
  test_config->config.upstream_ca_file = path;
  fetch = moat_fetch_new (&test_config->config, &error);

  g_assert_null (fetch);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, path));
}

static void
test_invalid_connect_to (void)
{
  static const char *const entries[] = {
    "nonsense",
    "host-only:",
    "[::1:443:127.0.0.1:80",
    "example.com:99999:127.0.0.1:80",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (entries); i++)
    {
      MoatConfig config = { .fd = -1 };
      char *list[] = { (char *) entries[i], NULL };
      g_autoptr (GError) error = NULL;
      g_autoptr (MoatFetch) fetch = NULL;

      g_test_message ("connect-to entry %s", entries[i]);
      config.connect_to = list;
      fetch = moat_fetch_new (&config, &error);
      g_assert_null (fetch);
      g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
      g_assert_nonnull (strstr (error->message, entries[i]));
    }
}

static void
test_invalid_requests (void)
{
  static const struct {
    const char *description;
    const char *method;
    const char *url;
    const char *header_name;
    const char *header_value;
  } cases[] = {
    { "URL without scheme", "GET", "upstream.test/hello", "Host", "a" },
    { "FTP URL", "GET", "ftp://upstream.test/", "Host", "a" },
    { "method with a space", "GE T", "http://upstream.test/", "Host", "a" },
    { "CONNECT", "CONNECT", "http://upstream.test/", "Host", "a" },
    { "CR LF in a value", "GET", "http://upstream.test/", "X-A",
      "b\r\nX-Injected: 1" },
    { "colon in a name", "GET", "http://upstream.test/", "X:A", "b" },
  };
  g_autoptr (MoatFetch) fetch = new_fetch (FALSE);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GPtrArray) headers = g_ptr_array_new_with_free_func (
          (GDestroyNotify) moat_http_header_free);
      g_autoptr (GError) error = NULL;
      MoatFetchRequestInfo info = {
        .method = cases[i].method,
        .url = cases[i].url,
        .headers = headers,
      };

      g_test_message ("invalid request: %s", cases[i].description);
      g_ptr_array_add (headers, moat_http_header_new (cases[i].header_name,
                                                      cases[i].header_value));
      g_assert_null (moat_fetch_start (fetch, &info, &callbacks, NULL,
                                       &error));
      g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
    }
}

int
main (int argc, char **argv)
{
  int result;

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/fetch/address/classification",
                   test_address_classification);
  g_test_add_func ("/fetch/address/truncated", test_address_truncated);
  g_test_add_func ("/fetch/config/missing-ca-file", test_missing_ca_file);
  g_test_add_func ("/fetch/config/ca-file-without-certificate",
                   test_ca_file_without_certificate);
  g_test_add_func ("/fetch/config/invalid-connect-to",
                   test_invalid_connect_to);
  g_test_add_func ("/fetch/request/invalid", test_invalid_requests);
  g_test_add_func ("/fetch/http/get-body", test_get_body);
  g_test_add_func ("/fetch/http/head", test_head);
  g_test_add_func ("/fetch/http/interim-responses", test_interim_responses);
  g_test_add_func ("/fetch/http/uploads", test_uploads);
  g_test_add_func ("/fetch/http/large-download-paused",
                   test_large_download_paused);
  g_test_add_func ("/fetch/http2/multiplex", test_http2_multiplex);
  g_test_add_func ("/fetch/http2/chunked-upload", test_http2_chunked_upload);
  g_test_add_func ("/fetch/http2/large-download-paused",
                   test_http2_large_download_paused);
  g_test_add_func ("/fetch/error/connection-refused",
                   test_connection_refused);
  g_test_add_func ("/fetch/error/truncated-body", test_truncated_body);
  g_test_add_func ("/fetch/https/ca-file", test_https_with_ca_file);
  g_test_add_func ("/fetch/https/system-store-only",
                   test_https_without_ca_file);
  g_test_add_func ("/fetch/https/wrong-name", test_https_wrong_name);
  g_test_add_func ("/fetch/private/localhost", test_private_localhost);
  g_test_add_func ("/fetch/private/literals", test_private_literals);
  g_test_add_func ("/fetch/connection/reuse", test_connection_reuse);
  g_test_add_func ("/fetch/cancel/in-on-response", test_cancel_in_response);
  g_test_add_func ("/fetch/cancel/before-running", test_cancel_before_running);
  g_test_add_func ("/fetch/callbacks/start-inside-callback",
                   test_start_inside_callback);
  g_test_add_func ("/fetch/callbacks/resume-inside-on-body",
                   test_resume_inside_on_body);
  g_test_add_func ("/fetch/cancel/free-with-active-request",
                   test_free_with_active_request);

  start_upstream ();
  result = g_test_run ();
  stop_upstream ();
  return result;
}
