/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tls_ca.c - the session CA and the leaf certificates it mints per name */
#define G_LOG_DOMAIN "moat-tls"

#include "tls.h"

#include <arpa/inet.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "moat-limits.h"

/*
 * Validity of an ephemeral CA. It starts an hour in the past so that a guest
 * whose clock lags the host's a little still accepts it. Its key lives only
 * in memory for one session, so the end date only needs to outlast any
 * plausible session: one year, which also bounds every leaf it signs.
 */
#define CA_BACKDATE_S (60 * 60)
#define CA_LIFETIME_S (365 * 24 * 60 * 60)

/*
 * Leaf validity: from an hour in the past (clock skew, as above) for 397
 * days at most, within the 398-day maximum that the CA/Browser Forum
 * Baseline Requirements set and browsers enforce, and never past the CA's
 * own expiration.
 */
#define LEAF_BACKDATE_S (60 * 60)
#define LEAF_LIFETIME_S (397 * 24 * 60 * 60)
/* A cached leaf this close to its expiration is minted again. */
#define LEAF_RENEW_MARGIN_S (24 * 60 * 60)

/* X.509 serial numbers: 16 random bytes (RFC 5280 section 4.1.2.2). */
#define SERIAL_LEN 16

/* ub-common-name (RFC 5280 appendix A.1): longer names go in the SAN only. */
#define COMMON_NAME_MAX 64

/* Largest key identifier GnuTLS returns for SHA-1 or SHA-256 key ids. */
#define KEY_ID_MAX 64

struct MoatLeaf {
  guint refcount;
  char *name; /* lowercase, the cache key */
  gnutls_certificate_credentials_t credentials; /* chain leaf + CA */
  time_t not_after;
  GList lru_link; /* in MoatCa.lru while cached; data points to the leaf */
};

struct MoatCa {
  gnutls_x509_crt_t cert;
  gnutls_x509_privkey_t key;
  /* One key shared by all leaves: minting then costs one signature. */
  gnutls_x509_privkey_t leaf_key;
  guint8 subject_key_id[KEY_ID_MAX];
  size_t subject_key_id_size;
  guint8 leaf_key_id[KEY_ID_MAX];
  size_t leaf_key_id_size;
  gnutls_digest_algorithm_t sign_digest;
  time_t not_after;
  GHashTable *leaves; /* lowercase name -> MoatLeaf, holding one reference */
  GQueue lru; /* of MoatLeaf.lru_link, most recently used first */
};

G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gnutls_x509_crt_t, gnutls_x509_crt_deinit,
                                 NULL)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gnutls_x509_privkey_t,
                                 gnutls_x509_privkey_deinit, NULL)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gnutls_pubkey_t, gnutls_pubkey_deinit, NULL)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC (gnutls_certificate_credentials_t,
                                 gnutls_certificate_free_credentials, NULL)

static gboolean
set_gnutls_error (int ret, const char *what, GError **error)
{
  g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS, "%s failed: %s", what,
               gnutls_strerror (ret));
  return FALSE;
}

MoatLeaf *
moat_leaf_ref (MoatLeaf *leaf)
{
  g_return_val_if_fail (leaf != NULL, NULL);

  leaf->refcount++;
  return leaf;
}

void
moat_leaf_unref (MoatLeaf *leaf)
{
  if (leaf == NULL)
    return;

  g_assert (leaf->refcount > 0);
  if (--leaf->refcount > 0)
    return;

  gnutls_certificate_free_credentials (leaf->credentials);
  g_free (leaf->name);
  g_free (leaf);
}

gnutls_certificate_credentials_t
moat_leaf_get_credentials (const MoatLeaf *leaf)
{
  g_return_val_if_fail (leaf != NULL, NULL);

  return leaf->credentials;
}

/* Removes @leaf from the cache and drops the cache's reference. */
static void
evict_leaf (MoatCa *ca, MoatLeaf *leaf)
{
  g_queue_unlink (&ca->lru, &leaf->lru_link);
  /* The hash table's value destructor drops the cache's reference. */
  g_hash_table_remove (ca->leaves, leaf->name);
}

