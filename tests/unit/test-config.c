/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-config.c - unit tests for the INI configuration loader */
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#include "config.h"
#include "error.h"

/* File name for table cases. Relative paths resolve against its directory. */
#define CONFIG_NAME "/etc/moat/vm.ini"

/* Renders every field of @config, one "name=value" line each, lists joined
 * with '|', so that a case can state the whole expected result. */
static char *
dump_config (const MoatConfig *config)
{
  g_autofree char *allow = NULL;
  g_autofree char *deny = NULL;
  g_autofree char *connect_to = NULL;

  allow = config->allow ? g_strjoinv ("|", config->allow) : g_strdup ("-");
  deny = config->deny ? g_strjoinv ("|", config->deny) : g_strdup ("-");
  connect_to = config->connect_to ? g_strjoinv ("|", config->connect_to)
                                  : g_strdup ("-");

  return g_strdup_printf ("socket=%s\naudit=%s\nmtu=%u\nallow=%s\ndeny=%s\n"
                          "ca-cert-out=%s\nca-cert=%s\nca-key=%s\n"
                          "ca-file=%s\nconnect-to=%s\n",
                          config->socket_path ? config->socket_path : "-",
                          config->audit_path ? config->audit_path : "-",
                          config->mtu, allow, deny,
                          config->ca_cert_out ? config->ca_cert_out : "-",
                          config->ca_cert ? config->ca_cert : "-",
                          config->ca_key ? config->ca_key : "-",
                          config->upstream_ca_file ? config->upstream_ca_file
                                                   : "-",
                          connect_to);
}

static void
test_defaults (void)
{
  g_autoptr (MoatConfig) config = moat_config_new ();

  g_assert_null (config->path);
  g_assert_null (config->socket_path);
  g_assert_null (config->connect_path);
  g_assert_cmpint (config->fd, ==, -1);
  g_assert_null (config->audit_path);
  g_assert_cmpuint (config->mtu, ==, 1500);
  g_assert_false (config->one_off);
  g_assert_null (config->allow);
  g_assert_null (config->deny);
  g_assert_null (config->ca_cert_out);
  g_assert_null (config->ca_cert);
  g_assert_null (config->ca_key);
  g_assert_null (config->upstream_ca_file);
  g_assert_null (config->connect_to);
}

typedef struct {
  const char *description;
  const char *data;
  const char *expected; /* dump_config() of the result */
} ValidCase;

static const ValidCase valid_cases[] = {
  { "empty file", "",
    "socket=-\naudit=-\nmtu=1500\nallow=-\ndeny=-\nca-cert-out=-\n"
    "ca-cert=-\nca-key=-\nca-file=-\nconnect-to=-\n" },
  { "every key",
    "# moat configuration\n"
    "[moat]\n"
    "socket = /run/moat/vm.sock\n"
    "audit = /var/log/moat/audit.jsonl\n"
    "mtu = 65520\n"
    "\n"
    "[policy]\n"
    "allow = api.example.com;*.github.com\n"
    "deny = uploads.github.com\n"
    "\n"
    "[tls]\n"
    "ca-cert-out = /run/moat/ca.pem\n"
    "ca-cert = /etc/moat/ca.pem\n"
    "ca-key = /etc/moat/ca.key\n"
    "\n"
    "[upstream]\n"
    "ca-file = /etc/moat/extra-roots.pem\n"
    "connect-to = a.example:443:127.0.0.1:8443;a.example:80:127.0.0.1:8080\n",
    "socket=/run/moat/vm.sock\naudit=/var/log/moat/audit.jsonl\nmtu=65520\n"
    "allow=api.example.com|*.github.com\ndeny=uploads.github.com\n"
    "ca-cert-out=/run/moat/ca.pem\nca-cert=/etc/moat/ca.pem\n"
    "ca-key=/etc/moat/ca.key\nca-file=/etc/moat/extra-roots.pem\n"
    "connect-to=a.example:443:127.0.0.1:8443|a.example:80:127.0.0.1:8080\n" },
  { "relative paths resolve against the file's directory",
    "[moat]\nsocket = run/vm.sock\naudit = ../log/audit.jsonl\n"
    "[tls]\nca-cert-out = ca.pem\n[upstream]\nca-file = ./roots.pem\n",
    "socket=/etc/moat/run/vm.sock\naudit=/etc/moat/../log/audit.jsonl\n"
    "mtu=1500\nallow=-\ndeny=-\nca-cert-out=/etc/moat/ca.pem\nca-cert=-\n"
    "ca-key=-\nca-file=/etc/moat/./roots.pem\nconnect-to=-\n" },
  { "audit to stdout", "[moat]\naudit = -\n",
    "socket=-\naudit=-\nmtu=1500\nallow=-\ndeny=-\nca-cert-out=-\n"
    "ca-cert=-\nca-key=-\nca-file=-\nconnect-to=-\n" },
  { "smallest MTU", "[moat]\nmtu=576\n",
    "socket=-\naudit=-\nmtu=576\nallow=-\ndeny=-\nca-cert-out=-\n"
    "ca-cert=-\nca-key=-\nca-file=-\nconnect-to=-\n" },
  { "blanks around list elements and a trailing ';'",
    "[policy]\nallow =  a.example ;  *.b.example;\t c.example ;\n",
    "socket=-\naudit=-\nmtu=1500\nallow=a.example|*.b.example|c.example\n"
    "deny=-\nca-cert-out=-\nca-cert=-\nca-key=-\nca-file=-\nconnect-to=-\n" },
  { "empty allow list", "[policy]\nallow =\n",
    "socket=-\naudit=-\nmtu=1500\nallow=\ndeny=-\nca-cert-out=-\n"
    "ca-cert=-\nca-key=-\nca-file=-\nconnect-to=-\n" },
  { "indented lines, comments and CRLF",
    "  # comment\r\n  [moat]  \r\n\tmtu\t=\t9000\r\n  # socket = x\r\n"
    "[policy]\r\n  deny = Evil.Example.  \r\n",
    "socket=-\naudit=-\nmtu=9000\nallow=-\ndeny=Evil.Example.\n"
    "ca-cert-out=-\nca-cert=-\nca-key=-\nca-file=-\nconnect-to=-\n" },
  { "IPv6 and name connect-to",
    "[upstream]\nconnect-to = [::1]:443:[::1]:8443; b.example:80:localhost:8080"
    "; c.example:443:127.0.0.2:443;\n",
    "socket=-\naudit=-\nmtu=1500\nallow=-\ndeny=-\nca-cert-out=-\n"
    "ca-cert=-\nca-key=-\nca-file=-\nconnect-to=[::1]:443:[::1]:8443|"
    "b.example:80:localhost:8080|c.example:443:127.0.0.2:443\n" },
  { "groups without keys", "[moat]\n[policy]\n[tls]\n[upstream]\n",
    "socket=-\naudit=-\nmtu=1500\nallow=-\ndeny=-\nca-cert-out=-\n"
    "ca-cert=-\nca-key=-\nca-file=-\nconnect-to=-\n" },
  { "GKeyFile escape in a path", "[moat]\nsocket = /tmp/a\\sb.sock\n",
    "socket=/tmp/a b.sock\naudit=-\nmtu=1500\nallow=-\ndeny=-\n"
    "ca-cert-out=-\nca-cert=-\nca-key=-\nca-file=-\nconnect-to=-\n" },
};

