/* SPDX-License-Identifier: GPL-2.0-or-later */
/* config.c - moat's configuration: GKeyFile INI file plus command line */
#define G_LOG_DOMAIN "moat-config"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "moat-limits.h"
#include "policy.h"

/* Maximum length of a unix socket path: sun_path less its terminating NUL. */
#define SOCKET_PATH_MAX (sizeof (((struct sockaddr_un *) NULL)->sun_path) - 1)

/*
 * Theory of operation
 *
 * GKeyFile decodes values (escapes, ';' lists) but accepts what moat must
 * reject: it keeps the last of two equal keys, merges repeated groups and
 * leaves locale keys such as "allow[de]" out of g_key_file_get_keys(). So a
 * line scanner first lists every group and key with its line number and
 * rejects unknown or repeated ones. Only then are the values read through
 * GKeyFile and parsed into a staging copy, which replaces the fields of the
 * MoatConfig only when the whole file is valid.
 *
 * Most groups are fixed ([moat], [policy], ...) and their keys set fields
 * of MoatConfig. "[rule NAME]" and "[secret NAME]" groups may appear any
 * number of times with different names; their keys set fields of the
 * MoatRuleSpec or MoatSecretSpec that the group creates, and each group
 * is checked as a whole (a rule needs an action) after its keys.
 */

typedef enum {
  VALUE_PATH,       /* path, relative to the configuration file */
  VALUE_AUDIT_PATH, /* VALUE_PATH, or "-" for stdout */
  VALUE_MTU,        /* integer from MOAT_MTU_MIN to MOAT_MTU_MAX */
  VALUE_SECONDS,    /* integer from 1 to MOAT_TIMEOUT_MAX_S (seconds) */
  VALUE_PATTERNS,   /* list of host patterns */
  VALUE_CONNECT_TO, /* list of HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT */
  VALUE_MODE,       /* "enforce" or "report" */
  VALUE_RULE_HOSTS, /* list of host patterns, not empty */
  VALUE_RULE_PORTS, /* list of ports and port ranges */
  VALUE_RULE_METHODS, /* list of request methods */
  VALUE_RULE_PATHS, /* list of path patterns */
  VALUE_RULE_ACTION, /* "allow" or "deny" */
  VALUE_SECRET_ENV, /* environment variable name */
  VALUE_SECRET_FILE, /* VALUE_PATH of a file that holds a secret */
  VALUE_SECRET_HOSTS, /* list of host patterns, not empty */
} ValueKind;

/**
 * KeySpec:
 * @group: group name without brackets; for "[rule NAME]" and
 *   "[secret NAME]" groups, "rule" or "secret"
 * @key: key name
 * @kind: how the value is parsed
 * @offset: offset of the field that the value sets: in MoatConfig, or in
 *   MoatRuleSpec or MoatSecretSpec for rule and secret groups
 */
typedef struct {
  const char *group;
  const char *key;
  ValueKind kind;
  gsize offset;
} KeySpec;

static const KeySpec key_specs[] = {
  { "moat", "socket", VALUE_PATH, G_STRUCT_OFFSET (MoatConfig, socket_path) },
  { "moat", "audit", VALUE_AUDIT_PATH,
    G_STRUCT_OFFSET (MoatConfig, audit_path) },
  { "moat", "mtu", VALUE_MTU, G_STRUCT_OFFSET (MoatConfig, mtu) },
  { "moat", "placeholders-out", VALUE_PATH,
    G_STRUCT_OFFSET (MoatConfig, placeholders_out) },
  { "moat", "head-timeout", VALUE_SECONDS,
    G_STRUCT_OFFSET (MoatConfig, head_timeout_s) },
  { "policy", "allow", VALUE_PATTERNS, G_STRUCT_OFFSET (MoatConfig, allow) },
  { "policy", "deny", VALUE_PATTERNS, G_STRUCT_OFFSET (MoatConfig, deny) },
  { "policy", "mode", VALUE_MODE, G_STRUCT_OFFSET (MoatConfig, policy_mode) },
  { "tls", "ca-cert-out", VALUE_PATH,
    G_STRUCT_OFFSET (MoatConfig, ca_cert_out) },
  { "tls", "ca-cert", VALUE_PATH, G_STRUCT_OFFSET (MoatConfig, ca_cert) },
  { "tls", "ca-key", VALUE_PATH, G_STRUCT_OFFSET (MoatConfig, ca_key) },
  { "upstream", "ca-file", VALUE_PATH,
    G_STRUCT_OFFSET (MoatConfig, upstream_ca_file) },
  { "upstream", "connect-to", VALUE_CONNECT_TO,
    G_STRUCT_OFFSET (MoatConfig, connect_to) },
  { "upstream", "stall-timeout", VALUE_SECONDS,
    G_STRUCT_OFFSET (MoatConfig, stall_timeout_s) },
  { "rule", "hosts", VALUE_RULE_HOSTS, G_STRUCT_OFFSET (MoatRuleSpec, hosts) },
  { "rule", "ports", VALUE_RULE_PORTS, G_STRUCT_OFFSET (MoatRuleSpec, ports) },
  { "rule", "methods", VALUE_RULE_METHODS,
    G_STRUCT_OFFSET (MoatRuleSpec, methods) },
  { "rule", "paths", VALUE_RULE_PATHS, G_STRUCT_OFFSET (MoatRuleSpec, paths) },
  { "rule", "action", VALUE_RULE_ACTION,
    G_STRUCT_OFFSET (MoatRuleSpec, action) },
  { "secret", "value-env", VALUE_SECRET_ENV,
    G_STRUCT_OFFSET (MoatSecretSpec, value_env) },
  { "secret", "value-file", VALUE_SECRET_FILE,
    G_STRUCT_OFFSET (MoatSecretSpec, value_file) },
  { "secret", "hosts", VALUE_SECRET_HOSTS,
    G_STRUCT_OFFSET (MoatSecretSpec, hosts) },
};

static const char *const known_groups[] = {
  "moat", "policy", "tls", "upstream",
};

/* Groups that take a name, "[rule NAME]", and may appear once per name. */
static const char *const named_groups[] = {
  "rule", "secret",
};

/* Maximum length of a secret name, which is part of its placeholder. */
#define SECRET_NAME_MAX 64

