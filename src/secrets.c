/* SPDX-License-Identifier: GPL-2.0-or-later */
/* secrets.c - credentials kept out of the guest behind per-session placeholders */
#define G_LOG_DOMAIN "moat-secrets"

#include "secrets.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "http.h"
#include "policy.h"

/*
 * The guest only ever sees a placeholder, a random string per secret and
 * session. On the way out, moat replaces a placeholder with the real value
 * in the request headers of requests to the secret's hosts, including
 * inside "Authorization: Basic" credentials, which are base64. A
 * placeholder on its way to any other host means that something in the
 * guest tries to move the credential elsewhere, so the request is denied.
 * On the way back, real values in response headers become placeholders
 * again, also inside base64 text such as echoed Basic credentials.
 *
 * Values are never logged: error messages name the secret, its variable or
 * its file, never the value.
 *
 * NOTE: request bodies are neither rewritten nor checked for placeholders,
 * and response bodies are not scrubbed, so an upstream that echoes a
 * request header in its body hands the real value to the guest.
 */

/* Random bytes per placeholder: 128 bits, written as 32 hex digits. */
#define PLACEHOLDER_RANDOM_BYTES 16

/**
 * Secret:
 * @name: the secret's name
 * @value: the real value
 * @placeholder: what the guest sees in place of @value
 * @hosts: host patterns of the requests that receive @value
 */
typedef struct {
  char *name;
  char *value;
  char *placeholder;
  GStrv hosts;
} Secret;

struct MoatSecrets {
  gatomicrefcount ref_count;
  GPtrArray *secrets;
};

static void
secret_free (Secret *secret)
{
  if (secret == NULL)
    return;
  g_free (secret->name);
  if (secret->value != NULL)
    {
      /* Keep the value out of freed heap memory. */
      memset (secret->value, 0, strlen (secret->value));
      g_free (secret->value);
    }
  g_free (secret->placeholder);
  g_strfreev (secret->hosts);
  g_free (secret);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Secret, secret_free)

static char *
new_placeholder (const char *name, GError **error)
{
  guint8 random[PLACEHOLDER_RANDOM_BYTES];
  GString *placeholder;
  int status;

  status = gnutls_rnd (GNUTLS_RND_RANDOM, random, sizeof random);
  if (status < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "failed to generate a placeholder for secret \"%s\": %s",
                   name, gnutls_strerror (status));
      return NULL;
    }

  placeholder = g_string_new (MOAT_PLACEHOLDER_PREFIX);
  g_string_append_printf (placeholder, "%s-", name);
  for (gsize i = 0; i < sizeof random; i++)
    g_string_append_printf (placeholder, "%02x", random[i]);
  return g_string_free (placeholder, FALSE);
}

/* Returns where @spec was configured, "FILE:LINE: [secret NAME] KEY", or
 * "[secret NAME]" for a spec that was not loaded from a file. */
static char *
describe_origin (const MoatSecretSpec *spec)
{
  if (spec->origin != NULL)
    return g_strdup (spec->origin);
  return g_strdup_printf ("[secret %s]", spec->name);
}

/* Checks a value read from the environment or a file. It goes into header
 * fields, so CR, LF, NUL and other control bytes could split or end a
 * field (RFC 9110 section 5.5). @origin starts the error message. */
static gboolean
check_value (const char *origin, const char *source, const char *value,
             gsize length, GError **error)
{
  if (length == 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%s: the value from %s is empty", origin, source);
      return FALSE;
    }
  if (length > MOAT_SECRET_VALUE_MAX)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%s: the value from %s is %" G_GSIZE_FORMAT " bytes long, "
                   "more than the %d bytes allowed", origin, source, length,
                   MOAT_SECRET_VALUE_MAX);
      return FALSE;
    }
  for (gsize i = 0; i < length; i++)
    {
      guchar c = (guchar) value[i];

      if ((c < 0x20 && c != '\t') || c == 0x7f)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "%s: the value from %s contains the control byte "
                       "0x%02x at offset %" G_GSIZE_FORMAT ", which cannot "
                       "be sent in a header field", origin, source,
                       (guint) c, i);
          return FALSE;
        }
    }

  return TRUE;
}