static void
test_load_valid (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (valid_cases); i++)
    {
      const ValidCase *c = &valid_cases[i];
      g_autoptr (MoatConfig) config = moat_config_new ();
      g_autoptr (GError) error = NULL;
      g_autofree char *dump = NULL;
      gboolean loaded;

      g_test_message ("%s", c->description);
      loaded = moat_config_load_data (config, c->data, strlen (c->data),
                                      CONFIG_NAME, &error);
      g_assert_no_error (error);
      g_assert_true (loaded);

      dump = dump_config (config);
      if (strcmp (dump, c->expected) != 0)
        g_test_fail_printf ("%s: got\n%s\nexpected\n%s", c->description,
                            dump, c->expected);
    }
}

typedef struct {
  const char *description;
  const char *data;
  const char *message; /* substring expected in the error */
  gsize length;        /* bytes of data, or 0 for strlen (data) */
} InvalidCase;

#define DATA_WITH_NUL "[moat]\nmtu = 1500\n\0\n"

static const InvalidCase invalid_cases[] = {
  /* Structure */
  { "unknown group", "[moat]\nmtu = 1500\n[polcy]\nallow = a.example\n",
    "vm.ini:3: unknown group [polcy]: expected [moat], [policy], [tls], "
    "[upstream], [rule NAME] or [secret NAME]" },
  /* Rule and secret groups */
  { "rule without action", "[moat]\nmtu = 1500\n[rule r1]\nhosts = a.example\n",
    "vm.ini:3: [rule r1]: missing key \"action\"" },
  { "rule with an invalid action", "[rule r1]\naction = permit\n",
    "vm.ini:2: [rule r1] action: invalid value \"permit\": expected "
    "\"allow\" or \"deny\"" },
  { "rule with an unknown key", "[rule r1]\naction = allow\nhost = a.example\n",
    "vm.ini:3: [rule r1] host: unknown key; [rule r1] accepts hosts, ports, "
    "methods, paths, action" },
  { "rule with an invalid host pattern",
    "[rule r1]\naction = allow\nhosts = a.example;*.*.example\n",
    "vm.ini:3: [rule r1] hosts: invalid host pattern \"*.*.example\"" },
  { "rule with port 0", "[rule r1]\naction = allow\nports = 0\n",
    "vm.ini:3: [rule r1] ports: invalid port \"0\"" },
  { "rule with a reversed port range", "[rule r1]\naction = allow\nports = 90-80\n",
    "vm.ini:3: [rule r1] ports: invalid port range \"90-80\": the first "
    "port is larger than the last" },
  { "rule with a lowercase method", "[rule r1]\naction = allow\nmethods = GET;post\n",
    "vm.ini:3: [rule r1] methods: invalid method \"post\": methods are "
    "case-sensitive and clients send them in uppercase; write \"POST\"" },
  { "rule with a relative path", "[rule r1]\naction = allow\npaths = repos/*\n",
    "vm.ini:3: [rule r1] paths: invalid path pattern \"repos/*\": a path "
    "pattern starts with '/'" },
  { "rule with a dot segment in a path", "[rule r1]\naction = allow\npaths = /a/../b\n",
    "[rule r1] paths: invalid path pattern \"/a/../b\": empty, \".\" and "
    "\"..\" segments never match" },
  { "rule with a query in a path", "[rule r1]\naction = allow\npaths = /a?b=1\n",
    "'?', '#' and '%' are not allowed" },
  { "rule with an empty list", "[rule r1]\naction = allow\nmethods =\n",
    "vm.ini:3: [rule r1] methods: missing value: give at least one element, "
    "or remove the key to match anything" },
  { "rule with a reserved name", "[rule policy.allow]\naction = allow\n",
    "vm.ini:1: [rule policy.allow]: invalid rule name \"policy.allow\": "
    "\"default\" and names starting with \"policy.\" or \"secret.\" are "
    "reserved" },
  { "rule with an invalid name", "[rule a/b]\naction = allow\n",
    "vm.ini:1: [rule a/b]: invalid rule name \"a/b\": invalid character "
    "0x2f" },
  { "rule group with two spaces", "[rule  r1]\naction = allow\n",
    "vm.ini:1: invalid group line \"[rule  r1]\": write one space between "
    "\"rule\" and the name, as in [rule r1]" },
  { "rule group without a name", "[rule]\naction = allow\n",
    "vm.ini:1: unknown group [rule]" },
  { "rule defined twice", "[rule r1]\naction = allow\n[rule r1]\naction = deny\n",
    "vm.ini:3: duplicate group [rule r1], first started on line 1" },
  { "rule with a repeated key", "[rule r1]\naction = allow\naction = deny\n",
    "vm.ini:3: [rule r1] action: duplicate key, first set on line 2" },
  { "invalid policy mode", "[policy]\nmode = audit\n",
    "vm.ini:2: [policy] mode: invalid value \"audit\": expected \"enforce\" "
    "or \"report\"" },
  { "secret without value", "[secret s1]\nhosts = a.example\n",
    "vm.ini:1: [secret s1]: give exactly one of \"value-env\"" },
  { "secret with two values",
    "[secret s1]\nvalue-env = A\nvalue-file = /a\nhosts = a.example\n",
    "vm.ini:1: [secret s1]: give exactly one of \"value-env\"" },
  { "secret without hosts", "[secret s1]\nvalue-env = A\n",
    "vm.ini:1: [secret s1]: missing key \"hosts\"" },
  { "secret with an invalid variable", "[secret s1]\nvalue-env = 1A\nhosts = a.example\n",
    "vm.ini:2: [secret s1] value-env: invalid value \"1A\": expected the name "
    "of an environment variable" },
  { "secret with an invalid name", "[secret s.1]\nvalue-env = A\nhosts = a.example\n",
    "vm.ini:1: [secret s.1]: invalid secret name \"s.1\"" },
  { "secret with a wildcard-only host", "[secret s1]\nvalue-env = A\nhosts = *\n",
    "vm.ini:3: [secret s1] hosts: invalid host pattern \"*\"" },
  { "secret name with a dash",
    "[moat]\nplaceholders-out = /p\n[secret my-key]\nvalue-env = A\n"
    "hosts = a.example\n",
    "vm.ini:3: [secret my-key]: invalid secret name \"my-key\": expected 1 "
    "to 64 letters, digits or '_', not starting with a digit, so that a "
    "shell can source the NAME=PLACEHOLDER lines of the placeholders file "
    "(such as \"my_key\")" },
  { "secret name starting with a digit",
    "[moat]\nplaceholders-out = /p\n[secret 1key]\nvalue-env = A\n"
    "hosts = a.example\n",
    "vm.ini:3: [secret 1key]: invalid secret name \"1key\"" },
  { "secret without placeholders-out",
    "[rule r]\naction = allow\n[secret s1]\nvalue-env = A\n"
    "hosts = a.example\n",
    "vm.ini:3: [secret s1]: missing [moat] placeholders-out: the guest can "
    "only use a secret through the placeholder that moat writes to that "
    "file; add \"placeholders-out = PATH\" to [moat]" },
  { "unknown key", "[moat]\nsockt = /run/vm.sock\n",
    "vm.ini:2: [moat] sockt: unknown key; [moat] accepts socket, audit, mtu" },
  { "key in the wrong group", "[tls]\nsocket = /run/vm.sock\n",
    "vm.ini:2: [tls] socket: unknown key; [tls] accepts ca-cert-out, "
    "ca-cert, ca-key" },
  { "locale key", "[policy]\nallow = a.example\nallow[de] = b.example\n",
    "vm.ini:3: [policy] allow[de]: unknown key; [policy] accepts allow, "
    "deny" },
  { "key before any group", "socket = /run/vm.sock\n",
    "vm.ini:1: key \"socket\" is outside any group" },
  { "duplicate key", "[policy]\nallow = a.example\nallow = b.example\n",
    "vm.ini:3: [policy] allow: duplicate key, first set on line 2" },
  { "repeated group",
    "[moat]\nmtu = 1500\n[policy]\n[moat]\nsocket = /x\n",
    "vm.ini:4: duplicate group [moat], first started on line 1" },
  { "line without '='", "[moat]\nsocket\n",
    "vm.ini:2: invalid line \"socket\": expected \"[group]\", "
    "\"key = value\" or a comment" },
  { "line starting with '='", "[moat]\n= 1500\n",
    "vm.ini:2: invalid line \"= 1500\"" },
  { "unclosed group", "[moat\nmtu = 1500\n",
    "vm.ini:1: invalid group line \"[moat\": expected \"[name]\"" },
  { "text after group", "[moat] x\n",
    "vm.ini:1: invalid group line \"[moat] x\"" },
  { "NUL byte", DATA_WITH_NUL, "vm.ini: contains a NUL byte",
    sizeof (DATA_WITH_NUL) - 1 },

  /* [moat] */
  { "MTU below the minimum", "[moat]\nmtu = 575\n",
    "vm.ini:2: [moat] mtu: invalid value \"575\": expected an integer from "
    "576 to 65520 (bytes)" },
  { "MTU above the maximum", "[moat]\nmtu = 65521\n",
    "[moat] mtu: invalid value \"65521\": expected an integer" },
  { "MTU not a number", "[moat]\nmtu = large\n",
    "[moat] mtu: invalid value \"large\"" },
  { "MTU with a unit", "[moat]\nmtu = 1500b\n",
    "[moat] mtu: invalid value \"1500b\"" },
  { "MTU negative", "[moat]\nmtu = -1500\n",
    "[moat] mtu: invalid value \"-1500\"" },
  { "MTU in hexadecimal", "[moat]\nmtu = 0x5dc\n",
    "[moat] mtu: invalid value \"0x5dc\"" },
  { "MTU empty", "[moat]\nmtu =\n", "[moat] mtu: invalid value \"\"" },
  { "MTU overflowing 64 bits", "[moat]\nmtu = 18446744073709551617\n",
    "[moat] mtu: invalid value \"18446744073709551617\"" },
  { "empty socket", "[moat]\nsocket =\n",
    "vm.ini:2: [moat] socket: missing value: expected a path" },
  { "tilde path", "[tls]\nca-cert = ~/ca.pem\n",
    "vm.ini:2: [tls] ca-cert: invalid value \"~/ca.pem\": \"~\" is not "
    "expanded" },
  { "invalid escape", "[moat]\nsocket = /tmp/\\x\n",
    "vm.ini:2: [moat] socket: invalid value \"/tmp/\\x\"" },
  { "invalid UTF-8", "[moat]\naudit = /tmp/\xff\n",
    "vm.ini:2: [moat] audit: invalid value \"/tmp/\xef\xbf\xbd\"" },
  { "invalid UTF-8 in a key", "[moat]\nmt\xffu = 1500\n",
    "vm.ini:2: [moat] mt\xef\xbf\xbdu: unknown key" },

  /* [policy] */
  { "invalid allow pattern", "[policy]\nallow = api.example.com;*.*.com\n",
    "vm.ini:2: [policy] allow: invalid host pattern \"*.*.com\": \"*\" is "
    "only allowed as the whole first label (\"*.example.com\")" },
  { "star alone", "[policy]\nallow = *\n",
    "vm.ini:2: [policy] allow: invalid host pattern \"*\"" },
  { "invalid deny pattern", "[policy]\ndeny = a..example\n",
    "vm.ini:2: [policy] deny: invalid host pattern \"a..example\": empty "
    "label" },
  { "pattern with a port", "[policy]\nallow = a.example:443\n",
    "[policy] allow: invalid host pattern \"a.example:443\": invalid "
    "character ':' (a port is not part of a host pattern: put it in the "
    "\"ports\" key of a [rule NAME] group, such as \"ports = 443\")" },
  { "empty list element", "[policy]\nallow = a.example;;b.example\n",
    "vm.ini:2: [policy] allow: invalid value \"a.example;;b.example\": "
    "element 2 is empty: separate elements with one ';'" },
  { "blank list element", "[policy]\nallow = a.example; ;b.example\n",
    "[policy] allow: invalid value \"a.example; ;b.example\": element 2 is "
    "empty" },
  { "leading ';'", "[policy]\ndeny = ;a.example\n",
    "[policy] deny: invalid value \";a.example\": element 1 is empty" },
  { "two trailing ';'", "[policy]\ndeny = a.example;;\n",
    "[policy] deny: invalid value \"a.example;;\": element 2 is empty" },

  /* [upstream] connect-to */
  { "connect-to without target port",
    "[upstream]\nconnect-to = a.example:443:127.0.0.1\n",
    "vm.ini:2: [upstream] connect-to: invalid connect-to entry "
    "\"a.example:443:127.0.0.1\": connect-to host: missing ':' and port "
    "after host \"127.0.0.1\"; expected HOST:PORT:CONNECT-TO-HOST:"
    "CONNECT-TO-PORT" },
  { "connect-to with only a host", "[upstream]\nconnect-to = a.example\n",
    "invalid connect-to entry \"a.example\": missing ':' and port after "
    "host \"a.example\"" },
  { "connect-to with empty host",
    "[upstream]\nconnect-to = :443:127.0.0.1:8443\n",
    "invalid connect-to entry \":443:127.0.0.1:8443\": empty host" },
  { "connect-to with empty target host",
    "[upstream]\nconnect-to = a.example:443::8443\n",
    "connect-to host: empty host" },
  { "connect-to with wildcard",
    "[upstream]\nconnect-to = *.example:443:127.0.0.1:8443\n",
    "wildcards are not supported in host \"*.example\"" },
  { "connect-to with port 0",
    "[upstream]\nconnect-to = a.example:0:127.0.0.1:8443\n",
    "invalid port \"0\" after host \"a.example\": expected a number from 1 "
    "to 65535" },
  { "connect-to with port 65536",
    "[upstream]\nconnect-to = a.example:65536:127.0.0.1:8443\n",
    "invalid port \"65536\"" },
  { "connect-to with named port",
    "[upstream]\nconnect-to = a.example:https:127.0.0.1:8443\n",
    "invalid port \"https\"" },
  { "connect-to with empty port",
    "[upstream]\nconnect-to = a.example::127.0.0.1:8443\n",
    "invalid port \"\"" },
  { "connect-to with target port 0",
    "[upstream]\nconnect-to = a.example:443:127.0.0.1:0\n",
    "invalid connect-to port \"0\": expected a number from 1 to 65535" },
  { "connect-to with empty target port",
    "[upstream]\nconnect-to = a.example:443:127.0.0.1:\n",
    "invalid connect-to port \"\"" },
  { "connect-to with a fifth field",
    "[upstream]\nconnect-to = a.example:443:127.0.0.1:8443:1\n",
    "invalid connect-to port \"8443:1\"" },
  { "connect-to with an invalid IPv6 address",
    "[upstream]\nconnect-to = a.example:443:[::g]:8443\n",
    "connect-to host: invalid IPv6 address \"::g\" in brackets" },
  { "connect-to with IPv4 in brackets",
    "[upstream]\nconnect-to = a.example:443:[127.0.0.1]:8443\n",
    "invalid IPv6 address \"127.0.0.1\" in brackets" },
  { "connect-to with unclosed bracket",
    "[upstream]\nconnect-to = [::1:443:127.0.0.1:8443\n",
    "missing ']' after an IPv6 address" },
  { "connect-to with a bare IPv6 address",
    "[upstream]\nconnect-to = a.example:443:::1:8443\n",
    "connect-to host: empty host" },
  { "connect-to with a short IPv4 form",
    "[upstream]\nconnect-to = a.example:443:127.1:8443\n",
    "connect-to host: invalid host name \"127.1\": the last label is a "
    "number" },
  { "connect-to with an invalid host",
    "[upstream]\nconnect-to = a_b!.example:443:127.0.0.1:8443\n",
    "invalid host name \"a_b!.example\": invalid character '!'" },
  { "connect-to repeating host and port",
    "[upstream]\nconnect-to = a.example:443:127.0.0.1:1; "
    "A.Example:443:127.0.0.1:2\n",
    "vm.ini:2: [upstream] connect-to: invalid connect-to entry "
    "\"A.Example:443:127.0.0.1:2\": an earlier entry already redirects the "
    "same host and port" },
};