void
moat_ca_free (MoatCa *ca)
{
  if (ca == NULL)
    return;

  /* ca->leaves is NULL when creation failed before ca_prepare(). */
  while (ca->lru.head != NULL)
    evict_leaf (ca, ca->lru.head->data);
  g_clear_pointer (&ca->leaves, g_hash_table_unref);
  gnutls_x509_crt_deinit (ca->cert);
  gnutls_x509_privkey_deinit (ca->key);
  gnutls_x509_privkey_deinit (ca->leaf_key);
  g_free (ca);
}

/* Fills @serial with a random positive serial of minimal DER encoding. */
static gboolean
random_serial (guint8 serial[SERIAL_LEN], GError **error)
{
  int ret = gnutls_rnd (GNUTLS_RND_NONCE, serial, SERIAL_LEN);
  if (ret < 0)
    return set_gnutls_error (ret, "generating a certificate serial", error);

  /* Top bit clear keeps the INTEGER positive, the next bit set keeps the
   * first byte nonzero so the 16 bytes are the minimal encoding. */
  serial[0] = (serial[0] & 0x7f) | 0x40;
  return TRUE;
}

static gnutls_x509_privkey_t
generate_p256_key (GError **error)
{
  g_auto (gnutls_x509_privkey_t) key = NULL;
  int ret = gnutls_x509_privkey_init (&key);
  if (ret < 0)
    {
      set_gnutls_error (ret, "allocating a private key", error);
      return NULL;
    }

  ret = gnutls_x509_privkey_generate (
      key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS (GNUTLS_ECC_CURVE_SECP256R1),
      0);
  if (ret < 0)
    {
      set_gnutls_error (ret, "generating an ECDSA P-256 key", error);
      return NULL;
    }

  return g_steal_pointer (&key);
}

/*
 * Picks the digest for signatures made with the CA key: the one GnuTLS
 * 3.7.9 prefers for that key (SHA-256 for P-256 and RSA-2048, SHA-384 for
 * P-384 and RSA-4096).
 */
static gboolean
choose_sign_digest (MoatCa *ca, GError **error)
{
  g_auto (gnutls_pubkey_t) pubkey = NULL;
  int ret = gnutls_pubkey_init (&pubkey);
  if (ret >= 0)
    ret = gnutls_pubkey_import_x509 (pubkey, ca->cert, 0);
  if (ret >= 0)
    ret = gnutls_pubkey_get_preferred_hash_algorithm (pubkey,
                                                      &ca->sign_digest, NULL);
  if (ret < 0)
    return set_gnutls_error (ret, "choosing the CA signature digest", error);

  return TRUE;
}

/*
 * Finishes a CA once cert and key are set: records the key identifiers,
 * generates the shared leaf key and creates the empty leaf cache.
 */
static gboolean
ca_prepare (MoatCa *ca, GError **error)
{
  ca->subject_key_id_size = sizeof ca->subject_key_id;
  int ret = gnutls_x509_crt_get_subject_key_id (
      ca->cert, ca->subject_key_id, &ca->subject_key_id_size, NULL);
  if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
    {
      /* A loaded CA without the extension: use the SHA-1 key identifier
       * that GnuTLS computes from its public key. */
      ca->subject_key_id_size = sizeof ca->subject_key_id;
      ret = gnutls_x509_crt_get_key_id (ca->cert, GNUTLS_KEYID_USE_SHA1,
                                        ca->subject_key_id,
                                        &ca->subject_key_id_size);
    }
  if (ret < 0)
    return set_gnutls_error (ret, "reading the CA subject key identifier",
                             error);

  ca->not_after = gnutls_x509_crt_get_expiration_time (ca->cert);

  if (!choose_sign_digest (ca, error))
    return FALSE;

  ca->leaf_key = generate_p256_key (error);
  if (ca->leaf_key == NULL)
    return FALSE;

  ca->leaf_key_id_size = sizeof ca->leaf_key_id;
  ret = gnutls_x509_privkey_get_key_id (ca->leaf_key, GNUTLS_KEYID_USE_SHA1,
                                        ca->leaf_key_id,
                                        &ca->leaf_key_id_size);
  if (ret < 0)
    return set_gnutls_error (ret, "computing the leaf key identifier", error);

  ca->leaves = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                      (GDestroyNotify) moat_leaf_unref);
  g_queue_init (&ca->lru);
  return TRUE;
}

