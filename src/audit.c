/* SPDX-License-Identifier: GPL-2.0-or-later */
/* audit.c - the audit log: one JSON object per line, flushed per event */
#define G_LOG_DOMAIN "moat-audit"

#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

/**
 * MoatAudit:
 * @path: log path for messages, "-" for stdout, %NULL when events are
 *   discarded
 * @fd: descriptor written to, or -1 when events are discarded
 * @owns_fd: whether moat_audit_close() closes @fd (not for stdout)
 * @warned_errnos: errno values already reported by a warning, so that a
 *   failing disk logs one line per kind of failure instead of one per event
 * @line_unfinished: whether a failed write left part of a line in the file
 */
struct MoatAudit {
  char *path;
  int fd;
  gboolean owns_fd;
  GHashTable *warned_errnos;
  gboolean line_unfinished;
};

/**
 * MoatAuditEvent:
 * @line: the JSON object built so far, without its closing brace
 */
struct MoatAuditEvent {
  GString *line;
};

/**
 * moat_audit_open:
 * @path: (nullable): file to append events to, "-" for stdout, or %NULL to
 *   discard events
 * @error: return location for a #GError
 *
 * Opens the file with O_APPEND, so that every write() goes to the end of
 * the file even when another process appends too. A new file
 * gets mode 0600 because the log records every host the guest contacted.
 *
 * Return: (transfer full): the audit log, or %NULL with a %MOAT_ERROR_IO
 *   error naming @path
 */
MoatAudit *
moat_audit_open (const char *path, GError **error)
{
  g_autoptr (MoatAudit) audit = g_new0 (MoatAudit, 1);

  audit->fd = -1;
  audit->warned_errnos = g_hash_table_new (g_direct_hash, g_direct_equal);

  if (path == NULL)
    return g_steal_pointer (&audit);

  audit->path = g_strdup (path);
  if (strcmp (path, "-") == 0)
    {
      audit->fd = STDOUT_FILENO;
      return g_steal_pointer (&audit);
    }

  audit->fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC
                            | O_NOCTTY, 0600);
  if (audit->fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "failed to open audit log \"%s\": %s", path,
                   g_strerror (saved_errno));
      return NULL;
    }
  audit->owns_fd = TRUE;

  return g_steal_pointer (&audit);
}

void
moat_audit_close (MoatAudit *audit)
{
  if (audit == NULL)
    return;

  if (audit->owns_fd && audit->fd >= 0 && close (audit->fd) < 0)
    {
      int saved_errno = errno;

      g_warning ("closing audit log \"%s\" failed: %s; the last events may "
                 "be lost", audit->path, g_strerror (saved_errno));
    }
  g_clear_pointer (&audit->warned_errnos, g_hash_table_unref);
  g_free (audit->path);
  g_free (audit);
}

/**
 * append_json_string:
 * @out: string to append to
 * @value: bytes from any source, NUL-terminated, possibly invalid UTF-8
 *
 * Appends @value as a JSON string (RFC 8259 section 7). Quotes and
 * backslashes are escaped, control characters become \u00XX, and each byte
 * that does not start a valid UTF-8 sequence becomes U+FFFD, so the line
 * stays valid JSON whatever a guest sent.
 */
static void
append_json_string (GString *out, const char *value)
{
  const char *p = value;
  const char *end = value + strlen (value);

  g_string_append_c (out, '"');
  while (p < end)
    {
      guchar c = (guchar) *p;
      const char *next;
      gunichar ch;

      if (c == '"' || c == '\\')
        {
          g_string_append_c (out, '\\');
          g_string_append_c (out, (char) c);
          p++;
          continue;
        }
      if (c < 0x20)
        {
          g_string_append_printf (out, "\\u%04x", c);
          p++;
          continue;
        }
      if (c < 0x80)
        {
          g_string_append_c (out, (char) c);
          p++;
          continue;
        }

      /* GLib rejects overlong forms, surrogates and values above U+10FFFF,
       * as RFC 3629 section 3 requires. */
      ch = g_utf8_get_char_validated (p, end - p);
      if (ch == (gunichar) -1 || ch == (gunichar) -2)
        {
          g_string_append (out, "\xef\xbf\xbd"); /* U+FFFD */
          p++;
          continue;
        }

      next = g_utf8_next_char (p);
      g_string_append_len (out, p, next - p);
      p = next;
    }
  g_string_append_c (out, '"');
}

static void
append_key (GString *out, const char *key)
{
  g_string_append_c (out, ',');
  append_json_string (out, key);
  g_string_append_c (out, ':');
}