/* Reads the value of @spec from its variable or file. */
static char *
read_value (const MoatSecretSpec *spec, GError **error)
{
  g_autofree char *contents = NULL;
  g_autofree char *source = NULL;
  g_autofree char *origin = describe_origin (spec);
  g_autoptr (GError) local_error = NULL;
  gsize length;

  if (spec->value_env != NULL)
    {
      const char *value = g_getenv (spec->value_env);

      source = g_strdup_printf ("environment variable %s", spec->value_env);
      if (value == NULL)
        {
          /* moat reads the variable from its own environment, which
           * nothing outside can change once it runs. */
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "%s: environment variable %s is not set in moat's "
                       "environment: export it before moat starts (a reload "
                       "cannot pick it up, so restart moat)", origin,
                       spec->value_env);
          return NULL;
        }
      contents = g_strdup (value);
      length = strlen (contents);
    }
  else
    {
      source = g_strdup_printf ("file %s", spec->value_file);
      if (!g_file_get_contents (spec->value_file, &contents, &length,
                                &local_error))
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "%s: failed to read the value: %s", origin,
                       local_error->message);
          return NULL;
        }
      if (memchr (contents, '\0', length) != NULL)
        {
          g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                       "%s: %s contains a NUL byte", origin, source);
          return NULL;
        }
      /* Editors end files with a newline that is not part of the value. */
      if (length > 0 && contents[length - 1] == '\n')
        contents[--length] = '\0';
      if (length > 0 && contents[length - 1] == '\r')
        contents[--length] = '\0';
    }

  if (!check_value (origin, source, contents, length, error))
    return NULL;
  return g_steal_pointer (&contents);
}

static const Secret *
find_secret (const MoatSecrets *secrets, const char *name)
{
  for (guint i = 0; secrets != NULL && i < secrets->secrets->len; i++)
    {
      const Secret *secret = g_ptr_array_index (secrets->secrets, i);

      if (strcmp (secret->name, name) == 0)
        return secret;
    }

  return NULL;
}

/**
 * moat_secrets_new:
 * @specs: (element-type MoatSecretSpec): the "[secret NAME]" groups
 * @previous: (nullable): the secrets this set replaces on a reload; a
 *   secret with the same name keeps its placeholder, so the guest's copy
 *   stays valid
 * @error: return location for a #GError
 *
 * Reads each value from its environment variable or file and makes a
 * placeholder for each secret that @previous does not have.
 *
 * Return: (transfer full): the secrets, or %NULL with a %MOAT_ERROR_CONFIG
 *   error naming the secret and where its value was to come from
 */
MoatSecrets *
moat_secrets_new (const GPtrArray *specs, const MoatSecrets *previous,
                  GError **error)
{
  g_autoptr (MoatSecrets) secrets = g_new0 (MoatSecrets, 1);

  g_atomic_ref_count_init (&secrets->ref_count);
  secrets->secrets = g_ptr_array_new_with_free_func (
      (GDestroyNotify) secret_free);

  for (guint i = 0; specs != NULL && i < specs->len; i++)
    {
      const MoatSecretSpec *spec = g_ptr_array_index (specs, i);
      const Secret *old = find_secret (previous, spec->name);
      g_autoptr (Secret) secret = g_new0 (Secret, 1);

      g_return_val_if_fail (spec->hosts != NULL, NULL);
      secret->name = g_strdup (spec->name);
      secret->hosts = g_strdupv (spec->hosts);
      secret->value = read_value (spec, error);
      if (secret->value == NULL)
        return NULL;
      if (old != NULL)
        secret->placeholder = g_strdup (old->placeholder);
      else
        secret->placeholder = new_placeholder (spec->name, error);
      if (secret->placeholder == NULL)
        return NULL;
      g_ptr_array_add (secrets->secrets, g_steal_pointer (&secret));
    }

  return g_steal_pointer (&secrets);
}

