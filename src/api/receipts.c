/* /v1/receipts — fetch, verify, and the public key to verify with. */
#include <string.h>

#include "api/api.h"
#include "core/receipt.h"
#include "core/topup.h"
#include "util/err.h"

int api_receipts_get(struct req *r)
{
    const char *number = r->params[0], *payload;
    if (strlen(number) >= RECEIPT_NUMBER_MAX)
        return req_error(r, ERR_RECEIPT_NOT_FOUND, NULL);
    struct tx tx;
    if (req_read_begin(r, &tx))
        return 0;
    int rc = topup_receipt_get(&tx, number, &payload);
    rc = req_read_end(r, &tx, rc);
    if (rc)
        return req_error(r, rc, NULL);
    return req_raw(r, 200, receipt_signed(&r->a, req_keys(r), payload, strlen(payload)));
}

int api_receipts_verify(struct req *r)
{
    const struct jv *b;
    if (req_body_object(r, &b))
        return 0;
    return req_json(r, 200, json_pack("{s:b}", "valid", receipt_verify(req_keys(r), r->body, r->body_len)));
}

int api_receipts_public_key(struct req *r)
{
    const struct receipt_keys *k = req_keys(r);
    return req_json(r, 200, json_pack("{s:s, s:s, s:s}", "key_id", k->key_id, "algorithm", "Ed25519",
                                      "public_key", k->pk_b64));
}
