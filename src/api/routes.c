/* The route table: every route declares the roles that may call it. Exact
 * paths come before the parameterised ones that could take them: a path a
 * route names exactly is never another's parameter, whatever the method
 * (server.c route). */
#include "api/api.h"

const struct route api_routes[] = {
    {HTTP_GET,  "/healthz",                         api_health,              ROLES_ANY,   0},
    {HTTP_GET,  "/metrics",                         api_metrics,             ROLE_ADMIN | ROLE_MONITOR, 0},
    {HTTP_GET,  "/v1/plans",                        api_plans_list,          ROLES_ANY,   0},
    {HTTP_POST, "/v1/plans",                        api_plans_create,        ROLE_ADMIN,  0},
    {HTTP_POST, "/v1/sims",                         api_sims_create,         ROLE_ADMIN,  0},
    {HTTP_POST, "/v1/sims/import",                  api_sims_import,         ROLE_ADMIN,  ROUTE_CSV},
    {HTTP_GET,  "/v1/sims/{iccid}",                 api_sims_get,            ROLES_STAFF, 0},
    {HTTP_POST, "/v1/sims/{iccid}/topups",          api_topups_create,       ROLES_STAFF, ROUTE_IDEM_REQUIRED},
    {HTTP_POST, "/v1/sims/{iccid}/bundles",         api_bundles_create,      ROLES_STAFF, ROUTE_IDEM_REQUIRED},
    {HTTP_POST, "/v1/sims/{iccid}/suspend",         api_sims_suspend,        ROLE_ADMIN,  0},
    {HTTP_POST, "/v1/sims/{iccid}/resume",          api_sims_resume,         ROLE_ADMIN,  0},
    {HTTP_GET,  "/v1/sims/{iccid}/transactions",    api_transactions_list,   ROLES_STAFF, 0},
    {HTTP_GET,  "/v1/receipts/public-key",          api_receipts_public_key, ROLES_ANY,   0},
    {HTTP_POST, "/v1/receipts/verify",              api_receipts_verify,     ROLES_ANY,   ROUTE_READ},
    {HTTP_GET,  "/v1/receipts/{number}",            api_receipts_get,        ROLES_STAFF, 0},
    {HTTP_GET,  "/v1/receipts/{number}/print",      api_receipts_print,      ROLES_STAFF, 0},
    {HTTP_GET,  "/v1/ledger/check",                 api_ledger_check,        ROLE_ADMIN,  0},
    {HTTP_GET,  "/v1/tokens",                       api_tokens_list,         ROLE_ADMIN,  0},
    {HTTP_POST, "/v1/tokens",                       api_tokens_create,       ROLE_ADMIN,  0},
    {HTTP_DELETE, "/v1/tokens/{id}",                api_tokens_revoke,       ROLE_ADMIN,  ROUTE_AUTH},
    {HTTP_POST, "/v1/test/clock",                   api_test_clock,          ROLE_ADMIN,  ROUTE_TEST_CLOCK},
};
const size_t api_route_count = sizeof api_routes / sizeof api_routes[0];
