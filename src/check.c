/* SPDX-License-Identifier: GPL-2.0-or-later */
/* check.c - "moat check": decide one request offline and print the rule */
#define G_LOG_DOMAIN "moat-check"

#include "check.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "policy.h"

/* Exit statuses of moat check. */
#define CHECK_ALLOW 0
#define CHECK_DENY 1
#define CHECK_USAGE 2

/**
 * parse_url:
 * @url: an absolute http or https URL
 * @request: (out caller-allocates): host, port and path of @url; the
 *   host is owned by @uri and the path by @path
 * @path: (out) (transfer full): the path and query of @url
 * @uri: (out) (transfer full): the parsed URL
 * @error: return location for a #GError
 *
 * Keeps the path percent-encoded, as a client sends it, so that the
 * policy's normalisation is what decides.
 *
 * Return: %TRUE if @url is an http or https URL with a host
 */
static gboolean
parse_url (const char *url, MoatPolicyRequest *request, char **path,
           GUri **uri, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  const char *scheme;
  const char *query;
  int port;

  *uri = g_uri_parse (url, G_URI_FLAGS_ENCODED | G_URI_FLAGS_SCHEME_NORMALIZE,
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

  port = g_uri_get_port (*uri);
  if (port < 0)
    port = g_ascii_strcasecmp (scheme, "https") == 0 ? 443 : 80;
  query = g_uri_get_query (*uri);
  *path = g_strdup_printf ("%s%s%s",
                           g_uri_get_path (*uri)[0] != '\0'
                           ? g_uri_get_path (*uri) : "/",
                           query != NULL ? "?" : "",
                           query != NULL ? query : "");

  request->host = g_uri_get_host (*uri);
  request->port = (guint) port;
  request->path = *path;
  return TRUE;
}

/**
 * moat_check_main:
 * @argc: arguments after "moat", "check" included
 * @argv: the arguments
 *
 * Runs "moat check --config FILE METHOD URL": loads the configuration,
 * decides the request as moat would in enforce mode, and prints the
 * decision, the deciding rule and the reason. It opens no socket, needs no
 * CA and reads no secret values.
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

  context = g_option_context_new ("METHOD URL - decide one request offline");
  g_option_context_set_summary (
      context,
      "Prints whether the policy in FILE allows METHOD URL, and the rule\n"
      "that decides. Exit status: 0 allow, 1 deny, 2 invalid usage or\n"
      "configuration. Nothing is sent: no socket is opened.");
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
  policy = moat_config_build_policy (config, &error);
  if (policy == NULL)
    {
      fprintf (stderr, "moat check: %s: %s\n", config_path, error->message);
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
