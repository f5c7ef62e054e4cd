/* simgen — the synthetic SIM population every bench program agrees on.
 *
 * SIM number i (0-based) has
 *   ICCID  "89860" + i as 14 digits + Luhn check digit (20 digits)
 *   MSISDN "+8613" + i as 9 digits                      (E.164, 13 digits)
 *   IMSI   "46000" + i as 10 digits                     (15 digits)
 *   language zh, en, ru in turn
 * so the load generator, the engine bench and the CSV import can name the
 * same SIMs without a file of ten million ICCIDs. Header-only. */
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SIMGEN_ICCID_LEN 20
#define SIMGEN_MAX 1000000000LL   /* the MSISDN scheme has 9 digits */

static inline void simgen_iccid(int64_t i, char out[SIMGEN_ICCID_LEN + 1])
{
    snprintf(out, SIMGEN_ICCID_LEN + 1, "89860%014llu", (unsigned long long)i % 100000000000000ULL);
    int sum = 0;
    for (int k = 0; k < SIMGEN_ICCID_LEN - 1; k++) {
        /* Luhn: double every second digit counting leftwards from the check digit. */
        int d = out[SIMGEN_ICCID_LEN - 2 - k] - '0';
        if (k % 2 == 0 && (d *= 2) > 9)
            d -= 9;
        sum += d;
    }
    out[SIMGEN_ICCID_LEN - 1] = (char)('0' + (10 - sum % 10) % 10);
    out[SIMGEN_ICCID_LEN] = 0;
}

static inline void simgen_msisdn(int64_t i, char out[24]) { snprintf(out, 24, "+8613%09llu", (unsigned long long)i % 1000000000ULL); }
static inline void simgen_imsi(int64_t i, char out[24]) { snprintf(out, 24, "46000%010llu", (unsigned long long)i % 10000000000ULL); }
static inline const char *simgen_lang(int64_t i)
{
    static const char *const l[3] = {"zh", "en", "ru"};
    return l[i % 3];
}

/* One CSV line "iccid,msisdn,imsi,language\n" for SIM i; returns its length. */
static inline int simgen_csv_line(int64_t i, char *out, size_t cap)
{
    char iccid[SIMGEN_ICCID_LEN + 1], msisdn[24], imsi[24];
    simgen_iccid(i, iccid);
    simgen_msisdn(i, msisdn);
    simgen_imsi(i, imsi);
    return snprintf(out, cap, "%s,%s,%s,%s\n", iccid, msisdn, imsi, simgen_lang(i));
}

/* xorshift64*: the benches' uniform choice of SIM. */
static inline uint64_t simgen_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A uniform index in [0, n) (n > 0); the modulo bias is below 1e-9 for n <= 1e10. */
static inline int64_t simgen_pick(uint64_t *s, int64_t n) { return (int64_t)(simgen_rand(s) % (uint64_t)n); }
