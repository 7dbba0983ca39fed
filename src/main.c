/* SPDX-License-Identifier: GPL-2.0-or-later */
/* main.c - moat's command line: options, configuration merge, main loop */
#define G_LOG_DOMAIN "moat"

#include <glib.h>
#include <glib-unix.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <slirp/libslirp.h>

#include "check.h"
#include "config.h"
#include "error.h"
#include "moat-limits.h"
#include "run.h"
#include "session.h"

/* Exit statuses: 0 after a clean stop, 1 on a runtime failure, 2 for an
 * invalid command line or configuration. */
#define EXIT_USAGE 2

typedef struct {
  char *config_path;
  char *socket_path;
  char *connect_path;
  int fd;
  char *audit_path;
  char *ca_cert_out;
  int mtu;
  gboolean one_off;
  gboolean verbose;
  gboolean version;
} Options;

/* Frees the strings GOption allocated, on every return path of main(). */
static void
options_clear (Options *options)
{
  g_clear_pointer (&options->config_path, g_free);
  g_clear_pointer (&options->socket_path, g_free);
  g_clear_pointer (&options->connect_path, g_free);
  g_clear_pointer (&options->audit_path, g_free);
  g_clear_pointer (&options->ca_cert_out, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Options, options_clear)

static gboolean
on_signal (gpointer user_data)
{
  MoatSession *session = user_data;

  g_message ("signal received; shutting down");
  g_main_loop_quit (session->loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_reload_signal (gpointer user_data)
{
  MoatSession *session = user_data;

  /* A failure is logged and audited by the reload itself. */
  moat_session_reload (session, "SIGHUP", NULL);
  return G_SOURCE_CONTINUE;
}

/* Subcommands and their usage lines; each must be the first argument. */
static const struct {
  const char *name;
  const char *usage;
} subcommands[] = {
  { "run", "moat run [OPTION...] -- COMMAND [ARGS...]" },
  { "check", "moat check --config FILE METHOD URL" },
};

/* Longest argument compared with the subcommand names; longer ones are
 * no typo of "run" or "check". */
#define SUGGEST_LENGTH_MAX 16

/* Returns the optimal string alignment distance between @a and @b: the
 * edits (insert, delete, replace, swap of neighbours) that turn one into
 * the other. Both must be at most SUGGEST_LENGTH_MAX bytes long. */
static guint
edit_distance (const char *a, const char *b)
{
  gsize a_length = strlen (a);
  gsize b_length = strlen (b);
  guint d[SUGGEST_LENGTH_MAX + 1][SUGGEST_LENGTH_MAX + 1];

  g_assert (a_length <= SUGGEST_LENGTH_MAX && b_length <= SUGGEST_LENGTH_MAX);
  for (gsize i = 0; i <= a_length; i++)
    d[i][0] = i;
  for (gsize j = 0; j <= b_length; j++)
    d[0][j] = j;
  for (gsize i = 1; i <= a_length; i++)
    for (gsize j = 1; j <= b_length; j++)
      {
        guint cost = a[i - 1] == b[j - 1] ? 0 : 1;
        guint best = MIN (d[i - 1][j] + 1, d[i][j - 1] + 1);

        best = MIN (best, d[i - 1][j - 1] + cost);
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
          best = MIN (best, d[i - 2][j - 2] + 1);
        d[i][j] = best;
      }
  return d[a_length][b_length];
}

/* Explains an argument left over after the options: a subcommand after an
 * option, a misspelt subcommand, or a value without its option. */
static void
report_unexpected_argument (const char *argument)
{
  const char *closest = NULL;
  const char *closest_usage = NULL;
  guint closest_distance = G_MAXUINT;

  for (gsize i = 0; i < G_N_ELEMENTS (subcommands); i++)
    if (strcmp (argument, subcommands[i].name) == 0)
      {
        fprintf (stderr, "moat: the subcommand \"%s\" must come first, "
                 "before any option: %s\n", argument, subcommands[i].usage);
        return;
      }

  if (strlen (argument) <= SUGGEST_LENGTH_MAX)
    for (gsize i = 0; i < G_N_ELEMENTS (subcommands); i++)
      {
        guint distance = edit_distance (argument, subcommands[i].name);

        if (distance < closest_distance)
          {
            closest_distance = distance;
            closest = subcommands[i].name;
            closest_usage = subcommands[i].usage;
          }
      }
  /* Up to two edits, but fewer than the name has letters: "ab" is no
   * typo of "run". */
  if (closest != NULL && closest_distance <= 2
      && closest_distance < strlen (closest))
    {
      fprintf (stderr, "moat: unknown subcommand \"%s\"; did you mean "
               "\"%s\"? Subcommands come first: %s\n", argument, closest,
               closest_usage);
      return;
    }
  fprintf (stderr, "moat: unexpected argument \"%s\"; all settings are "
           "options, and the subcommands \"run\" and \"check\" come first. "
           "Run 'moat --help' for the list.\n", argument);
}

static void
print_version (void)
{
  curl_version_info_data *curl = curl_version_info (CURLVERSION_NOW);

  printf ("moat %s\n", MOAT_VERSION);
  printf ("libslirp %s, GnuTLS %s, libcurl %s, GLib %u.%u.%u\n",
          slirp_version_string (), gnutls_check_version (NULL),
          curl->version, glib_major_version, glib_minor_version,
          glib_micro_version);
}

/* Applies command-line options on top of the file's values. */
static void
apply_options (MoatConfig *config, Options *options)
{
  if (options->socket_path != NULL)
    {
      g_free (config->socket_path);
      config->socket_path = g_steal_pointer (&options->socket_path);
    }
  if (options->connect_path != NULL)
    config->connect_path = g_steal_pointer (&options->connect_path);
  if (options->fd >= 0)
    config->fd = options->fd;
  if (options->audit_path != NULL)
    {
      g_free (config->audit_path);
      config->audit_path = g_steal_pointer (&options->audit_path);
    }
  if (options->ca_cert_out != NULL)
    {
      g_free (config->ca_cert_out);
      config->ca_cert_out = g_steal_pointer (&options->ca_cert_out);
    }
  if (options->mtu > 0)
    config->mtu = options->mtu;
  if (options->one_off)
    config->one_off = TRUE;
}

static void
print_banner (const MoatSession *session)
{
  const MoatConfig *config = session->config;
  g_autofree char *qemu_args = moat_session_describe_qemu_args (session);
  g_autofree char *policy = moat_policy_describe (session->policy);
  g_autoptr (GString) secret_names = g_string_new (NULL);

  for (guint i = 0; i < config->secrets->len; i++)
    {
      const MoatSecretSpec *spec = g_ptr_array_index (config->secrets, i);

      g_string_append_printf (secret_names, "%s%s", i > 0 ? ", " : "",
                              spec->name);
    }

  if (config->socket_path != NULL)
    fprintf (stderr, "moat %s: waiting for QEMU on %s\n", MOAT_VERSION,
             config->socket_path);
  else
    fprintf (stderr, "moat %s: attached to QEMU\n", MOAT_VERSION);
  fprintf (stderr, "  QEMU options:   %s\n", qemu_args);
  fprintf (stderr, "  CA certificate: %s (install it in the guest to "
           "trust intercepted HTTPS)\n", config->ca_cert_out);
  if (config->audit_path == NULL)
    fprintf (stderr, "  audit log:      (none; set --audit)\n");
  else if (strcmp (config->audit_path, "-") == 0)
    fprintf (stderr, "  audit log:      standard output\n");
  else
    fprintf (stderr, "  audit log:      %s\n", config->audit_path);
  fprintf (stderr, "  policy:         %s\n", policy);
  if (config->secrets->len == 0)
    fprintf (stderr, "  secrets:        none\n");
  else
    fprintf (stderr, "  secrets:        %u (%s), placeholders in %s\n",
             config->secrets->len, secret_names->str,
             config->placeholders_out);
}

int
main (int argc, char **argv)
{
  g_auto (Options) options = { .fd = -1 };
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &options.config_path,
      "Read the configuration from FILE (GKeyFile INI)", "FILE" },
    { "socket", 's', 0, G_OPTION_ARG_FILENAME, &options.socket_path,
      "Listen on the unix socket PATH for QEMU's -netdev stream,server=off",
      "PATH" },
    { "connect", 0, 0, G_OPTION_ARG_FILENAME, &options.connect_path,
      "Connect to QEMU listening on PATH (-netdev stream,server=on)",
      "PATH" },
    { "fd", 0, 0, G_OPTION_ARG_INT, &options.fd,
      "Use the connected stream socket N, passed by a launcher", "N" },
    { "audit", 'a', 0, G_OPTION_ARG_FILENAME, &options.audit_path,
      "Append the audit log (JSON Lines) to PATH; - for standard output",
      "PATH" },
    { "ca-cert-out", 0, 0, G_OPTION_ARG_FILENAME, &options.ca_cert_out,
      "Write the session CA certificate (PEM) to PATH", "PATH" },
    { "mtu", 0, 0, G_OPTION_ARG_INT, &options.mtu,
      "Guest MTU in bytes, 576 to 65520 (default 1500)", "BYTES" },
    { "one-off", 0, 0, G_OPTION_ARG_NONE, &options.one_off,
      "Exit when QEMU disconnects instead of waiting for the next "
      "connection", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &options.verbose,
      "Log debug messages for every connection", NULL },
    { "version", 'V', 0, G_OPTION_ARG_NONE, &options.version,
      "Print the versions of moat and its libraries, then exit", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatConfig) config = NULL;
  g_autoptr (MoatSession) session = NULL;
  int status;

  setlocale (LC_ALL, "");
  /* A guest or upstream that closes its connection while moat writes must
   * cost that connection, not the process: GnuTLS writes with plain
   * send(), which raises SIGPIPE. */
  signal (SIGPIPE, SIG_IGN);
  /* "moat check" decides one request offline and has its own options. */
  if (argc > 1 && strcmp (argv[1], "check") == 0)
    return moat_check_main (argc - 1, argv + 1);
  /* "moat run" has its own options, and everything after COMMAND is
   * COMMAND's. */
  if (argc > 1 && strcmp (argv[1], "run") == 0)
    return moat_run_main (argc - 1, argv + 1);
  context = g_option_context_new ("- policy-enforcing network for QEMU guests");
  g_option_context_set_summary (
      context,
      "moat is the host end of a QEMU guest's -netdev stream NIC. It lets out\n"
      "only the HTTP and HTTPS requests that the policy allows and writes\n"
      "every DNS answer, connection, request and denial to an audit log.\n"
      "Command-line options override the same keys in the configuration\n"
      "file. SIGHUP reloads the policy from the file.\n"
      "'moat check --config FILE METHOD URL' prints whether the policy\n"
      "allows a request, and which rule decides, without any network.");
  g_option_context_set_description (
      context,
      "Example:\n"
      "  moat --config vm.ini --socket /run/user/1000/vm1.sock \\\n"
      "       --ca-cert-out /run/user/1000/vm1-ca.pem\n"
      "  qemu-system-x86_64 ... -netdev stream,id=n0,server=off,"
      "addr.type=unix,addr.path=/run/user/1000/vm1.sock \\\n"
      "       -device virtio-net-pci,netdev=n0\n"
      "\n"
      "On Linux, 'moat run [OPTION...] -- COMMAND [ARGS...]' runs COMMAND in\n"
      "a network namespace behind moat instead of a QEMU guest; see\n"
      "'moat run --help'. The subcommands run and check must be the first\n"
      "argument, before any option.\n");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      fprintf (stderr, "moat: %s\nRun 'moat --help' for the options.\n",
               error->message);
      return EXIT_USAGE;
    }
  if (options.version)
    {
      print_version ();
      return EXIT_SUCCESS;
    }
  if (argc > 1)
    {
      report_unexpected_argument (argv[1]);
      return EXIT_USAGE;
    }
  if (options.mtu != 0 && (options.mtu < MOAT_MTU_MIN
                           || options.mtu > MOAT_MTU_MAX))
    {
      fprintf (stderr, "moat: --mtu %d is out of range: give %d to %d\n",
               options.mtu, MOAT_MTU_MIN, MOAT_MTU_MAX);
      return EXIT_USAGE;
    }
  moat_log_init (options.verbose, FALSE);

  config = moat_config_new ();
  if (options.config_path != NULL
      && !moat_config_load_file (config, options.config_path, &error))
    {
      fprintf (stderr, "moat: %s\n", error->message);
      return EXIT_USAGE;
    }
  apply_options (config, &options);
  if (!moat_config_validate (config, &error))
    {
      fprintf (stderr, "moat: %s\n", error->message);
      return EXIT_USAGE;
    }

  curl_global_init (CURL_GLOBAL_DEFAULT);
  session = moat_session_new (g_steal_pointer (&config), &error);
  if (session == NULL)
    {
      fprintf (stderr, "moat: %s\n", error->message);
      status = g_error_matches (error, MOAT_ERROR, MOAT_ERROR_CONFIG)
               ? EXIT_USAGE : EXIT_FAILURE;
      curl_global_cleanup ();
      return status;
    }

  g_unix_signal_add (SIGINT, on_signal, session);
  g_unix_signal_add (SIGTERM, on_signal, session);
  g_unix_signal_add (SIGHUP, on_reload_signal, session);
  print_banner (session);
  g_main_loop_run (session->loop);

  status = session->exit_status;
  g_clear_pointer (&session, moat_session_free);
  curl_global_cleanup ();
  return status;
}
