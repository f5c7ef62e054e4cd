/* /v1/sims — provisioning (one, or a CSV import), reading, suspension, history. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/csv.h"
#include "api/views.h"
#include "core/record.h"
#include "core/sim.h"
#include "util/err.h"
#include "util/text.h"

/* Fills s from the fields; on error *param names the field. */
static int sim_fields(const char *iccid, const char *msisdn, const char *imsi, const char *lang, struct sim *s,
                      const char **param)
{
    memset(s, 0, sizeof *s);
    if (!iccid || !*iccid)
        return *param = "iccid", ERR_MISSING_PARAMETER;
    if (!sim_iccid_valid(iccid))
        return *param = "iccid", ERR_INVALID_ICCID;
    if (msisdn && *msisdn && !sim_msisdn_valid(msisdn))
        return *param = "msisdn", ERR_INVALID_MSISDN;
    if (imsi && *imsi && !sim_imsi_valid(imsi))
        return *param = "imsi", ERR_INVALID_PARAMETER;
    if (lang && *lang && !sim_lang_valid(lang))
        return *param = "language", ERR_INVALID_PARAMETER;
    snprintf(s->iccid, sizeof s->iccid, "%s", iccid);
    snprintf(s->msisdn, sizeof s->msisdn, "%s", msisdn ? msisdn : "");
    snprintf(s->imsi, sizeof s->imsi, "%s", imsi ? imsi : "");
    snprintf(s->lang, sizeof s->lang, "%s", lang ? lang : "");
    return 0;
}

static int render_sim(struct tx *tx, struct cmd *c, const struct sim *s, int status)
{
    json_t *o;
    int rc = view_sim(tx, s, &o);
    if (rc)
        return rc;
    c->status = status;
    c->body = json_text(tx->a, o);
    return 0;
}

static int exec_create(struct tx *tx, struct cmd *c)
{
    struct sim *s = c->arg;
    int existed = 0;
    int rc = sim_create(tx, s, &existed);
    if (rc == ERR_MSISDN_TAKEN)
        c->err_param = "msisdn";
    if (rc == ERR_SIM_EXISTS)
        c->err_param = "iccid";
    return rc ? rc : render_sim(tx, c, s, existed ? 200 : 201);
}

int api_sims_create(struct req *r)
{
    static const char *const keys[] = {"iccid", "msisdn", "imsi", "language", NULL};
    const struct jv *b;
    if (req_body_object(r, &b))
        return 0;
    const char *iccid = NULL, *msisdn = NULL, *imsi = NULL, *lang = NULL, *param = NULL;
    int rc = json_only_keys(b, keys, &param);
    if (!rc && (rc = json_field_str(b, "iccid", 1, ICCID_MAX + 8, &iccid)))
        param = "iccid", rc = rc == ERR_INVALID_PARAMETER ? ERR_INVALID_ICCID : rc;
    if (!rc && (rc = json_field_str(b, "msisdn", 0, MSISDN_MAX + 8, &msisdn)))
        param = "msisdn", rc = rc == ERR_INVALID_PARAMETER ? ERR_INVALID_MSISDN : rc;
    if (!rc && (rc = json_field_str(b, "imsi", 0, IMSI_MAX + 8, &imsi)))
        param = "imsi";
    if (!rc && (rc = json_field_str(b, "language", 0, 8, &lang)))
        param = "language";
    struct sim *s = arena_alloc(&r->a, sizeof *s);
    if (!rc)
        rc = sim_fields(iccid, msisdn, imsi, lang, s, &param);
    if (rc)
        req_error(r, rc, param);   /* before the decref: param may point into b */
    return rc ? 0 : req_submit(r, exec_create, s);
}

/* ---- CSV import ----------------------------------------------------------- */

struct import_row {
    int line;
    struct sim s;
};

/* What the rows of one slice came to (engine.h E9). */
struct import_tally {
    size_t imported, existing, failed;
    json_t *errors;
};

