/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-tls.c - tests of the session CA, leaf minting, TLS server and
 * ClientHello reader */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "error.h"
#include "moat-limits.h"
#include "tls.h"

/* Milliseconds a poll() in these tests waits before the test fails. */
#define POLL_TIMEOUT_MS 5000

G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gnutls_x509_crt_t, gnutls_x509_crt_deinit,
                                 NULL)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gnutls_x509_privkey_t,
                                 gnutls_x509_privkey_deinit, NULL)

/* ---- certificate helpers ---- */

static gnutls_x509_crt_t
import_pem_cert (const char *pem)
{
  gnutls_x509_crt_t cert = NULL;
  gnutls_datum_t datum = { (unsigned char *) pem, (unsigned int) strlen (pem) };

  g_assert_cmpint (gnutls_x509_crt_init (&cert), ==, 0);
  g_assert_cmpint (gnutls_x509_crt_import (cert, &datum, GNUTLS_X509_FMT_PEM),
                   ==, 0);
  return cert;
}

static gnutls_x509_crt_t
ca_cert (const MoatCa *ca)
{
  g_autofree char *pem = moat_ca_get_cert_pem (ca);
  g_assert_nonnull (pem);
  return import_pem_cert (pem);
}

/* Returns certificate @index of the chain in @credentials. */
static gnutls_x509_crt_t
credentials_cert (gnutls_certificate_credentials_t credentials, unsigned index)
{
  gnutls_datum_t der = { NULL, 0 };
  gnutls_x509_crt_t cert = NULL;

  g_assert_cmpint (gnutls_certificate_get_crt_raw (credentials, 0, index,
                                                   &der),
                   ==, 0);
  g_assert_cmpint (gnutls_x509_crt_init (&cert), ==, 0);
  /* der points into the credentials: no free. */
  g_assert_cmpint (gnutls_x509_crt_import (cert, &der, GNUTLS_X509_FMT_DER),
                   ==, 0);
  return cert;
}

static char *
cert_dn_field (gnutls_x509_crt_t cert, const char *oid)
{
  char buffer[256];
  size_t size = sizeof buffer;

  if (gnutls_x509_crt_get_dn_by_oid (cert, oid, 0, 0, buffer, &size) < 0)
    return NULL;
  return g_strndup (buffer, size);
}

typedef struct {
  char *cert_pem;
  char *key_pem;
} PemPair;

static void
pem_pair_clear (PemPair *pair)
{
  g_free (pair->cert_pem);
  g_free (pair->key_pem);
}

static char *
export_key_pem (gnutls_x509_privkey_t key)
{
  gnutls_datum_t out = { NULL, 0 };
  g_assert_cmpint (gnutls_x509_privkey_export2 (key, GNUTLS_X509_FMT_PEM,
                                                &out),
                   ==, 0);
  char *text = g_strndup ((const char *) out.data, out.size);
  gnutls_free (out.data);
  return text;
}

static char *
export_cert_pem (gnutls_x509_crt_t cert)
{
  gnutls_datum_t out = { NULL, 0 };
  g_assert_cmpint (gnutls_x509_crt_export2 (cert, GNUTLS_X509_FMT_PEM, &out),
                   ==, 0);
  char *text = g_strndup ((const char *) out.data, out.size);
  gnutls_free (out.data);
  return text;
}

/*
 * Creates a self-signed certificate and its key the way an operator would
 * for a persistent CA. @is_ca selects CA:TRUE, @expired puts the validity in
 * the past, and @algorithm is GNUTLS_PK_ECDSA (P-256) or GNUTLS_PK_RSA (2048
 * bits).
 */
static void
make_self_signed (gboolean is_ca, gboolean expired,
                  gnutls_pk_algorithm_t algorithm, PemPair *out)
{
  g_auto (gnutls_x509_privkey_t) key = NULL;
  g_auto (gnutls_x509_crt_t) cert = NULL;
  time_t now = time (NULL);
  static const guint8 serial[] = { 0x01, 0x02, 0x03 };
  const char *cn = is_ca ? "test persistent CA" : "test not a CA";

  g_assert_cmpint (gnutls_x509_privkey_init (&key), ==, 0);
  unsigned int bits = algorithm == GNUTLS_PK_ECDSA
                          ? GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_SECP256R1)
                          : 2048;
  g_assert_cmpint (gnutls_x509_privkey_generate (key, algorithm, bits, 0), ==,
                   0);
  g_assert_cmpint (gnutls_x509_crt_init (&cert), ==, 0);
  g_assert_cmpint (gnutls_x509_crt_set_version (cert, 3), ==, 0);
  g_assert_cmpint (gnutls_x509_crt_set_serial (cert, serial, sizeof serial),
                   ==, 0);
  if (expired)
    {
      gnutls_x509_crt_set_activation_time (cert, now - 3 * 86400);
      gnutls_x509_crt_set_expiration_time (cert, now - 86400);
    }
  else
    {
      gnutls_x509_crt_set_activation_time (cert, now - 3600);
      gnutls_x509_crt_set_expiration_time (cert, now + 10 * 365 * 86400L);
    }
  g_assert_cmpint (gnutls_x509_crt_set_dn_by_oid (
                       cert, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen (cn)),
                   ==, 0);
  g_assert_cmpint (gnutls_x509_crt_set_key (cert, key), ==, 0);
  g_assert_cmpint (gnutls_x509_crt_set_basic_constraints (cert, is_ca, -1),
                   ==, 0);
  if (is_ca)
    g_assert_cmpint (gnutls_x509_crt_set_key_usage (
                         cert, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN),
                     ==, 0);
  g_assert_cmpint (gnutls_x509_crt_sign2 (cert, cert, key, GNUTLS_DIG_SHA256,
                                          0),
                   ==, 0);

  out->cert_pem = export_cert_pem (cert);
  out->key_pem = export_key_pem (key);
}

static char *
write_temp_file (const char *dir, const char *name, const char *contents)
{
  char *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, contents, -1, &error);
  g_assert_no_error (error);
  return path;
}

/* ---- CA ---- */

