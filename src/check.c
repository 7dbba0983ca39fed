/* SPDX-License-Identifier: GPL-2.0-or-later */
/* check.c - "moat check": decide one request offline and print the rule */
#define G_LOG_DOMAIN "moat-check"

#include "check.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "fetch.h"
#include "policy.h"
#include "tls.h"

/* Exit statuses of moat check. */
#define CHECK_ALLOW 0
#define CHECK_DENY 1
#define CHECK_USAGE 2

/**
 * split_target:
 * @url: the URL
 * @path_start: where the path, query or fragment of @url starts
 * @error: return location for a #GError
 *
 * Return: (transfer full) (nullable): the request target a client sends
 *   for @url, which is its path and query as written without the
 *   fragment, and "/" for an empty path. %NULL if it contains a byte that
 *   no request target may contain (RFC 9112 section 3.2).
 */
static char *
split_target (const char *url, const char *path_start, GError **error)
{
  gsize length = strcspn (path_start, "#");

  for (gsize i = 0; i < length; i++)
    {
      guchar c = (guchar) path_start[i];

      if (c <= 0x20 || c >= 0x7f)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "invalid URL \"%s\": byte 0x%02x in the path cannot "
                       "be sent in a request; percent-encode it", url,
                       (guint) c);
          return NULL;
        }
    }

  if (length == 0 || path_start[0] == '?')
    return g_strdup_printf ("/%.*s", (int) length, path_start);
  return g_strndup (path_start, length);
}

/**
 * parse_url:
 * @url: an absolute http or https URL
 * @request: (out caller-allocates): host, port and path of @url; the
 *   host is owned by @uri and the path by @path
 * @path: (out) (transfer full): the path and query of @url
 * @uri: (out) (transfer full): the scheme and authority of @url
 * @error: return location for a #GError
 *
 * Keeps the path as written, percent-encoding included, as a client sends
 * it, so that the policy's normalisation decides. GUri would reject an
 * invalid percent-encoding in the path, which the proxy passes to the
 * policy (and the policy denies), so only the scheme and authority go
 * through GUri.
 *
 * Return: %TRUE if @url is an http or https URL with a host
 */
static gboolean
parse_url (const char *url, MoatPolicyRequest *request, char **path,
           GUri **uri, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autofree char *origin = NULL;
  const char *separator = strstr (url, "://");
  const char *path_start;
  const char *scheme;
  int port;

  if (separator == NULL)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid URL \"%s\": expected an absolute URL such as "
                   "https://api.example.com/", url);
      return FALSE;
    }
  path_start = separator + 3 + strcspn (separator + 3, "/?#");
  origin = g_strndup (url, path_start - url);

  *uri = g_uri_parse (origin,
                      G_URI_FLAGS_ENCODED | G_URI_FLAGS_SCHEME_NORMALIZE,
                      &local_error);
  if (*uri == NULL)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid URL \"%s\": %s", url, local_error->message);
      return FALSE;
    }

  scheme = g_uri_get_scheme (*uri);
  if (g_ascii_strcasecmp (scheme, "http") != 0
      && g_ascii_strcasecmp (scheme, "https") != 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid URL \"%s\": moat decides http and https "
                   "requests only", url);
      return FALSE;
    }
  if (g_uri_get_host (*uri) == NULL || g_uri_get_host (*uri)[0] == '\0')
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid URL \"%s\": no host", url);
      return FALSE;
    }

  *path = split_target (url, path_start, error);
  if (*path == NULL)
    return FALSE;

  port = g_uri_get_port (*uri);
  if (port < 0)
    port = g_ascii_strcasecmp (scheme, "https") == 0 ? 443 : 80;
  request->host = g_uri_get_host (*uri);
  request->port = (guint) port;
  request->path = *path;
  return TRUE;
}

/**
 * check_config:
 * @config: the loaded configuration
 * @error: return location for a #GError
 *
 * Runs the checks that moat runs on a configuration at start-up, with the
 * same messages: the settings, the policy, the persistent CA and the
 * upstream settings ([upstream] ca-file and connect-to). Checks that need
 * the QEMU socket, the secret values or the audit log are left out.
 *
 * Return: (transfer full) (nullable): the policy, or %NULL with a
 *   %MOAT_ERROR_CONFIG error
 */
