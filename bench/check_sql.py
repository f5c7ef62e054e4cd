#!/usr/bin/env python3
"""Keeps the bench's copies of the server honest.

1. Every statement bench/sqlite_ceiling.c prepares (its prep("...") calls)
   must be, word for word, a statement the server declares with STORE_SQL in
   src/. When the server's write path changes a statement, this fails and
   names it, so the ceiling is updated with it.
2. bench/engine_bench.c must run the server's own top-up command
   (api_topup_exec from src/api/topups.c), not a copy of it.
3. The ceiling's pragmas (page size, journal, sync, cache) must be, word for
   word, those the server's writer opens its database with
   (src/store/sqlite.c, STORE_WRITER).

    bench/check_sql.py [REPO_ROOT]     exit 0 when all match, 1 otherwise
"""
import pathlib
import re
import sys

LITERALS = r'((?:\s*"(?:[^"\\]|\\.)*")+)'
STORE_SQL = re.compile(r"STORE_SQL\(\s*\w+\s*," + LITERALS + r"\s*\)")
PREP = re.compile(r"\bprep\(" + LITERALS + r"\s*\)")
SIM_COLS = re.compile(r'#define\s+(\w+)\s+((?:"(?:[^"\\]|\\.)*"\s*(?:\\\n\s*)?)+)')


def join(literals: str) -> str:
    return "".join(bytes(m, "utf-8").decode("unicode_escape")
                   for m in re.findall(r'"((?:[^"\\]|\\.)*)"', literals))


def norm(sql: str) -> str:
    return " ".join(sql.split())


def server_statements(root: pathlib.Path) -> set:
    out = set()
    for path in sorted((root / "src").rglob("*.c")):
        text = path.read_text(encoding="utf-8", errors="replace")
        # Expand string macros used inside STORE_SQL (e.g. SIM_COLS).
        macros = {m.group(1): join(m.group(2)) for m in SIM_COLS.finditer(text)}
        for name, value in macros.items():
            text = re.sub(r'\b%s\b' % re.escape(name), '"%s"' % value.replace('"', '\\"'), text)
        for m in STORE_SQL.finditer(text):
            out.add(norm(join(m.group(1))))
    return out


def pragmas(text: str) -> str:
    """The pragmas of the first string that sets the page size, through the
    one that ends them (temp_store): the ceiling's, or the server writer's."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    first = next((i for i, p in enumerate(parts) if p.startswith("PRAGMA page_size")), None)
    if first is None:
        return ""
    out = []
    for p in parts[first:]:
        out.append(p)
        if "temp_store" in p:
            return norm("".join(out))
    return ""


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    ceiling = (root / "bench" / "sqlite_ceiling.c").read_text(encoding="utf-8")
    mine = [norm(join(m.group(1))) for m in PREP.finditer(ceiling)]
    server = server_statements(root)
    missing = [s for s in mine if s not in server]
    if not mine:
        print("check_sql: no statements found in bench/sqlite_ceiling.c", file=sys.stderr)
        return 1
    for s in missing:
        print("check_sql: bench/sqlite_ceiling.c prepares a statement src/ no longer has:\n    %s" % s,
              file=sys.stderr)
    if missing:
        print("check_sql: the server's write path changed; update bench/sqlite_ceiling.c to match it",
              file=sys.stderr)
    print("check_sql: %d of the %d statements of the ceiling are the server's" % (len(mine) - len(missing), len(mine)),
          file=sys.stderr)
    ours, theirs = pragmas(ceiling), pragmas((root / "src" / "store" / "sqlite.c").read_text(encoding="utf-8"))
    if not ours or ours != theirs:
        print("check_sql: the ceiling's pragmas differ from the server writer's:\n    %s\n    %s" % (ours, theirs),
              file=sys.stderr)
        missing.append("pragmas")
    same = "api_topup_exec" in (root / "bench" / "engine_bench.c").read_text(encoding="utf-8", errors="replace")
    print("check_sql: bench/engine_bench.c %s the server's api_topup_exec" % ("runs" if same else "does NOT run"),
          file=sys.stderr)
    return 0 if not missing and same else 1


if __name__ == "__main__":
    sys.exit(main())
