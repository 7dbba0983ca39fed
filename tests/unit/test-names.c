/* SPDX-License-Identifier: GPL-2.0-or-later */
/* test-names.c - tests of the synthetic name and address table */
#include <arpa/inet.h>

#include "moat-limits.h"
#include "names.h"

/* Pool start used by every test: 10.0.2.64. */
#define POOL_FIRST 0x0a000240u

static struct in_addr
address_at (guint32 host_order)
{
  struct in_addr address = { .s_addr = htonl (host_order) };

  return address;
}

static void
assert_address (struct in_addr actual, guint32 expected_host_order)
{
  g_assert_cmphex (ntohl (actual.s_addr), ==, expected_host_order);
}

/* Evictions seen by record_eviction(). */
typedef struct {
  MoatNames *names;
  GPtrArray *evicted_names;
  GArray *evicted_addresses;
} EvictionLog;

static void
record_eviction (struct in_addr address, const char *name, gpointer user_data)
{
  EvictionLog *log = user_data;

  /* The old name must still map to the address while the callback runs. */
  g_assert_cmpstr (moat_names_lookup (log->names, address), ==, name);

  g_ptr_array_add (log->evicted_names, g_strdup (name));
  g_array_append_val (log->evicted_addresses, address.s_addr);
}

static void
eviction_log_init (EvictionLog *log)
{
  log->names = NULL;
  log->evicted_names = g_ptr_array_new_with_free_func (g_free);
  log->evicted_addresses = g_array_new (FALSE, FALSE, sizeof (guint32));
}

static void
eviction_log_clear (EvictionLog *log)
{
  g_ptr_array_unref (log->evicted_names);
  g_array_unref (log->evicted_addresses);
}

static void
test_allocation_order (void)
{
  g_autoptr (MoatNames) names = moat_names_new (address_at (POOL_FIRST), 8,
                                                NULL, NULL);
  const char *order[] = { "a.example", "b.example", "c.example", "d.test" };

  for (guint i = 0; i < G_N_ELEMENTS (order); i++)
    assert_address (moat_names_resolve (names, order[i]), POOL_FIRST + i);
}

static void
test_same_name_same_address (void)
{
  g_autoptr (MoatNames) names = moat_names_new (address_at (POOL_FIRST), 8,
                                                NULL, NULL);

  assert_address (moat_names_resolve (names, "a.example"), POOL_FIRST);
  assert_address (moat_names_resolve (names, "b.example"), POOL_FIRST + 1);
  assert_address (moat_names_resolve (names, "a.example"), POOL_FIRST);
  assert_address (moat_names_resolve (names, "b.example"), POOL_FIRST + 1);
  /* Repeated names must not use up addresses. */
  assert_address (moat_names_resolve (names, "c.example"), POOL_FIRST + 2);
}

static void
test_case_insensitive (void)
{
  g_autoptr (MoatNames) names = moat_names_new (address_at (POOL_FIRST), 8,
                                                NULL, NULL);

  assert_address (moat_names_resolve (names, "WWW.Example.COM"), POOL_FIRST);
  assert_address (moat_names_resolve (names, "www.example.com"), POOL_FIRST);
  assert_address (moat_names_resolve (names, "wWw.eXaMpLe.cOm"), POOL_FIRST);
  g_assert_cmpstr (moat_names_lookup (names, address_at (POOL_FIRST)), ==,
                   "www.example.com");
}

static void
test_reverse_lookup (void)
{
  g_autoptr (MoatNames) names = moat_names_new (address_at (POOL_FIRST), 8,
                                                NULL, NULL);

  moat_names_resolve (names, "a.example");
  moat_names_resolve (names, "b.example");

  g_assert_cmpstr (moat_names_lookup (names, address_at (POOL_FIRST)), ==,
                   "a.example");
  g_assert_cmpstr (moat_names_lookup (names, address_at (POOL_FIRST + 1)), ==,
                   "b.example");
  /* In the pool but not handed out yet. */
  g_assert_null (moat_names_lookup (names, address_at (POOL_FIRST + 2)));
  /* Outside the pool. */
  g_assert_null (moat_names_lookup (names, address_at (POOL_FIRST - 1)));
  g_assert_null (moat_names_lookup (names, address_at (0x7f000001)));
}

typedef struct {
  const char *description;
  guint32 address;
  gboolean contained;
} ContainsCase;

static void
test_contains_address (void)
{
  const ContainsCase cases[] = {
    { "one below the pool", POOL_FIRST - 1, FALSE },
    { "first address", POOL_FIRST, TRUE },
    { "last address", POOL_FIRST + 15, TRUE },
    { "one past the pool", POOL_FIRST + 16, FALSE },
    { "0.0.0.0", 0, FALSE },
    { "255.255.255.255", 0xffffffffu, FALSE },
  };
  g_autoptr (MoatNames) names = moat_names_new (address_at (POOL_FIRST), 16,
                                                NULL, NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_test_message ("case %" G_GSIZE_FORMAT ": %s", i, cases[i].description);
      g_assert_cmpint (moat_names_contains_address (
                         names, address_at (cases[i].address)),
                       ==, cases[i].contained);
    }
}

static void
test_pool_at_top_of_range (void)
{
  /* A pool that ends at 255.255.255.255 must not wrap to 0.0.0.0. */
  g_autoptr (MoatNames) names = moat_names_new (address_at (0xfffffffeu), 2,
                                                NULL, NULL);

  g_assert_true (moat_names_contains_address (names, address_at (0xffffffffu)));
  g_assert_false (moat_names_contains_address (names, address_at (0)));
  assert_address (moat_names_resolve (names, "a"), 0xfffffffeu);
  assert_address (moat_names_resolve (names, "b"), 0xffffffffu);
}