struct import_cmd {
    enum lang lang;
    struct import_row *rows;
    size_t nrows, total;
    size_t next;                 /* the first row of the next slice */
    json_t *refused;             /* the errors of the rows refused in parsing, in line order */
    struct import_tally done;    /* the durable slices', and the rows refused in parsing (counted, not listed) */
    struct import_tally slice;   /* the slice the writer runs; set afresh at each run (E2) */
};

/* The errors an answer lists (failed counts them all): a file of 10^6 bad
 * rows, 2 MB, was answered with 127 MB of them and took 1.1 GB to do it. */
#define IMPORT_ERRORS_MAX 1000

/* Lists an error while its list (together with others, at most
 * IMPORT_ERRORS_MAX rows) has room. */
static void row_error(json_t *errors, size_t others, enum lang l, int line, int err, const char *param)
{
    if (json_array_size(errors) + others >= IMPORT_ERRORS_MAX)
        return;
    json_t *e = json_pack("{s:i, s:s, s:s}", "line", line, "code", err_code(err), "message",
                          i18n_text(l, err_key(err)));
    if (param)
        json_object_set_new(e, "param", json_string(param));
    json_array_append_new(errors, e);
}

/* Rows an import slice: about 12 ms of the writer, which spent 6-7 s on 1M
 * SIMs in one command while every top-up waited. bench/import_beside (5k
 * top-ups/s beside an import of 1M SIMs), top-up p99 / p99.9 / max and the
 * import's time: one command 5.6-6.0 s / 6.1-6.8 s / 6.4-6.9 s, 6.1-6.5 s;
 * slices of 5,000 rows 36-38 / 64-69 / 74-80 ms; 2,000: 14-16 / 22-27 / 30-35
 * ms; 1,000: 12-13 / 14-17 / 18-29 ms. Alone, the import took 5.9-6.8, 6.2-6.4
 * and 6.4-6.7 s in slices of 5,000, 2,000 and 1,000. */
#define IMPORT_SLICE 2000

/* Where the slice that begins at ic->next ends. */
static size_t slice_end(const struct import_cmd *ic)
{
    return ic->nrows - ic->next > IMPORT_SLICE ? ic->next + IMPORT_SLICE : ic->nrows;
}

/* The first IMPORT_ERRORS_MAX errors in line order, from those of parsing (a)
 * and those of the slices (b then c), each list in line order. */
static json_t *merge_errors(json_t *a, json_t *b, json_t *c)
{
    json_t *out = json_array();
    size_t i = 0, j = 0, nb = json_array_size(b), n = nb + json_array_size(c);
    while (json_array_size(out) < IMPORT_ERRORS_MAX && (i < json_array_size(a) || j < n)) {
        json_t *eb = j < n ? json_array_get(j < nb ? b : c, j < nb ? j : j - nb) : NULL;
        json_t *ea = json_array_get(a, i);
        if (ea && (!eb || json_integer_value(json_object_get(ea, "line")) <
                              json_integer_value(json_object_get(eb, "line"))))
            json_array_append(out, ea), i++;
        else
            json_array_append(out, eb), j++;
    }
    return out;
}

/* One slice (engine E9); may run twice (E2), so it starts its tally afresh. */
static int exec_import(struct tx *tx, struct cmd *c)
{
    struct import_cmd *ic = c->arg;
    struct import_tally *t = &ic->slice;
    json_decref(t->errors);
    *t = (struct import_tally){.errors = json_array()};
    size_t end = slice_end(ic);
    for (size_t i = ic->next; i < end; i++) {
        int existed = 0;
        int rc = sim_create(tx, &ic->rows[i].s, &existed);
        if (rc == ERR_SIM_EXISTS || rc == ERR_MSISDN_TAKEN) {
            row_error(t->errors, json_array_size(ic->done.errors), ic->lang, ic->rows[i].line, rc,
                      rc == ERR_SIM_EXISTS ? "iccid" : "msisdn");
            t->failed++;
            continue;
        }
        if (rc)
            return rc;
        existed ? t->existing++ : t->imported++;
    }
    if (end < ic->nrows) {
        c->more = 1;
        return 0;
    }
    json_t *errors = merge_errors(ic->refused, ic->done.errors, t->errors);
    c->status = 200;
    c->body = json_text(tx->a, json_pack("{s:I, s:I, s:I, s:I, s:o}", "rows", (json_int_t)ic->total, "imported",
                                         (json_int_t)(ic->done.imported + t->imported), "existing",
                                         (json_int_t)(ic->done.existing + t->existing), "failed",
                                         (json_int_t)(ic->done.failed + t->failed), "errors", errors));
    return 0;
}