static void
test_load_invalid (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (invalid_cases); i++)
    {
      const InvalidCase *c = &invalid_cases[i];
      g_autoptr (MoatConfig) config = moat_config_new ();
      g_autoptr (GError) error = NULL;
      gsize length = c->length > 0 ? c->length : strlen (c->data);
      gboolean loaded;

      g_test_message ("%s", c->description);
      loaded = moat_config_load_data (config, c->data, length, "vm.ini",
                                      &error);
      g_assert_false (loaded);
      g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
      if (strstr (error->message, c->message) == NULL)
        g_test_fail_printf ("%s: error \"%s\" lacks \"%s\"", c->description,
                            error->message, c->message);
    }
}

static void
test_load_rules (void)
{
  const char *data =
    "[policy]\n"
    "allow = a.example\n"
    "mode = report\n"
    "[rule github-read]\n"
    "hosts = api.github.com;*.githubusercontent.com\n"
    "ports = 443;8000-8999\n"
    "methods = GET;HEAD\n"
    "paths = /repos/*;/user\n"
    "action = allow\n"
    "[moat]\n"
    "placeholders-out = placeholders.env\n"
    "[rule no-uploads]\n"
    "methods = POST\n"
    "action = deny\n"
    "[secret openai]\n"
    "value-env = OPENAI_API_KEY\n"
    "hosts = api.openai.com\n"
    "[secret token]\n"
    "value-file = token.txt\n"
    "hosts = *.example.com;b.example\n";
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  const MoatRuleSpec *rule;
  const MoatSecretSpec *secret;

  g_assert_true (moat_config_load_data (config, data, strlen (data),
                                        "/etc/moat/vm.ini", &error));
  g_assert_no_error (error);

  g_assert_cmpint (config->policy_mode, ==, MOAT_POLICY_MODE_REPORT);
  g_assert_cmpstr (config->placeholders_out, ==,
                   "/etc/moat/placeholders.env");
  g_assert_cmpuint (config->rules->len, ==, 2);

  rule = g_ptr_array_index (config->rules, 0);
  g_assert_cmpstr (rule->name, ==, "github-read");
  g_assert_cmpint (rule->action, ==, MOAT_RULE_ALLOW);
  g_assert_cmpuint (g_strv_length (rule->hosts), ==, 2);
  g_assert_cmpstr (rule->hosts[1], ==, "*.githubusercontent.com");
  g_assert_cmpstr (rule->ports[1], ==, "8000-8999");
  g_assert_cmpstr (rule->methods[0], ==, "GET");
  g_assert_cmpstr (rule->paths[0], ==, "/repos/*");

  rule = g_ptr_array_index (config->rules, 1);
  g_assert_cmpstr (rule->name, ==, "no-uploads");
  g_assert_cmpint (rule->action, ==, MOAT_RULE_DENY);
  g_assert_null (rule->hosts);
  g_assert_null (rule->ports);
  g_assert_null (rule->paths);

  g_assert_cmpuint (config->secrets->len, ==, 2);
  secret = g_ptr_array_index (config->secrets, 0);
  g_assert_cmpstr (secret->name, ==, "openai");
  g_assert_cmpstr (secret->value_env, ==, "OPENAI_API_KEY");
  g_assert_null (secret->value_file);
  g_assert_cmpstr (secret->hosts[0], ==, "api.openai.com");
  g_assert_cmpstr (secret->origin, ==,
                   "/etc/moat/vm.ini:16: [secret openai] value-env");
  secret = g_ptr_array_index (config->secrets, 1);
  g_assert_cmpstr (secret->value_file, ==, "/etc/moat/token.txt");
  g_assert_cmpstr (secret->origin, ==,
                   "/etc/moat/vm.ini:19: [secret token] value-file");
  g_assert_cmpuint (g_strv_length (secret->hosts), ==, 2);
}