static void
test_lru_reuse (void)
{
  EvictionLog log;
  g_autoptr (MoatNames) names = NULL;

  eviction_log_init (&log);
  names = moat_names_new (address_at (POOL_FIRST), 3, record_eviction, &log);
  log.names = names;

  assert_address (moat_names_resolve (names, "a"), POOL_FIRST);
  assert_address (moat_names_resolve (names, "b"), POOL_FIRST + 1);
  assert_address (moat_names_resolve (names, "c"), POOL_FIRST + 2);
  g_assert_cmpuint (log.evicted_names->len, ==, 0);

  /* Using "a" again leaves "b" as the least recently used. */
  assert_address (moat_names_resolve (names, "a"), POOL_FIRST);
  assert_address (moat_names_resolve (names, "d"), POOL_FIRST + 1);
  g_assert_cmpuint (log.evicted_names->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (log.evicted_names, 0), ==, "b");
  g_assert_cmphex (ntohl (g_array_index (log.evicted_addresses, guint32, 0)),
                   ==, POOL_FIRST + 1);
  g_assert_cmpstr (moat_names_lookup (names, address_at (POOL_FIRST + 1)), ==,
                   "d");

  /* "b" comes back with the address of the next oldest, "c". */
  assert_address (moat_names_resolve (names, "b"), POOL_FIRST + 2);
  g_assert_cmpuint (log.evicted_names->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (log.evicted_names, 1), ==, "c");
  g_assert_cmphex (ntohl (g_array_index (log.evicted_addresses, guint32, 1)),
                   ==, POOL_FIRST + 2);

  /* The surviving names keep their addresses. */
  assert_address (moat_names_resolve (names, "a"), POOL_FIRST);
  assert_address (moat_names_resolve (names, "d"), POOL_FIRST + 1);
  assert_address (moat_names_resolve (names, "b"), POOL_FIRST + 2);
  g_assert_cmpuint (log.evicted_names->len, ==, 2);

  g_clear_pointer (&names, moat_names_free);
  eviction_log_clear (&log);
}

static void
test_lookup_marks_used (void)
{
  EvictionLog log;
  g_autoptr (MoatNames) names = NULL;

  eviction_log_init (&log);
  names = moat_names_new (address_at (POOL_FIRST), 2, record_eviction, &log);
  log.names = names;

  moat_names_resolve (names, "a");
  moat_names_resolve (names, "b");
  /* A connection to "a"'s address makes "b" the least recently used. */
  g_assert_cmpstr (moat_names_lookup (names, address_at (POOL_FIRST)), ==,
                   "a");
  assert_address (moat_names_resolve (names, "c"), POOL_FIRST + 1);
  g_assert_cmpuint (log.evicted_names->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (log.evicted_names, 0), ==, "b");

  g_clear_pointer (&names, moat_names_free);
  eviction_log_clear (&log);
}

static void
test_reuse_without_callback (void)
{
  g_autoptr (MoatNames) names = moat_names_new (address_at (POOL_FIRST), 1,
                                                NULL, NULL);

  assert_address (moat_names_resolve (names, "a"), POOL_FIRST);
  assert_address (moat_names_resolve (names, "b"), POOL_FIRST);
  g_assert_cmpstr (moat_names_lookup (names, address_at (POOL_FIRST)), ==,
                   "b");
  assert_address (moat_names_resolve (names, "a"), POOL_FIRST);
}

static void
test_names_max (void)
{
  EvictionLog log;
  g_autoptr (MoatNames) names = NULL;
  const guint pool_size = MOAT_NAMES_MAX + 100;

  eviction_log_init (&log);
  names = moat_names_new (address_at (POOL_FIRST), pool_size,
                          record_eviction, &log);
  log.names = names;

  for (guint i = 0; i < MOAT_NAMES_MAX; i++)
    {
      g_autofree char *name = g_strdup_printf ("host%u.example", i);

      assert_address (moat_names_resolve (names, name), POOL_FIRST + i);
    }
  g_assert_cmpuint (log.evicted_names->len, ==, 0);

  /* The table is full although the pool is not, so the address of the
   * oldest name is reused rather than a new one. */
  assert_address (moat_names_resolve (names, "one-more.example"), POOL_FIRST);
  g_assert_cmpuint (log.evicted_names->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (log.evicted_names, 0), ==,
                   "host0.example");
  g_assert_null (moat_names_lookup (names,
                                    address_at (POOL_FIRST + MOAT_NAMES_MAX)));
  g_assert_true (moat_names_contains_address (
                   names, address_at (POOL_FIRST + pool_size - 1)));

  g_clear_pointer (&names, moat_names_free);
  eviction_log_clear (&log);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/names/allocation-order", test_allocation_order);
  g_test_add_func ("/names/same-name-same-address",
                   test_same_name_same_address);
  g_test_add_func ("/names/case-insensitive", test_case_insensitive);
  g_test_add_func ("/names/reverse-lookup", test_reverse_lookup);
  g_test_add_func ("/names/contains-address", test_contains_address);
  g_test_add_func ("/names/pool-at-top-of-range", test_pool_at_top_of_range);
  g_test_add_func ("/names/lru/reuse", test_lru_reuse);
  g_test_add_func ("/names/lru/lookup-marks-used", test_lookup_marks_used);
  g_test_add_func ("/names/lru/reuse-without-callback",
                   test_reuse_without_callback);
  g_test_add_func ("/names/lru/names-max", test_names_max);

  return g_test_run ();
}