/**
 * Group:
 * @full: the group as written between the brackets, blanks collapsed:
 *   "moat" or "rule github-read"
 * @kind: "moat", "policy", ... or "rule" or "secret"
 * @name: (nullable): NAME of a "[rule NAME]" or "[secret NAME]" group
 * @line: line of the "[group]" line
 * @spec: (nullable): the MoatRuleSpec or MoatSecretSpec that the group's
 *   keys fill, in the staged configuration
 * @kinds_seen: bit (1 << ValueKind) for each key the group sets
 */
typedef struct {
  char *full;
  char *kind;
  char *name;
  guint line;
  gpointer spec;
  guint32 kinds_seen;
} Group;

/**
 * Entry:
 * @spec: the key's specification
 * @group: the group the key is in
 * @line: 1-based line number of the "key = value" line
 */
typedef struct {
  const KeySpec *spec;
  Group *group;
  guint line;
} Entry;

/**
 * LoadContext:
 * @name: file name for messages
 * @base_dir: absolute directory that relative paths are resolved against
 * @key_file: the parsed file
 * @entries: (element-type Entry): keys in file order
 * @groups: (element-type Group): groups in file order
 */
typedef struct {
  const char *name;
  char *base_dir;
  GKeyFile *key_file;
  GArray *entries;
  GPtrArray *groups;
} LoadContext;

static void
group_free (Group *group)
{
  g_free (group->full);
  g_free (group->kind);
  g_free (group->name);
  g_free (group);
}

MoatSecretSpec *
moat_secret_spec_new (const char *name)
{
  MoatSecretSpec *spec = g_new0 (MoatSecretSpec, 1);

  spec->name = g_strdup (name);
  return spec;
}

void
moat_secret_spec_free (MoatSecretSpec *spec)
{
  if (spec == NULL)
    return;
  g_free (spec->name);
  g_free (spec->value_env);
  g_free (spec->value_file);
  g_free (spec->origin);
  g_strfreev (spec->hosts);
  g_free (spec);
}

MoatConfig *
moat_config_new (void)
{
  MoatConfig *config = g_new0 (MoatConfig, 1);

  config->fd = -1;
  config->mtu = 1500;
  config->head_timeout_s = MOAT_HTTP_HEAD_TIMEOUT_S;
  config->stall_timeout_s = MOAT_UPSTREAM_STALL_TIMEOUT_S;
  config->policy_mode = MOAT_POLICY_MODE_ENFORCE;
  config->rules = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_rule_spec_free);
  config->secrets = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_secret_spec_free);

  return config;
}

void
moat_config_free (MoatConfig *config)
{
  if (config == NULL)
    return;

  g_free (config->path);
  g_free (config->socket_path);
  g_free (config->connect_path);
  g_free (config->audit_path);
  g_strfreev (config->allow);
  g_strfreev (config->deny);
  g_free (config->ca_cert_out);
  g_free (config->ca_cert);
  g_free (config->ca_key);
  g_free (config->upstream_ca_file);
  g_strfreev (config->connect_to);
  g_free (config->placeholders_out);
  g_clear_pointer (&config->rules, g_ptr_array_unref);
  g_clear_pointer (&config->secrets, g_ptr_array_unref);
  g_free (config);
}

static void set_line_error (GError **error, const char *name, guint line,
                            const char *format, ...) G_GNUC_PRINTF (4, 5);

/* Sets a MOAT_ERROR_CONFIG error prefixed with "NAME:LINE: ". Text quoted
 * from the file may be invalid UTF-8, which is replaced by U+FFFD. */
static void
set_line_error (GError **error, const char *name, guint line,
                const char *format, ...)
{
  g_autofree char *message = NULL;
  g_autofree char *valid = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  valid = g_utf8_make_valid (message, -1);
  g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG, "%s:%u: %s", name, line,
               valid);
}

static const KeySpec *
find_key_spec (const char *group, const char *key)
{
  for (gsize i = 0; i < G_N_ELEMENTS (key_specs); i++)
    {
      if (strcmp (key_specs[i].group, group) == 0
          && strcmp (key_specs[i].key, key) == 0)
        return &key_specs[i];
    }

  return NULL;
}

static gboolean
is_known_group (const char *group)
{
  for (gsize i = 0; i < G_N_ELEMENTS (known_groups); i++)
    {
      if (strcmp (known_groups[i], group) == 0)
        return TRUE;
    }

  return FALSE;
}

/* Returns the kind of a "[rule NAME]" style group, or NULL. @rest is set
 * to what follows the kind. */
static const char *
find_named_group (const char *group, const char **rest)
{
  for (gsize i = 0; i < G_N_ELEMENTS (named_groups); i++)
    {
      gsize length = strlen (named_groups[i]);

      if (strncmp (group, named_groups[i], length) == 0
          && (group[length] == ' ' || group[length] == '\t'))
        {
          *rest = group + length;
          return named_groups[i];
        }
    }

  return NULL;
}

/* Checks NAME of "[secret NAME]". It appears in placeholders and in the
 * NAME=PLACEHOLDER lines of the placeholders file, which a launcher may
 * source with a POSIX shell, so it must be a shell variable name: letters,
 * digits and '_', not starting with a digit. */
static gboolean
secret_name_validate (const char *name, GError **error)
{
  gsize length = strlen (name);
  gboolean valid = length > 0 && length <= SECRET_NAME_MAX
                   && !g_ascii_isdigit (name[0]);

  for (const char *c = name; valid && *c != '\0'; c++)
    valid = g_ascii_isalnum (*c) || *c == '_';
  if (!valid)
    {
      g_autofree char *suggestion = g_strdelimit (g_strdup (name), "-.", '_');

      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid secret name \"%s\": expected 1 to %d letters, "
                   "digits or '_', not starting with a digit, so that a shell "
                   "can source the NAME=PLACEHOLDER lines of the "
                   "placeholders file (such as \"%s\")", name,
                   SECRET_NAME_MAX, suggestion);
      return FALSE;
    }

  return TRUE;
}

/* Returns "socket, audit, mtu" for group "moat", for error messages. */
static char *
list_keys (const char *group)
{
  g_autoptr (GString) keys = g_string_new (NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (key_specs); i++)
    {
      if (strcmp (key_specs[i].group, group) != 0)
        continue;
      if (keys->len > 0)
        g_string_append (keys, ", ");
      g_string_append (keys, key_specs[i].key);
    }

  return g_string_free (g_steal_pointer (&keys), FALSE);
}

