/* peers — open connections counted by client address, so that one address
 * cannot take every connection (max_connections_per_address, README).
 *
 * A table of IPv4 addresses with their counts, room for `room` addresses
 * with a connection open at once: the caller never counts more connections
 * than that (net counts one only after max_connections let it in), so the
 * table never fills. An address whose count falls to 0 leaves the table.
 * Address 0 (not known: a socket handed over by net_add) is never counted.
 * Thread-safe: one mutex, held for a probe of a table at most half full.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct peers;

/* NULL when out of memory. */
struct peers *peers_new(size_t room);
void peers_free(struct peers *p);
/* Counts one more connection from addr (network order): 0, or -1 and
 * nothing counted when addr already has `limit` open. limit 0: no limit. */
int peers_take(struct peers *p, uint32_t addr, int limit);
/* The end of a connection peers_take counted. */
void peers_give(struct peers *p, uint32_t addr);
/* The connections open from addr. */
int peers_count(struct peers *p, uint32_t addr);