MoatSecrets *
moat_secrets_ref (MoatSecrets *secrets)
{
  g_return_val_if_fail (secrets != NULL, NULL);

  g_atomic_ref_count_inc (&secrets->ref_count);
  return secrets;
}

void
moat_secrets_unref (MoatSecrets *secrets)
{
  if (secrets == NULL || !g_atomic_ref_count_dec (&secrets->ref_count))
    return;

  g_clear_pointer (&secrets->secrets, g_ptr_array_unref);
  g_free (secrets);
}

guint
moat_secrets_get_count (const MoatSecrets *secrets)
{
  return secrets != NULL ? secrets->secrets->len : 0;
}

/* Returns the placeholder of secret @name, or %NULL if there is none. */
const char *
moat_secrets_get_placeholder (const MoatSecrets *secrets, const char *name)
{
  const Secret *secret = find_secret (secrets, name);

  return secret != NULL ? secret->placeholder : NULL;
}

/**
 * moat_secrets_write_placeholders:
 * @secrets: the secrets
 * @path: file to write, replaced atomically
 * @error: return location for a #GError
 *
 * Writes one "NAME=PLACEHOLDER" line per secret, in configuration order,
 * with mode 0600, for a launcher to pass into the guest.
 *
 * Return: %TRUE on success
 */
gboolean
moat_secrets_write_placeholders (const MoatSecrets *secrets, const char *path,
                                 GError **error)
{
  g_autoptr (GString) text = g_string_new (NULL);
  g_autoptr (GError) local_error = NULL;
  g_autofree char *dir = NULL;

  for (guint i = 0; i < moat_secrets_get_count (secrets); i++)
    {
      const Secret *secret = g_ptr_array_index (secrets->secrets, i);

      g_string_append_printf (text, "%s=%s\n", secret->name,
                              secret->placeholder);
    }

  /* GLib's message for a missing folder names its temporary file, not the
   * folder, and suggests no fix. */
  dir = g_path_get_dirname (path);
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "failed to write the secret placeholders to %s: the "
                   "folder %s does not exist: create it (mkdir -p %s), or "
                   "set [moat] placeholders-out to a file in an existing "
                   "folder", path, dir, dir);
      return FALSE;
    }

  if (!g_file_set_contents_full (path, text->str, text->len,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600,
                                 &local_error))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "failed to write the secret placeholders to %s: %s", path,
                   local_error->message);
      return FALSE;
    }

  return TRUE;
}

static gboolean
secret_allows_host (const Secret *secret, const char *host)
{
  for (guint i = 0; secret->hosts[i] != NULL; i++)
    {
      if (moat_host_pattern_match (secret->hosts[i], host))
        return TRUE;
    }

  return FALSE;
}

/* Finds @needle in the first @length bytes of @haystack, which may contain
 * NUL bytes (decoded Basic credentials). */
static const char *
find_bytes (const char *haystack, gsize length, const char *needle)
{
  gsize needle_length = strlen (needle);

  if (needle_length == 0 || needle_length > length)
    return NULL;
  for (gsize i = 0; i + needle_length <= length; i++)
    {
      if (memcmp (haystack + i, needle, needle_length) == 0)
        return haystack + i;
    }

  return NULL;
}

/**
 * moat_secrets_find_misplaced:
 * @secrets: (nullable): the secrets
 * @host: host name the request goes to
 * @text: request text to check, such as the request target
 *
 * Return: (nullable): the name of the first secret whose placeholder is in
 *   @text although @host is not one of its hosts, or %NULL
 */