/**
 * scan_group_line:
 * @context: the load context
 * @text: the line without surrounding whitespace, starting with '['
 * @line: line number
 * @seen_groups: names of the groups seen so far, mapped to their line
 * @group: (out) (transfer none): the group, added to @context->groups
 * @error: return location for a #GError
 *
 * Reads a "[group]" line as GKeyFile does: the name ends at the first ']',
 * after which only blanks may follow.
 *
 * Return: %TRUE if the group is known and not repeated
 */
static gboolean
scan_group_line (LoadContext *context, const char *text, guint line,
                 GHashTable *seen_groups, Group **group, GError **error)
{
  const char *close = strchr (text, ']');
  g_autofree char *name = NULL;
  gpointer first_line;
  const char *kind;
  const char *rest = NULL;
  Group *record;

  if (close == NULL || close[strspn (close + 1, " \t") + 1] != '\0')
    {
      set_line_error (error, context->name, line, "invalid group line "
                      "\"%s\": expected \"[name]\"", text);
      return FALSE;
    }

  name = g_strndup (text + 1, close - text - 1);
  record = g_new0 (Group, 1);
  record->line = line;
  kind = find_named_group (name, &rest);
  if (kind != NULL)
    {
      g_autoptr (GError) local_error = NULL;
      g_autofree char *instance = g_strstrip (g_strdup (rest));
      gboolean valid = strcmp (kind, "rule") == 0
                       ? moat_rule_name_validate (instance, &local_error)
                       : secret_name_validate (instance, &local_error);

      if (!valid)
        {
          set_line_error (error, context->name, line, "[%s]: %s", name,
                          local_error->message);
          group_free (record);
          return FALSE;
        }
      record->kind = g_strdup (kind);
      record->name = g_steal_pointer (&instance);
      /* GKeyFile looks groups up by their exact text, so one spelling. */
      if (rest[0] != ' ' || strcmp (rest + 1, record->name) != 0)
        {
          set_line_error (error, context->name, line, "invalid group line "
                          "\"%s\": write one space between \"%s\" and the "
                          "name, as in [%s %s]", text, kind, kind,
                          record->name);
          group_free (record);
          return FALSE;
        }
    }
  else if (is_known_group (name))
    record->kind = g_strdup (name);
  else
    {
      set_line_error (error, context->name, line, "unknown group [%s]: "
                      "expected [moat], [policy], [tls], [upstream], "
                      "[rule NAME] or [secret NAME]", name);
      group_free (record);
      return FALSE;
    }
  record->full = g_strdup (name);

  if (g_hash_table_lookup_extended (seen_groups, name, NULL, &first_line))
    {
      set_line_error (error, context->name, line, "duplicate group [%s], "
                      "first started on line %u: put all its keys under "
                      "one [%s] line", name, GPOINTER_TO_UINT (first_line),
                      name);
      group_free (record);
      return FALSE;
    }
  g_hash_table_insert (seen_groups, g_strdup (name), GUINT_TO_POINTER (line));

  g_ptr_array_add (context->groups, record);
  *group = record;
  return TRUE;
}

/**
 * scan_key_line:
 * @context: the load context
 * @text: the line without surrounding whitespace
 * @line: line number
 * @group: (nullable): the current group
 * @seen_keys: (element-type KeySpec guint): keys seen so far in @group,
 *   mapped to their line
 * @error: return location for a #GError
 *
 * Reads a "key = value" line as GKeyFile does: the key ends at the first
 * '=' and surrounding blanks are not part of it. Adds the key to
 * @context->entries.
 *
 * Return: %TRUE if the key is known in @group and not repeated
 */
static gboolean
scan_key_line (LoadContext *context, const char *text, guint line,
               Group *group, GHashTable *seen_keys, GError **error)
{
  const char *equals = strchr (text, '=');
  g_autofree char *key = NULL;
  const KeySpec *spec;
  gpointer first_line;
  Entry entry;

  if (equals == NULL || equals == text)
    {
      set_line_error (error, context->name, line, "invalid line \"%s\": "
                      "expected \"[group]\", \"key = value\" or a comment "
                      "starting with '#'", text);
      return FALSE;
    }

  key = g_strstrip (g_strndup (text, equals - text));
  if (group == NULL)
    {
      set_line_error (error, context->name, line, "key \"%s\" is outside "
                      "any group: put it under its group, such as [moat]",
                      key);
      return FALSE;
    }

  spec = find_key_spec (group->kind, key);
  if (spec == NULL)
    {
      g_autofree char *keys = list_keys (group->kind);

      set_line_error (error, context->name, line, "[%s] %s: unknown key; "
                      "[%s] accepts %s", group->full, key, group->full, keys);
      return FALSE;
    }

  if (g_hash_table_lookup_extended (seen_keys, spec, NULL, &first_line))
    {
      set_line_error (error, context->name, line, "[%s] %s: duplicate key, "
                      "first set on line %u: set each key once (a list "
                      "takes several values separated by ';')", group->full,
                      key, GPOINTER_TO_UINT (first_line));
      return FALSE;
    }
  g_hash_table_insert (seen_keys, (gpointer) spec, GUINT_TO_POINTER (line));
  group->kinds_seen |= 1u << spec->kind;

  entry.spec = spec;
  entry.group = group;
  entry.line = line;
  g_array_append_val (context->entries, entry);
  return TRUE;
}

/**
 * scan_lines:
 * @context: the load context, whose @entries is filled
 * @data: file contents, without NUL bytes
 * @length: bytes of @data
 * @error: return location for a #GError
 *
 * Lists the groups and keys of @data with their line numbers, following the
 * line syntax of GKeyFile: leading blanks are skipped, '#' starts a comment,
 * and a trailing '\r' is ignored.
 *
 * Return: %TRUE if every group and key is known and appears once
 */