static gboolean
build_ca_certificate (MoatCa *ca, GError **error)
{
  guint8 serial[SERIAL_LEN];
  if (!random_serial (serial, error))
    return FALSE;

  guint8 suffix[4];
  int ret = gnutls_rnd (GNUTLS_RND_NONCE, suffix, sizeof suffix);
  if (ret < 0)
    return set_gnutls_error (ret, "generating the CA name", error);
  /* The suffix distinguishes the CAs of different sessions in a trust
   * store. */
  g_autofree char *common_name = g_strdup_printf (
      "moat session CA %02x%02x%02x%02x", suffix[0], suffix[1], suffix[2],
      suffix[3]);

  time_t now = time (NULL);
  guint8 key_id[KEY_ID_MAX];
  size_t key_id_size = sizeof key_id;

  ret = gnutls_x509_crt_init (&ca->cert);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_version (ca->cert, 3);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_serial (ca->cert, serial, sizeof serial);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_activation_time (ca->cert, now - CA_BACKDATE_S);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_expiration_time (ca->cert, now + CA_LIFETIME_S);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_dn_by_oid (ca->cert, GNUTLS_OID_X520_COMMON_NAME,
                                         0, common_name, strlen (common_name));
  if (ret >= 0)
    ret = gnutls_x509_crt_set_dn_by_oid (ca->cert,
                                         GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
                                         "moat", strlen ("moat"));
  if (ret >= 0)
    ret = gnutls_x509_crt_set_key (ca->cert, ca->key);
  /* GnuTLS marks basicConstraints and keyUsage critical
   * (RFC 5280 sections 4.2.1.9 and 4.2.1.3). pathLenConstraint 0: this CA
   * signs leaves only. */
  if (ret >= 0)
    ret = gnutls_x509_crt_set_basic_constraints (ca->cert, 1, 0);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_key_usage (
        ca->cert, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
  if (ret >= 0)
    ret = gnutls_x509_privkey_get_key_id (ca->key, GNUTLS_KEYID_USE_SHA1,
                                          key_id, &key_id_size);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_subject_key_id (ca->cert, key_id, key_id_size);
  if (ret >= 0)
    ret = gnutls_x509_crt_sign2 (ca->cert, ca->cert, ca->key,
                                 GNUTLS_DIG_SHA256, 0);
  if (ret < 0)
    return set_gnutls_error (ret, "creating the session CA certificate",
                             error);

  return TRUE;
}

/**
 * moat_ca_new_ephemeral:
 * @error: return location for a MOAT_ERROR_TLS error
 *
 * Creates a CA for one session: a new ECDSA P-256 key and a self-signed
 * certificate. The key never leaves memory.
 *
 * Return: the CA, or NULL on error
 */
MoatCa *
moat_ca_new_ephemeral (GError **error)
{
  g_autoptr (MoatCa) ca = g_new0 (MoatCa, 1);

  ca->key = generate_p256_key (error);
  if (ca->key == NULL)
    return NULL;

  if (!build_ca_certificate (ca, error))
    return NULL;

  if (!ca_prepare (ca, error))
    return NULL;

  return g_steal_pointer (&ca);
}

static gboolean
read_pem_file (const char *path, const char *what, gnutls_datum_t *datum,
               char **contents, GError **error)
{
  gsize length = 0;
  g_autoptr (GError) local_error = NULL;

  if (!g_file_get_contents (path, contents, &length, &local_error))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "cannot read %s %s: %s", what, path, local_error->message);
      return FALSE;
    }

  if (length > G_MAXUINT)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_CONFIG,
                   "%s %s is too large (%" G_GSIZE_FORMAT " bytes)", what,
                   path, length);
      return FALSE;
    }

  datum->data = (unsigned char *) *contents;
  datum->size = (unsigned int) length;
  return TRUE;
}

