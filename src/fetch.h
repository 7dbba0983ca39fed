/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fetch.h - the "host fetch": allowed requests re-issued through libcurl */
#pragma once

#include <glib.h>
#include <sys/socket.h>

#include "config.h"
#include "http.h"

typedef struct MoatFetch MoatFetch;
typedef struct MoatFetchRequest MoatFetchRequest;

/*
 * Callback rules. Every callback runs from the GLib main loop of the thread
 * default context at moat_fetch_new(), never from inside a moat_fetch_*()
 * call: resume calls take effect on a later main loop iteration, and
 * completion is reported from the loop. Inside on_response, on_body and
 * read_body a caller may start requests, resume, or cancel any request,
 * the current one included. A cancelled request gets no further callbacks.
 * Inside on_done the request is already finished, so cancelling or
 * resuming it does nothing. moat_fetch_free() must not be called from a
 * callback.
 */

/**
 * MoatFetchCallbacks:
 * @on_response: the upstream's final response head. @headers holds the
 *   fields as received, hop-by-hop fields included; 1xx responses are not
 *   reported.
 * @on_body: response body bytes, already decoded from chunked transfer
 *   coding but not from any content coding. Return %FALSE to pause: the same
 *   bytes are offered again after moat_fetch_request_resume_download().
 * @read_body: fill @buffer with request body bytes. Return the count, 0 at
 *   the end of the body, or -1 when none are available yet; the upload then
 *   pauses until moat_fetch_request_resume_upload().
 * @on_done: the request finished. @error is %NULL on success, otherwise
 *   %MOAT_ERROR_UPSTREAM (answer 502) or %MOAT_ERROR_TIMEOUT (answer 504)
 *   with a message that says what failed. The request is freed after this
 *   callback returns.
 */
typedef struct {
  void (*on_response) (MoatFetchRequest *request, guint status,
                       GPtrArray *headers, gpointer user_data);
  gboolean (*on_body) (MoatFetchRequest *request, const guint8 *data,
                       gsize length, gpointer user_data);
  gssize (*read_body) (MoatFetchRequest *request, guint8 *buffer,
                       gsize size, gpointer user_data);
  void (*on_done) (MoatFetchRequest *request, const GError *error,
                   gpointer user_data);
} MoatFetchCallbacks;

/**
 * MoatFetchRequestInfo:
 * @method: request method
 * @url: absolute URL, "https://host:port/path?query"
 * @headers: (element-type MoatHttpHeader) end-to-end fields to send; the
 *   caller has removed hop-by-hop fields. Host is sent as given here.
 * @body_length: request body length, -1 for a body of unknown length (sent
 *   chunked), 0 for no body
 */
typedef struct {
  const char *method;
  const char *url;
  GPtrArray *headers;
  gint64 body_length;
} MoatFetchRequestInfo;

MoatFetch *moat_fetch_new (const MoatConfig *config, GError **error);
void moat_fetch_free (MoatFetch *fetch);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MoatFetch, moat_fetch_free)

MoatFetchRequest *moat_fetch_start (MoatFetch *fetch,
                                    const MoatFetchRequestInfo *info,
                                    const MoatFetchCallbacks *callbacks,
                                    gpointer user_data, GError **error);
void moat_fetch_request_resume_upload (MoatFetchRequest *request);
void moat_fetch_request_resume_download (MoatFetchRequest *request);
void moat_fetch_request_cancel (MoatFetchRequest *request);
const char *moat_fetch_request_get_remote_address (
    const MoatFetchRequest *request);

gboolean moat_fetch_address_is_private (const struct sockaddr *address,
                                        socklen_t length);