static gboolean
scan_lines (LoadContext *context, const char *data, gsize length,
            GError **error)
{
  g_autoptr (GHashTable) seen_groups = g_hash_table_new_full (g_str_hash,
                                                              g_str_equal,
                                                              g_free, NULL);
  g_autoptr (GHashTable) seen_keys = g_hash_table_new (g_direct_hash,
                                                       g_direct_equal);
  Group *group = NULL;
  const char *p = data;
  const char *end = data + length;
  guint line = 0;

  while (p < end)
    {
      const char *newline = memchr (p, '\n', end - p);
      const char *line_end = newline != NULL ? newline : end;
      g_autofree char *text = g_strstrip (g_strndup (p, line_end - p));

      line++;
      p = newline != NULL ? newline + 1 : end;

      if (text[0] == '\0' || text[0] == '#')
        continue;

      if (text[0] == '[')
        {
          /* Groups never repeat, so keys are tracked per group. */
          g_hash_table_remove_all (seen_keys);
          if (!scan_group_line (context, text, line, seen_groups, &group,
                                error))
            return FALSE;
          continue;
        }

      if (!scan_key_line (context, text, line, group, seen_keys, error))
        return FALSE;
    }

  return TRUE;
}

static gboolean parse_value_error (GError **error, const LoadContext *context,
                                   const Entry *entry, const char *format,
                                   ...) G_GNUC_PRINTF (4, 5);

/* Sets a MOAT_ERROR_CONFIG error prefixed with "NAME:LINE: [GROUP] KEY: ".
 * Returns FALSE for use in return statements. */
static gboolean
parse_value_error (GError **error, const LoadContext *context,
                   const Entry *entry, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  set_line_error (error, context->name, entry->line, "[%s] %s: %s",
                  entry->group->full, entry->spec->key, message);
  return FALSE;
}

/**
 * parse_path:
 * @context: the load context
 * @entry: the key
 * @value: the decoded value
 * @path: (out) (transfer full): the absolute path, or "-" for stdout where
 *   the key allows it
 * @error: return location for a #GError
 *
 * Return: %TRUE on success
 */
static gboolean
parse_path (const LoadContext *context, const Entry *entry,
            const char *value, char **path, GError **error)
{
  if (value[0] == '\0')
    return parse_value_error (error, context, entry, "missing value: "
                              "expected a path");

  if (entry->spec->kind == VALUE_AUDIT_PATH && strcmp (value, "-") == 0)
    {
      *path = g_strdup (value);
      return TRUE;
    }

  /* GKeyFile does not expand "~", and resolving it against the file's
   * directory would quietly write somewhere unexpected. */
  if (value[0] == '~')
    return parse_value_error (error, context, entry, "invalid value \"%s\": "
                              "\"~\" is not expanded: give an absolute path "
                              "or one relative to the configuration file",
                              value);

  if (g_path_is_absolute (value))
    *path = g_strdup (value);
  else
    *path = g_build_filename (context->base_dir, value, NULL);

  return TRUE;
}

static gboolean
parse_mtu (const LoadContext *context, const Entry *entry,
           const char *value, guint *mtu, GError **error)
{
  guint64 number;

  if (!g_ascii_string_to_unsigned (value, 10, MOAT_MTU_MIN, MOAT_MTU_MAX,
                                   &number, NULL))
    return parse_value_error (error, context, entry, "invalid value \"%s\": "
                              "expected an integer from %u to %u (bytes)",
                              value, MOAT_MTU_MIN, MOAT_MTU_MAX);

  *mtu = (guint) number;
  return TRUE;
}

static gboolean
parse_seconds (const LoadContext *context, const Entry *entry,
               const char *value, guint *seconds, GError **error)
{
  guint64 number;

  if (!g_ascii_string_to_unsigned (value, 10, 1, MOAT_TIMEOUT_MAX_S, &number,
                                   NULL))
    return parse_value_error (error, context, entry, "invalid value \"%s\": "
                              "expected an integer from 1 to %u (seconds)",
                              value, MOAT_TIMEOUT_MAX_S);

  *seconds = (guint) number;
  return TRUE;
}

/**
 * parse_port:
 * @text: the port text, not NUL-terminated
 * @length: bytes of @text
 * @port: (out): the port
 *
 * Return: %TRUE if @text is a decimal number from 1 to 65535
 */
static gboolean
parse_port (const char *text, gsize length, guint *port)
{
  g_autofree char *copy = g_strndup (text, length);
  guint64 number;

  if (!g_ascii_string_to_unsigned (copy, 10, 1, 65535, &number, NULL))
    return FALSE;

  *port = (guint) number;
  return TRUE;
}

/**
 * split_host:
 * @text: start of a host in a connect-to entry
 * @end: end of the entry
 * @host: (out) (transfer full): the host, brackets included for IPv6
 * @next: (out): the character after the host, which must be ':'
 * @error: return location for a #GError
 *
 * Reads a host name, an IPv4 address or a bracketed IPv6 address up to the
 * next ':' and checks it.
 *
 * Return: %TRUE if the host is valid and followed by ':'
 */
static gboolean
split_host (const char *text, const char *end, char **host,
            const char **next, GError **error)
{
  const char *host_end;
  g_autofree char *copy = NULL;

  if (text < end && *text == '[')
    {
      g_autofree char *address = NULL;

      host_end = memchr (text, ']', end - text);
      if (host_end == NULL)
        {
          g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                               "missing ']' after an IPv6 address");
          return FALSE;
        }
      address = g_strndup (text + 1, host_end - text - 1);
      if (strchr (address, ':') == NULL
          || !g_hostname_is_ip_address (address))
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "invalid IPv6 address \"%s\" in brackets", address);
          return FALSE;
        }
      host_end++;
      copy = g_strndup (text, host_end - text);
    }
  else
    {
      host_end = memchr (text, ':', end - text);
      if (host_end == NULL)
        host_end = end;
      copy = g_strndup (text, host_end - text);
      if (copy[0] == '\0')
        {
          g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                               "empty host");
          return FALSE;
        }
      if (strchr (copy, '*') != NULL)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "wildcards are not supported in host \"%s\"", copy);
          return FALSE;
        }
      if (!moat_host_name_validate (copy, error))
        return FALSE;
    }

  if (host_end == end || *host_end != ':')
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "missing ':' and port after host \"%s\"", copy);
      return FALSE;
    }

  *host = g_steal_pointer (&copy);
  *next = host_end;
  return TRUE;
}

/**
 * parse_connect_to_entry:
 * @entry: "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT"
 * @key: (out) (transfer full): "host:port" in lowercase, to detect repeats
 * @error: return location for a #GError
 *
 * Checks an entry in the format of curl's CONNECT_TO option: requests to
 * HOST:PORT go to CONNECT-TO-HOST:CONNECT-TO-PORT. Unlike curl, moat
 * requires every part to be present, because an empty HOST would redirect
 * every host. Each host is a name, an IPv4 address or a bracketed IPv6
 * address, and each port is from 1 to 65535.
 *
 * Return: %TRUE if @entry is valid
 */