/**
 * moat_audit_event_new:
 * @event: event type, such as "dns", "connection" or "request"
 *
 * Starts a JSON object whose first members are "time" (RFC 3339 UTC with
 * milliseconds) and "event". Fields added later follow in the order added.
 * Field names used across moat: decision ("allow" or "deny"), reason, guest
 * ("10.0.2.15:49152"), host, port, method, url, status, bytes_sent,
 * bytes_received, duration_ms.
 *
 * Return: (transfer full): the event, for moat_audit_emit()
 */
MoatAuditEvent *
moat_audit_event_new (const char *event)
{
  MoatAuditEvent *audit_event = g_new0 (MoatAuditEvent, 1);
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();

  audit_event->line = g_string_sized_new (256);
  g_string_append_printf (audit_event->line,
                          "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\","
                          "\"event\":",
                          g_date_time_get_year (now),
                          g_date_time_get_month (now),
                          g_date_time_get_day_of_month (now),
                          g_date_time_get_hour (now),
                          g_date_time_get_minute (now),
                          g_date_time_get_second (now),
                          g_date_time_get_microsecond (now) / 1000);
  append_json_string (audit_event->line, event);

  return audit_event;
}

/**
 * moat_audit_event_add_string:
 * @event: the event
 * @key: field name
 * @value: (nullable): field value, any bytes; %NULL is written as null
 */
void
moat_audit_event_add_string (MoatAuditEvent *event, const char *key,
                             const char *value)
{
  g_return_if_fail (event != NULL);
  g_return_if_fail (key != NULL);

  append_key (event->line, key);
  if (value == NULL)
    g_string_append (event->line, "null");
  else
    append_json_string (event->line, value);
}

void
moat_audit_event_add_int (MoatAuditEvent *event, const char *key,
                          gint64 value)
{
  g_return_if_fail (event != NULL);
  g_return_if_fail (key != NULL);

  append_key (event->line, key);
  g_string_append_printf (event->line, "%" G_GINT64_FORMAT, value);
}

void
moat_audit_event_add_bool (MoatAuditEvent *event, const char *key,
                           gboolean value)
{
  g_return_if_fail (event != NULL);
  g_return_if_fail (key != NULL);

  append_key (event->line, key);
  g_string_append (event->line, value ? "true" : "false");
}

void
moat_audit_event_free (MoatAuditEvent *event)
{
  if (event == NULL)
    return;

  g_string_free (event->line, TRUE);
  g_free (event);
}

/* Logs a write failure once per distinct errno value for this log. */
static void
warn_write_failed (MoatAudit *audit, int error_number)
{
  gpointer key = GINT_TO_POINTER (error_number);

  if (g_hash_table_contains (audit->warned_errnos, key))
    return;
  g_hash_table_add (audit->warned_errnos, key);

  g_warning ("writing audit log \"%s\" failed: %s; dropping events, and "
             "further failures with this error are not logged",
             audit->path, g_strerror (error_number));
}

/**
 * moat_audit_emit:
 * @audit: (nullable): the audit log
 * @event: (transfer full): the event, freed here
 *
 * Closes the JSON object and writes it as one line with one write() call,
 * repeated only for partial writes and EINTR. A failure is logged as a
 * warning and the event is dropped, so that a full disk does not stop the
 * network.
 *
 * After a partial write that then fails, the file ends in an unfinished
 * line. The next event starts with a newline, so that only that one line is
 * invalid JSON.
 */
void
moat_audit_emit (MoatAudit *audit, MoatAuditEvent *event)
{
  const char *p;
  gsize remaining;

  if (event == NULL)
    return;
  if (audit == NULL || audit->fd < 0)
    {
      moat_audit_event_free (event);
      return;
    }

  g_string_append (event->line, "}\n");
  if (audit->line_unfinished)
    g_string_prepend_c (event->line, '\n');

  p = event->line->str;
  remaining = event->line->len;
  while (remaining > 0)
    {
      ssize_t written = write (audit->fd, p, remaining);

      if (written < 0 && errno == EINTR)
        continue;
      if (written <= 0)
        {
          warn_write_failed (audit, written < 0 ? errno : EIO);
          break;
        }
      p += written;
      remaining -= (gsize) written;
    }

  /* A line that failed before its first byte leaves the file as it was. */
  if (remaining == 0)
    audit->line_unfinished = FALSE;
  else if (remaining < event->line->len)
    audit->line_unfinished = TRUE;

  moat_audit_event_free (event);
}
