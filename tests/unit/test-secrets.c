/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-secrets.c - unit tests for secret placeholders, injection and scrubbing */
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "config.h"
#include "error.h"
#include "http.h"
#include "secrets.h"

#define OPENAI_VALUE "sk-real-openai-value-0123456789"
#define TOKEN_VALUE "ghp_real token value"

typedef struct {
  char *dir;
  char *token_path;
  GPtrArray *specs;
  MoatSecrets *secrets;
} Fixture;

static void
fixture_setup (Fixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  MoatSecretSpec *spec;

  fixture->dir = g_dir_make_tmp ("moat-secrets-XXXXXX", &error);
  g_assert_no_error (error);
  fixture->token_path = g_build_filename (fixture->dir, "token", NULL);
  /* A trailing newline is not part of the value. */
  g_assert_true (g_file_set_contents (fixture->token_path,
                                      TOKEN_VALUE "\n", -1, &error));
  g_setenv ("MOAT_TEST_OPENAI", OPENAI_VALUE, TRUE);

  fixture->specs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_secret_spec_free);
  spec = moat_secret_spec_new ("openai");
  spec->value_env = g_strdup ("MOAT_TEST_OPENAI");
  spec->hosts = g_strsplit ("api.openai.com", ";", -1);
  g_ptr_array_add (fixture->specs, spec);
  spec = moat_secret_spec_new ("github");
  spec->value_file = g_strdup (fixture->token_path);
  spec->hosts = g_strsplit ("*.github.com;github.com", ";", -1);
  g_ptr_array_add (fixture->specs, spec);

  fixture->secrets = moat_secrets_new (fixture->specs, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fixture->secrets);
}

static void
fixture_teardown (Fixture *fixture, gconstpointer data)
{
  g_autofree char *placeholders = g_build_filename (fixture->dir,
                                                    "placeholders", NULL);

  g_clear_pointer (&fixture->secrets, moat_secrets_unref);
  g_ptr_array_unref (fixture->specs);
  g_unlink (placeholders);
  g_unlink (fixture->token_path);
  g_rmdir (fixture->dir);
  g_free (fixture->token_path);
  g_free (fixture->dir);
  g_unsetenv ("MOAT_TEST_OPENAI");
}