static void
test_ca_ephemeral (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (&error);
  g_assert_no_error (error);
  g_assert_nonnull (ca);

  g_auto (gnutls_x509_crt_t) cert = ca_cert (ca);
  time_t now = time (NULL);

  g_autofree char *cn = cert_dn_field (cert, GNUTLS_OID_X520_COMMON_NAME);
  g_assert_nonnull (cn);
  g_assert_true (g_str_has_prefix (cn, "moat session CA "));
  g_assert_cmpuint (strlen (cn), >, strlen ("moat session CA "));
  g_autofree char *org =
      cert_dn_field (cert, GNUTLS_OID_X520_ORGANIZATION_NAME);
  g_assert_cmpstr (org, ==, "moat");

  g_assert_cmpint (gnutls_x509_crt_get_version (cert), ==, 3);

  unsigned int critical = 0;
  unsigned int is_ca = 0;
  int path_len = -1;
  g_assert_cmpint (gnutls_x509_crt_get_basic_constraints (cert, &critical,
                                                          &is_ca, &path_len),
                   >=, 0);
  g_assert_true (is_ca);
  g_assert_true (critical);
  g_assert_cmpint (path_len, ==, 0);

  unsigned int key_usage = 0;
  critical = 0;
  g_assert_cmpint (gnutls_x509_crt_get_key_usage (cert, &key_usage,
                                                  &critical),
                   >=, 0);
  g_assert_cmpuint (key_usage, ==,
                    GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
  g_assert_true (critical);

  guint8 ski[64];
  size_t ski_size = sizeof ski;
  g_assert_cmpint (gnutls_x509_crt_get_subject_key_id (cert, ski, &ski_size,
                                                       NULL),
                   ==, 0);
  g_assert_cmpuint (ski_size, >, 0);

  guint8 serial[32];
  size_t serial_size = sizeof serial;
  g_assert_cmpint (gnutls_x509_crt_get_serial (cert, serial, &serial_size),
                   ==, 0);
  g_assert_cmpuint (serial_size, ==, 16);
  g_assert_cmpuint (serial[0] & 0x80, ==, 0);

  unsigned int bits = 0;
  g_assert_cmpint (gnutls_x509_crt_get_pk_algorithm (cert, &bits), ==,
                   GNUTLS_PK_ECDSA);
  g_assert_cmpuint (bits, ==, 256);

  time_t activation = gnutls_x509_crt_get_activation_time (cert);
  time_t expiration = gnutls_x509_crt_get_expiration_time (cert);
  g_assert_cmpint (activation, <=, now - 3600 + 5);
  g_assert_cmpint (activation, >=, now - 3600 - 60);
  g_assert_cmpint (expiration, >=, now + 364 * 86400L);
  g_assert_cmpint (expiration, <=, now + 366 * 86400L);

  /* Self-signed: the certificate verifies against itself. */
  unsigned int status = 1;
  g_assert_cmpint (gnutls_x509_crt_verify (cert, &cert, 1, 0, &status), ==,
                   0);
  g_assert_cmpuint (status, ==, 0);
}

static void
test_ca_names_differ (void)
{
  g_autoptr (MoatCa) first = moat_ca_new_ephemeral (NULL);
  g_autoptr (MoatCa) second = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (first);
  g_assert_nonnull (second);

  g_auto (gnutls_x509_crt_t) first_cert = ca_cert (first);
  g_auto (gnutls_x509_crt_t) second_cert = ca_cert (second);
  g_autofree char *first_cn =
      cert_dn_field (first_cert, GNUTLS_OID_X520_COMMON_NAME);
  g_autofree char *second_cn =
      cert_dn_field (second_cert, GNUTLS_OID_X520_COMMON_NAME);

  /* The random suffixes are 32 bits: a collision fails once in 2^32 runs. */
  g_assert_cmpstr (first_cn, !=, second_cn);
}

static void
test_ca_write_cert (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (&error);
  g_assert_no_error (error);

  g_autofree char *dir = g_dir_make_tmp ("moat-tls-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *path = g_build_filename (dir, "ca.pem", NULL);

  g_assert_true (moat_ca_write_cert (ca, path, &error));
  g_assert_no_error (error);

  g_autofree char *written = NULL;
  g_assert_true (g_file_get_contents (path, &written, NULL, &error));
  g_autofree char *pem = moat_ca_get_cert_pem (ca);
  g_assert_cmpstr (written, ==, pem);
  g_assert_true (g_str_has_prefix (written, "-----BEGIN CERTIFICATE-----"));

  struct stat info;
  g_assert_cmpint (g_stat (path, &info), ==, 0);
  g_assert_cmpint (info.st_mode & 0777, ==, 0644);

  /* Writing again replaces the file. */
  g_assert_true (moat_ca_write_cert (ca, path, &error));
  g_assert_no_error (error);

  /* A folder that does not exist: the error names the path, the folder
   * and the fix, and no temporary file. */
  g_autofree char *missing = g_build_filename (dir, "missing", NULL);
  g_autofree char *bad_path = g_build_filename (missing, "ca.pem", NULL);
  g_autofree char *folder_text = g_strdup_printf ("the folder %s does not "
                                                  "exist", missing);
  g_assert_false (moat_ca_write_cert (ca, bad_path, &error));
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_IO);
  g_assert_nonnull (strstr (error->message, bad_path));
  g_assert_nonnull (strstr (error->message, folder_text));
  g_assert_nonnull (strstr (error->message, "--ca-cert-out"));
  g_assert_null (strstr (error->message, "ca.pem."));

  g_unlink (path);
  g_rmdir (dir);
}

static void
test_ca_load_roundtrip (void)
{
  static const struct {
    const char *description;
    gnutls_pk_algorithm_t algorithm;
  } cases[] = {
    { "ECDSA P-256 CA", GNUTLS_PK_ECDSA },
    { "RSA 2048 CA", GNUTLS_PK_RSA },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *dir = g_dir_make_tmp ("moat-tls-XXXXXX", &error);
      g_assert_no_error (error);

      g_test_message ("case: %s", cases[i].description);
      PemPair pair = { NULL, NULL };
      make_self_signed (TRUE, FALSE, cases[i].algorithm, &pair);
      g_autofree char *cert_path =
          write_temp_file (dir, "ca.pem", pair.cert_pem);
      g_autofree char *key_path = write_temp_file (dir, "ca.key", pair.key_pem);

      g_autoptr (MoatCa) ca = moat_ca_load (cert_path, key_path, &error);
      g_assert_no_error (error);
      g_assert_nonnull (ca);

      /* Write the loaded CA back out: the same certificate comes back. */
      g_autofree char *copy_path = g_build_filename (dir, "copy.pem", NULL);
      g_assert_true (moat_ca_write_cert (ca, copy_path, &error));
      g_assert_no_error (error);
      g_autofree char *copy = NULL;
      g_assert_true (g_file_get_contents (copy_path, &copy, NULL, &error));
      g_assert_cmpstr (copy, ==, pair.cert_pem);

      /* The loaded CA signs leaves that verify against it. */
      gnutls_certificate_credentials_t credentials =
          moat_ca_get_leaf (ca, "persistent.test", &error);
      g_assert_no_error (error);
      g_assert_nonnull (credentials);
      g_auto (gnutls_x509_crt_t) leaf = credentials_cert (credentials, 0);
      g_auto (gnutls_x509_crt_t) root = import_pem_cert (pair.cert_pem);
      unsigned int status = 1;
      g_assert_cmpint (gnutls_x509_crt_verify (leaf, &root, 1, 0, &status),
                       ==, 0);
      g_assert_cmpuint (status, ==, 0);

      /* The authority key id is the CA's subject key id or, when the CA
       * has none, the SHA-1 key id of its public key. */
      guint8 expected[64];
      size_t expected_size = sizeof expected;
      if (gnutls_x509_crt_get_subject_key_id (root, expected, &expected_size,
                                              NULL)
          < 0)
        {
          expected_size = sizeof expected;
          g_assert_cmpint (gnutls_x509_crt_get_key_id (
                               root, GNUTLS_KEYID_USE_SHA1, expected,
                               &expected_size),
                           ==, 0);
        }
      guint8 aki[64];
      size_t aki_size = sizeof aki;
      g_assert_cmpint (gnutls_x509_crt_get_authority_key_id (leaf, aki,
                                                             &aki_size, NULL),
                       ==, 0);
      g_assert_cmpmem (aki, aki_size, expected, expected_size);

      g_unlink (cert_path);
      g_unlink (key_path);
      g_unlink (copy_path);
      g_rmdir (dir);
      pem_pair_clear (&pair);
    }
}

typedef struct {
  const char *description;
  /* File contents, or NULL for a file that does not exist. */
  const char *cert;
  const char *key;
  gint code; /* MoatError */
  /* Substrings of the message: which file and what is wrong. */
  const char *message_path;
  const char *message;
} LoadErrorCase;

enum {
  PEM_CA_CERT = 1,
  PEM_CA_KEY,
  PEM_OTHER_KEY,
  PEM_LEAF_CERT,
  PEM_LEAF_KEY,
  PEM_EXPIRED_CERT,
  PEM_EXPIRED_KEY,
};

static void
test_ca_load_errors (void)
{
  g_autoptr (GError) dir_error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("moat-tls-XXXXXX", &dir_error);
  g_assert_no_error (dir_error);

  PemPair ca = { NULL, NULL };
  PemPair other = { NULL, NULL };
  PemPair not_ca = { NULL, NULL };
  PemPair expired = { NULL, NULL };
  make_self_signed (TRUE, FALSE, GNUTLS_PK_ECDSA, &ca);
  make_self_signed (TRUE, FALSE, GNUTLS_PK_ECDSA, &other);
  make_self_signed (FALSE, FALSE, GNUTLS_PK_ECDSA, &not_ca);
  make_self_signed (TRUE, TRUE, GNUTLS_PK_ECDSA, &expired);

  /* Placeholders in the table below, replaced by generated PEM text. */
  const char *pems[] = {
    [PEM_CA_CERT] = ca.cert_pem,         [PEM_CA_KEY] = ca.key_pem,
    [PEM_OTHER_KEY] = other.key_pem,     [PEM_LEAF_CERT] = not_ca.cert_pem,
    [PEM_LEAF_KEY] = not_ca.key_pem,     [PEM_EXPIRED_CERT] = expired.cert_pem,
    [PEM_EXPIRED_KEY] = expired.key_pem,
  };
#define PEM(n) ((const char *) (gintptr) (n))

  const LoadErrorCase cases[] = {
    { "missing certificate file", NULL, PEM (PEM_CA_KEY), MOAT_ERROR_CONFIG,
      "cert.pem", "cannot read CA certificate" },
    { "missing key file", PEM (PEM_CA_CERT), NULL, MOAT_ERROR_CONFIG,
      "key.pem", "cannot read CA key" },
    { "garbage certificate", "this is not a certificate\n", PEM (PEM_CA_KEY),
      MOAT_ERROR_TLS, "cert.pem", "is not a PEM X.509 certificate" },
    { "key given as certificate", PEM (PEM_CA_KEY), PEM (PEM_CA_KEY),
      MOAT_ERROR_TLS, "cert.pem", "is not a PEM X.509 certificate" },
    { "garbage key", PEM (PEM_CA_CERT), "-----BEGIN PRIVATE KEY-----\nxx\n",
      MOAT_ERROR_TLS, "key.pem", "is not an unencrypted PEM private key" },
    { "certificate given as key", PEM (PEM_CA_CERT), PEM (PEM_CA_CERT),
      MOAT_ERROR_TLS, "key.pem", "is not an unencrypted PEM private key" },
    { "certificate is not a CA", PEM (PEM_LEAF_CERT), PEM (PEM_LEAF_KEY),
      MOAT_ERROR_TLS, "cert.pem", "is not a CA" },
    { "key of another CA", PEM (PEM_CA_CERT), PEM (PEM_OTHER_KEY),
      MOAT_ERROR_TLS, "key.pem", "does not match CA certificate" },
    { "expired CA", PEM (PEM_EXPIRED_CERT), PEM (PEM_EXPIRED_KEY),
      MOAT_ERROR_TLS, "cert.pem", "expired on" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const LoadErrorCase *test = &cases[i];
      g_autofree char *cert_path = g_build_filename (dir, "cert.pem", NULL);
      g_autofree char *key_path = g_build_filename (dir, "key.pem", NULL);
      g_autoptr (GError) error = NULL;

      g_test_message ("case: %s", test->description);
      g_unlink (cert_path);
      g_unlink (key_path);
      if (test->cert != NULL)
        {
          gintptr index = (gintptr) test->cert;
          const char *text = index < (gintptr) G_N_ELEMENTS (pems)
                                 ? pems[index] : test->cert;
          g_free (write_temp_file (dir, "cert.pem", text));
        }
      if (test->key != NULL)
        {
          gintptr index = (gintptr) test->key;
          const char *text = index < (gintptr) G_N_ELEMENTS (pems)
                                 ? pems[index] : test->key;
          g_free (write_temp_file (dir, "key.pem", text));
        }

      g_autoptr (MoatCa) loaded = moat_ca_load (cert_path, key_path, &error);
      g_assert_null (loaded);
      g_assert_error (error, MOAT_ERROR, test->code);
      g_assert_nonnull (strstr (error->message, test->message_path));
      g_assert_nonnull (strstr (error->message, dir));
      g_assert_nonnull (strstr (error->message, test->message));

      g_unlink (cert_path);
      g_unlink (key_path);
    }
#undef PEM

  g_rmdir (dir);
  pem_pair_clear (&ca);
  pem_pair_clear (&other);
  pem_pair_clear (&not_ca);
  pem_pair_clear (&expired);
}

/* ---- leaf certificates ---- */

static void
test_leaf_verifies (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (&error);
  g_assert_no_error (error);

  gnutls_certificate_credentials_t credentials =
      moat_ca_get_leaf (ca, "WWW.Example.TEST", &error);
  g_assert_no_error (error);
  g_assert_nonnull (credentials);

  g_auto (gnutls_x509_crt_t) root = ca_cert (ca);
  g_auto (gnutls_x509_crt_t) leaf = credentials_cert (credentials, 0);
  g_auto (gnutls_x509_crt_t) chain_ca = credentials_cert (credentials, 1);
  time_t now = time (NULL);

  unsigned int status = 1;
  g_assert_cmpint (gnutls_x509_crt_verify (leaf, &root, 1, 0, &status), ==,
                   0);
  g_assert_cmpuint (status, ==, 0);

  /* The chain sent to clients is leaf + CA. */
  g_assert_true (gnutls_x509_crt_equals (chain_ca, root));

  /* SAN: exactly one dNSName, the lowercase name. */
  char san[256];
  size_t san_size = sizeof san;
  unsigned int san_type = 0;
  g_assert_cmpint (gnutls_x509_crt_get_subject_alt_name2 (
                       leaf, 0, san, &san_size, &san_type, NULL),
                   ==, GNUTLS_SAN_DNSNAME);
  g_assert_cmpstr (san, ==, "www.example.test");
  san_size = sizeof san;
  g_assert_cmpint (gnutls_x509_crt_get_subject_alt_name2 (
                       leaf, 1, san, &san_size, &san_type, NULL),
                   ==, GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
  g_assert_true (gnutls_x509_crt_check_hostname (leaf, "www.example.test"));
  g_assert_false (gnutls_x509_crt_check_hostname (leaf, "example.test"));

  g_autofree char *cn = cert_dn_field (leaf, GNUTLS_OID_X520_COMMON_NAME);
  g_assert_cmpstr (cn, ==, "www.example.test");

  unsigned int critical = 0;
  unsigned int is_ca = 1;
  int path_len = 0;
  g_assert_cmpint (gnutls_x509_crt_get_basic_constraints (leaf, &critical,
                                                          &is_ca, &path_len),
                   >=, 0);
  g_assert_false (is_ca);

  unsigned int key_usage = 0;
  g_assert_cmpint (gnutls_x509_crt_get_key_usage (leaf, &key_usage,
                                                  &critical),
                   >=, 0);
  g_assert_cmpuint (key_usage, ==, GNUTLS_KEY_DIGITAL_SIGNATURE);

  char oid[128];
  size_t oid_size = sizeof oid;
  g_assert_cmpint (gnutls_x509_crt_get_key_purpose_oid (leaf, 0, oid,
                                                        &oid_size, NULL),
                   ==, 0);
  g_assert_cmpstr (oid, ==, GNUTLS_KP_TLS_WWW_SERVER);

  guint8 ca_ski[64];
  size_t ca_ski_size = sizeof ca_ski;
  guint8 leaf_aki[64];
  size_t leaf_aki_size = sizeof leaf_aki;
  g_assert_cmpint (gnutls_x509_crt_get_subject_key_id (root, ca_ski,
                                                       &ca_ski_size, NULL),
                   ==, 0);
  g_assert_cmpint (gnutls_x509_crt_get_authority_key_id (
                       leaf, leaf_aki, &leaf_aki_size, NULL),
                   ==, 0);
  g_assert_cmpmem (leaf_aki, leaf_aki_size, ca_ski, ca_ski_size);

  unsigned int bits = 0;
  g_assert_cmpint (gnutls_x509_crt_get_pk_algorithm (leaf, &bits), ==,
                   GNUTLS_PK_ECDSA);
  g_assert_cmpuint (bits, ==, 256);

  time_t activation = gnutls_x509_crt_get_activation_time (leaf);
  time_t expiration = gnutls_x509_crt_get_expiration_time (leaf);
  g_assert_cmpint (activation, <=, now - 3600 + 5);
  g_assert_cmpint (activation, >=, now - 3600 - 60);
  g_assert_cmpint (expiration - activation, <=, 397 * 86400L);
  /* Clamped to the CA, which expires first. */
  g_assert_cmpint (expiration, <=, gnutls_x509_crt_get_expiration_time (root));
}

typedef struct {
  const char *description;
  const char *name;
  /* Binary address expected in the iPAddress SAN. */
  const char *address;
  gsize address_len;
  const char *check_ip;
} IpLeafCase;

static void
test_leaf_ip_address (void)
{
  static const IpLeafCase cases[] = {
    { "IPv4 loopback", "127.0.0.1", "\x7f\x00\x00\x01", 4, "127.0.0.1" },
    { "IPv6 loopback", "::1",
      "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16, "::1" },
    { "IPv6 in upper case", "FD00::A",
      "\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x0a", 16, "fd00::a" },
  };
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (ca);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const IpLeafCase *test = &cases[i];
      g_autoptr (GError) error = NULL;

      g_test_message ("case: %s", test->description);
      gnutls_certificate_credentials_t credentials =
          moat_ca_get_leaf (ca, test->name, &error);
      g_assert_no_error (error);
      g_auto (gnutls_x509_crt_t) leaf = credentials_cert (credentials, 0);

      guint8 san[64];
      size_t san_size = sizeof san;
      unsigned int san_type = 0;
      g_assert_cmpint (gnutls_x509_crt_get_subject_alt_name2 (
                           leaf, 0, san, &san_size, &san_type, NULL),
                       ==, GNUTLS_SAN_IPADDRESS);
      g_assert_cmpmem (san, san_size, test->address, test->address_len);

      guint8 ip[16];
      gsize ip_len = test->address_len;
      memcpy (ip, test->address, ip_len);
      g_assert_true (gnutls_x509_crt_check_ip (leaf, ip, ip_len, 0));

      /* The same address in another spelling is the same cache entry. */
      g_assert_true (moat_ca_get_leaf (ca, test->check_ip, &error)
                     == credentials);
      g_assert_no_error (error);
    }
}

static void
test_leaf_cache (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (&error);
  g_assert_no_error (error);

  gnutls_certificate_credentials_t lower =
      moat_ca_get_leaf (ca, "cache.example.test", &error);
  g_assert_no_error (error);
  gnutls_certificate_credentials_t upper =
      moat_ca_get_leaf (ca, "CACHE.Example.Test", &error);
  g_assert_no_error (error);
  gnutls_certificate_credentials_t other =
      moat_ca_get_leaf (ca, "other.example.test", &error);
  g_assert_no_error (error);

  g_assert_nonnull (lower);
  g_assert_true (lower == upper);
  g_assert_true (lower != other);

  g_autoptr (MoatLeaf) leaf = moat_ca_ref_leaf (ca, "Cache.example.TEST",
                                                &error);
  g_assert_no_error (error);
  g_assert_true (moat_leaf_get_credentials (leaf) == lower);
}

typedef struct {
  const char *description;
  const char *name;
} InvalidNameCase;

static void
test_leaf_invalid_names (void)
{
  g_autofree char *too_long = g_strnfill (MOAT_DNS_NAME_MAX + 1, 'a');
  g_autofree char *long_label = g_strnfill (64, 'a');
  const InvalidNameCase cases[] = {
    { "empty", "" },
    { "space", "bad name.test" },
    { "empty label", "a..test" },
    { "leading dot", ".a.test" },
    { "trailing dot", "a.test." },
    { "wildcard", "*.example.test" },
    { "slash", "a/b.test" },
    { "NUL in the name", "a\001b" },
    { "longer than 253 bytes", too_long },
    { "label longer than 63 bytes", long_label },
    { "invalid IPv6", "fd00::1::2" },
    { "IPv6 with a zone", "fe80::1%eth0" },
  };
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (ca);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;

      g_test_message ("case: %s", cases[i].description);
      g_assert_null (moat_ca_get_leaf (ca, cases[i].name, &error));
      g_assert_error (error, MOAT_ERROR, MOAT_ERROR_TLS);
      g_assert_nonnull (strstr (error->message, "not a valid host name"));
    }
}

static void
test_leaf_eviction (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (&error);
  g_assert_no_error (error);

  g_autoptr (MoatLeaf) first = moat_ca_ref_leaf (ca, "n0.test", &error);
  g_assert_no_error (error);
  g_autoptr (MoatLeaf) second = moat_ca_ref_leaf (ca, "n1.test", &error);
  g_assert_no_error (error);

  /* Fill the cache. */
  for (int i = 2; i < MOAT_LEAF_CACHE_MAX; i++)
    {
      g_autofree char *name = g_strdup_printf ("n%d.test", i);
      g_assert_nonnull (moat_ca_get_leaf (ca, name, &error));
      g_assert_no_error (error);
    }

  /* Use n0 again, so n1 is now the least recently used. */
  g_assert_true (moat_ca_get_leaf (ca, "n0.test", &error)
                 == moat_leaf_get_credentials (first));

  g_assert_nonnull (moat_ca_get_leaf (ca, "overflow.test", &error));
  g_assert_no_error (error);

  /* n0 is still cached; n1 was evicted and is minted again. */
  g_autoptr (MoatLeaf) first_again = moat_ca_ref_leaf (ca, "n0.test", &error);
  g_assert_true (first_again == first);
  g_autoptr (MoatLeaf) second_again = moat_ca_ref_leaf (ca, "n1.test",
                                                        &error);
  g_assert_no_error (error);
  g_assert_true (second_again != second);

  /* The evicted leaf stays usable for a session that holds it. */
  g_auto (gnutls_x509_crt_t) evicted =
      credentials_cert (moat_leaf_get_credentials (second), 0);
  g_assert_true (gnutls_x509_crt_check_hostname (evicted, "n1.test"));

  /* Leaves held by sessions also outlive the CA. */
  g_clear_pointer (&ca, moat_ca_free);
  g_auto (gnutls_x509_crt_t) held =
      credentials_cert (moat_leaf_get_credentials (first), 0);
  g_assert_true (gnutls_x509_crt_check_hostname (held, "n0.test"));
}

/* ---- TLS sessions over a socketpair ---- */

static void
make_socketpair (int fds[2])
{
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
  for (int i = 0; i < 2; i++)
    {
      int flags = fcntl (fds[i], F_GETFL);
      g_assert_cmpint (fcntl (fds[i], F_SETFL, flags | O_NONBLOCK), ==, 0);
    }
}

typedef struct {
  int server_fd;
  int client_fd;
  MoatTlsServer *server;
  gnutls_session_t client;
  gnutls_certificate_credentials_t client_credentials;
  /* A client that fails closes the connection without sending an alert. */
  gboolean close_without_alert;
} Pair;

typedef struct {
  /* SNI the client sends, or NULL for none. */
  const char *sni;
  /* Name the client verifies the certificate against. */
  const char *verify_name;
  /* CA the client trusts. */
  const MoatCa *trusted_ca;
  /* GnuTLS priority string of the client, or NULL for the default. */
  const char *priorities;
  /* Offer only h2 in ALPN, instead of h2 and http/1.1. */
  gboolean h2_only;
  gboolean close_without_alert;
} ClientOptions;

static void
pair_init (Pair *pair, MoatCa *ca, const char *fallback_name,
           const ClientOptions *options)
{
  int fds[2];
  g_autoptr (GError) error = NULL;

  make_socketpair (fds);
  pair->server_fd = fds[0];
  pair->client_fd = fds[1];
  pair->close_without_alert = options->close_without_alert;

  pair->server = moat_tls_server_new (ca, pair->server_fd, fallback_name,
                                      &error);
  g_assert_no_error (error);
  g_assert_nonnull (pair->server);

  g_autofree char *trusted_pem = moat_ca_get_cert_pem (options->trusted_ca);
  gnutls_datum_t trusted = { (unsigned char *) trusted_pem,
                             (unsigned int) strlen (trusted_pem) };
  g_assert_cmpint (
      gnutls_certificate_allocate_credentials (&pair->client_credentials), ==,
      0);
  g_assert_cmpint (gnutls_certificate_set_x509_trust_mem (
                       pair->client_credentials, &trusted,
                       GNUTLS_X509_FMT_PEM),
                   ==, 1);

  g_assert_cmpint (gnutls_init (&pair->client,
                                GNUTLS_CLIENT | GNUTLS_NONBLOCK),
                   ==, 0);
  if (options->priorities != NULL)
    g_assert_cmpint (gnutls_priority_set_direct (pair->client,
                                                 options->priorities, NULL),
                     ==, 0);
  else
    g_assert_cmpint (gnutls_set_default_priority (pair->client), ==, 0);
  g_assert_cmpint (gnutls_credentials_set (pair->client,
                                           GNUTLS_CRD_CERTIFICATE,
                                           pair->client_credentials),
                   ==, 0);
  if (options->sni != NULL)
    g_assert_cmpint (gnutls_server_name_set (pair->client, GNUTLS_NAME_DNS,
                                             options->sni,
                                             strlen (options->sni)),
                     ==, 0);
  gnutls_session_set_verify_cert (pair->client, options->verify_name, 0);

  /* Offer h2 first: the server must pick http/1.1. */
  static const char h2[] = "h2";
  static const char http11[] = "http/1.1";
  const gnutls_datum_t protocols[] = {
    { (unsigned char *) h2, sizeof h2 - 1 },
    { (unsigned char *) http11, sizeof http11 - 1 },
  };
  g_assert_cmpint (gnutls_alpn_set_protocols (pair->client, protocols,
                                              options->h2_only ? 1 : 2, 0),
                   ==, 0);
  gnutls_transport_set_int (pair->client, pair->client_fd);
}

static void
pair_clear (Pair *pair)
{
  g_clear_pointer (&pair->server, moat_tls_server_free);
  if (pair->client != NULL)
    gnutls_deinit (pair->client);
  pair->client = NULL;
  if (pair->client_credentials != NULL)
    gnutls_certificate_free_credentials (pair->client_credentials);
  pair->client_credentials = NULL;
  if (pair->server_fd >= 0)
    close (pair->server_fd);
  if (pair->client_fd >= 0)
    close (pair->client_fd);
  pair->server_fd = -1;
  pair->client_fd = -1;
}

/* Waits until the server or client fd is ready as each side last wanted. */
static void
pair_poll (Pair *pair, gboolean server_active, gboolean client_active)
{
  struct pollfd fds[2] = {
    { pair->server_fd,
      moat_tls_server_wants_write (pair->server) ? POLLOUT : POLLIN, 0 },
    { pair->client_fd,
      gnutls_record_get_direction (pair->client) ? POLLOUT : POLLIN, 0 },
  };
  if (!server_active)
    fds[0].fd = -1;
  if (!client_active)
    fds[1].fd = -1;

  int ret;
  do
    ret = poll (fds, 2, POLL_TIMEOUT_MS);
  while (ret < 0 && errno == EINTR);
  g_assert_cmpint (ret, >, 0);
}

typedef struct {
  MoatTlsStatus server_status;
  GError *server_error;
  int client_ret;
} HandshakeResult;

/*
 * Runs both handshakes to their end. A client that fails sends the alert
 * for its error, as TLS clients do (unless close_without_alert is set), and
 * shuts its side down so that the server cannot wait forever.
 */
static void
pair_handshake (Pair *pair, HandshakeResult *result)
{
  gboolean server_done = FALSE;
  gboolean client_done = FALSE;

  result->server_status = MOAT_TLS_AGAIN;
  result->server_error = NULL;
  result->client_ret = GNUTLS_E_AGAIN;

  for (int rounds = 0; !server_done || !client_done; rounds++)
    {
      g_assert_cmpint (rounds, <, 1000);

      if (!server_done)
        {
          result->server_status =
              moat_tls_server_handshake (pair->server, &result->server_error);
          server_done = result->server_status != MOAT_TLS_AGAIN;
        }
      if (!client_done)
        {
          result->client_ret = gnutls_handshake (pair->client);
          if (result->client_ret == GNUTLS_E_SUCCESS)
            client_done = TRUE;
          else if (gnutls_error_is_fatal (result->client_ret))
            {
              client_done = TRUE;
              if (!pair->close_without_alert)
                gnutls_alert_send_appropriate (pair->client,
                                               result->client_ret);
              shutdown (pair->client_fd, SHUT_WR);
            }
        }
      /* A server that failed may leave the client waiting: close its side
       * as a real connection would be closed. */
      if (server_done && result->server_status == MOAT_TLS_ERROR
          && !client_done)
        shutdown (pair->server_fd, SHUT_RDWR);

      if (!server_done || !client_done)
        pair_poll (pair, !server_done, !client_done);
    }
}

static void
client_send_all (Pair *pair, const guint8 *data, gsize size)
{
  gsize sent = 0;
  while (sent < size)
    {
      ssize_t ret = gnutls_record_send (pair->client, data + sent,
                                        size - sent);
      if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
        {
          pair_poll (pair, FALSE, TRUE);
          continue;
        }
      g_assert_cmpint (ret, >, 0);
      sent += (gsize) ret;
    }
}

/* Reads @size bytes on the server side. */
static void
server_read_exact (Pair *pair, guint8 *buffer, gsize size)
{
  gsize got = 0;
  while (got < size)
    {
      gsize count = 0;
      g_autoptr (GError) error = NULL;
      MoatTlsStatus status = moat_tls_server_read (
          pair->server, buffer + got, size - got, &count, &error);
      if (status == MOAT_TLS_AGAIN)
        {
          pair_poll (pair, TRUE, FALSE);
          continue;
        }
      g_assert_no_error (error);
      g_assert_cmpint (status, ==, MOAT_TLS_OK);
      g_assert_cmpuint (count, >, 0);
      got += count;
    }
}

/*
 * Sends @size bytes from the server while the client reads them, as the
 * flow layer would: after MOAT_TLS_AGAIN the same buffer is offered again.
 * Return: how many server writes returned MOAT_TLS_AGAIN.
 */
static guint
transfer_to_client (Pair *pair, const guint8 *data, gsize size,
                    guint8 *received)
{
  gsize sent = 0;
  gsize got = 0;
  guint again_count = 0;

  while (got < size)
    {
      /* Write until the socket is full, so that AGAIN happens. */
      gboolean server_waits = FALSE;
      while (sent < size && !server_waits)
        {
          gsize count = 0;
          g_autoptr (GError) error = NULL;
          gsize chunk = MIN (size - sent, (gsize) 65536);
          MoatTlsStatus status = moat_tls_server_write (
              pair->server, data + sent, chunk, &count, &error);
          g_assert_no_error (error);
          if (status == MOAT_TLS_AGAIN)
            {
              g_assert_true (moat_tls_server_wants_write (pair->server));
              again_count++;
              server_waits = TRUE;
            }
          else
            {
              g_assert_cmpint (status, ==, MOAT_TLS_OK);
              g_assert_cmpuint (count, >, 0);
              sent += count;
            }
        }

      /* Then read what the client has. */
      while (got < size)
        {
          ssize_t ret = gnutls_record_recv (pair->client, received + got,
                                            size - got);
          if (ret == GNUTLS_E_AGAIN)
            break;
          g_assert_cmpint (ret, >, 0);
          got += (gsize) ret;
        }

      if (got < size)
        pair_poll (pair, server_waits, !server_waits);
    }

  return again_count;
}

static void
assert_handshake_ok (Pair *pair, HandshakeResult *result)
{
  g_assert_no_error (result->server_error);
  g_assert_cmpint (result->server_status, ==, MOAT_TLS_OK);
  g_assert_cmpint (result->client_ret, ==, GNUTLS_E_SUCCESS);
}

static void
assert_alpn_http11 (Pair *pair)
{
  gnutls_datum_t alpn = { NULL, 0 };
  g_assert_cmpint (gnutls_alpn_get_selected_protocol (pair->client, &alpn),
                   ==, 0);
  g_assert_cmpmem (alpn.data, alpn.size, "http/1.1", 8);
}

static void
test_handshake_sni (void)
{
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (ca);
  const ClientOptions options = {
    .sni = "WWW.Example.TEST",
    .verify_name = "www.example.test",
    .trusted_ca = ca,
  };
  Pair pair;
  HandshakeResult result;

  /* The fallback name differs: the SNI must win. */
  pair_init (&pair, ca, "fallback.test", &options);
  pair_handshake (&pair, &result);
  assert_handshake_ok (&pair, &result);
  assert_alpn_http11 (&pair);
  g_assert_cmpstr (moat_tls_server_get_server_name (pair.server), ==,
                   "www.example.test");
  g_assert_cmpint (gnutls_protocol_get_version (pair.client), ==,
                   GNUTLS_TLS1_3);

  /* A second call after completion is a no-op. */
  g_assert_cmpint (moat_tls_server_handshake (pair.server, NULL), ==,
                   MOAT_TLS_OK);

  /* Client to server: a request in two records. */
  static const char request[] = "GET / HTTP/1.1\r\nHost: www.example.test\r\n";
  static const char request_end[] = "\r\n";
  client_send_all (&pair, (const guint8 *) request, strlen (request));
  client_send_all (&pair, (const guint8 *) request_end, strlen (request_end));

  /* A small buffer leaves the rest of the record pending in GnuTLS. */
  guint8 head[4];
  server_read_exact (&pair, head, sizeof head);
  g_assert_cmpmem (head, sizeof head, "GET ", 4);
  g_assert_true (moat_tls_server_has_pending (pair.server));

  gsize rest_len = strlen (request) + strlen (request_end) - sizeof head;
  g_autofree guint8 *rest = g_malloc (rest_len);
  server_read_exact (&pair, rest, rest_len);
  g_autofree char *expected =
      g_strconcat (request + sizeof head, request_end, NULL);
  g_assert_cmpmem (rest, rest_len, expected, strlen (expected));
  g_assert_false (moat_tls_server_has_pending (pair.server));

  /* Nothing more: a read returns AGAIN and waits for input. */
  guint8 byte;
  gsize count = 99;
  g_assert_cmpint (moat_tls_server_read (pair.server, &byte, 1, &count, NULL),
                   ==, MOAT_TLS_AGAIN);
  g_assert_cmpuint (count, ==, 0);
  g_assert_false (moat_tls_server_wants_write (pair.server));

  /* Server to client: more than the socket buffer holds, so writes return
   * AGAIN and are retried with the same data. */
  gsize size = 4 * 1024 * 1024;
  g_autofree guint8 *data = g_malloc (size);
  g_autofree guint8 *received = g_malloc (size);
  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (i * 31 + (i >> 12));
  guint again_count = transfer_to_client (&pair, data, size, received);
  g_assert_cmpuint (again_count, >, 0);
  g_assert_true (memcmp (data, received, size) == 0);

  /* close_notify reaches the client as end of stream. */
  MoatTlsStatus status;
  while ((status = moat_tls_server_close (pair.server)) == MOAT_TLS_AGAIN)
    pair_poll (&pair, TRUE, FALSE);
  g_assert_cmpint (status, ==, MOAT_TLS_OK);
  ssize_t ret;
  do
    {
      ret = gnutls_record_recv (pair.client, &byte, 1);
      if (ret == GNUTLS_E_AGAIN)
        pair_poll (&pair, FALSE, TRUE);
    }
  while (ret == GNUTLS_E_AGAIN);
  g_assert_cmpint (ret, ==, 0);

  pair_clear (&pair);
}

static void
test_handshake_fallback_name (void)
{
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (ca);
  const ClientOptions options = {
    .sni = NULL,
    .verify_name = "fallback.test",
    .trusted_ca = ca,
  };
  Pair pair;
  HandshakeResult result;

  pair_init (&pair, ca, "Fallback.TEST", &options);
  pair_handshake (&pair, &result);
  assert_handshake_ok (&pair, &result);
  assert_alpn_http11 (&pair);
  g_assert_null (moat_tls_server_get_server_name (pair.server));

  /* Data still flows both ways. */
  static const char ping[] = "ping";
  client_send_all (&pair, (const guint8 *) ping, 4);
  guint8 buffer[4];
  server_read_exact (&pair, buffer, sizeof buffer);
  g_assert_cmpmem (buffer, 4, ping, 4);
  guint8 reply[4];
  transfer_to_client (&pair, (const guint8 *) "pong", 4, reply);
  g_assert_cmpmem (reply, 4, "pong", 4);

  pair_clear (&pair);
}

static void
test_handshake_tls12 (void)
{
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (ca);
  const ClientOptions options = {
    .sni = "old.example.test",
    .verify_name = "old.example.test",
    .trusted_ca = ca,
    .priorities = "NORMAL:-VERS-ALL:+VERS-TLS1.2",
  };
  Pair pair;
  HandshakeResult result;

  pair_init (&pair, ca, NULL, &options);
  pair_handshake (&pair, &result);
  assert_handshake_ok (&pair, &result);
  assert_alpn_http11 (&pair);
  g_assert_cmpint (gnutls_protocol_get_version (pair.client), ==,
                   GNUTLS_TLS1_2);
  g_assert_cmpstr (moat_tls_server_get_server_name (pair.server), ==,
                   "old.example.test");
  pair_clear (&pair);
}

static void
test_handshake_h2_only (void)
{
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (ca);
  const ClientOptions options = {
    .sni = "h2.example.test",
    .verify_name = "h2.example.test",
    .trusted_ca = ca,
    .h2_only = TRUE,
  };
  Pair pair;
  HandshakeResult result;

  /* No common protocol: the handshake completes without ALPN, and the
   * client falls back to HTTP/1.1. */
  pair_init (&pair, ca, NULL, &options);
  pair_handshake (&pair, &result);
  assert_handshake_ok (&pair, &result);
  gnutls_datum_t alpn = { NULL, 0 };
  g_assert_cmpint (gnutls_alpn_get_selected_protocol (pair.client, &alpn),
                   ==, GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
  pair_clear (&pair);
}

typedef struct {
  const char *description;
  const char *sni;
  const char *fallback_name;
  gboolean other_ca;
  const char *priorities;
  gboolean close_without_alert;
  /* Substring of the server's error message. */
  const char *message;
} FailureCase;

static void
test_handshake_failures (void)
{
  static const FailureCase cases[] = {
    { "client trusts another CA", "www.example.test", NULL, TRUE, NULL, FALSE,
      "client rejected certificate: CA not installed or pinned "
      "(alert bad_certificate)" },
    { "TLS 1.2 client trusts another CA", "www.example.test", NULL, TRUE,
      "NORMAL:-VERS-ALL:+VERS-TLS1.2", FALSE,
      "client rejected certificate: CA not installed or pinned" },
    { "client rejects without an alert", "www.example.test", NULL, TRUE,
      NULL, TRUE, "the client closed the connection without an alert" },
    { "no SNI and no fallback name", NULL, NULL, FALSE, NULL, FALSE,
      "no server name (SNI)" },
    { "SNI with a space", "bad name.test", "www.example.test", FALSE, NULL,
      FALSE, "invalid server name (SNI)" },
    { "SNI with an empty label", "a..test", "www.example.test", FALSE, NULL,
      FALSE, "invalid server name \"a..test\"" },
    { "SNI with a 64-byte label",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
      "www.example.test", FALSE, NULL, FALSE, "invalid server name" },
    { "TLS 1.1 only client", "www.example.test", NULL, FALSE,
      "NORMAL:-VERS-ALL:+VERS-TLS1.1", FALSE,
      "supports neither TLS 1.2 nor TLS 1.3" },
  };
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (NULL);
  g_autoptr (MoatCa) other = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (ca);
  g_assert_nonnull (other);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const FailureCase *test = &cases[i];
      const ClientOptions options = {
        .sni = test->sni,
        .verify_name = "www.example.test",
        .trusted_ca = test->other_ca ? other : ca,
        .priorities = test->priorities,
        .close_without_alert = test->close_without_alert,
      };
      Pair pair;
      HandshakeResult result;

      g_test_message ("case: %s", test->description);
      pair_init (&pair, ca, test->fallback_name, &options);
      pair_handshake (&pair, &result);

      g_assert_cmpint (result.server_status, ==, MOAT_TLS_ERROR);
      g_assert_error (result.server_error, MOAT_ERROR, MOAT_ERROR_TLS);
      g_test_message ("server error: %s", result.server_error->message);
      g_assert_nonnull (strstr (result.server_error->message, test->message));
      g_assert_cmpint (result.client_ret, <, 0);

      g_clear_error (&result.server_error);
      pair_clear (&pair);
    }
}

static void
test_read_eof (void)
{
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (ca);
  const ClientOptions options = {
    .sni = "eof.test",
    .verify_name = "eof.test",
    .trusted_ca = ca,
  };

  /* Both a close_notify and a bare TCP close read as end of stream. */
  for (int with_close_notify = 0; with_close_notify < 2; with_close_notify++)
    {
      Pair pair;
      HandshakeResult result;

      g_test_message ("case: %s", with_close_notify ? "close_notify"
                                                    : "TCP close only");
      pair_init (&pair, ca, NULL, &options);
      pair_handshake (&pair, &result);
      assert_handshake_ok (&pair, &result);

      if (with_close_notify)
        g_assert_cmpint (gnutls_bye (pair.client, GNUTLS_SHUT_WR), ==, 0);
      shutdown (pair.client_fd, SHUT_WR);

      MoatTlsStatus status;
      guint8 byte;
      gsize count = 0;
      g_autoptr (GError) error = NULL;
      while ((status = moat_tls_server_read (pair.server, &byte, 1, &count,
                                             &error))
             == MOAT_TLS_AGAIN)
        pair_poll (&pair, TRUE, FALSE);
      g_assert_no_error (error);
      g_assert_cmpint (status, ==, MOAT_TLS_EOF);
      g_assert_cmpuint (count, ==, 0);

      pair_clear (&pair);
    }
}

static void
test_renegotiation_rejected (void)
{
  g_autoptr (MoatCa) ca = moat_ca_new_ephemeral (NULL);
  g_assert_nonnull (ca);
  const ClientOptions options = {
    .sni = "renegotiate.test",
    .verify_name = "renegotiate.test",
    .trusted_ca = ca,
    .priorities = "NORMAL:-VERS-ALL:+VERS-TLS1.2",
  };
  Pair pair;
  HandshakeResult result;

  pair_init (&pair, ca, NULL, &options);
  pair_handshake (&pair, &result);
  assert_handshake_ok (&pair, &result);

  /* A second handshake on an established TLS 1.2 session sends a new
   * ClientHello, then waits for the server. */
  g_assert_cmpint (gnutls_handshake (pair.client), ==, GNUTLS_E_AGAIN);

  MoatTlsStatus status;
  guint8 byte;
  gsize count = 0;
  g_autoptr (GError) error = NULL;
  while ((status = moat_tls_server_read (pair.server, &byte, 1, &count,
                                         &error))
         == MOAT_TLS_AGAIN)
    pair_poll (&pair, TRUE, FALSE);
  g_assert_cmpint (status, ==, MOAT_TLS_ERROR);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_TLS);
  g_assert_nonnull (strstr (error->message, "renegotiation"));

  pair_clear (&pair);
}

/* ---- ClientHello reader ---- */

/*
 * Captures the ClientHello a GnuTLS client sends, with @sni or none. The
 * client writes into a socketpair and the test reads the bytes.
 */
static GByteArray *
capture_client_hello (const char *sni)
{
  int fds[2];
  gnutls_session_t client = NULL;
  gnutls_certificate_credentials_t credentials = NULL;

  make_socketpair (fds);
  g_assert_cmpint (gnutls_certificate_allocate_credentials (&credentials),
                   ==, 0);
  g_assert_cmpint (gnutls_init (&client, GNUTLS_CLIENT | GNUTLS_NONBLOCK),
                   ==, 0);
  g_assert_cmpint (gnutls_set_default_priority (client), ==, 0);
  g_assert_cmpint (gnutls_credentials_set (client, GNUTLS_CRD_CERTIFICATE,
                                           credentials),
                   ==, 0);
  if (sni != NULL)
    g_assert_cmpint (gnutls_server_name_set (client, GNUTLS_NAME_DNS, sni,
                                             strlen (sni)),
                     ==, 0);
  gnutls_transport_set_int (client, fds[1]);

  /* The hello is sent, then the client waits for the server. */
  g_assert_cmpint (gnutls_handshake (client), ==, GNUTLS_E_AGAIN);

  GByteArray *bytes = g_byte_array_new ();
  guint8 buffer[4096];
  ssize_t count;
  while ((count = read (fds[0], buffer, sizeof buffer)) > 0)
    g_byte_array_append (bytes, buffer, (guint) count);
  g_assert_cmpint (count, <, 0);
  g_assert_cmpint (errno, ==, EAGAIN);

  gnutls_deinit (client);
  gnutls_certificate_free_credentials (credentials);
  close (fds[0]);
  close (fds[1]);

  g_assert_cmpuint (bytes->len, >, 5);
  return bytes;
}

/* Re-splits the single-record hello in @hello into records of at most
 * @fragment bytes of handshake data each. */
static GByteArray *
refragment (const GByteArray *hello, gsize fragment)
{
  GByteArray *out = g_byte_array_new ();
  const guint8 *body = hello->data + 5;
  gsize body_len = ((gsize) hello->data[3] << 8) | hello->data[4];

  g_assert_cmpuint (body_len + 5, ==, hello->len);
  for (gsize offset = 0; offset < body_len; offset += fragment)
    {
      gsize n = MIN (fragment, body_len - offset);
      guint8 header[5] = { 22, 3, 1, (guint8) (n >> 8), (guint8) n };
      g_byte_array_append (out, header, 5);
      g_byte_array_append (out, body + offset, (guint) n);
    }
  return out;
}

static void
assert_hello_ok (const guint8 *data, gsize length, const char *expected_name)
{
  char *name = (char *) "unset";
  g_autoptr (GError) error = NULL;

  g_assert_cmpint (moat_tls_hello_parse (data, length, &name, &error), ==,
                   MOAT_TLS_HELLO_OK);
  g_assert_no_error (error);
  g_assert_cmpstr (name, ==, expected_name);
  g_free (name);
}

/* Every proper prefix of @data is INCOMPLETE. */
static void
assert_prefixes_incomplete (const guint8 *data, gsize length)
{
  for (gsize prefix = 0; prefix < length; prefix++)
    {
      char *name = NULL;
      g_autoptr (GError) error = NULL;
      MoatTlsHelloResult result =
          moat_tls_hello_parse (data, prefix, &name, &error);
      if (result != MOAT_TLS_HELLO_INCOMPLETE)
        g_test_message ("prefix of %" G_GSIZE_FORMAT " bytes: %s", prefix,
                        error != NULL ? error->message : "OK");
      g_assert_cmpint (result, ==, MOAT_TLS_HELLO_INCOMPLETE);
      g_assert_no_error (error);
      g_assert_null (name);
    }
}

static void
test_hello_captured (void)
{
  g_autoptr (GByteArray) hello = capture_client_hello ("Hello.Example.TEST");

  assert_hello_ok (hello->data, hello->len, "hello.example.test");
  assert_prefixes_incomplete (hello->data, hello->len);

  /* Bytes after the hello (the next records) do not matter. */
  g_autoptr (GByteArray) longer = g_byte_array_new ();
  g_byte_array_append (longer, hello->data, hello->len);
  g_byte_array_append (longer, (const guint8 *) "\x14\x03\x03\x00\x01\x01",
                       6);
  assert_hello_ok (longer->data, longer->len, "hello.example.test");
}

static void
test_hello_without_sni (void)
{
  g_autoptr (GByteArray) hello = capture_client_hello (NULL);

  assert_hello_ok (hello->data, hello->len, NULL);
  assert_prefixes_incomplete (hello->data, hello->len);
}

static void
test_hello_split_records (void)
{
  g_autoptr (GByteArray) hello = capture_client_hello ("split.example.test");
  static const gsize fragments[] = { 1, 2, 3, 7, 64, 100, 511 };

  for (gsize i = 0; i < G_N_ELEMENTS (fragments); i++)
    {
      g_test_message ("records of %" G_GSIZE_FORMAT " bytes", fragments[i]);
      g_autoptr (GByteArray) split = refragment (hello, fragments[i]);
      assert_hello_ok (split->data, split->len, "split.example.test");
      assert_prefixes_incomplete (split->data, split->len);
    }

}

/*
 * Builds a TLS 1.2-style ClientHello in one record. @extensions is the raw
 * extensions block without its length, or NULL for no extensions block.
 */
static GByteArray *
build_hello (const guint8 *extensions, gsize extensions_len)
{
  GByteArray *body = g_byte_array_new ();
  static const guint8 version[] = { 3, 3 };
  guint8 random[32] = { 0 };
  static const guint8 session_id[] = { 0 };
  static const guint8 suites[] = { 0, 2, 0x13, 0x01 };
  static const guint8 compression[] = { 1, 0 };

  g_byte_array_append (body, version, 2);
  g_byte_array_append (body, random, 32);
  g_byte_array_append (body, session_id, 1);
  g_byte_array_append (body, suites, 4);
  g_byte_array_append (body, compression, 2);
  if (extensions != NULL)
    {
      guint8 len[2] = { (guint8) (extensions_len >> 8),
                        (guint8) extensions_len };
      g_byte_array_append (body, len, 2);
      g_byte_array_append (body, extensions, (guint) extensions_len);
    }

  GByteArray *out = g_byte_array_new ();
  gsize handshake_len = body->len + 4;
  guint8 record[5] = { 22, 3, 1, (guint8) (handshake_len >> 8),
                       (guint8) handshake_len };
  guint8 header[4] = { 1, 0, (guint8) (body->len >> 8), (guint8) body->len };
  g_byte_array_append (out, record, 5);
  g_byte_array_append (out, header, 4);
  g_byte_array_append (out, body->data, body->len);
  g_byte_array_unref (body);
  return out;
}

/*
 * A hello of about 2900 bytes fits in MOAT_SNIFF_MAX in one record but not
 * in 1-byte records, which cost 6 bytes per hello byte.
 */
static void
test_hello_split_limit (void)
{
  gsize padding_len = 2850;
  g_autofree guint8 *extensions = g_malloc0 (4 + padding_len);
  /* padding extension (RFC 7685), type 21. */
  extensions[1] = 21;
  extensions[2] = (guint8) (padding_len >> 8);
  extensions[3] = (guint8) padding_len;
  g_autoptr (GByteArray) hello = build_hello (extensions, 4 + padding_len);

  assert_hello_ok (hello->data, hello->len, NULL);
  g_autoptr (GByteArray) in_100 = refragment (hello, 100);
  assert_hello_ok (in_100->data, in_100->len, NULL);

  g_autoptr (GByteArray) in_1 = refragment (hello, 1);
  g_assert_cmpuint (in_1->len, >, MOAT_SNIFF_MAX);
  char *name = NULL;
  g_autoptr (GError) error = NULL;
  g_assert_cmpint (moat_tls_hello_parse (in_1->data, in_1->len, &name,
                                         &error),
                   ==, MOAT_TLS_HELLO_INVALID);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT);
  g_assert_null (name);

  /* The caller passes at most MOAT_SNIFF_MAX bytes: the limit shows as
   * soon as a record would need more. */
  g_clear_error (&error);
  g_assert_cmpint (moat_tls_hello_parse (in_1->data, MOAT_SNIFF_MAX, &name,
                                         &error),
                   ==, MOAT_TLS_HELLO_INVALID);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT);
}

