/* GET /healthz — liveness and whether writes are accepted. */
#include "api/api.h"
#include "store/store.h"

#define TOPUP_VERSION "0.1.0"

int api_health(struct req *r)
{
    int halted = req_engine_halted(r);
    return req_json(r, halted ? 503 : 200,
                    json_pack("{s:s, s:s, s:s}", "status", halted ? "degraded" : "ok", "version", TOPUP_VERSION,
                              "writes", halted ? "halted" : "ok"));
}
