"""Whole-database invariants of a topup SQLite file, checked read-only with the
standard sqlite3 module (the server must be stopped, or at least idle).

check_database(path) returns a list of violations (strings; empty when all hold)
and a dict of counts. It checks, independently of the server's own
/v1/ledger/check:

  storage    PRAGMA integrity_check = ok, PRAGMA foreign_key_check empty
  ledger     per unit: sum of debits == sum of credits, posted and pending (L2);
             every account's totals == the totals recomputed from transfers (L6);
             no overdraft on a no-overdraft account, no negative wallet (L3);
             every transfer between two distinct accounts of its own unit (L1);
             a wallet is account -sim_id with its totals in the SIM's row (L7)
  parents    every transfer's xid names an existing parent (top-up, bundle, SIM)
             and a known kind; no orphan wallet or bundle account
  top-ups    each has exactly its transfer (+ fee transfer iff fee > 0), a
             stored receipt, if any, as the top-up and its SIM say (canonical
             JSON numbered by the top-up; newer rows store none: receipt.h
             R1, test_receipts checks the composed ones), one "topup" record
             naming that receipt (+ one "reactivation_fee" iff fee > 0), and is
             referenced by exactly one idempotency row
  bundles    each has its price transfer (iff price > 0), one grant per non-zero
             allowance into its own account, one "bundle_purchase" record, and
             exactly one idempotency row
  SIMs       each has its own wallet; wallet balance == sum of its records ==
             balance_after of its newest record; a suspension or resumption
             record moves nothing (amount 0), only those carry a reason, and
             they alternate, the last agreeing with the SIM's state; a
             terminated SIM holds no number (it is in released_msisdn)
"""
import collections
import json
import re
import sqlite3
import time

WALLET_FLAGS_NO_OVERDRAFT = 1
SERVICE_UNITS = (("data_bytes", "bytes"), ("voice_seconds", "seconds"), ("sms", "sms"))


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def receipt_number(topup_id):
    return "R%010d" % topup_id


def receipt_problem(t, s, payload):
    """Why payload is not the receipt of top-up t (a row) of SIM s, or None."""
    if payload is None:
        return "no receipt"
    try:
        r = json.loads(payload)
    except ValueError:
        return "receipt is not JSON: %r" % payload[:80]
    if not isinstance(r, dict):
        return "receipt is not an object"
    if payload != json.dumps(r, separators=(",", ":"), sort_keys=True, ensure_ascii=False):
        return "receipt not in canonical form (it would not verify): %r" % payload[:80]
    want = {"number": receipt_number(t["id"]), "topup": "tu_%d" % t["id"], "amount": t["amount"],
            "balance_after": t["balance_after"], "reactivation_fee": t["fee"], "currency": t["currency"],
            "channel": t["channel"], "method": t["method"], "iccid": s["iccid"],
            "msisdn": s["msisdn"] or s.get("released_msisdn") or "",   # 014: a terminated SIM's number
            "active_until": rfc3339(t["active_until"]), "issued_at": rfc3339(t["created_at"]),
            "served_by": t["principal"] or "system"}
    if set(r) != set(want):
        return "receipt fields %r" % sorted(r)
    diff = {k: (r[k], v) for k, v in want.items() if r[k] != v}
    return "receipt differs (got, want): %r" % diff if diff else None


def open_ro(path):
    """A read-only connection (mode=ro: this process can never write the file)."""
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    con.row_factory = sqlite3.Row
    return con


def check_database(path, currency="CNY"):
    con = open_ro(path)
    try:
        return _check(con, currency)
    finally:
        con.close()