/* Decodes hex digits; spaces are skipped. */
static GByteArray *
hex_bytes (const char *hex)
{
  GByteArray *bytes = g_byte_array_new ();
  for (const char *p = hex; *p != '\0';)
    {
      if (*p == ' ')
        {
          p++;
          continue;
        }
      int high = g_ascii_xdigit_value (p[0]);
      int low = g_ascii_xdigit_value (p[1]);
      g_assert_cmpint (high, >=, 0);
      g_assert_cmpint (low, >=, 0);
      guint8 byte = (guint8) (high << 4 | low);
      g_byte_array_append (bytes, &byte, 1);
      p += 2;
    }
  return bytes;
}

typedef struct {
  const char *description;
  /* Extensions block in hex, or NULL for a hello without one. */
  const char *extensions;
  /* Expected server name on success, or NULL. */
  const char *name;
  /* Substring of the error message, or NULL when the hello is valid. */
  const char *error;
} BuiltHelloCase;

/* server_name extension: type 0000, then lengths; "a.test" is 612e74657374. */
static const BuiltHelloCase built_cases[] = {
  { "no extensions block", NULL, NULL, NULL },
  { "empty extensions block", "", NULL, NULL },
  { "SNI a.test", "0000 000b 0009 00 0006 612e74657374", "a.test", NULL },
  { "SNI in upper case", "0000 000b 0009 00 0006 412e54455354", "a.test",
    NULL },
  { "SNI with underscore", "0000 000b 0009 00 0006 615f74657374", "a_test",
    NULL },
  { "SNI after another extension",
    "000a 0004 0002 0017 0000 000b 0009 00 0006 612e74657374", "a.test",
    NULL },
  { "unknown extension only", "ff01 0001 00", NULL, NULL },
  { "extension overruns block", "0000 000c 0009 00 0006 612e74657374", NULL,
    "extension overruns" },
  { "truncated extension header", "00", NULL, "extension overruns" },
  { "list length too long", "0000 000b 000a 00 0006 612e74657374", NULL,
    "list length" },
  { "list length too short", "0000 000b 0008 00 0006 612e74657374", NULL,
    "list length" },
  { "empty list", "0000 0002 0000", NULL, "list is empty" },
  { "empty extension body", "0000 0000", NULL, "list length" },
  { "name type 1", "0000 000b 0009 01 0006 612e74657374", NULL,
    "expected host_name" },
  { "name length overruns list", "0000 000b 0009 00 0007 612e74657374", NULL,
    "overruns its list" },
  { "empty name", "0000 0005 0003 00 0000", NULL, "not a valid host name" },
  { "name with a space", "0000 000b 0009 00 0006 61206d657374", NULL,
    "not a valid host name" },
  { "name with NUL", "0000 000b 0009 00 0006 61006d657374", NULL,
    "not a valid host name" },
  { "name with trailing dot", "0000 000b 0009 00 0006 612e7465732e", NULL,
    "not a valid host name" },
  { "two host names",
    "0000 0014 0012 00 0006 612e74657374 00 0006 622e74657374", NULL,
    "more than one host_name" },
  { "duplicate server_name extension",
    "0000 000b 0009 00 0006 612e74657374 0000 000b 0009 00 0006 622e74657374",
    NULL, "more than once" },
  { "duplicate other extension", "000a 0000 000a 0000", NULL,
    "more than once" },
};