static void
test_placeholders (Fixture *fixture, gconstpointer data)
{
  const char *openai = moat_secrets_get_placeholder (fixture->secrets,
                                                     "openai");
  const char *github = moat_secrets_get_placeholder (fixture->secrets,
                                                     "github");
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatSecrets) again = NULL;
  g_autoptr (MoatSecrets) reloaded = NULL;
  g_autofree char *path = g_build_filename (fixture->dir, "placeholders",
                                            NULL);
  g_autofree char *contents = NULL;
  g_autofree char *expected = NULL;
  GStatBuf st;

  g_assert_cmpuint (moat_secrets_get_count (fixture->secrets), ==, 2);
  g_assert_nonnull (openai);
  g_assert_true (g_str_has_prefix (openai, "moat-placeholder-openai-"));
  g_assert_cmpuint (strlen (openai), ==, strlen ("moat-placeholder-openai-")
                                         + 32);
  g_assert_true (g_str_has_prefix (github, "moat-placeholder-github-"));
  g_assert_null (strstr (openai, OPENAI_VALUE));
  g_assert_null (moat_secrets_get_placeholder (fixture->secrets, "other"));

  /* A new session gets new placeholders, a reload keeps them. */
  again = moat_secrets_new (fixture->specs, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (moat_secrets_get_placeholder (again, "openai"), !=,
                   openai);
  reloaded = moat_secrets_new (fixture->specs, fixture->secrets, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (moat_secrets_get_placeholder (reloaded, "openai"), ==,
                   openai);

  g_assert_true (moat_secrets_write_placeholders (fixture->secrets, path,
                                                  &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (path, &contents, NULL, &error));
  expected = g_strdup_printf ("openai=%s\ngithub=%s\n", openai, github);
  g_assert_cmpstr (contents, ==, expected);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
}

static GPtrArray *
new_headers (const char *name, const char *value)
{
  GPtrArray *headers = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_http_header_free);

  g_ptr_array_add (headers, moat_http_header_new ("Accept", "*/*"));
  g_ptr_array_add (headers, moat_http_header_new (name, value));
  return headers;
}

static const char *
header_value (GPtrArray *headers, guint index)
{
  return ((MoatHttpHeader *) g_ptr_array_index (headers, index))->value;
}

static void
test_inject (Fixture *fixture, gconstpointer data)
{
  const char *openai = moat_secrets_get_placeholder (fixture->secrets,
                                                     "openai");
  g_autofree char *bearer = g_strdup_printf ("Bearer %s", openai);
  g_autoptr (GPtrArray) headers = new_headers ("Authorization", bearer);
  g_autoptr (GPtrArray) elsewhere = new_headers ("X-Key", openai);
  const char *misplaced = NULL;

  g_assert_true (moat_secrets_inject (fixture->secrets, "api.openai.com",
                                      headers, &misplaced));
  g_assert_null (misplaced);
  g_assert_cmpstr (header_value (headers, 0), ==, "*/*");
  g_assert_cmpstr (header_value (headers, 1), ==, "Bearer " OPENAI_VALUE);

  /* The same placeholder to another host is an exfiltration attempt. */
  g_assert_false (moat_secrets_inject (fixture->secrets, "evil.example",
                                       elsewhere, &misplaced));
  g_assert_cmpstr (misplaced, ==, "openai");
  g_assert_cmpstr (header_value (elsewhere, 1), ==, openai);
}

static void
test_inject_basic (Fixture *fixture, gconstpointer data)
{
  const char *github = moat_secrets_get_placeholder (fixture->secrets,
                                                     "github");
  g_autofree char *credentials = g_strdup_printf ("user:%s", github);
  g_autofree char *encoded = g_base64_encode ((const guchar *) credentials,
                                              strlen (credentials));
  g_autofree char *basic = g_strdup_printf ("Basic %s", encoded);
  g_autoptr (GPtrArray) headers = new_headers ("Authorization", basic);
  g_autoptr (GPtrArray) elsewhere = new_headers ("authorization", basic);
  g_autofree char *expected_encoded = g_base64_encode (
      (const guchar *) "user:" TOKEN_VALUE, strlen ("user:" TOKEN_VALUE));
  g_autofree char *expected = g_strdup_printf ("Basic %s", expected_encoded);
  const char *misplaced = NULL;

  g_assert_true (moat_secrets_inject (fixture->secrets, "API.GitHub.com",
                                      headers, &misplaced));
  g_assert_null (misplaced);
  g_assert_cmpstr (header_value (headers, 1), ==, expected);

  g_assert_false (moat_secrets_inject (fixture->secrets, "api.openai.com",
                                       elsewhere, &misplaced));
  g_assert_cmpstr (misplaced, ==, "github");
}

static void
test_find_misplaced (Fixture *fixture, gconstpointer data)
{
  const char *openai = moat_secrets_get_placeholder (fixture->secrets,
                                                     "openai");
  g_autofree char *target = g_strdup_printf ("/upload?key=%s", openai);

  g_assert_cmpstr (moat_secrets_find_misplaced (fixture->secrets,
                                                "evil.example", target),
                   ==, "openai");
  g_assert_null (moat_secrets_find_misplaced (fixture->secrets,
                                              "api.openai.com", target));
  g_assert_null (moat_secrets_find_misplaced (fixture->secrets,
                                              "evil.example", "/upload"));
  g_assert_null (moat_secrets_find_misplaced (NULL, "evil.example", target));
}

static void
test_scrub (Fixture *fixture, gconstpointer data)
{
  const char *openai = moat_secrets_get_placeholder (fixture->secrets,
                                                     "openai");
  g_autofree char *scrubbed = moat_secrets_scrub (
      fixture->secrets, "key=" OPENAI_VALUE "; token=" TOKEN_VALUE);
  g_autofree char *expected = g_strdup_printf (
      "key=%s; token=%s", openai,
      moat_secrets_get_placeholder (fixture->secrets, "github"));

  g_assert_cmpstr (scrubbed, ==, expected);
  g_assert_null (moat_secrets_scrub (fixture->secrets, "no secret here"));
  g_assert_null (moat_secrets_scrub (NULL, OPENAI_VALUE));
}

/* Returns "PREFIX<base64 of DECODED>SUFFIX" in the alphabet with @char62
 * and @char63, with padding only if @padded. */
static char *
encode_field (const char *prefix, const char *decoded, gsize decoded_length,
              char char62, char char63, gboolean padded, const char *suffix)
{
  g_autofree char *encoded = g_base64_encode ((const guchar *) decoded,
                                              decoded_length);
  gsize length = strlen (encoded);

  for (gsize i = 0; i < length; i++)
    {
      if (encoded[i] == '+')
        encoded[i] = char62;
      else if (encoded[i] == '/')
        encoded[i] = char63;
    }
  while (!padded && length > 0 && encoded[length - 1] == '=')
    encoded[--length] = '\0';
  return g_strconcat (prefix, encoded, suffix, NULL);
}

typedef struct {
  const char *description;
  const char *prefix;   /* text before the base64 text */
  const char *before;   /* decoded text before the value */
  const char *after;    /* decoded text after the value */
  char char62;
  char char63;
  gboolean padded;
  const char *suffix;   /* text after the base64 text */
} ScrubBase64Case;

static const ScrubBase64Case scrub_base64_cases[] = {
  { "echoed Basic credentials", "Basic ", "user:", "", '+', '/', TRUE, "" },
  { "Basic credentials, other lengths", "Basic ", "u:", "", '+', '/', TRUE,
    "" },
  { "Basic credentials, no padding", "Basic ", "user:", "", '+', '/', FALSE,
    "" },
  { "value at the start", "", "", ":x", '+', '/', TRUE, "" },
  { "base64url in a JSON string", "{\"token\":\"", "{\"key\":\"", "\"}",
    '-', '_', FALSE, "\"}" },
  { "percent-encoded space before the text", "Basic%20", "user:", "", '+',
    '/', TRUE, "" },
  { "text after the padding", "Basic ", "user:", "", '+', '/', TRUE,
    ", realm=x" },
  { "control bytes in the decoded bytes", "Basic ", "a\001\002:", "", '+',
    '/', TRUE, "" },
};

static void
test_scrub_base64 (Fixture *fixture, gconstpointer data)
{
  const char *placeholder = moat_secrets_get_placeholder (fixture->secrets,
                                                          "github");

  for (gsize i = 0; i < G_N_ELEMENTS (scrub_base64_cases); i++)
    {
      const ScrubBase64Case *c = &scrub_base64_cases[i];
      g_autofree char *real = g_strconcat (c->before, TOKEN_VALUE, c->after,
                                           NULL);
      g_autofree char *fake = g_strconcat (c->before, placeholder, c->after,
                                           NULL);
      g_autofree char *value = encode_field (c->prefix, real, strlen (real),
                                             c->char62, c->char63, c->padded,
                                             c->suffix);
      g_autofree char *expected = encode_field (c->prefix, fake,
                                                strlen (fake), c->char62,
                                                c->char63, c->padded,
                                                c->suffix);
      g_autofree char *scrubbed = moat_secrets_scrub (fixture->secrets,
                                                      value);

      g_test_message ("%s: %s", c->description, value);
      if (g_strcmp0 (scrubbed, expected) != 0)
        g_test_fail_printf ("%s: \"%s\" scrubbed to \"%s\", expected "
                            "\"%s\"", c->description, value, scrubbed,
                            expected);
    }
}

static void
test_scrub_base64_nul (Fixture *fixture, gconstpointer data)
{
  /* A NUL byte right before the value: a decoder that stops at NUL would
   * miss it. */
  static const char real[] = "a\0" TOKEN_VALUE;
  const char *placeholder = moat_secrets_get_placeholder (fixture->secrets,
                                                          "github");
  g_autofree char *fake = g_strdup_printf ("a%c%s", 0, placeholder);
  gsize fake_length = 2 + strlen (placeholder);
  g_autofree char *value = encode_field ("Basic ", real, sizeof real - 1,
                                         '+', '/', TRUE, "");
  g_autofree char *expected = encode_field ("Basic ", fake, fake_length, '+',
                                            '/', TRUE, "");
  g_autofree char *scrubbed = moat_secrets_scrub (fixture->secrets, value);

  g_assert_cmpstr (scrubbed, ==, expected);
}

typedef struct {
  const char *description;
  const char *value;
} ScrubUnchangedCase;

static const ScrubUnchangedCase scrub_unchanged_cases[] = {
  { "base64 of other credentials", "Basic dXNlcjpwYXNzd29yZA==" },
  { "plain words", "max-age=3600, must-revalidate" },
  { "one character left over", "Basic QUJDR" },
  { "empty value", "" },
};

static void
test_scrub_unchanged (Fixture *fixture, gconstpointer data)
{
  for (gsize i = 0; i < G_N_ELEMENTS (scrub_unchanged_cases); i++)
    {
      const ScrubUnchangedCase *c = &scrub_unchanged_cases[i];
      g_autofree char *scrubbed = moat_secrets_scrub (fixture->secrets,
                                                      c->value);

      if (scrubbed != NULL)
        g_test_fail_printf ("%s: \"%s\" scrubbed to \"%s\", expected no "
                            "change", c->description, c->value, scrubbed);
    }
}

typedef struct {
  const char *description;
  const char *env_value; /* NULL: variable unset */
  const char *message;
} ValueErrorCase;

static const ValueErrorCase value_error_cases[] = {
  { "unset variable", NULL, "[secret s]: environment variable "
    "MOAT_TEST_VALUE is not set in moat's environment: export it before moat "
    "starts (a reload cannot pick it up, so restart moat)" },
  { "empty value", "", "[secret s]: the value from environment variable "
    "MOAT_TEST_VALUE is empty" },
  { "line feed", "a\nb", "contains the control byte 0x0a at offset 1" },
  { "carriage return", "ab\r", "contains the control byte 0x0d at offset 2" },
};

static void
test_value_errors (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (value_error_cases); i++)
    {
      const ValueErrorCase *c = &value_error_cases[i];
      g_autoptr (GPtrArray) specs = g_ptr_array_new_with_free_func (
          (GDestroyNotify) moat_secret_spec_free);
      MoatSecretSpec *spec = moat_secret_spec_new ("s");
      g_autoptr (GError) error = NULL;
      g_autoptr (MoatSecrets) secrets = NULL;

      g_test_message ("%s", c->description);
      spec->value_env = g_strdup ("MOAT_TEST_VALUE");
      spec->hosts = g_strsplit ("a.example", ";", -1);
      g_ptr_array_add (specs, spec);
      if (c->env_value != NULL)
        g_setenv ("MOAT_TEST_VALUE", c->env_value, TRUE);
      else
        g_unsetenv ("MOAT_TEST_VALUE");

      secrets = moat_secrets_new (specs, NULL, &error);
      g_assert_null (secrets);
      g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
      if (strstr (error->message, c->message) == NULL)
        g_test_fail_printf ("%s: error \"%s\" lacks \"%s\"", c->description,
                            error->message, c->message);
      /* The message never contains the value itself. */
      if (c->env_value != NULL && c->env_value[0] != '\0')
        g_assert_null (strstr (error->message, c->env_value));
    }
  g_unsetenv ("MOAT_TEST_VALUE");
}