def _check(con, currency):
    v = []

    def bad(msg, *args):
        if len(v) < 200:
            v.append(msg % args if args else msg)

    q = lambda sql, *a: con.execute(sql, a).fetchall()   # noqa: E731

    # ---------------------------------------------------------------- storage
    ic = [r[0] for r in q("PRAGMA integrity_check")]
    if ic != ["ok"]:
        bad("PRAGMA integrity_check: %r", ic[:5])
    fk = q("PRAGMA foreign_key_check")
    if fk:
        bad("PRAGMA foreign_key_check: %r", [tuple(r) for r in fk[:5]])

    # ----------------------------------------------------------------- ledger
    accounts = {r["id"]: dict(r) for r in q("SELECT * FROM accounts")}
    # 004 (ledger L7): a wallet is account -sim_id and its totals are its SIM's
    # row's; the totals its accounts row holds must be zero.
    if "w_credits_posted" in [r["name"] for r in q("PRAGMA table_info(sims)")]:
        for r in q("SELECT id, w_debits_posted, w_credits_posted, w_debits_pending, w_credits_pending FROM sims"):
            a = accounts.get(-r["id"])
            if a is None:
                bad("sim %d: no wallet account %d", r["id"], -r["id"])
                continue
            left = [a["debits_posted"], a["credits_posted"], a["debits_pending"], a["credits_pending"]]
            if left != [0, 0, 0, 0]:
                bad("wallet %d keeps totals %r in accounts", a["id"], left)
            a["debits_posted"], a["credits_posted"] = r["w_debits_posted"], r["w_credits_posted"]
            a["debits_pending"], a["credits_pending"] = r["w_debits_pending"], r["w_credits_pending"]
        for a in accounts.values():
            if (a["id"] < 0) != (a["kind"] == "wallet"):
                bad("account %d of kind %s: only wallets have negative ids", a["id"], a["kind"])
    transfers = [dict(r) for r in q("SELECT * FROM transfers ORDER BY id")]
    recomputed = collections.defaultdict(lambda: [0, 0, 0, 0])   # dpo, cpo, dpe, cpe
    per_unit = collections.defaultdict(lambda: [0, 0, 0, 0])
    xids = {}
    for t in transfers:
        if t["xid"] in xids:
            bad("transfer xid %s appears twice", t["xid"])
        xids[t["xid"]] = t
        d, c = accounts.get(t["debit_id"]), accounts.get(t["credit_id"])
        if d is None or c is None:
            bad("transfer %s refers to a missing account", t["xid"])
            continue
        if t["debit_id"] == t["credit_id"]:
            bad("transfer %s debits and credits the same account", t["xid"])
        if not (d["unit"] == c["unit"] == t["unit"]):
            bad("transfer %s mixes units %s/%s/%s", t["xid"], d["unit"], c["unit"], t["unit"])
        if t["amount"] <= 0:
            bad("transfer %s has amount %d", t["xid"], t["amount"])
        if t["flags"] in (0, 2):
            recomputed[t["debit_id"]][0] += t["amount"]
            recomputed[t["credit_id"]][1] += t["amount"]
        elif t["flags"] == 1 and t["state"] == 0:
            recomputed[t["debit_id"]][2] += t["amount"]
            recomputed[t["credit_id"]][3] += t["amount"]
    for a in accounts.values():
        got = [a["debits_posted"], a["credits_posted"], a["debits_pending"], a["credits_pending"]]
        if got != recomputed.get(a["id"], [0, 0, 0, 0]):
            bad("account %d (%s %s): totals %r but its transfers sum to %r", a["id"], a["kind"], a["unit"], got,
                recomputed.get(a["id"], [0, 0, 0, 0]))
        u = per_unit[a["unit"]]
        for i in range(4):
            u[i] += got[i]
        if a["flags"] & WALLET_FLAGS_NO_OVERDRAFT and \
                a["debits_posted"] + a["debits_pending"] > a["credits_posted"]:
            bad("account %d (%s) overdrawn: %r", a["id"], a["kind"], got)
        if a["kind"] == "wallet" and a["credits_posted"] - a["debits_posted"] < 0:
            bad("wallet %d has a negative balance", a["id"])
    for unit, (dpo, cpo, dpe, cpe) in sorted(per_unit.items()):
        if dpo != cpo:
            bad("unit %s: posted debits %d != credits %d", unit, dpo, cpo)
        if dpe != cpe:
            bad("unit %s: pending debits %d != credits %d", unit, dpe, cpe)

    # ---------------------------------------------------------------- entities
    sims = {r["id"]: dict(r) for r in q("SELECT * FROM sims")}
    plans = {r["id"]: dict(r) for r in q("SELECT * FROM plans")}
    bundles = {r["id"]: dict(r) for r in q("SELECT * FROM bundles")}
    topups = {r["id"]: dict(r) for r in q("SELECT * FROM topups")}
    # 010: a top-up is its own record (its row, prev not NULL), linked as -id;
    # every other record is a sim_txns row, linked as its id.
    records = [dict(r, link=r["id"]) for r in q("SELECT * FROM sim_txns")]
    for t in topups.values():
        if t["prev"] is not None:
            records.append({"id": t["id"], "link": -t["id"], "sim_id": t["sim_id"], "kind": "topup",
                            "amount": t["amount"], "currency": t["currency"],
                            "balance_after": t["balance_after"] + t["fee"], "topup_id": t["id"], "bundle_id": None,
                            "receipt": receipt_number(t["id"]), "channel": t["channel"], "method": t["method"],
                            "created_at": t["created_at"], "prev": t["prev"]})
    records.sort(key=lambda r: r["id"])
    shared = {r["id"] for r in records if r["link"] < 0} & {r["id"] for r in records if r["link"] > 0}
    if shared:
        bad("records %r are both a top-up and a sim_txns row", sorted(shared)[:8])
    records_by_link = {r["link"]: r for r in records}
    idem = [dict(r) for r in q("SELECT scope, key, status, body, topup_id FROM idempotency")]

    # every transfer has its parent
    xid_re = re.compile(r"^(topup):(\d+)(:fee)?$|^(bundle):(\d+):(price|bytes|seconds|sms|"
                        r"(?:forfeiture|expiry):(?:bytes|seconds|sms))$|^(sim):(\d+):forfeit$")
    for t in transfers:
        m = xid_re.match(t["xid"])
        if not m:
            bad("transfer %s: unknown xid form (kind %s)", t["xid"], t["kind"])
            continue
        if m.group(1):
            parent = topups.get(int(m.group(2)))
            if parent is None:
                bad("transfer %s without its top-up", t["xid"])
            elif t["sim_id"] != parent["sim_id"]:
                bad("transfer %s on sim %s, its top-up on sim %s", t["xid"], t["sim_id"], parent["sim_id"])
        elif m.group(4):
            parent = bundles.get(int(m.group(5)))
            if parent is None:
                bad("transfer %s without its bundle", t["xid"])
            elif t["sim_id"] != parent["sim_id"]:
                bad("transfer %s on sim %s, its bundle on sim %s", t["xid"], t["sim_id"], parent["sim_id"])
        elif int(m.group(8)) not in sims:
            bad("transfer %s without its SIM", t["xid"])

    # SIMs and their wallets
    wallet_owner = {}
    for s in sims.values():
        w = accounts.get(s["wallet_id"])
        if w is None:
            bad("sim %s has no wallet account", s["iccid"])
            continue
        if (w["kind"], w["unit"], w["sim_id"], w["flags"] & 1) != ("wallet", currency, s["id"], 1):
            bad("sim %s: wallet %d is %r", s["iccid"], w["id"], (w["kind"], w["unit"], w["sim_id"], w["flags"]))
        if w["id"] in wallet_owner:
            bad("wallet %d shared by sims %s and %s", w["id"], wallet_owner[w["id"]], s["iccid"])
        wallet_owner[w["id"]] = s["iccid"]
    for a in accounts.values():
        if a["kind"] == "wallet" and a["id"] not in wallet_owner:
            bad("wallet account %d belongs to no SIM (half-applied provisioning?)", a["id"])

    recs_by_sim = collections.defaultdict(list)
    recs_by_topup = collections.defaultdict(list)
    recs_by_bundle = collections.defaultdict(list)
    for r in records:
        recs_by_sim[r["sim_id"]].append(r)
        if r["sim_id"] not in sims:
            bad("record %d of a missing sim", r["id"])
        if r["topup_id"] is not None:
            recs_by_topup[r["topup_id"]].append(r)
            if r["topup_id"] not in topups:
                bad("record %d refers to missing top-up %d", r["id"], r["topup_id"])
        if r["bundle_id"] is not None:
            recs_by_bundle[r["bundle_id"]].append(r)
            if r["bundle_id"] not in bundles:
                bad("record %d refers to missing bundle %d", r["id"], r["bundle_id"])
        kind_ok = {"topup": r["topup_id"] is not None and r["bundle_id"] is None,
                   "reactivation_fee": r["topup_id"] is not None and r["bundle_id"] is None,
                   "bundle_purchase": r["bundle_id"] is not None and r["topup_id"] is None,
                   "forfeiture": r["topup_id"] is None and r["bundle_id"] is None,
                   # 013: staff's suspensions move nothing; only they carry a reason
                   "suspension": r["topup_id"] is None and r["bundle_id"] is None and r["amount"] == 0,
                   "resumption": r["topup_id"] is None and r["bundle_id"] is None and r["amount"] == 0,
                   }.get(r["kind"])
        if kind_ok and r.get("reason") is not None and r["kind"] not in ("suspension", "resumption"):
            kind_ok = False
        if not kind_ok:
            bad("record %d: kind %s with topup %s bundle %s", r["id"], r["kind"], r["topup_id"], r["bundle_id"])
    for s in sims.values():
        w = accounts.get(s["wallet_id"])
        if w is None:
            continue
        balance = w["credits_posted"] - w["debits_posted"]
        rs = recs_by_sim.get(s["id"], [])
        total = sum(r["amount"] for r in rs)
        if total != balance:
            bad("sim %s: wallet balance %d != sum of its %d records %d", s["iccid"], balance, len(rs), total)
        if rs and rs[-1]["balance_after"] != balance:
            bad("sim %s: newest record says balance_after %d, wallet holds %d", s["iccid"], rs[-1]["balance_after"],
                balance)
        # 003: the SIM's row chains exactly its records, newest first.
        chain, at = [], s["last_txn"]
        while at and len(chain) <= len(rs):
            chain.append(at)
            at = records_by_link[at]["prev"] if at in records_by_link else None
        if chain != [r["link"] for r in reversed(rs)]:
            bad("sim %s: its chain of records %r, its records %r", s["iccid"], chain[:8],
                [r["link"] for r in reversed(rs)][:8])
        # 003: the sweeper looks at a SIM no later than its next change (the
        # grace and retention windows are configuration, so only the active
        # bound is known here), and never at one time cannot move.
        movable = s["state"] in ("active", "grace", "expired")
        if movable != (s["check_at"] is not None) or \
                (s["state"] == "active" and s["check_at"] > s["active_until"]):
            bad("sim %s: %s until %s, check_at %s", s["iccid"], s["state"], s["active_until"], s["check_at"])
        # 014: a terminated SIM has given its number back, and only it has one to give
        if s.get("released_msisdn") is not None and s["state"] != "terminated":
            bad("sim %s: %s, but released %s", s["iccid"], s["state"], s["released_msisdn"])
        if s["state"] == "terminated" and s["msisdn"] is not None and "released_msisdn" in s:
            bad("sim %s: terminated, still holding %s", s["iccid"], s["msisdn"])
        # 013: a SIM's suspensions and resumptions alternate (a call that
        # changes nothing records nothing; the first may be the resumption of
        # a SIM suspended before 013, which left no record), and the last
        # says whether it is suspended now (unless termination came after).
        toggles = [r["kind"] for r in rs if r["kind"] in ("suspension", "resumption")]
        if any(k == toggles[i - 1] for i, k in enumerate(toggles) if i):
            bad("sim %s: suspensions and resumptions out of turn: %r", s["iccid"], toggles[:8])
        elif toggles and s["state"] != "terminated" and (s["state"] == "suspended") != (toggles[-1] == "suspension"):
            bad("sim %s: %s, its last suspension record %r", s["iccid"], s["state"], toggles[-1:])
        running = 0
        for r in rs:
            running += r["amount"]
            if r["balance_after"] != running:
                bad("sim %s: record %d balance_after %d, running sum %d", s["iccid"], r["id"], r["balance_after"],
                    running)
                break

    # top-ups: exactly their parts
    for t in topups.values():
        s = sims.get(t["sim_id"])
        if s is None:
            bad("top-up %d of a missing sim", t["id"])
            continue
        x = xids.get("topup:%d" % t["id"])
        if x is None:
            bad("top-up %d has no ledger transfer", t["id"])
        elif (x["amount"], x["credit_id"], x["unit"], x["flags"], x["kind"]) != \
                (t["amount"], s["wallet_id"], t["currency"], 0, "topup"):
            bad("top-up %d: transfer %r does not match", t["id"], x)
        elif accounts[x["debit_id"]]["name"] != "clearing_%s:%s" % (t["method"], t["currency"]):
            bad("top-up %d paid from %s", t["id"], accounts[x["debit_id"]]["name"])
        fee = xids.get("topup:%d:fee" % t["id"])
        if (fee is not None) != (t["fee"] > 0) or (fee is not None and fee["amount"] != t["fee"]):
            bad("top-up %d: fee %d, fee transfer %r", t["id"], t["fee"], fee)
        # A receipt is composed from its row when fetched (receipt.h R1); one
        # stored by an older version must be what that row says.
        problem = receipt_problem(t, s, t["receipt"]) if t["receipt"] is not None else None
        if problem:
            bad("top-up %d: %s", t["id"], problem)
        kinds = sorted(r["kind"] for r in recs_by_topup.get(t["id"], []))
        want = ["reactivation_fee", "topup"] if t["fee"] > 0 else ["topup"]
        if kinds != want:
            bad("top-up %d has records %r (want %r)", t["id"], kinds, want)
        else:
            rec = [r for r in recs_by_topup[t["id"]] if r["kind"] == "topup"][0]
            if rec["amount"] != t["amount"] or rec["sim_id"] != t["sim_id"] or \
                    rec["receipt"] != receipt_number(t["id"]):
                bad("top-up %d: record %r does not match", t["id"], rec)

    # bundles: exactly their parts
    bundle_accounts = set()
    for b in bundles.values():
        p = plans.get(b["plan_id"])
        s = sims.get(b["sim_id"])
        if p is None or s is None:
            bad("bundle %d without its plan or sim", b["id"])
            continue
        x = xids.get("bundle:%d:price" % b["id"])
        if p["price"] > 0:
            if x is None or (x["amount"], x["debit_id"], x["unit"]) != (p["price"], s["wallet_id"], p["currency"]):
                bad("bundle %d: price transfer %r (price %d)", b["id"], x, p["price"])
        elif x is not None:
            bad("bundle %d of a free plan has a price transfer", b["id"])
        for col, unit in SERVICE_UNITS:
            acct = b[col.split("_")[0] + "_account"]
            g = xids.get("bundle:%d:%s" % (b["id"], unit))
            if p[col] > 0:
                if acct is None or g is None or (g["amount"], g["credit_id"], g["unit"]) != (p[col], acct, unit):
                    bad("bundle %d: %s grant %r into account %s", b["id"], unit, g, acct)
                bundle_accounts.add(acct)
            elif acct is not None or g is not None:
                bad("bundle %d: %s account/grant for a zero allowance", b["id"], unit)
        kinds = [r["kind"] for r in recs_by_bundle.get(b["id"], [])]
        if kinds != ["bundle_purchase"]:
            bad("bundle %d has records %r", b["id"], kinds)
        elif recs_by_bundle[b["id"]][0]["amount"] != -p["price"]:
            bad("bundle %d: record amount %d, price %d", b["id"], recs_by_bundle[b["id"]][0]["amount"], p["price"])
    for a in accounts.values():
        if a["kind"] == "bundle" and a["id"] not in bundle_accounts:
            bad("bundle account %d belongs to no bundle (half-applied purchase?)", a["id"])

    # idempotency rows <-> top-ups and bundles, one to one
    by_topup = collections.Counter()
    by_bundle = collections.Counter()
    for row in idem:
        body = row["body"]
        m = re.match(r'^\{"topup":\{"id":"tu_(\d+)"', body)
        ref = row["topup_id"] if row["topup_id"] is not None else int(m.group(1)) if m else None
        if row["topup_id"] is not None and body:
            bad("idempotency key %s keeps both a body and top-up %d", row["key"], row["topup_id"])
        if ref is not None:
            by_topup[ref] += 1
            if ref not in topups:
                bad("idempotency key %s answers top-up tu_%s, which does not exist", row["key"], ref)
        m = re.match(r'^\{"bundle":\{"id":"bu_(\d+)"', body)
        if m:
            by_bundle[int(m.group(1))] += 1
            if int(m.group(1)) not in bundles:
                bad("idempotency key %s answers bundle bu_%s, which does not exist", row["key"], m.group(1))
    for tid in topups:
        if by_topup[tid] != 1:
            bad("top-up %d is the answer of %d idempotency keys (want 1)", tid, by_topup[tid])
    for bid in bundles:
        if by_bundle[bid] != 1:
            bad("bundle %d is the answer of %d idempotency keys (want 1)", bid, by_bundle[bid])

    counts = {"sims": len(sims), "topups": len(topups), "bundles": len(bundles), "plans": len(plans),
              "transfers": len(transfers), "records": len(records),
              "receipts": sum(1 for t in topups.values() if t["receipt"] is not None),
              "idempotency": len(idem), "units": {u: tuple(x) for u, x in per_unit.items()}}
    return v, counts


def snapshot(path):
    """Row counts of every mutable table, and every wallet's balance: to prove nothing moved."""
    con = open_ro(path)
    try:
        tables = ["sims", "accounts", "transfers", "plans", "bundles", "topups", "sim_txns", "idempotency", "tokens"]
        out = {t: con.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0] for t in tables}
        out["receipts"] = con.execute("SELECT COUNT(receipt) FROM topups").fetchone()[0]
        out["wallets"] = {r[0]: r[1] for r in con.execute(   # 004: in the SIM's row (ledger L7)
            "SELECT iccid, w_credits_posted - w_debits_posted FROM sims")}
        out["sim_states"] = {r[0]: r[1] for r in con.execute("SELECT iccid, state FROM sims")}
        return out
    finally:
        con.close()