/* A slice is durable: its tally joins the others and the next slice begins after it. */
static void import_advance(struct cmd *c)
{
    struct import_cmd *ic = c->arg;
    ic->done.imported += ic->slice.imported;
    ic->done.existing += ic->slice.existing;
    ic->done.failed += ic->slice.failed;
    json_array_extend(ic->done.errors, ic->slice.errors);
    ic->next = slice_end(ic);
}

static void free_rows(void *p) { free(*(struct import_row **)p); }
static void free_json(void *p) { json_decref(p); }
static void free_json_at(void *p) { json_decref(*(json_t **)p); }

struct import_parse {
    struct import_cmd *ic;
    size_t cap;
};

static void import_row(void *arg, const struct csv_row *cr)
{
    struct import_parse *p = arg;
    struct import_cmd *ic = p->ic;
    ic->total++;
    if (ic->nrows == p->cap) {
        struct import_row *g = realloc(ic->rows, 2 * p->cap * sizeof *g);
        if (!g)
            abort();
        ic->rows = g;
        p->cap *= 2;
    }
    const char *param = NULL;
    struct import_row *row = &ic->rows[ic->nrows];
    int rc = sim_fields(cr->iccid, cr->msisdn, cr->imsi, cr->lang, &row->s, &param);
    if (rc) {
        row_error(ic->refused, 0, ic->lang, cr->line, rc, param);
        ic->done.failed++;
        return;
    }
    row->line = cr->line;
    ic->nrows++;
}

static void import_bad(void *arg, int line)
{
    struct import_parse *p = arg;
    p->ic->total++;
    p->ic->done.failed++;
    row_error(p->ic->refused, 0, p->ic->lang, line, ERR_INVALID_CSV_ROW, NULL);
}

/* The CSV is parsed apart from the HTTP thread (req_submit_sliced): 1M rows
 * took it 0.4-0.7 s, while every other connection of that thread waited. */
static int prepare_import(struct req *r, struct cmd *c)
{
    struct import_cmd *ic = c->arg;
    struct import_parse p = {.ic = ic, .cap = 1024};
    ic->rows = malloc(p.cap * sizeof *ic->rows);
    if (!ic->rows)
        abort();
    const char *param = NULL;
    char *text = arena_strndup(&r->a, r->body, r->body_len);
    int rc = csv_parse_sims(text, r->body_len, &param, import_row, import_bad, &p);
    c->err_param = param;
    return rc;
}

int api_sims_import(struct req *r)
{
    struct import_cmd *ic = arena_alloc(&r->a, sizeof *ic);
    ic->lang = r->lang;
    ic->refused = json_array();
    ic->done.errors = json_array();
    arena_defer(&r->a, free_rows, &ic->rows);
    arena_defer(&r->a, free_json, ic->refused);
    arena_defer(&r->a, free_json, ic->done.errors);
    arena_defer(&r->a, free_json_at, &ic->slice.errors);
    return req_submit_sliced(r, prepare_import, exec_import, import_advance, ic);
}

/* ---- reading -------------------------------------------------------------- */