static void
test_missing_file (void)
{
  g_autoptr (GPtrArray) specs = g_ptr_array_new_with_free_func (
      (GDestroyNotify) moat_secret_spec_free);
  MoatSecretSpec *spec = moat_secret_spec_new ("s");
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatSecrets) secrets = NULL;

  spec->value_file = g_strdup ("/nonexistent/moat-secret");
  spec->hosts = g_strsplit ("a.example", ";", -1);
  g_ptr_array_add (specs, spec);
  secrets = moat_secrets_new (specs, NULL, &error);
  g_assert_null (secrets);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, "[secret s]: failed to read "
                                            "the value"));
}

/* A secret loaded from a file names the file, the line, the group and the
 * key when its value cannot be read. */
static void
test_error_origin (void)
{
  static const char data[] =
    "[moat]\n"
    "placeholders-out = /tmp/placeholders.env\n"
    "[secret first]\n"
    "value-env = MOAT_TEST_SET\n"
    "hosts = a.example\n"
    "\n"
    "[secret second]\n"
    "hosts = a.example\n"
    "value-env = MOAT_TEST_NOT_SET\n";
  g_autoptr (MoatConfig) config = moat_config_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatSecrets) secrets = NULL;

  g_setenv ("MOAT_TEST_SET", "value", TRUE);
  g_unsetenv ("MOAT_TEST_NOT_SET");
  g_assert_true (moat_config_load_data (config, data, strlen (data),
                                        "vm.ini", &error));
  g_assert_no_error (error);

  secrets = moat_secrets_new (config->secrets, NULL, &error);
  g_assert_null (secrets);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_true (g_str_has_prefix (error->message, "vm.ini:9: [secret "
                                   "second] value-env: environment variable "
                                   "MOAT_TEST_NOT_SET is not set"));
  g_unsetenv ("MOAT_TEST_SET");
}