/* Checks that @cert may sign certificates: CA:TRUE and, when keyUsage is
 * present, keyCertSign (RFC 5280 section 4.2.1.3). */
static gboolean
check_is_ca (gnutls_x509_crt_t cert, const char *cert_path, GError **error)
{
  unsigned int critical = 0;
  unsigned int is_ca = 0;
  int path_len = -1;
  int ret = gnutls_x509_crt_get_basic_constraints (cert, &critical, &is_ca,
                                                   &path_len);
  if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE || (ret >= 0 && !is_ca))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "CA certificate %s is not a CA: it lacks basicConstraints "
                   "CA:TRUE; create a CA certificate",
                   cert_path);
      return FALSE;
    }
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "CA certificate %s has an invalid basicConstraints "
                   "extension: %s",
                   cert_path, gnutls_strerror (ret));
      return FALSE;
    }

  unsigned int key_usage = 0;
  ret = gnutls_x509_crt_get_key_usage (cert, &key_usage, &critical);
  if (ret >= 0 && !(key_usage & GNUTLS_KEY_KEY_CERT_SIGN))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "CA certificate %s is not a CA: its keyUsage lacks "
                   "keyCertSign; create a CA certificate",
                   cert_path);
      return FALSE;
    }
  if (ret < 0 && ret != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "CA certificate %s has an invalid keyUsage extension: %s",
                   cert_path, gnutls_strerror (ret));
      return FALSE;
    }

  return TRUE;
}

static gboolean
check_key_matches (MoatCa *ca, const char *cert_path, const char *key_path,
                   GError **error)
{
  guint8 cert_id[KEY_ID_MAX];
  size_t cert_id_size = sizeof cert_id;
  guint8 key_id[KEY_ID_MAX];
  size_t key_id_size = sizeof key_id;

  int ret = gnutls_x509_crt_get_key_id (ca->cert, GNUTLS_KEYID_USE_SHA256,
                                        cert_id, &cert_id_size);
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "cannot read the public key of CA certificate %s: %s",
                   cert_path, gnutls_strerror (ret));
      return FALSE;
    }

  ret = gnutls_x509_privkey_get_key_id (ca->key, GNUTLS_KEYID_USE_SHA256,
                                        key_id, &key_id_size);
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "cannot compute the public key of CA key %s: %s", key_path,
                   gnutls_strerror (ret));
      return FALSE;
    }

  if (cert_id_size != key_id_size
      || memcmp (cert_id, key_id, key_id_size) != 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "CA key %s does not match CA certificate %s; use the key "
                   "the certificate was created with",
                   key_path, cert_path);
      return FALSE;
    }

  return TRUE;
}

/**
 * moat_ca_load:
 * @cert_path: PEM file with the CA certificate (the first one is used)
 * @key_path: PEM file with its unencrypted private key (PKCS#1, PKCS#8 or
 *   SEC 1)
 * @error: return location for a MOAT_ERROR_CONFIG error when a file cannot
 *   be read, or MOAT_ERROR_TLS when its contents are unusable
 *
 * Loads a persistent CA, for guests that have its certificate installed.
 * The CA must have CA:TRUE, keyCertSign when keyUsage is present, a key that
 * matches, and must not have expired.
 *
 * Return: the CA, or NULL on error
 */
