/* inflight — the idempotency keys whose commands are executing right now, so
 * that a concurrent duplicate is refused (409) instead of queued behind the
 * first. Thread-safe; bounded by the engine's queue. */
#pragma once

/* Claims key; 0 when claimed, -1 when someone holds it. */
int inflight_claim(const char *key);
void inflight_release(const char *key);
