/* err — the one list of errors.
 *
 * ERR_MAP yields, for each error, the C enum (ERR_<NAME>), the HTTP status, and
 * the stable API code; the message key is "error.<code>" and its text lives in
 * web/i18n/{en,zh,ru}.json. Functions return 0 (ERR_OK) or an enum err value;
 * an error is never signalled through errno.
 *
 * The flag column says how the engine treats a failing command:
 *   D  domain error: the command's savepoint is rolled back, the batch goes on;
 *   F  fatal to the batch: the whole transaction is rolled back (storage faults).
 */
#pragma once

#define ERR_MAP(X) \
    X(OK,                     200, "ok",                         D) \
    /* input */ \
    X(BAD_REQUEST,            400, "bad_request",                D) \
    X(INVALID_JSON,           400, "invalid_json",               D) \
    X(INVALID_PARAMETER,      400, "invalid_parameter",          D) \
    X(MISSING_PARAMETER,      400, "missing_parameter",          D) \
    X(INVALID_ICCID,          400, "invalid_iccid",              D) \
    X(INVALID_MSISDN,         400, "invalid_msisdn",             D) \
    X(INVALID_AMOUNT,         400, "invalid_amount",             D) \
    X(AMOUNT_TOO_SMALL,       400, "amount_too_small",           D) \
    X(AMOUNT_TOO_LARGE,       400, "amount_too_large",           D) \
    X(CURRENCY_MISMATCH,      400, "currency_mismatch",          D) \
    X(INVALID_CHANNEL,        400, "invalid_channel",            D) \
    X(INVALID_METHOD,         400, "invalid_method",             D) \
    X(INVALID_CSV,            400, "invalid_csv",                D) \
    X(INVALID_CSV_ROW,        400, "invalid_csv_row",            D) \
    X(IDEMPOTENCY_KEY_MISSING,400, "idempotency_key_required",   D) \
    X(IDEMPOTENCY_KEY_INVALID,400, "idempotency_key_invalid",    D) \
    X(INVALID_CURSOR,         400, "invalid_cursor",             D) \
    X(INVALID_SIGNATURE,      400, "invalid_signature",          D) \
    /* who */ \
    X(UNAUTHENTICATED,        401, "unauthenticated",            D) \
    X(FORBIDDEN,              403, "forbidden",                  D) \
    /* what */ \
    X(NOT_FOUND,              404, "not_found",                  D) \
    X(SIM_NOT_FOUND,          404, "sim_not_found",              D) \
    X(PLAN_NOT_FOUND,         404, "plan_not_found",             D) \
    X(RECEIPT_NOT_FOUND,      404, "receipt_not_found",          D) \
    X(METHOD_NOT_ALLOWED,     405, "method_not_allowed",         D) \
    X(REQUEST_TIMEOUT,        408, "request_timeout",            D) \
    X(SIM_EXISTS,             409, "sim_exists",                 D) \
    X(MSISDN_TAKEN,           409, "msisdn_taken",               D) \
    X(PLAN_EXISTS,            409, "plan_exists",                D) \
    X(IDEMPOTENCY_IN_FLIGHT,  409, "idempotency_key_in_use",     D) \
    X(SIM_TERMINATED,         409, "sim_terminated",             D) \
    X(SIM_SUSPENDED,          409, "sim_suspended",              D) \
    X(SIM_NOT_ACTIVE,         409, "sim_not_active",             D) \
    X(INVALID_STATE,          409, "invalid_state",              D) \
    X(PLAN_NOT_SOLD,          409, "plan_not_sold",              D) \
    X(IDEMPOTENCY_KEY_REUSED, 422, "idempotency_key_reused",     D) \
    X(DAILY_LIMIT,            422, "daily_limit_exceeded",       D) \
    X(INSUFFICIENT_BALANCE,   402, "insufficient_balance",       D) \
    X(BODY_TOO_LARGE,         413, "body_too_large",             D) \
    X(UNSUPPORTED_MEDIA_TYPE, 415, "unsupported_media_type",     D) \
    X(EXPECTATION_FAILED,     417, "expectation_failed",         D) \
    X(RATE_LIMITED,           429, "rate_limited",               D) \
    X(HEADERS_TOO_LARGE,      431, "headers_too_large",          D) \
    /* ledger (internal callers map most of these before they reach a client) */ \
    X(ACCOUNT_NOT_FOUND,      404, "account_not_found",          D) \
    X(UNIT_MISMATCH,          409, "unit_mismatch",              D) \
    X(TRANSFER_EXISTS,        409, "transfer_exists",            D) \
    X(PENDING_NOT_FOUND,      404, "pending_not_found",          D) \
    X(PENDING_CLOSED,         409, "pending_closed",             D) \
    X(PENDING_EXPIRED,        409, "pending_expired",            D) \
    X(POST_EXCEEDS_PENDING,   409, "post_exceeds_pending",       D) \
    X(CONSTRAINT,             409, "constraint_violation",       D) \
    X(NUMBER_OVERFLOW,        409, "number_overflow",            D) \
    /* the server */ \
    X(STORAGE,                503, "storage_unavailable",        F) \
    X(OUTCOME_UNKNOWN,        503, "outcome_unknown",            F) \
    X(INCOMPLETE,             503, "incomplete",                 D) \
    X(WRITES_HALTED,          503, "writes_halted",              F) \
    X(OVERLOADED,             503, "overloaded",                 D) \
    X(SHUTTING_DOWN,          503, "shutting_down",              D) \
    X(INTERNAL,               500, "internal_error",             F) \
    X(NOT_IMPLEMENTED,        501, "not_implemented",            D) \
    X(HTTP_VERSION,           505, "http_version_not_supported", D)

enum err {
#define X(name, status, code, flag) ERR_##name,
    ERR_MAP(X)
#undef X
    ERR__COUNT
};

int err_status(int err);             /* HTTP status */
const char *err_code(int err);       /* stable API code, e.g. "insufficient_balance" */
const char *err_key(int err);        /* message key, e.g. "error.insufficient_balance" */
int err_is_fatal(int err);           /* 1 when the whole batch must roll back */
