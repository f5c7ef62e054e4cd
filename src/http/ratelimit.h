/* ratelimit — token buckets keyed by identity or client address.
 *
 * A limiter holds at most `capacity` keys; when full, the key idle longest
 * among a few probed slots is forgotten (an attacker cycling keys can only
 * forget others' buckets, which errs on the side of serving). Thread-safe.
 * Used for failed authentication per address, and for every token-
 * authenticated request per token and per address; later for logins,
 * voucher redemption and payment notifications.
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* rate: tokens per second; burst: bucket size. */
struct ratelimit *ratelimit_new(double rate, double burst, size_t capacity);
void ratelimit_free(struct ratelimit *rl);
/* Takes one token for key at now_ms. 0 when allowed; otherwise -1 and
 * *retry_after (seconds, >= 1) says when one token will be back. */
int ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms, int *retry_after);
/* Gives back the token ratelimit_take took, for a request another limit
 * then refused: a refusal costs no bucket but the one that refused it. */
void ratelimit_give(struct ratelimit *rl, const char *key, int64_t now_ms);
