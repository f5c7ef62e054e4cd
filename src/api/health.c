/* GET /healthz — liveness and whether writes are accepted. */
#include "api/api.h"

int api_health(struct req *r)
{
    int halted = req_engine_halted(r);
    return req_json(r, halted ? 503 : 200,
                    json_pack("{s:s, s:s, s:i, s:s}", "status", halted ? "degraded" : "ok", "version", TOPUP_VERSION,
                              "schema", req_schema_version(r), "writes", halted ? "halted" : "ok"));
}