static void
test_placeholders_missing_dir (Fixture *fixture, gconstpointer data)
{
  g_autofree char *path = g_build_filename (fixture->dir, "missing",
                                            "placeholders.env", NULL);
  g_autofree char *dir = g_build_filename (fixture->dir, "missing", NULL);
  g_autofree char *expected = g_strdup_printf (
      "failed to write the secret placeholders to %s: the folder %s does not "
      "exist: create it (mkdir -p %s)", path, dir, dir);
  g_autoptr (GError) error = NULL;

  g_assert_false (moat_secrets_write_placeholders (fixture->secrets, path,
                                                   &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG);
  g_assert_true (g_str_has_prefix (error->message, expected));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, function) \
  g_test_add (path, Fixture, NULL, fixture_setup, function, fixture_teardown)
  ADD ("/secrets/placeholders/format-and-file", test_placeholders);
  ADD ("/secrets/placeholders/missing-folder", test_placeholders_missing_dir);
  ADD ("/secrets/inject/header", test_inject);
  ADD ("/secrets/inject/basic-credentials", test_inject_basic);
  ADD ("/secrets/inject/misplaced-target", test_find_misplaced);
  ADD ("/secrets/scrub/response-header", test_scrub);
  ADD ("/secrets/scrub/base64", test_scrub_base64);
  ADD ("/secrets/scrub/base64-nul-byte", test_scrub_base64_nul);
  ADD ("/secrets/scrub/base64-unchanged", test_scrub_unchanged);
#undef ADD
  g_test_add_func ("/secrets/value/invalid", test_value_errors);
  g_test_add_func ("/secrets/value/missing-file", test_missing_file);
  g_test_add_func ("/secrets/value/error-origin", test_error_origin);

  return g_test_run ();
}