static void
test_hello_built (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (built_cases); i++)
    {
      const BuiltHelloCase *test = &built_cases[i];
      g_autoptr (GByteArray) extensions = NULL;
      g_autoptr (GByteArray) hello = NULL;
      char *name = NULL;
      g_autoptr (GError) error = NULL;

      g_test_message ("case: %s", test->description);
      if (test->extensions != NULL)
        {
          extensions = hex_bytes (test->extensions);
          hello = build_hello (extensions->data, extensions->len);
        }
      else
        {
          hello = build_hello (NULL, 0);
        }

      MoatTlsHelloResult result =
          moat_tls_hello_parse (hello->data, hello->len, &name, &error);
      if (test->error == NULL)
        {
          g_assert_no_error (error);
          g_assert_cmpint (result, ==, MOAT_TLS_HELLO_OK);
          g_assert_cmpstr (name, ==, test->name);
        }
      else
        {
          g_assert_cmpint (result, ==, MOAT_TLS_HELLO_INVALID);
          g_assert_error (error, MOAT_ERROR, MOAT_ERROR_PROTOCOL);
          g_assert_nonnull (strstr (error->message, test->error));
          g_assert_null (name);
        }
      g_free (name);
    }
}

typedef struct {
  const char *description;
  /* Byte to overwrite in the captured hello, and its new value. */
  gsize offset;
  guint8 value;
  /* Truncate the input to this many bytes, or 0 to keep all of it. */
  gsize truncate;
  MoatTlsHelloResult result;
  const char *error;
} CorruptCase;