int api_sims_get(struct req *r)
{
    const char *param = NULL;
    int rc = view_sim_param(r->params[0], &param);
    if (rc)
        return req_error(r, rc, param);
    struct tx tx;
    if (req_read_begin(r, &tx))
        return 0;
    struct sim s;
    json_t *o = NULL;
    rc = sim_get(&tx, r->params[0], &s);
    if (!rc)
        rc = view_sim(&tx, &s, &o);
    rc = req_read_end(r, &tx, rc);
    if (rc) {
        json_decref(o);
        return req_error(r, rc, NULL);
    }
    return req_json(r, 200, o);
}

static void add_record(void *arg, const struct record *rec) { json_array_append_new(arg, view_record(rec)); }

int api_transactions_list(struct req *r)
{
    const char *param = NULL;
    int rc = view_sim_param(r->params[0], &param);
    if (rc)
        return req_error(r, rc, param);
    const char *limit_s = req_query(r, "limit"), *after = req_query(r, "starting_after");
    long limit = 20;
    int64_t before = 0;
    if (limit_s) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (*limit_s < '0' || *limit_s > '9' || *end || limit < 1 || limit > 100)   /* no sign, no space */
            return req_error(r, ERR_INVALID_PARAMETER, "limit");
    }
    if (after) {
        char *end;
        if (strncmp(after, "tx_", 3) || after[3] < '1' || after[3] > '9' ||
            (before = strtoll(after + 3, &end, 10)) <= 0 || *end)
            return req_error(r, ERR_INVALID_CURSOR, "starting_after");
    }
    struct tx tx;
    if (req_read_begin(r, &tx))
        return 0;
    struct sim s;
    json_t *data = json_array();
    int more = 0;
    rc = sim_get(&tx, r->params[0], &s);
    if (!rc)
        rc = record_list(&tx, s.id, before, (int)limit, add_record, data, &more);
    rc = req_read_end(r, &tx, rc);
    if (rc) {
        json_decref(data);
        return req_error(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:o, s:b}", "data", data, "has_more", more));
}

/* ---- suspension ----------------------------------------------------------- */

struct suspend_cmd {
    const char *ref, *reason;   /* reason: NULL when none was given */
};

static int exec_suspend(struct tx *tx, struct cmd *c, int on)
{
    const struct suspend_cmd *sc = c->arg;
    struct sim s;
    int rc = sim_get(tx, sc->ref, &s);
    if (!rc)
        rc = sim_suspend(tx, &s, on, sc->reason);
    return rc ? rc : render_sim(tx, c, &s, 200);
}

static int exec_suspend_on(struct tx *tx, struct cmd *c) { return exec_suspend(tx, c, 1); }
static int exec_suspend_off(struct tx *tx, struct cmd *c) { return exec_suspend(tx, c, 0); }

/* The body is optional: none, or {"reason":"…"}. */
static int suspension(struct req *r, int (*exec)(struct tx *, struct cmd *))
{
    static const char *const keys[] = {"reason", NULL};
    const char *param = NULL;
    int rc = view_sim_param(r->params[0], &param);
    if (rc)
        return req_error(r, rc, param);
    struct suspend_cmd *sc = arena_alloc(&r->a, sizeof *sc);
    *sc = (struct suspend_cmd){.ref = r->params[0]};
    if (r->body_len) {
        const struct jv *b;
        if (req_body_object(r, &b))
            return 0;
        if ((rc = json_only_keys(b, keys, &param)))
            return req_error(r, rc, param);
        if ((rc = json_field_str(b, "reason", 0, SIM_REASON_MAX, &sc->reason)) ||
            (sc->reason && (!*sc->reason || !text_printable(sc->reason, SIM_REASON_MAX))))
            return req_error(r, rc ? rc : ERR_INVALID_PARAMETER, "reason");
    }
    return req_submit(r, exec, sc);
}

int api_sims_suspend(struct req *r) { return suspension(r, exec_suspend_on); }
int api_sims_resume(struct req *r) { return suspension(r, exec_suspend_off); }