const char *
moat_secrets_find_misplaced (const MoatSecrets *secrets, const char *host,
                             const char *text)
{
  for (guint i = 0; i < moat_secrets_get_count (secrets); i++)
    {
      const Secret *secret = g_ptr_array_index (secrets->secrets, i);

      if (strstr (text, secret->placeholder) != NULL
          && !secret_allows_host (secret, host))
        return secret->name;
    }

  return NULL;
}

/**
 * replace_placeholders:
 * @secrets: the secrets
 * @host: host name the request goes to
 * @text: bytes to rewrite, not necessarily NUL-terminated
 * @length: bytes of @text
 * @misplaced: (out): set to a secret name when @text has a placeholder
 *   that @host may not receive
 *
 * Return: (transfer full) (nullable): @text with the placeholders of the
 *   secrets of @host replaced by their values, or %NULL if nothing changed
 */
static GString *
replace_placeholders (const MoatSecrets *secrets, const char *host,
                      const char *text, gsize length, const char **misplaced)
{
  g_autoptr (GString) result = NULL;

  for (guint i = 0; i < secrets->secrets->len; i++)
    {
      const Secret *secret = g_ptr_array_index (secrets->secrets, i);
      const char *current = result != NULL ? result->str : text;
      gsize current_length = result != NULL ? result->len : length;

      if (find_bytes (current, current_length, secret->placeholder) == NULL)
        continue;
      if (!secret_allows_host (secret, host))
        {
          *misplaced = secret->name;
          continue;
        }
      if (result == NULL)
        result = g_string_new_len (text, length);
      g_string_replace (result, secret->placeholder, secret->value, 0);
    }

  return g_steal_pointer (&result);
}

/* Rewrites "Basic <base64>" credentials (RFC 7617). Returns the new field
 * value, or %NULL if it does not change. */
static char *
inject_basic (const MoatSecrets *secrets, const char *host,
              const char *value, const char **misplaced)
{
  g_autofree guchar *decoded = NULL;
  g_autofree char *encoded = NULL;
  g_autoptr (GString) replaced = NULL;
  const char *token;
  gsize length;

  if (g_ascii_strncasecmp (value, "Basic ", 6) != 0)
    return NULL;
  token = value + 6;
  while (*token == ' ')
    token++;
  if (*token == '\0' || strspn (token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
                                       "klmnopqrstuvwxyz0123456789+/=")
                        != strlen (token))
    return NULL;

  decoded = g_base64_decode (token, &length);
  replaced = replace_placeholders (secrets, host, (const char *) decoded,
                                   length, misplaced);
  if (replaced == NULL)
    return NULL;
  encoded = g_base64_encode ((const guchar *) replaced->str, replaced->len);
  return g_strdup_printf ("Basic %s", encoded);
}

/**
 * moat_secrets_inject:
 * @secrets: (nullable): the secrets
 * @host: host name the request goes to
 * @headers: (element-type MoatHttpHeader): the request fields for the
 *   upstream, rewritten in place
 * @misplaced: (out): the name of a secret whose placeholder is in
 *   @headers although @host is not one of its hosts, or %NULL
 *
 * Replaces each placeholder with the real value in every field value, and
 * inside Basic credentials of Authorization and Proxy-Authorization, for
 * the secrets whose hosts match @host.
 *
 * Return: %FALSE if a placeholder was found that @host may not receive;
 *   the request must then not be sent
 */
gboolean
moat_secrets_inject (const MoatSecrets *secrets, const char *host,
                     GPtrArray *headers, const char **misplaced)
{
  *misplaced = NULL;
  if (moat_secrets_get_count (secrets) == 0)
    return TRUE;

  for (guint i = 0; i < headers->len; i++)
    {
      MoatHttpHeader *header = g_ptr_array_index (headers, i);
      g_autoptr (GString) replaced = NULL;
      char *basic = NULL;

      if (g_ascii_strcasecmp (header->name, "Authorization") == 0
          || g_ascii_strcasecmp (header->name, "Proxy-Authorization") == 0)
        basic = inject_basic (secrets, host, header->value, misplaced);
      if (basic != NULL)
        {
          g_free (header->value);
          header->value = basic;
        }

      replaced = replace_placeholders (secrets, host, header->value,
                                       strlen (header->value), misplaced);
      if (replaced != NULL)
        {
          g_free (header->value);
          header->value = g_string_free (g_steal_pointer (&replaced), FALSE);
        }
    }

  return *misplaced == NULL;
}