static gboolean
parse_connect_to_entry (const char *entry, char **key, GError **error)
{
  const char *end = entry + strlen (entry);
  const char *p = entry;
  const char *port_end;
  g_autofree char *host = NULL;
  g_autofree char *target_host = NULL;
  g_autofree char *host_port = NULL;
  guint port;
  guint target_port;

  if (!split_host (p, end, &host, &p, error))
    return FALSE;

  p++; /* ':' */
  port_end = memchr (p, ':', end - p);
  if (port_end == NULL || !parse_port (p, port_end - p, &port))
    {
      g_autofree char *text = g_strndup (p, (port_end ? port_end : end) - p);

      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid port \"%s\" after host \"%s\": expected a number "
                   "from 1 to 65535", text, host);
      return FALSE;
    }

  p = port_end + 1;
  if (!split_host (p, end, &target_host, &p, error))
    {
      g_prefix_error (error, "connect-to host: ");
      return FALSE;
    }

  p++; /* ':' */
  if (!parse_port (p, end - p, &target_port))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid connect-to port \"%s\": expected a number from 1 "
                   "to 65535", p);
      return FALSE;
    }

  host_port = g_strdup_printf ("%s:%u", host, port);
  *key = g_ascii_strdown (host_port, -1);
  return TRUE;
}

/* Checks one element of a list other than connect-to. */
static gboolean
check_list_element (ValueKind kind, const char *element, GError **error)
{
  guint first, last;

  switch (kind)
    {
    case VALUE_PATTERNS:
    case VALUE_RULE_HOSTS:
    case VALUE_SECRET_HOSTS:
      return moat_host_pattern_validate (element, error);
    case VALUE_RULE_PORTS:
      return moat_port_range_parse (element, &first, &last, error);
    case VALUE_RULE_METHODS:
      return moat_method_validate (element, error);
    case VALUE_RULE_PATHS:
      return moat_path_pattern_validate (element, error);
    default:
      break;
    }

  g_assert_not_reached ();
}

static gboolean
is_list_kind (ValueKind kind)
{
  return kind == VALUE_PATTERNS || kind == VALUE_CONNECT_TO
         || kind == VALUE_RULE_HOSTS || kind == VALUE_RULE_PORTS
         || kind == VALUE_RULE_METHODS || kind == VALUE_RULE_PATHS
         || kind == VALUE_SECRET_HOSTS;
}

/**
 * parse_list:
 * @context: the load context
 * @entry: the key
 * @list: (out) (transfer full): the elements with surrounding blanks
 *   removed, %NULL-terminated
 * @error: return location for a #GError
 *
 * Reads a GKeyFile string list, whose elements are separated by ';'. One
 * ';' at the end is allowed, as GKeyFile writes lists that way. An empty
 * value gives an empty list, which only [policy] allow and deny and
 * [upstream] connect-to accept. Each element is checked as the key
 * requires.
 *
 * Return: %TRUE if every element is valid
 */
static gboolean
parse_list (const LoadContext *context, const Entry *entry, char ***list,
            GError **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GHashTable) connect_to_keys = NULL;
  g_autofree char *raw = NULL;
  g_auto (GStrv) elements = NULL;
  gsize count = 0;

  raw = g_key_file_get_value (context->key_file, entry->group->full,
                              entry->spec->key, NULL);
  elements = g_key_file_get_string_list (context->key_file,
                                         entry->group->full,
                                         entry->spec->key, &count,
                                         &local_error);
  if (local_error != NULL)
    return parse_value_error (error, context, entry, "invalid value \"%s\": "
                              "%s", raw, local_error->message);
  if (elements == NULL)
    elements = g_new0 (char *, 1);
  /* In a rule, a missing key matches anything, so an empty list would
   * read as "match nothing" to some and "anything" to others. */
  if (count == 0 && entry->spec->kind != VALUE_PATTERNS
      && entry->spec->kind != VALUE_CONNECT_TO)
    return parse_value_error (error, context, entry, "missing value: give "
                              "at least one element, or remove the key%s",
                              entry->group->name != NULL
                              && strcmp (entry->group->kind, "rule") == 0
                              ? " to match anything" : "");

  connect_to_keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           NULL);
  for (gsize i = 0; i < count; i++)
    {
      g_strstrip (elements[i]);
      if (elements[i][0] == '\0')
        return parse_value_error (error, context, entry, "invalid value "
                                  "\"%s\": element %" G_GSIZE_FORMAT " is "
                                  "empty: separate elements with one ';'",
                                  raw, i + 1);

      if (entry->spec->kind != VALUE_CONNECT_TO)
        {
          if (!check_list_element (entry->spec->kind, elements[i],
                                   &local_error))
            return parse_value_error (error, context, entry, "%s",
                                      local_error->message);
        }
      else
        {
          g_autofree char *host_port = NULL;

          if (!parse_connect_to_entry (elements[i], &host_port,
                                       &local_error))
            return parse_value_error (error, context, entry, "invalid "
                                      "connect-to entry \"%s\": %s; expected "
                                      "HOST:PORT:CONNECT-TO-HOST:"
                                      "CONNECT-TO-PORT, such as "
                                      "\"a.example:443:127.0.0.1:8443\"",
                                      elements[i], local_error->message);
          if (!g_hash_table_add (connect_to_keys,
                                 g_steal_pointer (&host_port)))
            return parse_value_error (error, context, entry, "invalid "
                                      "connect-to entry \"%s\": an earlier "
                                      "entry already redirects the same host "
                                      "and port", elements[i]);
        }
    }

  *list = g_steal_pointer (&elements);
  return TRUE;
}

/* Replaces the field that @spec describes in @config with the value in
 * @staged, which loses it. */
