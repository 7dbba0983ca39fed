/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-audit.c - unit tests for the JSON Lines audit log */
#include <errno.h>
#include <signal.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "audit.h"
#include "error.h"

/* RFC 3339 UTC time with milliseconds, then the event member. */
#define LINE_START_REGEX \
  "^\\{\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}" \
  "\\.[0-9]{3}Z\",\"event\":"

/* Warnings from the audit module, captured instead of aborting the test. */
static GPtrArray *audit_warnings;

static GLogWriterOutput
capture_audit_warnings (GLogLevelFlags level, const GLogField *fields,
                        gsize n_fields, gpointer user_data)
{
  const char *domain = NULL;
  const char *message = NULL;

  for (gsize i = 0; i < n_fields; i++)
    {
      if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0)
        domain = fields[i].value;
      else if (strcmp (fields[i].key, "MESSAGE") == 0)
        message = fields[i].value;
    }

  if (g_strcmp0 (domain, "moat-audit") == 0
      && (level & G_LOG_LEVEL_WARNING) != 0)
    {
      g_ptr_array_add (audit_warnings, g_strdup (message));
      return G_LOG_WRITER_HANDLED;
    }

  return g_log_writer_default (level, fields, n_fields, user_data);
}

typedef struct {
  char *dir;
  char *path;
} TempLog;

static void
temp_log_setup (TempLog *log, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  log->dir = g_dir_make_tmp ("moat-audit-XXXXXX", &error);
  g_assert_no_error (error);
  log->path = g_build_filename (log->dir, "audit.jsonl", NULL);
  g_ptr_array_set_size (audit_warnings, 0);
}

static void
temp_log_teardown (TempLog *log, gconstpointer data)
{
  g_unlink (log->path);
  g_rmdir (log->dir);
  g_free (log->path);
  g_free (log->dir);
}

static char **
read_lines (const char *path)
{
  g_autofree char *contents = NULL;
  g_autoptr (GError) error = NULL;
  gsize length;

  g_file_get_contents (path, &contents, &length, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (length, >, 0);
  g_assert_cmpint (contents[length - 1], ==, '\n');
  contents[length - 1] = '\0';

  return g_strsplit (contents, "\n", -1);
}

/*
 * Checks that @line starts with a valid time member and the event member,
 * and returns what follows the time member, which is deterministic.
 */
static const char *
skip_time (const char *line)
{
  const char *event_member;

  g_assert_true (g_regex_match_simple (LINE_START_REGEX, line, 0, 0));
  event_member = strstr (line, ",\"event\":");
  g_assert_nonnull (event_member);

  return event_member;
}

static void
test_exact_bytes (TempLog *log, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatAudit) audit = moat_audit_open (log->path, &error);
  g_auto (GStrv) lines = NULL;
  MoatAuditEvent *event;

  g_assert_no_error (error);
  g_assert_nonnull (audit);

  event = moat_audit_event_new ("request");
  moat_audit_event_add_string (event, "decision", "allow");
  moat_audit_event_add_string (event, "reason",
                               "host \"api.example.com\" matches allow "
                               "pattern \"api.example.com\"");
  moat_audit_event_add_string (event, "guest", "10.0.2.15:49152");
  moat_audit_event_add_string (event, "host", "api.example.com");
  moat_audit_event_add_int (event, "port", 443);
  moat_audit_event_add_string (event, "method", "GET");
  moat_audit_event_add_string (event, "url",
                               "https://api.example.com/v1/items?q=1");
  moat_audit_event_add_int (event, "status", 200);
  moat_audit_event_add_int (event, "bytes_sent", 0);
  moat_audit_event_add_int (event, "bytes_received", 5000000000);
  moat_audit_event_add_int (event, "duration_ms", -1);
  moat_audit_event_add_bool (event, "tls", TRUE);
  moat_audit_event_add_bool (event, "reused", FALSE);
  moat_audit_event_add_string (event, "error", NULL);
  moat_audit_emit (audit, event);

  event = moat_audit_event_new ("dns");
  moat_audit_emit (audit, event);

  lines = read_lines (log->path);
  g_assert_cmpuint (g_strv_length (lines), ==, 2);
  g_assert_cmpstr (skip_time (lines[0]), ==,
                   ",\"event\":\"request\",\"decision\":\"allow\","
                   "\"reason\":\"host \\\"api.example.com\\\" matches allow "
                   "pattern \\\"api.example.com\\\"\","
                   "\"guest\":\"10.0.2.15:49152\","
                   "\"host\":\"api.example.com\",\"port\":443,"
                   "\"method\":\"GET\","
                   "\"url\":\"https://api.example.com/v1/items?q=1\","
                   "\"status\":200,\"bytes_sent\":0,"
                   "\"bytes_received\":5000000000,\"duration_ms\":-1,"
                   "\"tls\":true,\"reused\":false,\"error\":null}");
  g_assert_cmpstr (skip_time (lines[1]), ==, ",\"event\":\"dns\"}");
  g_assert_cmpuint (audit_warnings->len, ==, 0);
}