static void
test_hello_corrupted (void)
{
  g_autoptr (GByteArray) hello = capture_client_hello ("corrupt.test");
  /* Offsets: the record header is type (0), version (1-2) and length
   * (3-4). The handshake header is type (5) and length (6-8). Then come
   * legacy_version (9-10), the 32-byte random and the session id length
   * (43). */
  guint8 session_id_len = hello->data[43];
  const CorruptCase cases[] = {
    { "content type application_data", 0, 23, 0, MOAT_TLS_HELLO_INVALID,
      "content type 23" },
    { "content type alert, 1 byte", 0, 21, 1, MOAT_TLS_HELLO_INVALID,
      "content type 21" },
    { "record version major 2", 1, 2, 0, MOAT_TLS_HELLO_INVALID,
      "version major 2" },
    { "record version major 2, 2 bytes", 1, 2, 2, MOAT_TLS_HELLO_INVALID,
      "version major 2" },
    { "record length above 2^14", 3, 0x41, 0, MOAT_TLS_HELLO_INVALID,
      "has length" },
    { "record longer than the hello", 4, (guint8) (hello->data[4] + 1), 0,
      MOAT_TLS_HELLO_INVALID, "after the end of the hello" },
    { "handshake type server_hello", 5, 2, 0, MOAT_TLS_HELLO_INVALID,
      "handshake type 2" },
    { "handshake type server_hello, 6 bytes", 5, 2, 6,
      MOAT_TLS_HELLO_INVALID, "handshake type 2" },
    { "handshake length too short", 8, (guint8) (hello->data[8] - 1), 0,
      MOAT_TLS_HELLO_INVALID, "after the end of the hello" },
    { "handshake length too long", 7, (guint8) (hello->data[7] + 1), 0,
      MOAT_TLS_HELLO_INCOMPLETE, NULL },
    { "legacy_version 0x0203", 9, 2, 0, MOAT_TLS_HELLO_INVALID,
      "legacy_version" },
    { "session id longer than 32", 43, 33, 0, MOAT_TLS_HELLO_INVALID,
      "legacy_session_id length" },
    { "cipher suites length odd", (gsize) 44 + session_id_len + 1,
      (guint8) (hello->data[44 + session_id_len + 1] | 1), 0,
      MOAT_TLS_HELLO_INVALID, "cipher_suites length" },
    { "cipher suites length past the end", (gsize) 44 + session_id_len,
      0xfe, 0, MOAT_TLS_HELLO_INVALID, "cipher_suites length" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const CorruptCase *test = &cases[i];
      g_autoptr (GByteArray) copy = g_byte_array_new ();
      char *name = NULL;
      g_autoptr (GError) error = NULL;

      g_test_message ("case: %s", test->description);
      g_byte_array_append (copy, hello->data, hello->len);
      g_assert_cmpuint (test->offset, <, copy->len);
      copy->data[test->offset] = test->value;
      gsize length = test->truncate != 0 ? test->truncate : copy->len;

      MoatTlsHelloResult result =
          moat_tls_hello_parse (copy->data, length, &name, &error);
      g_assert_cmpint (result, ==, test->result);
      g_assert_null (name);
      if (test->error != NULL)
        {
          g_assert_nonnull (error);
          g_test_message ("error: %s", error->message);
          g_assert_nonnull (strstr (error->message, test->error));
        }
      else
        {
          g_assert_no_error (error);
        }
    }
}

typedef struct {
  const char *description;
  /* Input in hex. */
  const char *hex;
  gint code; /* MoatError */
  const char *error;
} RawInvalidCase;

static void
test_hello_raw_invalid (void)
{
  /* Non-TLS input is rejected from its first byte, so the caller can
   * classify other protocols at once. */
  static const RawInvalidCase cases[] = {
    { "HTTP request", "474554202f20485454502f312e310d0a", MOAT_ERROR_PROTOCOL,
      "content type 71" },
    { "HTTP, first byte only", "47", MOAT_ERROR_PROTOCOL,
      "content type 71" },
    { "SSH banner", "5353482d322e30", MOAT_ERROR_PROTOCOL,
      "content type 83" },
    { "SSLv2-style hello", "802e010301", MOAT_ERROR_PROTOCOL,
      "content type 128" },
    { "record length 0", "1603010000", MOAT_ERROR_PROTOCOL, "has length" },
    { "empty handshake body", "1603010004 01000000", MOAT_ERROR_PROTOCOL,
      "legacy_version is truncated" },
    { "second record not handshake",
      "1603010002 0100 1503010002 0000", MOAT_ERROR_PROTOCOL,
      "record 1 has content type 21" },
    { "record beyond the sniff limit",
      "1603010002 0100 1603014000", MOAT_ERROR_LIMIT, "does not fit" },
    { "hello larger than the sniff limit", "1603010004 01004000",
      MOAT_ERROR_LIMIT, "more than" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const RawInvalidCase *test = &cases[i];
      g_autoptr (GByteArray) bytes = hex_bytes (test->hex);
      char *name = NULL;
      g_autoptr (GError) error = NULL;

      g_test_message ("case: %s", test->description);
      g_assert_cmpint (moat_tls_hello_parse (bytes->data, bytes->len, &name,
                                             &error),
                       ==, MOAT_TLS_HELLO_INVALID);
      g_assert_error (error, MOAT_ERROR, test->code);
      g_test_message ("error: %s", error->message);
      g_assert_nonnull (strstr (error->message, test->error));
      g_assert_null (name);
    }
}

/*
 * Random byte changes to a real hello: every result must keep the
 * contract (an error exactly on INVALID, a valid name or none on OK). Run
 * under AddressSanitizer, this also checks that no read leaves the input.
 */
static void
test_hello_mutations (void)
{
  g_autoptr (GByteArray) hello = capture_client_hello ("mutate.example.test");
  guint counts[3] = { 0, 0, 0 };

  for (int round = 0; round < 20000; round++)
    {
      g_autofree guint8 *copy = g_memdup2 (hello->data, hello->len);
      int changes = g_test_rand_int_range (1, 4);
      for (int i = 0; i < changes; i++)
        copy[g_test_rand_int_range (0, (gint32) hello->len)] =
            (guint8) g_test_rand_int_range (0, 256);
      /* Truncate one input in four. */
      gsize length = hello->len;
      if (g_test_rand_int_range (0, 4) == 0)
        length = (gsize) g_test_rand_int_range (0, (gint32) hello->len);

      char *name = NULL;
      g_autoptr (GError) error = NULL;
      MoatTlsHelloResult result =
          moat_tls_hello_parse (copy, length, &name, &error);
      switch (result)
        {
        case MOAT_TLS_HELLO_INCOMPLETE:
        case MOAT_TLS_HELLO_OK:
        case MOAT_TLS_HELLO_INVALID:
          counts[result]++;
          break;
        default:
          g_assert_not_reached ();
        }

      if (result == MOAT_TLS_HELLO_INVALID)
        g_assert_nonnull (error);
      else
        g_assert_no_error (error);
      if (result == MOAT_TLS_HELLO_OK && name != NULL)
        g_assert_true (moat_tls_server_name_is_valid (name, strlen (name)));
      if (result != MOAT_TLS_HELLO_OK)
        g_assert_null (name);
      g_free (name);
    }

  g_test_message ("incomplete %u, ok %u, invalid %u", counts[0], counts[1],
                  counts[2]);
  /* Each outcome occurs, or the mutations test too little. */
  g_assert_cmpuint (counts[MOAT_TLS_HELLO_INCOMPLETE], >, 0);
  g_assert_cmpuint (counts[MOAT_TLS_HELLO_OK], >, 0);
  g_assert_cmpuint (counts[MOAT_TLS_HELLO_INVALID], >, 0);
}

static void
test_hello_too_large (void)
{
  /* A handshake header announcing more than MOAT_SNIFF_MAX bytes. */
  static const guint8 big[] = { 22, 3, 1, 0x40, 0x00, 1, 0x00, 0x40, 0x00 };
  char *name = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_cmpint (moat_tls_hello_parse (big, sizeof big, &name, &error), ==,
                   MOAT_TLS_HELLO_INVALID);
  g_assert_error (error, MOAT_ERROR, MOAT_ERROR_LIMIT);
  g_assert_null (name);
}

static void
test_server_name_validity (void)
{
  static const struct {
    const char *name;
    gboolean valid;
  } cases[] = {
    { "a", TRUE },
    { "example.test", TRUE },
    { "xn--bcher-kva.example", TRUE },
    { "a-b_c.test", TRUE },
    { "127.0.0.1", TRUE },
    { "", FALSE },
    { ".", FALSE },
    { "a.", FALSE },
    { ".a", FALSE },
    { "a..b", FALSE },
    { "a b", FALSE },
    { "a:b", FALSE },
    { "ä.test", FALSE },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_test_message ("case: \"%s\"", cases[i].name);
      g_assert_cmpint (moat_tls_server_name_is_valid (
                           cases[i].name, strlen (cases[i].name)),
                       ==, cases[i].valid);
    }

  g_autofree char *max_label = g_strnfill (63, 'a');
  g_autofree char *long_label = g_strnfill (64, 'a');
  g_assert_true (moat_tls_server_name_is_valid (max_label, 63));
  g_assert_false (moat_tls_server_name_is_valid (long_label, 64));

  /* 253 bytes: four labels of 63 and a dot between each, plus "a". */
  g_autofree char *max_name = g_strdup_printf ("%s.%s.%s.%s", max_label,
                                               max_label, max_label,
                                               "a");
  g_assert_cmpuint (strlen (max_name), ==, 63 * 3 + 3 + 1);
  g_assert_true (moat_tls_server_name_is_valid (max_name, strlen (max_name)));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/tls/ca/ephemeral", test_ca_ephemeral);
  g_test_add_func ("/tls/ca/names-differ", test_ca_names_differ);
  g_test_add_func ("/tls/ca/write-cert", test_ca_write_cert);
  g_test_add_func ("/tls/ca/load-roundtrip", test_ca_load_roundtrip);
  g_test_add_func ("/tls/ca/load-errors", test_ca_load_errors);
  g_test_add_func ("/tls/leaf/verifies", test_leaf_verifies);
  g_test_add_func ("/tls/leaf/ip-address", test_leaf_ip_address);
  g_test_add_func ("/tls/leaf/cache", test_leaf_cache);
  g_test_add_func ("/tls/leaf/invalid-names", test_leaf_invalid_names);
  g_test_add_func ("/tls/leaf/eviction", test_leaf_eviction);
  g_test_add_func ("/tls/server/handshake-sni", test_handshake_sni);
  g_test_add_func ("/tls/server/fallback-name", test_handshake_fallback_name);
  g_test_add_func ("/tls/server/tls12", test_handshake_tls12);
  g_test_add_func ("/tls/server/h2-only-client", test_handshake_h2_only);
  g_test_add_func ("/tls/server/failures", test_handshake_failures);
  g_test_add_func ("/tls/server/read-eof", test_read_eof);
  g_test_add_func ("/tls/server/renegotiation", test_renegotiation_rejected);
  g_test_add_func ("/tls/hello/captured", test_hello_captured);
  g_test_add_func ("/tls/hello/without-sni", test_hello_without_sni);
  g_test_add_func ("/tls/hello/split-records", test_hello_split_records);
  g_test_add_func ("/tls/hello/split-limit", test_hello_split_limit);
  g_test_add_func ("/tls/hello/built", test_hello_built);
  g_test_add_func ("/tls/hello/corrupted", test_hello_corrupted);
  g_test_add_func ("/tls/hello/raw-invalid", test_hello_raw_invalid);
  g_test_add_func ("/tls/hello/mutations", test_hello_mutations);
  g_test_add_func ("/tls/hello/too-large", test_hello_too_large);
  g_test_add_func ("/tls/hello/server-name-validity",
                   test_server_name_validity);

  return g_test_run ();
}