MoatCa *
moat_ca_load (const char *cert_path, const char *key_path, GError **error)
{
  g_return_val_if_fail (cert_path != NULL, NULL);
  g_return_val_if_fail (key_path != NULL, NULL);

  g_autoptr (MoatCa) ca = g_new0 (MoatCa, 1);
  g_autofree char *cert_text = NULL;
  g_autofree char *key_text = NULL;
  gnutls_datum_t cert_datum;
  gnutls_datum_t key_datum;

  if (!read_pem_file (cert_path, "CA certificate", &cert_datum, &cert_text,
                      error))
    return NULL;
  if (!read_pem_file (key_path, "CA key", &key_datum, &key_text, error))
    return NULL;

  int ret = gnutls_x509_crt_init (&ca->cert);
  if (ret < 0)
    {
      set_gnutls_error (ret, "allocating a certificate", error);
      return NULL;
    }
  ret = gnutls_x509_crt_import (ca->cert, &cert_datum, GNUTLS_X509_FMT_PEM);
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "CA certificate %s is not a PEM X.509 certificate: %s",
                   cert_path, gnutls_strerror (ret));
      return NULL;
    }

  ret = gnutls_x509_privkey_init (&ca->key);
  if (ret < 0)
    {
      set_gnutls_error (ret, "allocating a private key", error);
      return NULL;
    }
  ret = gnutls_x509_privkey_import2 (ca->key, &key_datum, GNUTLS_X509_FMT_PEM,
                                     NULL, 0);
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "CA key %s is not an unencrypted PEM private key: %s",
                   key_path, gnutls_strerror (ret));
      return NULL;
    }

  if (!check_is_ca (ca->cert, cert_path, error))
    return NULL;
  if (!check_key_matches (ca, cert_path, key_path, error))
    return NULL;

  time_t expiration = gnutls_x509_crt_get_expiration_time (ca->cert);
  if (expiration != (time_t) -1 && expiration <= time (NULL))
    {
      g_autoptr (GDateTime) when = g_date_time_new_from_unix_utc (expiration);
      g_autofree char *text =
          when != NULL ? g_date_time_format_iso8601 (when) : NULL;
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "CA certificate %s expired on %s; create a new CA", cert_path,
                   text != NULL ? text : "an unrepresentable date");
      return NULL;
    }

  if (!ca_prepare (ca, error))
    return NULL;

  return g_steal_pointer (&ca);
}

/**
 * moat_ca_get_cert_pem:
 * @ca: the CA
 *
 * Return: (transfer full): the CA certificate in PEM, for installing in a
 *   guest's trust store, or NULL if GnuTLS cannot encode it
 */
char *
moat_ca_get_cert_pem (const MoatCa *ca)
{
  g_return_val_if_fail (ca != NULL, NULL);

  gnutls_datum_t pem = { NULL, 0 };
  int ret = gnutls_x509_crt_export2 (ca->cert, GNUTLS_X509_FMT_PEM, &pem);
  if (ret < 0)
    {
      g_warning ("exporting the CA certificate failed: %s",
                 gnutls_strerror (ret));
      return NULL;
    }

  char *text = g_strndup ((const char *) pem.data, pem.size);
  gnutls_free (pem.data);
  return text;
}

/**
 * moat_ca_write_cert:
 * @ca: the CA
 * @path: file to create or replace, with mode 0644
 * @error: return location for a MOAT_ERROR_IO error
 *
 * Writes the CA certificate in PEM. The file is replaced atomically, so a
 * reader never sees a partial certificate.
 *
 * Return: TRUE on success
 */
gboolean
moat_ca_write_cert (const MoatCa *ca, const char *path, GError **error)
{
  g_return_val_if_fail (ca != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);

  g_autofree char *pem = moat_ca_get_cert_pem (ca);
  if (pem == NULL)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "cannot encode the CA certificate for %s", path);
      return FALSE;
    }

  /* GLib writes a temporary file next to @path first, and its errors
   * name that file; a missing folder is the common mistake, so name it. */
  g_autofree char *folder = g_path_get_dirname (path);
  if (!g_file_test (folder, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "cannot write the CA certificate to %s: the folder %s "
                   "does not exist; create it, or choose another path with "
                   "--ca-cert-out or [tls] ca-cert-out",
                   path, folder);
      return FALSE;
    }

  g_autoptr (GError) local_error = NULL;
  if (!g_file_set_contents_full (path, pem, -1,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0644,
                                 &local_error))
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_IO,
                   "cannot write the CA certificate to %s: %s", path,
                   local_error->message);
      return FALSE;
    }

  return TRUE;
}

