-- 008: the CHECKs on sims.lang, sims.state and bundles.state compare; they
-- no longer look the value up in a list. SQLite codes `x IN (three or more
-- constants)` inside a CHECK as a temporary index that it builds again at
-- every statement writing the column (EXPLAIN: OpenEphemeral, then one
-- IdxInsert per value): each top-up's UPDATE of its SIM's state, each SIM
-- imported and each bundle bought paid for a fresh B-tree. That UPDATE took
-- 12.1k cycles against 3.4k for another UPDATE of the same row, and HTTP
-- top-ups went from 27.0k to 31.1k/s without it.
--
-- The same rule written as comparisons admits exactly the same values, so
-- every stored row still satisfies it. SQLite cannot change a CHECK with
-- ALTER TABLE; this follows its documented procedure for removing CHECK
-- constraints in place (the stored CREATE TABLE text is edited, the schema
-- cookie incremented). The alternative, rebuilding both tables, took 56 s,
-- 1.9 GB of memory and left 1.8 GB of free pages in the file at 10M SIMs;
-- this takes no time at any size.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(replace(sql,
    'CHECK (lang IN (''zh'', ''en'', ''ru''))',
    'CHECK (lang = ''zh'' OR lang = ''en'' OR lang = ''ru'')'),
    'CHECK (state IN (''inactive'',''active'',''grace'',''expired'',''terminated'',''suspended''))',
    'CHECK (state = ''inactive'' OR state = ''active'' OR state = ''grace'' OR state = ''expired'' OR '
    || 'state = ''terminated'' OR state = ''suspended'')')
WHERE type = 'table' AND name = 'sims';
UPDATE sqlite_schema
SET sql = replace(sql,
    'CHECK (state IN (''active'', ''expired'', ''forfeited''))',
    'CHECK (state = ''active'' OR state = ''expired'' OR state = ''forfeited'')')
WHERE type = 'table' AND name = 'bundles';
PRAGMA writable_schema = OFF;

-- Both texts were found and replaced, or the migration is refused.
CREATE TEMP TABLE migration_008_guard (edited INTEGER NOT NULL CHECK (edited));
INSERT INTO migration_008_guard
SELECT (SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('sims', 'bundles')
        AND sql NOT LIKE '%CHECK (% IN (%') = 2
   AND (SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'sims'
        AND instr(sql, 'CHECK (lang = ''zh'' OR') AND instr(sql, 'CHECK (state = ''inactive'' OR')) = 1
   AND (SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'bundles'
        AND instr(sql, 'CHECK (state = ''active'' OR')) = 1;
DROP TABLE migration_008_guard;

-- The schema cookie: any DDL statement increments it, so that every
-- connection opened or still open parses the edited text.
CREATE TABLE migration_008_cookie (x);
DROP TABLE migration_008_cookie;
