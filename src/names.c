/* SPDX-License-Identifier: GPL-2.0-or-later */
/* names.c - the table of synthetic addresses handed out by moat's DNS */
#define G_LOG_DOMAIN "moat-names"

#include "names.h"

#include "moat-limits.h"

/*
 * Each name owns one address of the pool until the table is full. Two hash
 * tables find entries by name and by address. A queue keeps the entries in
 * order of last use, most recent at the head, so the tail is the entry whose
 * address is reused next.
 */

/**
 * NameEntry:
 * @name: lowercase name, owned
 * @address: address in host byte order
 * @link: node of this entry in #MoatNames.lru, whose data points back to
 *   the entry
 */
typedef struct {
  char *name;
  guint32 address;
  GList link;
} NameEntry;

/**
 * MoatNames:
 * @first: first address of the pool, host byte order
 * @count: number of addresses in the pool
 * @capacity: maximum number of entries, the smaller of @count and
 *   %MOAT_NAMES_MAX
 * @allocated: number of addresses handed out so far, from @first to
 *   @first + @allocated - 1
 * @by_name: name to #NameEntry, owns the entries
 * @by_address: address (host byte order, as a pointer) to #NameEntry
 * @lru: entries, most recently used first
 * @evict: called before an entry's address is given to another name
 * @user_data: passed to @evict
 */
struct MoatNames {
  guint32 first;
  guint count;
  guint capacity;
  guint allocated;
  GHashTable *by_name;
  GHashTable *by_address;
  GQueue lru;
  MoatNamesEvictFunc evict;
  gpointer user_data;
};

static void
name_entry_free (gpointer data)
{
  NameEntry *entry = data;

  g_free (entry->name);
  g_free (entry);
}

static struct in_addr
to_in_addr (guint32 host_order)
{
  struct in_addr address = { .s_addr = g_htonl (host_order) };

  return address;
}

/**
 * moat_names_new:
 * @first: first address of the pool
 * @count: number of consecutive addresses in the pool, at least 1
 * @evict: (nullable): called before an address is reused for another name
 * @user_data: passed to @evict
 *
 * Creates an empty table. At most %MOAT_NAMES_MAX names are kept at once, so
 * addresses of a larger pool beyond the first %MOAT_NAMES_MAX are never used.
 *
 * Return: (transfer full): the new table
 */
MoatNames *
moat_names_new (struct in_addr first, guint count, MoatNamesEvictFunc evict,
                gpointer user_data)
{
  MoatNames *names;
  guint32 first_host = g_ntohl (first.s_addr);

  g_return_val_if_fail (count > 0, NULL);
  /* The pool must not wrap past 255.255.255.255. */
  g_return_val_if_fail (count - 1 <= G_MAXUINT32 - first_host, NULL);

  names = g_new0 (MoatNames, 1);
  names->first = first_host;
  names->count = count;
  names->capacity = MIN (count, MOAT_NAMES_MAX);
  names->by_name = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                          name_entry_free);
  names->by_address = g_hash_table_new (g_direct_hash, g_direct_equal);
  g_queue_init (&names->lru);
  names->evict = evict;
  names->user_data = user_data;
  return names;
}

void
moat_names_free (MoatNames *names)
{
  if (names == NULL)
    return;

  /* by_name owns the entries, so it goes last. */
  g_hash_table_destroy (names->by_address);
  g_hash_table_destroy (names->by_name);
  g_free (names);
}

static NameEntry *
add_entry (MoatNames *names, char *name, guint32 address)
{
  NameEntry *entry = g_new0 (NameEntry, 1);

  entry->name = name;
  entry->address = address;
  entry->link.data = entry;
  g_hash_table_insert (names->by_name, entry->name, entry);
  g_hash_table_insert (names->by_address, GUINT_TO_POINTER (address), entry);
  g_queue_push_head_link (&names->lru, &entry->link);
  return entry;
}

static void
mark_used (MoatNames *names, NameEntry *entry)
{
  g_queue_unlink (&names->lru, &entry->link);
  g_queue_push_head_link (&names->lru, &entry->link);
}

/*
 * Takes the least recently used entry's address for @name. The evict
 * callback runs while the old name still maps to the address.
 */
static NameEntry *
reuse_oldest_entry (MoatNames *names, char *name)
{
  GList *oldest = g_queue_peek_tail_link (&names->lru);
  NameEntry *entry = oldest->data;
  guint32 address = entry->address;

  g_debug ("name table full with %u names, giving the address of %s to %s",
           names->capacity, entry->name, name);
  if (names->evict != NULL)
    names->evict (to_in_addr (address), entry->name, names->user_data);

  g_queue_unlink (&names->lru, oldest);
  g_hash_table_remove (names->by_address, GUINT_TO_POINTER (address));
  /* Frees the entry and its name. */
  g_hash_table_remove (names->by_name, entry->name);

  return add_entry (names, name, address);
}

/**
 * moat_names_resolve:
 * @names: the table
 * @name: a DNS name in presentation form; case does not matter
 *
 * Returns the address of @name, allocating the next free address of the
 * pool for a new name. When all %MOAT_NAMES_MAX entries or all addresses of
 * the pool are in use, the least recently used name loses its address to
 * @name, after the evict callback has run for it. The callback must not
 * call moat_names_resolve().
 *
 * Return: the address of @name, network byte order
 */
struct in_addr
moat_names_resolve (MoatNames *names, const char *name)
{
  g_autofree char *lower = NULL;
  NameEntry *entry;

  g_return_val_if_fail (names != NULL, to_in_addr (0));
  g_return_val_if_fail (name != NULL, to_in_addr (0));

  lower = g_ascii_strdown (name, -1);
  entry = g_hash_table_lookup (names->by_name, lower);
  if (entry != NULL)
    {
      mark_used (names, entry);
      return to_in_addr (entry->address);
    }

  if (names->allocated < names->capacity)
    {
      guint32 address = names->first + names->allocated;

      names->allocated++;
      entry = add_entry (names, g_steal_pointer (&lower), address);
    }
  else
    {
      entry = reuse_oldest_entry (names, g_steal_pointer (&lower));
    }
  return to_in_addr (entry->address);
}

/**
 * moat_names_lookup:
 * @names: the table
 * @address: an address, network byte order
 *
 * Finds the name that @address was handed out for and marks the name as
 * recently used, because a connection to the address is a use of the name.
 *
 * Return: (nullable): the lowercase name, owned by @names and valid until
 *   the address is given to another name or @names is freed, or %NULL if
 *   @address is not in use
 */
const char *
moat_names_lookup (MoatNames *names, struct in_addr address)
{
  NameEntry *entry;

  g_return_val_if_fail (names != NULL, NULL);

  entry = g_hash_table_lookup (names->by_address,
                               GUINT_TO_POINTER (g_ntohl (address.s_addr)));
  if (entry == NULL)
    return NULL;

  mark_used (names, entry);
  return entry->name;
}

/**
 * moat_names_contains_address:
 * @names: the table
 * @address: an address, network byte order
 *
 * Return: %TRUE if @address lies in the pool given to moat_names_new(),
 *   whether or not it is in use
 */
gboolean
moat_names_contains_address (const MoatNames *names, struct in_addr address)
{
  g_return_val_if_fail (names != NULL, FALSE);

  /* Unsigned subtraction wraps addresses below the pool to large values. */
  return g_ntohl (address.s_addr) - names->first < names->count;
}
