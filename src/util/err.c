#include "util/err.h"

static const struct {
    int status;
    const char *code;
    const char *key;
    char flag;
} errs[] = {
#define X(name, status, code, flag) {status, code, "error." code, #flag[0]},
    ERR_MAP(X)
#undef X
};

static int valid(int e) { return e >= 0 && e < ERR__COUNT; }

int err_status(int e) { return valid(e) ? errs[e].status : 500; }
const char *err_code(int e) { return valid(e) ? errs[e].code : "internal_error"; }
const char *err_key(int e) { return valid(e) ? errs[e].key : "error.internal_error"; }
int err_is_fatal(int e) { return !valid(e) || errs[e].flag == 'F'; }