/* Replaces every occurrence of @from in @text, which may contain NUL
 * bytes, with @to. Returns whether anything changed. */
static gboolean
replace_bytes (GString *text, const char *from, const char *to)
{
  gsize from_length = strlen (from);
  gsize to_length = strlen (to);
  gsize position = 0;
  gboolean changed = FALSE;

  while (position < text->len)
    {
      const char *found = find_bytes (text->str + position,
                                      text->len - position, from);
      gsize offset;

      if (found == NULL)
        break;
      offset = found - text->str;
      g_string_erase (text, offset, from_length);
      g_string_insert_len (text, offset, to, to_length);
      position = offset + to_length;
      changed = TRUE;
    }

  return changed;
}

/* Replaces every real value in @text by its placeholder. */
static gboolean
replace_values (const MoatSecrets *secrets, GString *text)
{
  gboolean changed = FALSE;

  for (guint i = 0; i < secrets->secrets->len; i++)
    {
      const Secret *secret = g_ptr_array_index (secrets->secrets, i);

      changed |= replace_bytes (text, secret->value, secret->placeholder);
    }

  return changed;
}

/**
 * Base64Alphabet:
 * @char62: the character for 62: '+' in base64, '-' in base64url
 * @char63: the character for 63: '/' in base64, '_' in base64url
 *
 * The two alphabets of RFC 4648 (sections 4 and 5), which differ only in
 * these two characters.
 */
typedef struct {
  char char62;
  char char63;
} Base64Alphabet;

static const Base64Alphabet base64_alphabets[] = {
  { '+', '/' },
  { '-', '_' },
};

static gboolean
is_base64_char (const Base64Alphabet *alphabet, char c)
{
  return g_ascii_isalnum (c) || c == alphabet->char62
         || c == alphabet->char63;
}

/**
 * decode_base64:
 * @alphabet: the alphabet of @text
 * @text: base64 characters without padding, not NUL-terminated
 * @length: bytes of @text
 *
 * Return: (transfer full) (nullable): the decoded bytes, or %NULL when
 *   @length leaves one character over (no byte is encoded in 6 bits)
 */
static GString *
decode_base64 (const Base64Alphabet *alphabet, const char *text,
               gsize length)
{
  g_autoptr (GString) standard = NULL;
  g_autofree guchar *decoded = NULL;
  gsize decoded_length;

  if (length < 2 || length % 4 == 1)
    return NULL;

  standard = g_string_new_len (text, length);
  for (gsize i = 0; i < standard->len; i++)
    {
      if (standard->str[i] == alphabet->char62)
        standard->str[i] = '+';
      else if (standard->str[i] == alphabet->char63)
        standard->str[i] = '/';
    }
  while (standard->len % 4 != 0)
    g_string_append_c (standard, '=');

  decoded = g_base64_decode (standard->str, &decoded_length);
  return g_string_new_len ((const char *) decoded, decoded_length);
}

/* Encodes @bytes in @alphabet, with padding only if @padded. */
static char *
encode_base64 (const Base64Alphabet *alphabet, const GString *bytes,
               gboolean padded)
{
  char *encoded = g_base64_encode ((const guchar *) bytes->str, bytes->len);
  gsize length = strlen (encoded);

  for (gsize i = 0; i < length; i++)
    {
      if (encoded[i] == '+')
        encoded[i] = alphabet->char62;
      else if (encoded[i] == '/')
        encoded[i] = alphabet->char63;
    }
  while (!padded && length > 0 && encoded[length - 1] == '=')
    encoded[--length] = '\0';

  return encoded;
}