static void
move_field (MoatConfig *config, MoatConfig *staged, const KeySpec *spec)
{
  gpointer to = G_STRUCT_MEMBER_P (config, spec->offset);
  gpointer from = G_STRUCT_MEMBER_P (staged, spec->offset);

  switch (spec->kind)
    {
    case VALUE_PATH:
    case VALUE_AUDIT_PATH:
      g_free (*(char **) to);
      *(char **) to = g_steal_pointer ((char **) from);
      break;
    case VALUE_MTU:
    case VALUE_SECONDS:
      *(guint *) to = *(guint *) from;
      break;
    case VALUE_MODE:
      *(MoatPolicyMode *) to = *(MoatPolicyMode *) from;
      break;
    case VALUE_PATTERNS:
    case VALUE_CONNECT_TO:
      g_strfreev (*(char ***) to);
      *(char ***) to = g_steal_pointer ((char ***) from);
      break;
    default:
      /* Rule and secret keys fill their group's spec, moved as a whole. */
      g_assert_not_reached ();
    }
}

/* Reads one of two words into an enum field. */
static gboolean
parse_choice (const LoadContext *context, const Entry *entry,
              const char *value, const char *word0, const char *word1,
              int *field, GError **error)
{
  if (strcmp (value, word0) == 0)
    *field = 0;
  else if (strcmp (value, word1) == 0)
    *field = 1;
  else
    return parse_value_error (error, context, entry, "invalid value \"%s\": "
                              "expected \"%s\" or \"%s\"", value, word0,
                              word1);
  return TRUE;
}

/* Checks the name of an environment variable (POSIX: letters, digits and
 * '_', not starting with a digit). */
static gboolean
parse_env_name (const LoadContext *context, const Entry *entry,
                const char *value, char **field, GError **error)
{
  gboolean valid = value[0] != '\0' && !g_ascii_isdigit (value[0]);

  for (const char *c = value; valid && *c != '\0'; c++)
    valid = g_ascii_isalnum (*c) || *c == '_';
  if (!valid)
    return parse_value_error (error, context, entry, "invalid value \"%s\": "
                              "expected the name of an environment "
                              "variable, such as OPENAI_API_KEY", value);
  g_free (*field);
  *field = g_strdup (value);
  return TRUE;
}

/* Records where the value of a secret comes from, for the messages of
 * moat_secrets_new(), which reads the value only when the session
 * starts. */
static void
set_secret_origin (const LoadContext *context, const Entry *entry)
{
  MoatSecretSpec *spec = entry->group->spec;

  g_free (spec->origin);
  spec->origin = g_strdup_printf ("%s:%u: [%s] %s", context->name,
                                  entry->line, entry->group->full,
                                  entry->spec->key);
}

/* Parses the value of @entry into the matching field of @staged. */
static gboolean
parse_entry (const LoadContext *context, const Entry *entry,
             MoatConfig *staged, GError **error)
{
  const KeySpec *spec = entry->spec;
  gpointer base = entry->group->spec != NULL ? entry->group->spec
                                             : (gpointer) staged;
  gpointer field = G_STRUCT_MEMBER_P (base, spec->offset);
  g_autoptr (GError) local_error = NULL;
  g_autofree char *value = NULL;

  if (is_list_kind (spec->kind))
    return parse_list (context, entry, (char ***) field, error);

  /* For an invalid escape sequence GKeyFile returns a value and also sets
   * an error, so the error is what counts. */
  value = g_key_file_get_string (context->key_file, entry->group->full,
                                 spec->key,
                                 &local_error);
  if (local_error != NULL || value == NULL)
    {
      g_autofree char *raw = g_key_file_get_value (context->key_file,
                                                   entry->group->full,
                                                   spec->key,
                                                   NULL);

      return parse_value_error (error, context, entry, "invalid value "
                                "\"%s\": %s", raw ? raw : "",
                                local_error ? local_error->message
                                            : "cannot be read");
    }

  switch (spec->kind)
    {
    case VALUE_PATH:
    case VALUE_AUDIT_PATH:
      return parse_path (context, entry, value, (char **) field, error);
    case VALUE_SECRET_FILE:
      set_secret_origin (context, entry);
      return parse_path (context, entry, value, (char **) field, error);
    case VALUE_MTU:
      return parse_mtu (context, entry, value, (guint *) field, error);
    case VALUE_SECONDS:
      return parse_seconds (context, entry, value, (guint *) field, error);
    case VALUE_MODE:
      return parse_choice (context, entry, value, "enforce", "report",
                           (int *) field, error);
    case VALUE_RULE_ACTION:
      return parse_choice (context, entry, value, "allow", "deny",
                           (int *) field, error);
    case VALUE_SECRET_ENV:
      set_secret_origin (context, entry);
      return parse_env_name (context, entry, value, (char **) field, error);
    default:
      break;
    }

  g_assert_not_reached ();
}

/* Creates the spec that each rule and secret group fills, in file order. */
static void
create_group_specs (LoadContext *context, MoatConfig *staged)
{
  for (guint i = 0; i < context->groups->len; i++)
    {
      Group *group = g_ptr_array_index (context->groups, i);

      if (group->name == NULL)
        continue;
      if (strcmp (group->kind, "rule") == 0)
        {
          group->spec = moat_rule_spec_new (group->name);
          g_ptr_array_add (staged->rules, group->spec);
        }
      else
        {
          group->spec = moat_secret_spec_new (group->name);
          g_ptr_array_add (staged->secrets, group->spec);
        }
    }
}

/* Checks what each rule and secret group needs as a whole. */
static gboolean
check_groups (const LoadContext *context, GError **error)
{
  for (guint i = 0; i < context->groups->len; i++)
    {
      const Group *group = g_ptr_array_index (context->groups, i);
      guint32 seen = group->kinds_seen;

      if (group->name == NULL)
        continue;
      if (strcmp (group->kind, "rule") == 0)
        {
          if (!(seen & (1u << VALUE_RULE_ACTION)))
            {
              set_line_error (error, context->name, group->line, "[%s]: "
                              "missing key \"action\": add \"action = "
                              "allow\" or \"action = deny\"", group->full);
              return FALSE;
            }
          continue;
        }

      if (!!(seen & (1u << VALUE_SECRET_ENV))
          == !!(seen & (1u << VALUE_SECRET_FILE)))
        {
          set_line_error (error, context->name, group->line, "[%s]: give "
                          "exactly one of \"value-env\" (an environment "
                          "variable) and \"value-file\" (a file) for the "
                          "secret's value", group->full);
          return FALSE;
        }
      if (!(seen & (1u << VALUE_SECRET_HOSTS)))
        {
          set_line_error (error, context->name, group->line, "[%s]: "
                          "missing key \"hosts\": list the hosts whose "
                          "requests may carry the secret", group->full);
          return FALSE;
        }
    }

  return TRUE;
}