/*
 * Converts @server_name to the cache key: lowercase for host names, the
 * canonical text form for IP literals, whose binary form goes to @ip.
 * Return: the key, or NULL if the name is neither a valid host name nor an
 * IP literal.
 */
static char *
normalize_server_name (const char *server_name, guint8 ip[16], gsize *ip_len)
{
  *ip_len = 0;

  if (strchr (server_name, ':') != NULL)
    {
      char text[INET6_ADDRSTRLEN];
      if (inet_pton (AF_INET6, server_name, ip) != 1
          || inet_ntop (AF_INET6, ip, text, sizeof text) == NULL)
        return NULL;
      *ip_len = 16;
      return g_strdup (text);
    }

  gsize length = strlen (server_name);
  if (!moat_tls_server_name_is_valid (server_name, length))
    return NULL;

  if (inet_pton (AF_INET, server_name, ip) == 1)
    *ip_len = 4;
  return g_ascii_strdown (server_name, length);
}

static gnutls_certificate_credentials_t
mint_leaf (MoatCa *ca, const char *name, const guint8 *ip, gsize ip_len,
           time_t *not_after_out, GError **error)
{
  guint8 serial[SERIAL_LEN];
  if (!random_serial (serial, error))
    return NULL;

  time_t now = time (NULL);
  time_t not_before = now - LEAF_BACKDATE_S;
  time_t not_after = not_before + LEAF_LIFETIME_S;
  if (ca->not_after != (time_t) -1 && not_after > ca->not_after)
    not_after = ca->not_after;

  g_auto (gnutls_x509_crt_t) leaf = NULL;
  gsize name_len = strlen (name);

  int ret = gnutls_x509_crt_init (&leaf);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_version (leaf, 3);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_serial (leaf, serial, sizeof serial);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_activation_time (leaf, not_before);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_expiration_time (leaf, not_after);
  /* Clients match the SAN (RFC 6125 section 6.4.4); the CN is for people
   * reading the certificate and is limited to 64 characters. */
  if (ret >= 0 && name_len <= COMMON_NAME_MAX)
    ret = gnutls_x509_crt_set_dn_by_oid (leaf, GNUTLS_OID_X520_COMMON_NAME, 0,
                                         name, name_len);
  if (ret >= 0)
    {
      if (ip_len > 0)
        ret = gnutls_x509_crt_set_subject_alt_name (
            leaf, GNUTLS_SAN_IPADDRESS, ip, ip_len, GNUTLS_FSAN_SET);
      else
        ret = gnutls_x509_crt_set_subject_alt_name (
            leaf, GNUTLS_SAN_DNSNAME, name, name_len, GNUTLS_FSAN_SET);
    }
  if (ret >= 0)
    ret = gnutls_x509_crt_set_key (leaf, ca->leaf_key);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_basic_constraints (leaf, 0, -1);
  /* ECDSA keys sign the handshake: digitalSignature only. */
  if (ret >= 0)
    ret = gnutls_x509_crt_set_key_usage (leaf,
                                         GNUTLS_KEY_DIGITAL_SIGNATURE);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_key_purpose_oid (leaf, GNUTLS_KP_TLS_WWW_SERVER,
                                               0);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_subject_key_id (leaf, ca->leaf_key_id,
                                              ca->leaf_key_id_size);
  if (ret >= 0)
    ret = gnutls_x509_crt_set_authority_key_id (leaf, ca->subject_key_id,
                                                ca->subject_key_id_size);
  if (ret >= 0)
    ret = gnutls_x509_crt_sign2 (leaf, ca->cert, ca->key, ca->sign_digest, 0);
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "creating the leaf certificate for %s failed: %s", name,
                   gnutls_strerror (ret));
      return NULL;
    }

  g_auto (gnutls_certificate_credentials_t) credentials = NULL;
  gnutls_x509_crt_t chain[2] = { leaf, ca->cert };

  ret = gnutls_certificate_allocate_credentials (&credentials);
  /* GnuTLS copies the certificates and the key. */
  if (ret >= 0)
    ret = gnutls_certificate_set_x509_key (credentials, chain,
                                           G_N_ELEMENTS (chain),
                                           ca->leaf_key);
  if (ret < 0)
    {
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "creating credentials for %s failed: %s", name,
                   gnutls_strerror (ret));
      return NULL;
    }

  *not_after_out = not_after;
  return g_steal_pointer (&credentials);
}