/**
 * scrub_base64_run:
 * @secrets: the secrets
 * @alphabet: the alphabet of the run
 * @text: the field value, rewritten in place
 * @start: offset of a maximal run of @alphabet characters in @text
 * @end: offset after the run
 * @padding: '=' characters right after the run, 0 to 2
 *
 * Decodes the run and, if the bytes contain a real value, puts the
 * placeholder in its place and encodes the bytes again. The run may start
 * with other characters that belong to no encoding, such as "20" after a
 * "%", so decoding starts at each of the first four offsets in turn: one
 * of them is aligned with the start of the encoded text, and whole groups
 * of four characters in front of it decode and encode back unchanged.
 *
 * Return: the offset after the rewritten run, or @end plus @padding if
 *   the run holds no real value
 */
static gsize
scrub_base64_run (const MoatSecrets *secrets, const Base64Alphabet *alphabet,
                  GString *text, gsize start, gsize end, gsize padding)
{
  for (gsize offset = start; offset < start + 4 && offset < end; offset++)
    {
      g_autoptr (GString) decoded = decode_base64 (alphabet,
                                                   text->str + offset,
                                                   end - offset);
      g_autofree char *encoded = NULL;
      gsize encoded_length;

      if (decoded == NULL || !replace_values (secrets, decoded))
        continue;

      encoded = encode_base64 (alphabet, decoded, padding > 0);
      encoded_length = strlen (encoded);
      g_string_erase (text, offset, end + padding - offset);
      g_string_insert_len (text, offset, encoded, encoded_length);
      return offset + encoded_length;
    }

  return end + padding;
}

/* Scrubs real values inside every run of base64 characters of @alphabet
 * in @text, such as "Basic <base64(user:VALUE)>" echoed by an upstream. */
static gboolean
scrub_base64 (const MoatSecrets *secrets, const Base64Alphabet *alphabet,
              GString *text)
{
  gboolean changed = FALSE;
  gsize position = 0;

  while (position < text->len)
    {
      gsize start;
      gsize end;
      gsize padding = 0;
      gsize next;

      if (!is_base64_char (alphabet, text->str[position]))
        {
          position++;
          continue;
        }

      start = position;
      end = start;
      while (end < text->len && is_base64_char (alphabet, text->str[end]))
        end++;
      while (padding < 2 && end + padding < text->len
             && text->str[end + padding] == '=')
        padding++;

      next = scrub_base64_run (secrets, alphabet, text, start, end, padding);
      changed |= next != end + padding;
      position = next;
    }

  return changed;
}

/**
 * moat_secrets_scrub:
 * @secrets: (nullable): the secrets
 * @value: a response field value from an upstream
 *
 * Replaces every real secret value by its placeholder, both as plain text
 * and inside base64 or base64url text (RFC 4648), which covers an upstream
 * that echoes "Authorization: Basic <base64(user:VALUE)>" in some field.
 * Base64 text that held a value is encoded again with the placeholder in
 * its place, in the same alphabet and with padding only where the original
 * had it.
 *
 * NOTE: a value that is split between two base64 texts, or encoded in
 * another way (hex, percent-encoding, gzip), is not found.
 *
 * Return: (transfer full) (nullable): @value with the real values
 *   replaced, or %NULL if @value contains none
 */
char *
moat_secrets_scrub (const MoatSecrets *secrets, const char *value)
{
  g_autoptr (GString) result = NULL;
  gboolean changed;

  if (moat_secrets_get_count (secrets) == 0)
    return NULL;

  result = g_string_new (value);
  changed = replace_values (secrets, result);
  for (gsize i = 0; i < G_N_ELEMENTS (base64_alphabets); i++)
    changed |= scrub_base64 (secrets, &base64_alphabets[i], result);

  return changed ? g_string_free (g_steal_pointer (&result), FALSE) : NULL;
}