/* A secret is only usable through its placeholder, so [secret] groups
 * need [moat] placeholders-out, from this load or an earlier one. */
static gboolean
check_placeholders_out (const LoadContext *context, const MoatConfig *config,
                        const MoatConfig *staged, GError **error)
{
  if (staged->secrets->len == 0 || staged->placeholders_out != NULL
      || config->placeholders_out != NULL)
    return TRUE;

  for (guint i = 0; i < context->groups->len; i++)
    {
      const Group *group = g_ptr_array_index (context->groups, i);

      if (group->name == NULL || strcmp (group->kind, "secret") != 0)
        continue;
      set_line_error (error, context->name, group->line, "[%s]: missing "
                      "[moat] placeholders-out: the guest can only use a "
                      "secret through the placeholder that moat writes to "
                      "that file; add \"placeholders-out = PATH\" to [moat]",
                      group->full);
      return FALSE;
    }

  g_assert_not_reached ();
}

/**
 * moat_config_build_policy:
 * @config: a loaded configuration
 * @error: return location for a #GError
 *
 * Return: (transfer full): the policy of the [policy] group and the rule
 *   groups, or %NULL with a %MOAT_ERROR_CONFIG error that starts with the
 *   file name when @config was loaded from a file
 */
MoatPolicy *
moat_config_build_policy (const MoatConfig *config, GError **error)
{
  MoatPolicy *policy = moat_policy_new_full (
      (const char *const *) config->allow, (const char *const *) config->deny,
      config->rules, config->policy_mode, error);

  if (policy == NULL && config->path != NULL)
    g_prefix_error (error, "%s: ", config->path);
  return policy;
}

/* Returns the absolute directory of @name, against which relative paths in
 * the file are resolved. */
static char *
get_base_dir (const char *name)
{
  g_autofree char *dir = g_path_get_dirname (name);
  g_autofree char *cwd = NULL;

  if (g_path_is_absolute (dir))
    return g_steal_pointer (&dir);

  cwd = g_get_current_dir ();
  if (strcmp (dir, ".") == 0)
    return g_steal_pointer (&cwd);
  return g_build_filename (cwd, dir, NULL);
}

/**
 * moat_config_load_data:
 * @config: configuration to update
 * @data: INI text
 * @length: bytes of @data
 * @name: file name for messages, and whose directory relative paths are
 *   resolved against
 * @error: return location for a #GError
 *
 * Parses @data and sets the fields of @config for the keys it contains, so
 * that later loads override earlier ones. Unknown groups and keys, repeated
 * keys and invalid values are errors, because a typo must not quietly
 * change the policy. @config is left unchanged on error.
 *
 * Return: %TRUE on success, else %FALSE with a %MOAT_ERROR_CONFIG error that
 *   names @name, the line, the group, the key and the value
 */
gboolean
moat_config_load_data (MoatConfig *config, const char *data, gsize length,
                       const char *name, GError **error)
{
  g_autoptr (GKeyFile) key_file = g_key_file_new ();
  g_autoptr (GArray) entries = g_array_new (FALSE, FALSE, sizeof (Entry));
  g_autoptr (GPtrArray) groups = g_ptr_array_new_with_free_func (
      (GDestroyNotify) group_free);
  g_autoptr (MoatConfig) staged = moat_config_new ();
  g_autoptr (GError) local_error = NULL;
  g_autofree char *base_dir = NULL;
  LoadContext context;

  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (data != NULL || length == 0, FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  if (length > 0 && memchr (data, '\0', length) != NULL)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%s: contains a NUL byte: expected an INI text file",
                   name);
      return FALSE;
    }

  base_dir = get_base_dir (name);
  context.name = name;
  context.base_dir = base_dir;
  context.key_file = key_file;
  context.entries = entries;
  context.groups = groups;

  if (!scan_lines (&context, data != NULL ? data : "", length, error))
    return FALSE;
  create_group_specs (&context, staged);

  if (!g_key_file_load_from_data (key_file, data != NULL ? data : "", length,
                                  G_KEY_FILE_NONE, &local_error))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG, "%s: %s", name,
                   local_error->message);
      return FALSE;
    }

  for (guint i = 0; i < entries->len; i++)
    {
      if (!parse_entry (&context, &g_array_index (entries, Entry, i), staged,
                        error))
        return FALSE;
    }
  if (!check_groups (&context, error))
    return FALSE;
  if (!check_placeholders_out (&context, config, staged, error))
    return FALSE;

  for (guint i = 0; i < entries->len; i++)
    {
      const Entry *entry = &g_array_index (entries, Entry, i);

      if (entry->group->spec == NULL)
        move_field (config, staged, entry->spec);
    }
  /* Rules and secrets come as whole groups: a load that has any replaces
   * those of earlier loads. */
  if (staged->rules->len > 0)
    {
      g_ptr_array_unref (config->rules);
      config->rules = g_steal_pointer (&staged->rules);
      staged->rules = g_ptr_array_new ();
    }
  if (staged->secrets->len > 0)
    {
      g_ptr_array_unref (config->secrets);
      config->secrets = g_steal_pointer (&staged->secrets);
      staged->secrets = g_ptr_array_new ();
    }

  return TRUE;
}

/* Reads a regular file whole. Other kinds are rejected so that a FIFO or
 * /dev/zero cannot block or exhaust memory. */
static gboolean
read_file (const char *path, char **contents, gsize *length, GError **error)
{
  g_autoptr (GByteArray) buffer = g_byte_array_new ();
  struct stat st;
  int fd;

  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%s: failed to open configuration file: %s", path,
                   g_strerror (saved_errno));
      return FALSE;
    }

  if (fstat (fd, &st) < 0)
    {
      int saved_errno = errno;

      close (fd);
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%s: failed to read configuration file: %s", path,
                   g_strerror (saved_errno));
      return FALSE;
    }
  if (!S_ISREG (st.st_mode))
    {
      close (fd);
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%s: failed to read configuration file: not a regular "
                   "file", path);
      return FALSE;
    }

  for (;;)
    {
      guint8 chunk[4096];
      ssize_t got = read (fd, chunk, sizeof chunk);

      if (got < 0 && errno == EINTR)
        continue;
      if (got < 0)
        {
          int saved_errno = errno;

          close (fd);
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "%s: failed to read configuration file: %s", path,
                       g_strerror (saved_errno));
          return FALSE;
        }
      if (got == 0)
        break;
      g_byte_array_append (buffer, chunk, (guint) got);
    }
  close (fd);

  *length = buffer->len;
  g_byte_array_append (buffer, (const guint8 *) "", 1);
  *contents = (char *) g_byte_array_free (g_steal_pointer (&buffer), FALSE);
  return TRUE;
}