/**
 * moat_ca_ref_leaf:
 * @ca: the CA
 * @server_name: a host name or IP literal, in any case
 * @error: return location for a MOAT_ERROR_TLS error
 *
 * Returns the leaf for @server_name from the cache, or mints one signed by
 * @ca and caches it. The cache keeps at most MOAT_LEAF_CACHE_MAX leaves and
 * evicts the least recently used one. Eviction drops only the cache's
 * reference, so a session holding a leaf keeps it valid. Not thread safe:
 * call it from the main loop only.
 *
 * Return: (transfer full): a new reference to the leaf, or NULL if
 *   @server_name is not a valid host name or IP literal or minting failed
 */
MoatLeaf *
moat_ca_ref_leaf (MoatCa *ca, const char *server_name, GError **error)
{
  g_return_val_if_fail (ca != NULL, NULL);
  g_return_val_if_fail (server_name != NULL, NULL);

  guint8 ip[16];
  gsize ip_len = 0;
  g_autofree char *name = normalize_server_name (server_name, ip, &ip_len);
  if (name == NULL)
    {
      g_autofree char *escaped = g_strescape (server_name, NULL);
      g_set_error (error, MOAT_ERROR, MOAT_ERROR_TLS,
                   "cannot mint a certificate for \"%s\": not a valid host "
                   "name or IP address",
                   escaped);
      return NULL;
    }

  time_t now = time (NULL);
  MoatLeaf *leaf = g_hash_table_lookup (ca->leaves, name);
  if (leaf != NULL && leaf->not_after - LEAF_RENEW_MARGIN_S > now)
    {
      g_queue_unlink (&ca->lru, &leaf->lru_link);
      g_queue_push_head_link (&ca->lru, &leaf->lru_link);
      return moat_leaf_ref (leaf);
    }
  if (leaf != NULL)
    evict_leaf (ca, leaf);

  time_t not_after = 0;
  gnutls_certificate_credentials_t credentials =
      mint_leaf (ca, name, ip, ip_len, &not_after, error);
  if (credentials == NULL)
    return NULL;

  if (g_queue_get_length (&ca->lru) >= MOAT_LEAF_CACHE_MAX)
    evict_leaf (ca, ca->lru.tail->data);

  leaf = g_new0 (MoatLeaf, 1);
  leaf->refcount = 1;
  leaf->name = g_steal_pointer (&name);
  leaf->credentials = credentials;
  leaf->not_after = not_after;
  leaf->lru_link.data = leaf;
  g_hash_table_insert (ca->leaves, leaf->name, leaf);
  g_queue_push_head_link (&ca->lru, &leaf->lru_link);

  g_debug ("minted a leaf certificate for %s", leaf->name);
  return moat_leaf_ref (leaf);
}

/**
 * moat_ca_get_leaf:
 * @ca: the CA
 * @server_name: a host name or IP literal, in any case
 * @error: return location for a MOAT_ERROR_TLS error
 *
 * Like moat_ca_ref_leaf(), but the credentials stay owned by the cache: they
 * remain valid until MOAT_LEAF_CACHE_MAX other names evict them or @ca is
 * freed. A TLS session that outlives that should use moat_ca_ref_leaf().
 *
 * Return: (transfer none): credentials with the chain leaf + CA, or NULL
 */
gnutls_certificate_credentials_t
moat_ca_get_leaf (MoatCa *ca, const char *server_name, GError **error)
{
  g_autoptr (MoatLeaf) leaf = moat_ca_ref_leaf (ca, server_name, error);
  if (leaf == NULL)
    return NULL;

  /* The cache keeps its own reference, so the credentials outlive ours. */
  return leaf->credentials;
}