static void
test_build_policy (void)
{
  const char *data =
    "[policy]\nallow = a.example\n"
    "[rule no-post]\nmethods = POST\naction = deny\n";
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (MoatPolicy) policy = NULL;
  g_autoptr (GError) error = NULL;
  MoatPolicyRequest get = { "a.example", 80, "GET", "/x" };
  MoatPolicyRequest post = { "a.example", 80, "POST", "/x" };
  MoatPolicyDecision decision;

  g_assert_true (moat_config_load_data (config, data, strlen (data),
                                        "vm.ini", &error));
  policy = moat_config_build_policy (config, &error);
  g_assert_no_error (error);
  g_assert_cmpint (moat_policy_get_mode (policy), ==,
                   MOAT_POLICY_MODE_ENFORCE);

  g_assert_true (moat_policy_decide (policy, &get, &decision));
  g_assert_cmpstr (decision.rule, ==, "policy.allow");
  moat_policy_decision_clear (&decision);
  g_assert_false (moat_policy_decide (policy, &post, &decision));
  g_assert_cmpstr (decision.rule, ==, "no-post");
  moat_policy_decision_clear (&decision);
}

static void
test_load_keeps_config_on_error (void)
{
  const char *good = "[moat]\nsocket = /run/a.sock\nmtu = 9000\n"
                     "[policy]\nallow = a.example\n";
  const char *bad = "[moat]\nsocket = /run/b.sock\nmtu = 1\n"
                    "[policy]\nallow = b.example\n";
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;

  g_assert_true (moat_config_load_data (config, good, strlen (good),
                                        CONFIG_NAME, &error));
  g_assert_no_error (error);
  before = dump_config (config);

  g_assert_false (moat_config_load_data (config, bad, strlen (bad),
                                         CONFIG_NAME, &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  after = dump_config (config);
  g_assert_cmpstr (after, ==, before);
}

static void
test_load_overrides (void)
{
  const char *first = "[moat]\nsocket = /run/a.sock\nmtu = 9000\n"
                      "[policy]\nallow = a.example\ndeny = x.example\n";
  const char *second = "[moat]\nmtu = 1400\n[policy]\nallow = b.example;"
                       "c.example\n";
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *dump = NULL;

  g_assert_true (moat_config_load_data (config, first, strlen (first),
                                        CONFIG_NAME, &error));
  g_assert_no_error (error);
  g_assert_true (moat_config_load_data (config, second, strlen (second),
                                        CONFIG_NAME, &error));
  g_assert_no_error (error);

  /* Keys of the second load replace, keys it lacks stay. */
  dump = dump_config (config);
  g_assert_cmpstr (dump, ==,
                   "socket=/run/a.sock\naudit=-\nmtu=1400\n"
                   "allow=b.example|c.example\ndeny=x.example\n"
                   "ca-cert-out=-\nca-cert=-\nca-key=-\nca-file=-\n"
                   "connect-to=-\n");
}

static void
test_load_relative_to_cwd (void)
{
  const char *data = "[tls]\nca-cert-out = ca.pem\n";
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *cwd = g_get_current_dir ();
  g_autofree char *expected = g_build_filename (cwd, "conf", "ca.pem", NULL);

  /* A relative file name still gives an absolute path, so the result does
   * not depend on a later change of the working directory. */
  g_assert_true (moat_config_load_data (config, data, strlen (data),
                                        "conf/vm.ini", &error));
  g_assert_no_error (error);
  g_assert_cmpstr (config->ca_cert_out, ==, expected);
}

typedef struct {
  char *dir;
  char *path;
} TempFile;

static void
temp_file_setup (TempFile *file, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  file->dir = g_dir_make_tmp ("moat-config-XXXXXX", &error);
  g_assert_no_error (error);
  file->path = g_build_filename (file->dir, "vm.ini", NULL);
}

static void
temp_file_teardown (TempFile *file, gconstpointer data)
{
  g_unlink (file->path);
  g_rmdir (file->dir);
  g_free (file->path);
  g_free (file->dir);
}

static void
test_load_file (TempFile *file, gconstpointer data)
{
  const char *contents = "[moat]\nsocket = vm.sock\naudit = /var/log/a\n"
                         "[tls]\nca-cert = keys/ca.pem\nca-key = keys/ca.key\n";
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *socket_path = g_build_filename (file->dir, "vm.sock",
                                                   NULL);
  g_autofree char *ca_cert = g_build_filename (file->dir, "keys", "ca.pem",
                                               NULL);
  g_autofree char *ca_key = g_build_filename (file->dir, "keys", "ca.key",
                                              NULL);

  g_file_set_contents (file->path, contents, -1, &error);
  g_assert_no_error (error);

  g_assert_true (moat_config_load_file (config, file->path, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (config->path, ==, file->path);
  g_assert_cmpstr (config->socket_path, ==, socket_path);
  g_assert_cmpstr (config->audit_path, ==, "/var/log/a");
  g_assert_cmpstr (config->ca_cert, ==, ca_cert);
  g_assert_cmpstr (config->ca_key, ==, ca_key);
}

static void
test_load_file_invalid (TempFile *file, gconstpointer data)
{
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *expected = g_strdup_printf ("%s:3: [policy] allow: "
                                               "invalid host pattern "
                                               "\"*.*.com\"", file->path);

  g_file_set_contents (file->path, "[policy]\n# comment\nallow = *.*.com\n",
                       -1, &error);
  g_assert_no_error (error);

  g_assert_false (moat_config_load_file (config, file->path, &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, expected));
  g_assert_null (config->path);
}

static void
test_load_file_missing (TempFile *file, gconstpointer data)
{
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *expected = g_strdup_printf ("%s: failed to open "
                                               "configuration file: %s",
                                               file->path,
                                               g_strerror (ENOENT));

  g_assert_false (moat_config_load_file (config, file->path, &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
test_load_file_directory (TempFile *file, gconstpointer data)
{
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *expected = g_strdup_printf ("%s: failed to read "
                                               "configuration file: not a "
                                               "regular file", file->dir);

  g_assert_false (moat_config_load_file (config, file->dir, &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_cmpstr (error->message, ==, expected);
}

static void
test_load_example (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "unit",
                                                 "config", "example.ini",
                                                 NULL);
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *audit = g_build_filename (dir, "audit.jsonl", NULL);
  g_autofree char *ca_cert_out = g_build_filename (dir, "ca.pem", NULL);
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *dump = NULL;
  g_autofree char *expected = NULL;

  g_assert_true (moat_config_load_file (config, path, &error));
  g_assert_no_error (error);

  expected = g_strdup_printf ("socket=/run/moat/vm.sock\naudit=%s\n"
                              "mtu=1500\n"
                              "allow=api.example.com|*.github.com\n"
                              "deny=uploads.github.com\nca-cert-out=%s\n"
                              "ca-cert=/etc/moat/ca.pem\n"
                              "ca-key=/etc/moat/ca.key\n"
                              "ca-file=/etc/moat/extra-roots.pem\n"
                              "connect-to=a.example:443:127.0.0.1:8443|"
                              "a.example:80:127.0.0.1:8080\n",
                              audit, ca_cert_out);
  dump = dump_config (config);
  g_assert_cmpstr (dump, ==, expected);
  g_assert_true (moat_config_validate (config, &error));
  g_assert_no_error (error);
}

typedef struct {
  const char *description;
  const char *socket_path;
  const char *connect_path;
  int fd;
  const char *ca_cert;
  const char *ca_key;
  guint mtu;
  const char *message; /* substring expected in the error, NULL if valid */
} ValidateCase;

/* 107 bytes: the longest path that fits in sun_path with its NUL. */
#define PATH_107 \
  "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const ValidateCase validate_cases[] = {
  { "socket", "/run/vm.sock", NULL, -1, NULL, NULL, 1500, NULL },
  { "connect", NULL, "/run/qemu.sock", -1, NULL, NULL, 1500, NULL },
  { "fd 0", NULL, NULL, 0, NULL, NULL, 1500, NULL },
  { "persistent CA", NULL, NULL, 3, "/ca.pem", "/ca.key", 1500, NULL },
  { "socket path of 107 bytes", PATH_107, NULL, -1, NULL, NULL, 1500, NULL },
  { "no socket", NULL, NULL, -1, NULL, NULL, 1500,
    "no QEMU socket: give --socket PATH, --connect PATH or --fd N" },
  { "socket and fd", "/run/vm.sock", NULL, 3, NULL, NULL, 1500,
    "conflicting QEMU sockets: --socket (or [moat] socket) \"/run/vm.sock\" "
    "and --fd 3 cannot be combined; give only one of --socket, --connect "
    "and --fd" },
  { "socket and connect", "/run/vm.sock", "/run/qemu.sock", -1, NULL, NULL,
    1500, "--socket (or [moat] socket) \"/run/vm.sock\" and --connect "
    "\"/run/qemu.sock\" cannot be combined" },
  { "all three", "/a", "/b", 4, NULL, NULL, 1500,
    "\"/a\" and --connect \"/b\" and --fd 4 cannot be combined" },
  { "socket path of 108 bytes", PATH_107 "a", NULL, -1, NULL, NULL, 1500,
    "socket path \"" PATH_107 "a\" is 108 bytes long, more than the 107 "
    "bytes a unix socket path (sun_path) allows" },
  { "connect path of 108 bytes", NULL, PATH_107 "a", -1, NULL, NULL, 1500,
    "--connect path \"" PATH_107 "a\" is 108 bytes long, more than the 107 "
    "bytes" },
  { "CA certificate without key", "/s", NULL, -1, "/ca.pem", NULL, 1500,
    "[tls] ca-cert is set but [tls] ca-key is not: give both" },
  { "CA key without certificate", "/s", NULL, -1, NULL, "/ca.key", 1500,
    "[tls] ca-key is set but [tls] ca-cert is not" },
  { "MTU from the command line too small", "/s", NULL, -1, NULL, NULL, 100,
    "invalid MTU 100: expected an integer from 576 to 65520" },
  { "MTU from the command line too large", "/s", NULL, -1, NULL, NULL, 65521,
    "invalid MTU 65521" },
};

static void
test_validate (void)
{
  g_assert_cmpuint (strlen (PATH_107), ==, 107);

  for (gsize i = 0; i < G_N_ELEMENTS (validate_cases); i++)
    {
      const ValidateCase *c = &validate_cases[i];
      g_autoptr (MoatConfig) config = moat_config_new ();
      g_autoptr (GError) error = NULL;
      gboolean valid;

      config->socket_path = g_strdup (c->socket_path);
      config->connect_path = g_strdup (c->connect_path);
      config->fd = c->fd;
      config->ca_cert = g_strdup (c->ca_cert);
      config->ca_key = g_strdup (c->ca_key);
      config->mtu = c->mtu;

      g_test_message ("%s", c->description);
      valid = moat_config_validate (config, &error);
      if (c->message == NULL)
        {
          g_assert_no_error (error);
          g_assert_true (valid);
        }
      else
        {
          g_assert_false (valid);
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
          if (strstr (error->message, c->message) == NULL)
            g_test_fail_printf ("%s: error \"%s\" lacks \"%s\"",
                                c->description, error->message, c->message);
        }
    }
}

static void
test_validate_placeholders_dir (void)
{
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("moat-config-XXXXXX", &error);
  g_autofree char *missing = NULL;

  g_assert_no_error (error);
  config->path = g_strdup ("/etc/moat/vm.ini");

  /* Without a socket, as "moat check" runs it. */
  config->placeholders_out = g_build_filename (dir, "placeholders.env",
                                               NULL);
  g_assert_true (moat_config_validate_settings (config, &error));
  g_assert_no_error (error);

  missing = g_build_filename (dir, "missing", NULL);
  g_free (config->placeholders_out);
  config->placeholders_out = g_build_filename (missing, "placeholders.env",
                                               NULL);
  g_assert_false (moat_config_validate_settings (config, &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_true (g_str_has_prefix (error->message, "/etc/moat/vm.ini: [moat] "
                                   "placeholders-out = "));
  g_assert_nonnull (strstr (error->message, missing));
  g_assert_nonnull (strstr (error->message, "does not exist: create it"));
  g_rmdir (dir);
}

static void
test_validate_after_file (void)
{
  const char *data = "[moat]\nsocket = /run/vm.sock\n";
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;

  g_assert_true (moat_config_load_data (config, data, strlen (data),
                                        CONFIG_NAME, &error));
  g_assert_no_error (error);
  g_assert_true (moat_config_validate (config, &error));
  g_assert_no_error (error);

  /* A command-line --fd on top of [moat] socket is a conflict. */
  config->fd = 5;
  g_assert_false (moat_config_validate (config, &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "--fd 5"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/config/new/defaults", test_defaults);
  g_test_add_func ("/config/load/valid", test_load_valid);
  g_test_add_func ("/config/load/invalid", test_load_invalid);
  g_test_add_func ("/config/load/rules-and-secrets", test_load_rules);
  g_test_add_func ("/config/build-policy/rules", test_build_policy);
  g_test_add_func ("/config/load/unchanged-on-error",
                   test_load_keeps_config_on_error);
  g_test_add_func ("/config/load/later-overrides", test_load_overrides);
  g_test_add_func ("/config/load/relative-name", test_load_relative_to_cwd);
  g_test_add ("/config/load-file/relative-paths", TempFile, NULL,
              temp_file_setup, test_load_file, temp_file_teardown);
  g_test_add ("/config/load-file/line-number", TempFile, NULL,
              temp_file_setup, test_load_file_invalid, temp_file_teardown);
  g_test_add ("/config/load-file/missing", TempFile, NULL, temp_file_setup,
              test_load_file_missing, temp_file_teardown);
  g_test_add ("/config/load-file/directory", TempFile, NULL,
              temp_file_setup, test_load_file_directory, temp_file_teardown);
  g_test_add_func ("/config/load-file/example", test_load_example);
  g_test_add_func ("/config/validate/table", test_validate);
  g_test_add_func ("/config/validate/after-file", test_validate_after_file);
  g_test_add_func ("/config/validate/placeholders-folder",
                   test_validate_placeholders_dir);

  return g_test_run ();
}