/**
 * moat_config_load_file:
 * @config: configuration to update
 * @path: INI file to read
 * @error: return location for a #GError
 *
 * Reads @path and applies it as moat_config_load_data() does. Relative
 * paths inside the file are resolved against the directory of @path.
 *
 * Return: %TRUE on success, else %FALSE with a %MOAT_ERROR_CONFIG error
 */
gboolean
moat_config_load_file (MoatConfig *config, const char *path, GError **error)
{
  g_autofree char *contents = NULL;
  gsize length;

  g_return_val_if_fail (config != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  if (!read_file (path, &contents, &length, error))
    return FALSE;

  if (!moat_config_load_data (config, contents, length, path, error))
    return FALSE;

  g_free (config->path);
  config->path = g_strdup (path);
  return TRUE;
}

/**
 * moat_config_validate:
 * @config: configuration after the file and the command line are applied
 * @error: return location for a #GError
 *
 * Checks what no single option can: exactly one QEMU socket (--socket,
 * --connect or --fd) and socket paths that fit in sun_path, then the rest
 * with moat_config_validate_settings().
 *
 * Return: %TRUE if @config is usable, else %FALSE with a %MOAT_ERROR_CONFIG
 *   error naming the options involved
 */
gboolean
moat_config_validate (const MoatConfig *config, GError **error)
{
  g_autoptr (GPtrArray) sockets = g_ptr_array_new_with_free_func (g_free);

  g_return_val_if_fail (config != NULL, FALSE);

  if (config->socket_path != NULL)
    g_ptr_array_add (sockets, g_strdup_printf ("--socket (or [moat] socket) "
                                               "\"%s\"",
                                               config->socket_path));
  if (config->connect_path != NULL)
    g_ptr_array_add (sockets, g_strdup_printf ("--connect \"%s\"",
                                               config->connect_path));
  if (config->fd >= 0)
    g_ptr_array_add (sockets, g_strdup_printf ("--fd %d", config->fd));

  if (sockets->len == 0)
    {
      g_set_error_literal (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                           "no QEMU socket: give --socket PATH, --connect "
                           "PATH or --fd N");
      return FALSE;
    }
  if (sockets->len > 1)
    {
      g_autofree char *names = NULL;

      g_ptr_array_add (sockets, NULL);
      names = g_strjoinv (" and ", (char **) sockets->pdata);
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "conflicting QEMU sockets: %s cannot be combined; give "
                   "only one of --socket, --connect and --fd", names);
      return FALSE;
    }

  if (config->socket_path != NULL
      && strlen (config->socket_path) > SOCKET_PATH_MAX)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "socket path \"%s\" is %" G_GSIZE_FORMAT " bytes long, "
                   "more than the %" G_GSIZE_FORMAT " bytes a unix socket "
                   "path (sun_path) allows: choose a shorter path",
                   config->socket_path, strlen (config->socket_path),
                   (gsize) SOCKET_PATH_MAX);
      return FALSE;
    }
  if (config->connect_path != NULL
      && strlen (config->connect_path) > SOCKET_PATH_MAX)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "--connect path \"%s\" is %" G_GSIZE_FORMAT " bytes long, "
                   "more than the %" G_GSIZE_FORMAT " bytes a unix socket "
                   "path (sun_path) allows: choose a shorter path",
                   config->connect_path, strlen (config->connect_path),
                   (gsize) SOCKET_PATH_MAX);
      return FALSE;
    }

  return moat_config_validate_settings (config, error);
}

/**
 * moat_config_check_placeholders_dir:
 * @config: a loaded configuration
 * @error: return location for a #GError
 *
 * Return: %TRUE if [moat] placeholders-out is unset or its folder exists,
 *   else %FALSE with a %MOAT_ERROR_CONFIG error that names the folder
 */
gboolean
moat_config_check_placeholders_dir (const MoatConfig *config, GError **error)
{
  g_autofree char *dir = NULL;

  if (config->placeholders_out == NULL)
    return TRUE;

  dir = g_path_get_dirname (config->placeholders_out);
  if (g_file_test (dir, G_FILE_TEST_IS_DIR))
    return TRUE;

  g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
               "%s%s[moat] placeholders-out = %s: the folder %s does not "
               "exist: create it (mkdir -p %s), or choose a file in an "
               "existing folder", config->path ? config->path : "",
               config->path ? ": " : "", config->placeholders_out, dir, dir);
  return FALSE;
}

/**
 * moat_config_validate_settings:
 * @config: configuration after the file and the command line are applied
 * @error: return location for a #GError
 *
 * Checks what moat_config_validate() checks apart from the QEMU socket:
 * [tls] ca-cert and ca-key together, the MTU range for a value from the
 * command line, and that the folder of [moat] placeholders-out exists.
 * "moat check", which has no socket, runs this.
 *
 * Return: %TRUE if @config is usable, else %FALSE with a %MOAT_ERROR_CONFIG
 *   error naming the options involved
 */
gboolean
moat_config_validate_settings (const MoatConfig *config, GError **error)
{
  g_return_val_if_fail (config != NULL, FALSE);

  if ((config->ca_cert != NULL) != (config->ca_key != NULL))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%s%s[tls] %s is set but [tls] %s is not: give both "
                   "ca-cert and ca-key for a persistent CA, or neither for a "
                   "new CA per session",
                   config->path ? config->path : "",
                   config->path ? ": " : "",
                   config->ca_cert != NULL ? "ca-cert" : "ca-key",
                   config->ca_cert != NULL ? "ca-key" : "ca-cert");
      return FALSE;
    }

  if (config->mtu < MOAT_MTU_MIN || config->mtu > MOAT_MTU_MAX)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "invalid MTU %u: expected an integer from %u to %u "
                   "(bytes)", config->mtu, MOAT_MTU_MIN, MOAT_MTU_MAX);
      return FALSE;
    }

  return moat_config_check_placeholders_dir (config, error);
}