static MoatPolicy *
check_config (const MoatConfig *config, GError **error)
{
  g_autoptr (MoatPolicy) policy = NULL;
  g_autoptr (MoatFetch) fetch = NULL;

  if (!moat_config_validate_settings (config, error))
    return NULL;

  policy = moat_config_build_policy (config, error);
  if (policy == NULL)
    return NULL;

  if (config->ca_cert != NULL)
    {
      g_autoptr (GError) local_error = NULL;
      g_autoptr (MoatCa) ca = moat_ca_load (config->ca_cert, config->ca_key,
                                            &local_error);

      /* The same message as moat's start-up (session.c). */
      if (ca == NULL)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "%s: [tls] ca-cert = %s, ca-key = %s: %s",
                       config->path, config->ca_cert, config->ca_key,
                       local_error->message);
          return NULL;
        }
    }

  /* Reads [upstream] ca-file and checks connect-to; no transfer starts, so
   * no socket is opened. */
  fetch = moat_fetch_new (config, error);
  if (fetch == NULL)
    return NULL;

  return g_steal_pointer (&policy);
}

/**
 * moat_check_main:
 * @argc: arguments after "moat", "check" included
 * @argv: the arguments
 *
 * Runs "moat check --config FILE METHOD URL": loads and checks the
 * configuration as moat does at start-up, decides the request as moat
 * would in enforce mode, and prints the decision, the deciding rule and
 * the reason. It opens no socket, reads no secret values and writes no
 * file.
 *
 * Return: the exit status: 0 allow, 1 deny, 2 invalid usage or
 *   configuration
 */
int
moat_check_main (int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
      "Read the configuration from FILE (required)", "FILE" },
    { NULL }
  };
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatConfig) config = NULL;
  g_autoptr (MoatPolicy) policy = NULL;
  g_autoptr (GUri) uri = NULL;
  g_autofree char *path = NULL;
  MoatPolicyRequest request = { 0 };
  MoatPolicyDecision decision;
  gboolean allowed;

  /* --help prints "Usage: PRGNAME ...", and PRGNAME would be "check". */
  g_set_prgname ("moat check");
  context = g_option_context_new ("METHOD URL - decide one request offline");
  g_option_context_set_summary (
      context,
      "Prints whether the policy in FILE allows METHOD URL, and the rule\n"
      "that decides. FILE is checked as moat checks it at start-up, apart\n"
      "from the secret values, which are not read. Exit status: 0 allow,\n"
      "1 deny, 2 invalid usage or configuration. Nothing is sent: no\n"
      "socket is opened.");
  g_option_context_set_description (
      context,
      "Example:\n"
      "  moat check --config vm.ini GET https://api.github.com/user\n");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      fprintf (stderr, "moat check: %s\nRun 'moat check --help' for the "
               "options.\n", error->message);
      return CHECK_USAGE;
    }
  if (config_path == NULL || argc != 3)
    {
      fprintf (stderr, "moat check: expected --config FILE METHOD URL, "
               "such as: moat check --config vm.ini GET "
               "https://api.example.com/\n");
      return CHECK_USAGE;
    }

  config = moat_config_new ();
  if (!moat_config_load_file (config, config_path, &error))
    {
      fprintf (stderr, "moat check: %s\n", error->message);
      return CHECK_USAGE;
    }
  policy = check_config (config, &error);
  if (policy == NULL)
    {
      fprintf (stderr, "moat check: %s\n", error->message);
      return CHECK_USAGE;
    }

  request.method = argv[1];
  if (!moat_method_validate (request.method, &error)
      || !parse_url (argv[2], &request, &path, &uri, &error))
    {
      fprintf (stderr, "moat check: %s\n", error->message);
      return CHECK_USAGE;
    }

  allowed = moat_policy_decide (policy, &request, &decision);
  printf ("%s\nrule: %s\nreason: %s\n", decision.allowed ? "allow" : "deny",
          decision.rule, decision.reason);
  if (!decision.allowed
      && moat_policy_get_mode (policy) == MOAT_POLICY_MODE_REPORT)
    printf ("mode: report (moat lets this request through and audits it "
            "as would-deny)\n");
  moat_policy_decision_clear (&decision);
  return allowed ? CHECK_ALLOW : CHECK_DENY;
}