typedef struct {
  const char *description;
  const char *value;
  const char *json;
} EscapeCase;

static const EscapeCase escape_cases[] = {
  { "empty", "", "\"\"" },
  { "plain ASCII", "GET /index.html", "\"GET /index.html\"" },
  { "quote", "a\"b", "\"a\\\"b\"" },
  { "backslash", "a\\b", "\"a\\\\b\"" },
  { "newline", "a\nb", "\"a\\u000ab\"" },
  { "carriage return and tab", "\r\t", "\"\\u000d\\u0009\"" },
  { "byte 0x01", "\x01", "\"\\u0001\"" },
  { "byte 0x1f", "\x1f", "\"\\u001f\"" },
  { "DEL is not a control character in JSON", "\x7f", "\"\x7f\"" },
  { "slash stays", "a/b", "\"a/b\"" },
  { "two-byte UTF-8", "caf\xc3\xa9", "\"caf\xc3\xa9\"" },
  { "three-byte UTF-8", "\xe2\x82\xac", "\"\xe2\x82\xac\"" },
  { "four-byte UTF-8", "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"" },
  { "U+2028 stays", "\xe2\x80\xa8", "\"\xe2\x80\xa8\"" },
  { "lone continuation byte", "a\x80z", "\"a\xef\xbf\xbdz\"" },
  { "byte 0xff", "\xff", "\"\xef\xbf\xbd\"" },
  { "truncated sequence at end", "a\xc3", "\"a\xef\xbf\xbd\"" },
  { "truncated sequence before ASCII", "\xe2\x82z",
    "\"\xef\xbf\xbd\xef\xbf\xbdz\"" },
  { "overlong slash", "\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
  { "UTF-16 surrogate", "\xed\xa0\x80",
    "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
  { "above U+10FFFF", "\xf4\x90\x80\x80",
    "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
  { "invalid byte then quote", "\xfe\"", "\"\xef\xbf\xbd\\\"\"" },
};

static void
test_escaping (TempLog *log, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatAudit) audit = moat_audit_open (log->path, &error);
  g_auto (GStrv) lines = NULL;

  g_assert_no_error (error);

  for (gsize i = 0; i < G_N_ELEMENTS (escape_cases); i++)
    {
      MoatAuditEvent *event = moat_audit_event_new ("escape");

      moat_audit_event_add_string (event, "value", escape_cases[i].value);
      moat_audit_emit (audit, event);
    }

  lines = read_lines (log->path);
  g_assert_cmpuint (g_strv_length (lines), ==, G_N_ELEMENTS (escape_cases));

  for (gsize i = 0; i < G_N_ELEMENTS (escape_cases); i++)
    {
      const EscapeCase *c = &escape_cases[i];
      g_autofree char *expected = g_strdup_printf (",\"event\":\"escape\","
                                                   "\"value\":%s}", c->json);
      const char *actual = skip_time (lines[i]);

      g_test_message ("%s", c->description);
      g_assert_true (g_utf8_validate (lines[i], -1, NULL));
      if (strcmp (actual, expected) != 0)
        g_test_fail_printf ("%s: got %s, expected %s", c->description, actual,
                            expected);
    }
}

static void
test_escaped_names (TempLog *log, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatAudit) audit = moat_audit_open (log->path, &error);
  g_auto (GStrv) lines = NULL;
  MoatAuditEvent *event;

  g_assert_no_error (error);

  event = moat_audit_event_new ("odd\"type\n");
  moat_audit_event_add_int (event, "key\\with\"quote", 1);
  moat_audit_emit (audit, event);

  lines = read_lines (log->path);
  g_assert_cmpstr (skip_time (lines[0]), ==,
                   ",\"event\":\"odd\\\"type\\u000a\","
                   "\"key\\\\with\\\"quote\":1}");
}

static void
test_append_and_mode (TempLog *log, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) lines = NULL;
  GStatBuf st;

  for (int round = 0; round < 2; round++)
    {
      g_autoptr (MoatAudit) audit = moat_audit_open (log->path, &error);
      MoatAuditEvent *event = moat_audit_event_new ("start");

      g_assert_no_error (error);
      moat_audit_event_add_int (event, "round", round);
      moat_audit_emit (audit, event);
    }

  lines = read_lines (log->path);
  g_assert_cmpuint (g_strv_length (lines), ==, 2);
  g_assert_cmpstr (skip_time (lines[0]), ==,
                   ",\"event\":\"start\",\"round\":0}");
  g_assert_cmpstr (skip_time (lines[1]), ==,
                   ",\"event\":\"start\",\"round\":1}");

  g_assert_cmpint (g_stat (log->path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
}

static void
test_open_error (TempLog *log, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *missing = g_build_filename (log->dir, "no-such-dir",
                                               "audit.jsonl", NULL);
  g_autofree char *expected = g_strdup_printf ("failed to open audit log "
                                               "\"%s\": %s", missing,
                                               g_strerror (ENOENT));
  g_autoptr (MoatAudit) audit = moat_audit_open (missing, &error);

  g_assert_null (audit);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_IO);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
test_discard (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatAudit) audit = moat_audit_open (NULL, &error);
  MoatAuditEvent *event;

  g_assert_no_error (error);
  g_assert_nonnull (audit);

  event = moat_audit_event_new ("request");
  moat_audit_event_add_string (event, "host", "example.com");
  moat_audit_emit (audit, event);

  /* A NULL log discards too, so that callers need no checks. */
  moat_audit_emit (NULL, moat_audit_event_new ("request"));
  moat_audit_emit (audit, NULL);
}

static void
test_stdout (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (MoatAudit) audit = moat_audit_open ("-", &error);
      MoatAuditEvent *event;

      g_assert_no_error (error);
      event = moat_audit_event_new ("dns");
      moat_audit_event_add_string (event, "host", "example.com");
      moat_audit_emit (audit, event);
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stdout ("{\"time\":\"*Z\",\"event\":\"dns\","
                             "\"host\":\"example.com\"}\n");
}

static void
test_write_failure (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatAudit) audit = NULL;

  if (!g_file_test ("/dev/full", G_FILE_TEST_EXISTS))
    {
      g_test_skip ("/dev/full is missing");
      return;
    }

  g_ptr_array_set_size (audit_warnings, 0);
  audit = moat_audit_open ("/dev/full", &error);
  g_assert_no_error (error);

  /* Every write fails with ENOSPC, but only the first is logged. */
  for (int i = 0; i < 3; i++)
    moat_audit_emit (audit, moat_audit_event_new ("request"));

  g_assert_cmpuint (audit_warnings->len, ==, 1);
  g_assert_nonnull (strstr (g_ptr_array_index (audit_warnings, 0),
                            "writing audit log \"/dev/full\" failed"));
  g_assert_nonnull (strstr (g_ptr_array_index (audit_warnings, 0),
                            g_strerror (ENOSPC)));
}

/*
 * A file size limit (RLIMIT_FSIZE) makes write() store part of a line and
 * then fail with EFBIG. The line after it must start on a line of its own.
 */
static void
test_partial_write (TempLog *log, gconstpointer data)
{
  if (g_test_subprocess ())
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (MoatAudit) audit = moat_audit_open (log->path, &error);
      g_autofree char *long_value = g_strnfill (200, 'x');
      g_auto (GStrv) lines = NULL;
      struct rlimit saved;
      struct rlimit limited;
      MoatAuditEvent *event;
      GStatBuf st;

      g_assert_no_error (error);
      moat_audit_emit (audit, moat_audit_event_new ("first"));
      g_assert_cmpint (g_stat (log->path, &st), ==, 0);

      /* Without this, exceeding the limit kills the process. */
      signal (SIGXFSZ, SIG_IGN);
      g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &saved), ==, 0);
      limited = saved;
      limited.rlim_cur = st.st_size + 50;
      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &limited), ==, 0);

      event = moat_audit_event_new ("cut");
      moat_audit_event_add_string (event, "value", long_value);
      moat_audit_emit (audit, event);

      g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &saved), ==, 0);
      moat_audit_emit (audit, moat_audit_event_new ("third"));

      g_assert_cmpuint (audit_warnings->len, ==, 1);
      g_assert_nonnull (strstr (g_ptr_array_index (audit_warnings, 0),
                                g_strerror (EFBIG)));

      lines = read_lines (log->path);
      g_assert_cmpuint (g_strv_length (lines), ==, 3);
      g_assert_cmpstr (skip_time (lines[0]), ==, ",\"event\":\"first\"}");
      g_assert_cmpuint (strlen (lines[1]), ==, 50);
      g_assert_cmpstr (skip_time (lines[2]), ==, ",\"event\":\"third\"}");
      return;
    }

  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  audit_warnings = g_ptr_array_new_with_free_func (g_free);
  g_log_set_writer_func (capture_audit_warnings, NULL, NULL);

  g_test_add ("/audit/event/exact-bytes", TempLog, NULL, temp_log_setup,
              test_exact_bytes, temp_log_teardown);
  g_test_add ("/audit/event/escaping", TempLog, NULL, temp_log_setup,
              test_escaping, temp_log_teardown);
  g_test_add ("/audit/event/escaped-names", TempLog, NULL, temp_log_setup,
              test_escaped_names, temp_log_teardown);
  g_test_add ("/audit/open/append-mode-0600", TempLog, NULL, temp_log_setup,
              test_append_and_mode, temp_log_teardown);
  g_test_add ("/audit/open/error", TempLog, NULL, temp_log_setup,
              test_open_error, temp_log_teardown);
  g_test_add_func ("/audit/open/discard", test_discard);
  g_test_add_func ("/audit/open/stdout", test_stdout);
  g_test_add_func ("/audit/emit/write-failure", test_write_failure);
  g_test_add ("/audit/emit/partial-write", TempLog, NULL, temp_log_setup,
              test_partial_write, temp_log_teardown);

  return g_test_run ();
}
