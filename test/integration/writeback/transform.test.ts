/**
 * Transform: SQL files run in order in one transaction with row counts recorded; a failure names
 * the file, the line and PostgreSQL's message, and leaves the previous results in place.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from 'pg';
import { parseConfig } from '../../../lambdas/config';
import { createPool, migrate, quoteIdent, type PostgresPool } from '../../../lambdas/connectors/postgres';
import {
  runTransform,
  TRANSFORM_TIME_RESERVE_MS,
  TransformError,
  tryTransform,
} from '../../../lambdas/core/transform';
import { givenDeps } from '../../../lambdas/handlers/deps';
import { createHandler as transformHandler } from '../../../lambdas/handlers/transform';
import { acceleratedClock } from '../../../lambdas/shared/clock';
import { TransientError } from '../../../lambdas/shared/errors';
import { createMemoryLogger, type LogRecord } from '../../../lambdas/shared/logging';
import { createTestDatabase, type TestDatabase } from '../../support/database';

const FIRST = `-- scores: a table refilled each run
CREATE TABLE IF NOT EXISTS scores (id int PRIMARY KEY, label text, score int);
DELETE FROM scores;
INSERT INTO scores VALUES (1, 'semi;colon', 10), (2, 'it''s', 20), (3, $$dollar; quoted$$, 30);
`;

const SECOND = `/* bump: nested /* comments */ are skipped; */
UPDATE scores SET score = score + 1 WHERE id <= 2;

CREATE OR REPLACE FUNCTION double_it(x int) RETURNS int LANGUAGE sql AS $fn$ SELECT x * 2; $fn$;
UPDATE scores SET score = double_it(score) WHERE id = 3;
`;

describe('runTransform', () => {
  let db: TestDatabase;
  let pool: PostgresPool;
  let dir: string;

  beforeAll(async () => {
    db = await createTestDatabase('rt_tf');
    pool = createPool({ url: db.url }, { ssl: { mode: 'disable' } });
    await migrate(pool);
    dir = mkdtempSync(path.join(tmpdir(), 'rt-transform-'));
    writeFileSync(path.join(dir, '01_scores.sql'), FIRST);
    writeFileSync(path.join(dir, '02_bump.sql'), SECOND);
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  function deps(files: string[], schema?: string) {
    const config = parseConfig({
      name: 'tf-test',
      postgres: { secret: 'roundtrip/postgres', ...(schema !== undefined ? { schema } : {}) },
      transform: files.map((f) => path.join(dir, f)),
    });
    return { config, pg: pool, logger: createMemoryLogger(), clock: acceleratedClock(0) };
  }

  async function newRun(): Promise<string> {
    const runId = `tf-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    await pool.query(
      `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ($1, 'tf-test', 'running')`,
      [runId],
    );
    return runId;
  }

  /**
   * The row count of each statement of each file, as the run's summary records them: the step's
   * output says only each file's totals (it is carried in the execution's state, 256 KiB at most).
   */
  async function rowCountsOf(runId: string): Promise<number[][]> {
    const { rows } = await pool.query<{ summary: { transform: { files: { rowCounts: number[] }[] } } }>(
      `SELECT summary FROM roundtrip.runs WHERE run_id = $1`,
      [runId],
    );
    return (rows[0]?.summary.transform.files ?? []).map((f) => f.rowCounts);
  }

  it('runs the files in order in one transaction and records each statement row count', async () => {
    const runId = await newRun();
    const result = await runTransform(deps(['01_scores.sql', '02_bump.sql']), { runId });

    expect(result.files.map((f) => [path.basename(f.file), f.statements, f.rows])).toEqual([
      ['01_scores.sql', 3, 3],
      ['02_bump.sql', 3, 3],
    ]);
    // The step's output says each file's totals; each statement's count is in the run's summary.
    expect(result.files.map((f) => Object.keys(f).sort())).toEqual([
      ['durationMs', 'file', 'rows', 'statements'],
      ['durationMs', 'file', 'rows', 'statements'],
    ]);
    expect(await rowCountsOf(runId)).toEqual([
      [0, 0, 3],
      [2, 0, 1],
    ]);
    const { rows } = await pool.query(`SELECT id, label, score FROM scores ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, label: 'semi;colon', score: 11 },
      { id: 2, label: "it's", score: 21 },
      { id: 3, label: 'dollar; quoted', score: 60 },
    ]);
    const { rows: runs } = await pool.query(`SELECT summary FROM roundtrip.runs WHERE run_id = $1`, [runId]);
    expect(runs[0].summary.transform.files.map((f: { rows: number }) => f.rows)).toEqual([3, 3]);
  });

  it('counts the rows written, not those deleted or selected: a table emptied and filled again is written once a run', async () => {
    writeFileSync(
      path.join(dir, '03_refill.sql'),
      `CREATE TABLE IF NOT EXISTS refill (id int);\nDELETE FROM refill;\nINSERT INTO refill VALUES (1), (2);\nSELECT * FROM refill;\nCREATE TEMP TABLE copied AS SELECT * FROM refill;\n`,
    );
    const firstRun = await newRun();
    const first = await runTransform(deps(['03_refill.sql']), { runId: firstRun });
    const secondRun = await newRun();
    const second = await runTransform(deps(['03_refill.sql']), { runId: secondRun });

    expect(first.files[0]).toMatchObject({ statements: 5, rows: 4 });
    expect(await rowCountsOf(firstRun)).toEqual([[0, 0, 2, 2, 2]]);
    expect(second.files[0]).toMatchObject({ statements: 5, rows: 4 });
    expect(await rowCountsOf(secondRun)).toEqual([[0, 2, 2, 2, 2]]);
  });

  it('counts a COPY as rows written when it copies rows in, not when it copies a table or query out', async () => {
    writeFileSync(
      path.join(dir, '03_copies.sql'),
      `CREATE TABLE IF NOT EXISTS copied_out (id int);\nDELETE FROM copied_out;\nINSERT INTO copied_out VALUES (1), (2), (3);\nCOPY copied_out TO STDOUT;\nCOPY (SELECT * FROM copied_out) TO STDOUT WITH (FORMAT csv);\nCOPY "copied_out" (id) TO STDOUT;\nCOPY copied_out (id) FROM PROGRAM 'printf "4\\n5\\n"';\n`,
    );
    const runId = await newRun();
    const result = await runTransform(deps(['03_copies.sql']), { runId });
    // The three inserted and the two copied in (a server-side COPY FROM, here a program's output).
    expect(result.files[0]).toMatchObject({ rows: 5 });
    expect(await rowCountsOf(runId)).toEqual([[0, 0, 3, 3, 3, 3, 2]]);
  });

  it('does not keep the rows a SELECT left in a file returns: 400 MB of them run in a process of a 128 MB heap, as the Transform function’s is bounded', async () => {
    writeFileSync(
      path.join(dir, '23_look.sql'),
      `-- a look at the data, left in\nSELECT id, repeat('x', 2000) AS padding FROM generate_series(1, 200000) AS id;\n`,
    );
    const script = path.join(dir, 'run-look.ts');
    writeFileSync(
      script,
      [
        `import { parseConfig } from ${JSON.stringify(path.resolve(__dirname, '../../../lambdas/config'))};`,
        `import { createPool } from ${JSON.stringify(path.resolve(__dirname, '../../../lambdas/connectors/postgres'))};`,
        `import { tryTransform } from ${JSON.stringify(path.resolve(__dirname, '../../../lambdas/core/transform'))};`,
        `import { silentLogger } from ${JSON.stringify(path.resolve(__dirname, '../../../lambdas/shared/logging'))};`,
        `const pg = createPool({ url: process.env.LOOK_DB_URL as string }, { ssl: { mode: 'disable' } });`,
        `const config = parseConfig({ name: 'tf-test', postgres: { secret: 'roundtrip/postgres' }, transform: [process.env.LOOK_FILE as string] });`,
        `tryTransform({ config, pg, logger: silentLogger }, async () => undefined)`,
        `  .then((tried) => process.stdout.write(JSON.stringify(tried.files[0]?.rowCounts)))`,
        `  .finally(() => pg.end());`,
      ].join('\n'),
    );
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve) => {
      const child = spawn(
        process.execPath,
        ['--max-old-space-size=128', '--import', pathToFileURL(require.resolve('tsx')).href, script],
        { env: { ...process.env, LOOK_DB_URL: db.url, LOOK_FILE: path.join(dir, '23_look.sql') } },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
      child.on('close', (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }));
    });
    expect({ code, stdout, stderr: stderr.slice(-500) }).toEqual({ code: 0, stdout: '[200000]', stderr: '' });
  });

  it('refuses a file not in UTF-8 (Latin-1, UTF-16) or holding a NUL, naming its line, rather than writing U+FFFD for its accents or retrying a protocol error', async () => {
    await pool.query(`CREATE TABLE named (n text)`);
    const sql = `DELETE FROM named;\nINSERT INTO named VALUES ('Café Müller');\n`;
    const utf16be = Buffer.from(sql, 'utf16le');
    utf16be.swap16();
    const cases: ReadonlyArray<readonly [string, Buffer, RegExp]> = [
      [
        '24_latin1.sql',
        Buffer.from(sql, 'latin1'),
        /24_latin1\.sql, line 2: the file is not UTF-8: byte 0xE9 is not UTF-8 there \(a file saved as Latin-1 or Windows-1252\?\); save it as UTF-8; nothing was run$/,
      ],
      [
        '25_utf16.sql',
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(sql, 'utf16le')]),
        /25_utf16\.sql, line 1: the file is UTF-16 \(little-endian, by its byte order mark\), not UTF-8; save it as UTF-8; nothing was run$/,
      ],
      [
        '26_utf16be.sql',
        Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be]),
        /26_utf16be\.sql, line 1: the file is UTF-16 \(big-endian, by its byte order mark\), not UTF-8/,
      ],
      [
        '27_nul.sql',
        Buffer.from(`DELETE FROM named;\n\nINSERT INTO named VALUES ('a\0b');\n`),
        /27_nul\.sql, line 3: the file holds a NUL character \(byte 0x00\), which PostgreSQL does not take in SQL \(a file saved as UTF-16 has one beside each ASCII letter\); remove it, or save the file as UTF-8; nothing was run$/,
      ],
    ];
    for (const [name, bytes, message] of cases) {
      await pool.query(`INSERT INTO named VALUES ('kept')`);
      writeFileSync(path.join(dir, name), bytes);
      const error = await runTransform(deps([name]), { runId: await newRun() }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransformError);
      expect((error as Error).message).toMatch(message);
      const { rows } = await pool.query(`SELECT n FROM named`);
      expect(rows).toEqual([{ n: 'kept' }]);
      await pool.query(`DELETE FROM named`);
    }
    // The same file in UTF-8, with a byte order mark or without, runs.
    writeFileSync(path.join(dir, '28_utf8.sql'), `\uFEFF${sql}`);
    await runTransform(deps(['28_utf8.sql']), { runId: await newRun() });
    const { rows } = await pool.query(`SELECT n FROM named`);
    expect(rows).toEqual([{ n: 'Café Müller' }]);
  });

  it('hands its connection back to the pool as new: a file’s SET search_path or temp table does not outlive the transform', async () => {
    writeFileSync(
      path.join(dir, '05_session.sql'),
      `CREATE SCHEMA IF NOT EXISTS elsewhere;\nSET search_path TO elsewhere, public;\nCREATE TEMP TABLE scratch AS SELECT 1 AS x;\n`,
    );
    const single = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 1 });
    try {
      await runTransform({ ...deps(['05_session.sql']), pg: single }, { runId: await newRun() });
      // The pool's only connection is the one the transform used.
      const { rows } = await single.query(
        `SELECT current_setting('search_path') AS path, to_regclass('pg_temp.scratch') AS scratch`,
      );
      expect(rows).toEqual([{ path: '"$user", public', scratch: null }]);
    } finally {
      await single.end();
    }
  });

  it('records the run’s summary as the configured user after a file’s SET ROLE or SET SESSION AUTHORIZATION, instead of failing every file on the role’s rights', async () => {
    const role = `rt_tf_owner_${Date.now()}`;
    await pool.query(`CREATE ROLE ${role} NOLOGIN`);
    try {
      await pool.query(`GRANT CREATE, USAGE ON SCHEMA public TO ${role}`);
      writeFileSync(
        path.join(dir, '21_role.sql'),
        `SET ROLE ${role};\nCREATE TABLE role_owned AS SELECT 1 AS x;\n`,
      );
      const runId = await newRun();
      const result = await runTransform(deps(['21_role.sql']), { runId });
      expect(result.files[0]).toMatchObject({ statements: 2, rows: 1 });
      const { rows } = await pool.query(
        `SELECT r.summary->'transform'->'files'->0->>'rows' AS rows, t.tableowner
           FROM roundtrip.runs r, pg_tables t WHERE r.run_id = $1 AND t.tablename = 'role_owned'`,
        [runId],
      );
      expect(rows).toEqual([{ rows: '1', tableowner: role }]);

      // validate's inspect, too, reads as the configured user.
      writeFileSync(path.join(dir, '22_role.sql'), `SET ROLE ${role};\nSELECT 1;\n`);
      const tried = await tryTransform(
        deps(['22_role.sql']),
        async (client) => (await client.query<{ who: string }>(`SELECT current_user AS who`)).rows[0]?.who,
      ).catch((e: unknown) => e);
      expect(tried).toMatchObject({ inspected: new URL(db.url).username });

      // pg_dump --use-set-session-authorization writes SET SESSION AUTHORIZATION (a superuser's).
      writeFileSync(
        path.join(dir, '23_authorization.sql'),
        `SET SESSION AUTHORIZATION ${role};\nCREATE TABLE authorization_owned AS SELECT 1 AS x;\n`,
      );
      const authorized = await runTransform(deps(['23_authorization.sql']), { runId: await newRun() });
      expect(authorized.files[0]).toMatchObject({ statements: 2, rows: 1 });
      const { rows: owned } = await pool.query(
        `SELECT tableowner FROM pg_tables WHERE tablename = 'authorization_owned'`,
      );
      expect(owned).toEqual([{ tableowner: role }]);
    } finally {
      await pool.query(`DROP OWNED BY ${role}`);
      await pool.query(`DROP ROLE ${role}`);
    }
  });

  it('names the file, the line and the database message of a syntax error, and keeps the previous results', async () => {
    writeFileSync(
      path.join(dir, '03_broken.sql'),
      `-- a broken file\nDELETE FROM scores;\n\nUPDATE scores\n   SET score = 0\n WHRE id = 1;\n`,
    );
    const runId = await newRun();
    const attempt = runTransform(deps(['01_scores.sql', '02_bump.sql', '03_broken.sql']), { runId });

    await expect(attempt).rejects.toThrow(TransformError);
    await expect(attempt).rejects.toThrow(
      /03_broken\.sql, line 6: syntax error at or near "WHRE" \(SQLSTATE 42601\)/,
    );
    // The DELETE of the same transaction was rolled back with everything else.
    const { rows } = await pool.query(`SELECT score FROM scores ORDER BY id`);
    expect(rows.map((r) => r.score)).toEqual([11, 21, 60]);
  });

  it('fails on a comment never closed, naming its line, rather than running the file without the statements it swallowed', async () => {
    await pool.query(`CREATE TABLE refilled AS SELECT generate_series(1, 3) AS id`);
    writeFileSync(
      path.join(dir, '22_open_comment.sql'),
      `DELETE FROM refilled WHERE id = 1;\n\n/* the refill, commented out while testing\nDELETE FROM refilled;\nINSERT INTO refilled VALUES (9);\n`,
    );
    const attempt = runTransform(deps(['22_open_comment.sql']), { runId: await newRun() });
    await expect(attempt).rejects.toThrow(
      /22_open_comment\.sql, line 3: unterminated \/\* comment at or near "\/\* the refill.*\(SQLSTATE 42601\)/s,
    );
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM refilled`);
    expect(rows[0].n).toBe(3);
  });

  it('names the statement line of an error raised while running, such as a constraint', async () => {
    writeFileSync(
      path.join(dir, '04_runtime.sql'),
      `SELECT 1;\n\nINSERT INTO scores VALUES\n  (1, 'again', 0);\n`,
    );
    const runId = await newRun();
    const attempt = runTransform(deps(['01_scores.sql', '04_runtime.sql']), { runId });

    await expect(attempt).rejects.toThrow(
      /04_runtime\.sql, line 3: duplicate key value violates unique constraint "scores_pkey" \(SQLSTATE 23505\)/,
    );
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM scores`);
    expect(rows[0].n).toBe(3);
  });

  it('counts the error position in characters as PostgreSQL does: an emoji before it does not move the line back', async () => {
    writeFileSync(path.join(dir, '12_emoji.sql'), `UPDATE scores SET label = '🎯 top 🎯'\nWHRE id = 1;\n`);
    const attempt = runTransform(deps(['12_emoji.sql']), { runId: await newRun() });
    await expect(attempt).rejects.toThrow(/12_emoji\.sql, line 2: syntax error at or near "WHRE"/);
  });

  it('names the file line of an error inside a DO block, and the PL/pgSQL function an error was raised in', async () => {
    writeFileSync(
      path.join(dir, '13_plpgsql.sql'),
      [
        `CREATE OR REPLACE FUNCTION ratio(a int, b int) RETURNS int LANGUAGE plpgsql AS $$`,
        `BEGIN`,
        `  RETURN a / b;`,
        `END $$;`,
        ``,
        `DO $body$`,
        `DECLARE n int;`,
        `BEGIN`,
        `  DELETE FROM scores WHERE id = 1;`,
        `  n := ratio(1, 0);`,
        `END $body$;`,
        ``,
      ].join('\n'),
    );
    const attempt = runTransform(deps(['13_plpgsql.sql']), { runId: await newRun() });
    await expect(attempt).rejects.toThrow(TransformError);
    await expect(attempt).rejects.toThrow(
      '13_plpgsql.sql, line 10: division by zero (SQLSTATE 22012) — in PL/pgSQL function ratio(integer,integer) line 3 at RETURN, called from the DO block, line 10 at assignment;',
    );

    writeFileSync(
      path.join(dir, '14_do_sql.sql'),
      `SELECT 1;\nDO LANGUAGE plpgsql '\nBEGIN\n  INSERT INTO scores (id)\n  SELECT nope FROM scores;\nEND';\n`,
    );
    const second = runTransform(deps(['14_do_sql.sql']), { runId: await newRun() });
    await expect(second).rejects.toThrow(
      /14_do_sql\.sql, line 4: column "nope" does not exist .*the DO block, line 4 at SQL statement/,
    );
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM scores`);
    expect(rows[0].n).toBe(3);
  });

  it('refuses a psql meta-command or a COPY … FROM STDIN by its file and line before any file runs, instead of a syntax error at "\\" or a retry', async () => {
    writeFileSync(path.join(dir, '15_deletes.sql'), `DELETE FROM scores;\n`);
    writeFileSync(
      path.join(dir, '16_psql.sql'),
      `-- loaded with psql before\n\\set ON_ERROR_STOP on\nINSERT INTO scores VALUES (9, 'x', 9);\n`,
    );
    const meta = runTransform(deps(['15_deletes.sql', '16_psql.sql']), { runId: await newRun() });
    await expect(meta).rejects.toThrow(TransformError);
    await expect(meta).rejects.toThrow(
      /16_psql\.sql, line 2: \\set is a psql command, not SQL: .*; nothing was run$/,
    );

    writeFileSync(
      path.join(dir, '17_stdin.sql'),
      `SELECT 1;\n\nCOPY scores (id, label)\n  FROM stdin WITH (FORMAT csv);\n`,
    );
    const error = await runTransform(deps(['15_deletes.sql', '17_stdin.sql']), {
      runId: await newRun(),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransformError);
    expect((error as Error).message).toMatch(
      /17_stdin\.sql, line 3: COPY … FROM STDIN reads its rows from the client.*; nothing was run$/,
    );
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM scores`);
    expect(rows[0].n).toBe(3);
  });

  it('says that a :name the syntax error is at is a psql variable, which only psql replaces', async () => {
    writeFileSync(
      path.join(dir, '31_variables.sql'),
      `SELECT 1;\nSELECT count(*)\n  FROM :"schema".sf_lead\n WHERE x = :'since';\n`,
    );
    const error = await runTransform(deps(['31_variables.sql']), { runId: await newRun() }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TransformError);
    expect((error as Error).message).toMatch(
      /31_variables\.sql, line 3: syntax error at or near ":" \(SQLSTATE 42601\) — hint: :"schema" is a psql variable \(psql -v or \\set\), which psql replaces before it sends the statement; the transform sends the file as it is: write the value itself; the transaction was rolled back/,
    );
    // A cast or an array slice is no variable: PostgreSQL's own error, without the hint.
    writeFileSync(path.join(dir, '32_slice.sql'), `SELECT (ARRAY[1,2])[1:2] FROM nowhere;\n`);
    const other = await runTransform(deps(['32_slice.sql']), { runId: await newRun() }).catch(
      (e: unknown) => e,
    );
    expect((other as Error).message).not.toMatch(/psql variable/);
  });

  it('reports a lock timeout as transient (the step is retried), still naming the file and line, and keeps the previous results', async () => {
    writeFileSync(
      path.join(dir, '09_locked.sql'),
      `SET LOCAL lock_timeout = '200ms';\nDELETE FROM scores WHERE id = 3;\n\nDELETE\n  FROM scores;\n`,
    );
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE scores IN ACCESS EXCLUSIVE MODE');
      const runId = await newRun();
      const error = await runTransform(deps(['09_locked.sql']), { runId }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransientError);
      expect((error as Error).message).toMatch(
        /09_locked\.sql, line 2: canceling statement due to lock timeout \(SQLSTATE 55P03\).* \(transient: the step is retried\)$/,
      );
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM scores`);
    expect(rows[0].n).toBe(3);
  });

  it('cancels a statement still running when the step’s time is nearly out, rolls back and names it (terminal), instead of the Lambda dying while the statement runs on holding its locks', async () => {
    await pool.query(`CREATE TABLE slow AS SELECT 1 AS x`);
    writeFileSync(path.join(dir, '18_slow.sql'), `TRUNCATE slow;\n\nSELECT pg_sleep(30);\n`);
    // The step has half a second left once its reserve is kept.
    const timeLeft = () => TRANSFORM_TIME_RESERVE_MS + 500;
    const runId = await newRun();
    const error = await runTransform(deps(['18_slow.sql']), { runId }, { timeLeft }).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(TransformError);
    expect((error as Error).message).toMatch(
      /18_slow\.sql, line 3: canceled \(canceling statement due to statement timeout, SQLSTATE 57014\) when the transform step's time was nearly out .*; the transaction was rolled back, previous results are unchanged\. Make the transform faster/,
    );
    // Nothing of it left running, nor holding the TRUNCATE's lock: the table reads as before.
    const { rows: running } = await pool.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state <> 'idle'`,
    );
    expect(running[0].n).toBe(0);
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM slow`);
    expect(rows[0].n).toBe(1);

    // The Lambda's own context bounds the Transform step's statements the same way.
    const step = transformHandler(givenDeps(deps(['18_slow.sql'])));
    await expect(step({ runId: await newRun() }, { getRemainingTimeInMillis: timeLeft })).rejects.toThrow(
      /18_slow\.sql, line 3: canceled \(canceling statement due to statement timeout/,
    );

    // Out of time before a statement starts: not started, and named.
    const spent = runTransform(deps(['18_slow.sql']), { runId: await newRun() }, { timeLeft: () => 1000 });
    await expect(spent).rejects.toThrow(
      /18_slow\.sql, line 1: not started when the transform step's time was nearly out/,
    );
  });

  it('says which session holds a lock a statement waits for: in the log while it waits, and in the error when the step’s time runs out, instead of "make the transform faster"', async () => {
    await pool.query(`CREATE TABLE waited_on AS SELECT 1 AS x`);
    writeFileSync(path.join(dir, '21_waits.sql'), `SELECT 1;\n\nTRUNCATE waited_on;\n`);
    const holder = new Client({ connectionString: db.url, application_name: 'nightly-report' });
    await holder.connect();
    try {
      const holderPid = (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE waited_on IN ACCESS SHARE MODE');
      const heldBy = new RegExp(
        `session ${holderPid} \\(user \\w+, application "nightly-report", idle in transaction, its transaction begun \\d+ s before, its last statement: LOCK TABLE waited_on IN ACCESS SHARE MODE\\)`,
      );

      // Waiting, told in the log; the statement runs once the lock is released.
      const logged = deps(['21_waits.sql']);
      const waitingRun = await newRun();
      const running = runTransform(logged, { runId: waitingRun }, { lockWaitCheckMs: 50 });
      const waiting = (): LogRecord | undefined =>
        logged.logger.records.find((r) => r.message === 'Transform statement waiting for a lock');
      while (!waiting()) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(waiting()?.attributes).toMatchObject({ file: path.join(dir, '21_waits.sql'), line: 3 });
      expect(waiting()?.attributes.heldBy).toMatch(heldBy);
      // The sentence a local run shows without --verbose (loggerFrom's notice logger).
      expect(waiting()?.attributes.notice).toMatch(
        new RegExp(
          `^Transform .*21_waits\\.sql, line 3 has waited \\d+ s for a lock held by ${heldBy.source}: end that session's transaction \\(SELECT pg_terminate_backend\\(${holderPid}\\) ends the session\\); the statement waits until it ends$`,
        ),
      );
      await holder.query('ROLLBACK');
      await expect(running).resolves.toMatchObject({ files: [{ statements: 2 }] });
      expect(await rowCountsOf(waitingRun)).toEqual([[1, 0]]);

      // Still waiting when the step's time is nearly out: the error names the session, not slow SQL.
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE waited_on IN ACCESS SHARE MODE');
      const error = await runTransform(
        deps(['21_waits.sql']),
        { runId: await newRun() },
        { timeLeft: () => TRANSFORM_TIME_RESERVE_MS + 3000, lockWaitCheckMs: 50 },
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransformError);
      const message = (error as Error).message;
      expect(message).toMatch(
        /21_waits\.sql, line 3: canceled \(canceling statement due to statement timeout, SQLSTATE 57014\) when the transform step's time was nearly out .*, while it waited for a lock held by session/,
      );
      expect(message).toMatch(heldBy);
      expect(message).toContain(
        `the transaction was rolled back, previous results are unchanged. End that session's transaction (SELECT pg_terminate_backend(${holderPid}) ends the session)`,
      );
      expect(message).not.toMatch(/faster/);
    } finally {
      await holder.end();
    }
  });

  it('keeps a file’s own shorter statement_timeout (a transient error, retried), and with time to spare runs as without a bound', async () => {
    writeFileSync(
      path.join(dir, '19_own_timeout.sql'),
      `SET LOCAL statement_timeout = '300ms';\nSELECT pg_sleep(30);\n`,
    );
    const timeLeft = () => TRANSFORM_TIME_RESERVE_MS + 600_000;
    const own = await runTransform(
      deps(['19_own_timeout.sql']),
      { runId: await newRun() },
      { timeLeft },
    ).catch((e: unknown) => e);
    expect(own).toBeInstanceOf(TransientError);
    expect((own as Error).message).toMatch(
      /19_own_timeout\.sql, line 2: canceling statement due to statement timeout/,
    );

    const fineRun = await newRun();
    const fine = await runTransform(deps(['01_scores.sql', '02_bump.sql']), { runId: fineRun }, { timeLeft });
    expect(fine.files.map((f) => f.statements)).toEqual([3, 3]);
    expect((await rowCountsOf(fineRun)).map((counts) => counts.length)).toEqual([3, 3]);
  });

  it('keeps the warnings a file raises, with their file lines, in its result and the run summary, and logs every notice', async () => {
    writeFileSync(
      path.join(dir, '20_warns.sql'),
      [
        `DROP TABLE IF EXISTS never_made;`,
        `DO $$`,
        `BEGIN`,
        `  IF (SELECT count(*) FROM scores) < 10 THEN`,
        `    RAISE WARNING 'only % scores', (SELECT count(*) FROM scores) USING HINT = 'check the extract';`,
        `  END IF;`,
        `END $$;`,
        `SELECT 1;`,
        ``,
      ].join('\n'),
    );
    const logger = createMemoryLogger();
    const runId = await newRun();
    const result = await runTransform({ ...deps(['01_scores.sql', '20_warns.sql']), logger }, { runId });

    const warnings = [
      { line: 5, message: 'only 3 scores; in the DO block, line 5 at RAISE; hint: check the extract' },
    ];
    expect(result.files.map((f) => f.warnings)).toEqual([undefined, warnings]);
    const { rows } = await pool.query(`SELECT summary FROM roundtrip.runs WHERE run_id = $1`, [runId]);
    expect(rows[0].summary.transform.files[1].warnings).toEqual(warnings);
    expect(
      logger.records
        .filter(
          (r) =>
            r.message.startsWith('Transform statement raised') &&
            String(r.attributes.file).endsWith('20_warns.sql'),
        )
        .map((r) => [r.level, r.attributes.line, r.attributes.message]),
    ).toEqual([
      ['info', 1, 'table "never_made" does not exist, skipping'],
      ['warn', 5, warnings[0]?.message],
    ]);
    // A file's log line gives its totals, not one count a statement (a log event has a size limit).
    expect(
      logger.records
        .filter((r) => r.message === 'Transform file ran')
        .map((r) => [
          path.basename(String(r.attributes.file)),
          r.attributes.statements,
          r.attributes.rowCounts,
        ]),
    ).toEqual([
      ['01_scores.sql', 3, undefined],
      ['20_warns.sql', 3, undefined],
    ]);
  });

  it('runs a SQL-standard function body (BEGIN ATOMIC … END) as one statement, not as an END', async () => {
    writeFileSync(
      path.join(dir, '11_atomic.sql'),
      `CREATE OR REPLACE FUNCTION clamp_score(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 50 THEN 50 ELSE x END;\nEND;\nSELECT clamp_score(score) FROM scores;\n`,
    );
    const runId = await newRun();
    const result = await runTransform(deps(['11_atomic.sql']), { runId });
    expect(result.files[0]).toMatchObject({ statements: 2 });
    expect(await rowCountsOf(runId)).toEqual([[0, 3]]);
  });

  it('refuses a file that controls the transaction itself (BEGIN/COMMIT) before running any file, so a later failure cannot leave half a transform', async () => {
    writeFileSync(
      path.join(dir, '05_commits.sql'),
      `-- an old habit\nBEGIN;\nDELETE FROM scores WHERE id = 1;\n\ncommit ;\n`,
    );
    writeFileSync(path.join(dir, '06_fails.sql'), `DELETE FROM scores;\nSELECT 1 / 0;\n`);
    const runId = await newRun();
    const attempt = runTransform(deps(['01_scores.sql', '05_commits.sql', '06_fails.sql']), { runId });

    await expect(attempt).rejects.toThrow(TransformError);
    await expect(attempt).rejects.toThrow(/05_commits\.sql, line 2: BEGIN .*one transaction/);
    // Nothing ran: neither file 05's DELETE was committed nor file 06's DELETE applied.
    const { rows } = await pool.query(`SELECT id, score FROM scores ORDER BY id`);
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3]);
  });

  it('refuses END as well, while savepoints inside the transaction stay allowed', async () => {
    writeFileSync(
      path.join(dir, '07_end.sql'),
      `DELETE FROM scores WHERE id = 2;\nEND;\nDELETE FROM scores;\n`,
    );
    const runId = await newRun();
    const attempt = runTransform(deps(['07_end.sql']), { runId });
    await expect(attempt).rejects.toThrow(/07_end\.sql, line 2: END /);
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM scores`);
    expect(rows[0].n).toBe(3);

    writeFileSync(
      path.join(dir, '08_savepoint.sql'),
      `SAVEPOINT before_delete;\nDELETE FROM scores;\nROLLBACK TO SAVEPOINT before_delete;\nRELEASE SAVEPOINT before_delete;\n`,
    );
    const ok = await runTransform(deps(['08_savepoint.sql']), { runId: await newRun() });
    expect(ok.files[0]?.statements).toBe(4);
    const { rows: after } = await pool.query(`SELECT count(*)::int AS n FROM scores`);
    expect(after[0].n).toBe(3);
  });

  it('refuses, before any file runs, a statement PostgreSQL cannot run in a transaction (VACUUM, CREATE INDEX CONCURRENTLY, DISCARD ALL) or one that would set up the transform’s own (SET TRANSACTION) or its text’s encoding, saying what to do instead', async () => {
    await pool.query(`CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2)`);
    writeFileSync(path.join(dir, '18_first.sql'), `DELETE FROM kept;\n`);
    const cases: ReadonlyArray<readonly [string, RegExp]> = [
      [`VACUUM (ANALYZE) kept`, /line 2: VACUUM cannot run inside a transaction.*ANALYZE/],
      [
        `CREATE UNIQUE INDEX\n  CONCURRENTLY kept_id ON kept (id)`,
        /line 2: CREATE INDEX CONCURRENTLY cannot run inside a transaction.*CREATE INDEX without CONCURRENTLY/,
      ],
      [`DROP INDEX CONCURRENTLY IF EXISTS kept_id`, /line 2: DROP INDEX CONCURRENTLY cannot run/],
      [`REINDEX TABLE CONCURRENTLY kept`, /line 2: REINDEX CONCURRENTLY cannot run/],
      [`DISCARD ALL`, /line 2: DISCARD ALL cannot run inside a transaction.*resets its connection/],
      [
        `SET TRANSACTION READ ONLY`,
        /line 2: SET TRANSACTION is not allowed: roundtrip begins the transform's transaction/,
      ],
      [`SET LOCAL transaction_read_only = on`, /line 2: SET transaction_read_only is not allowed/],
      [
        `SET client_encoding = 'LATIN1'`,
        /line 2: SET client_encoding to another encoding than UTF8 is not allowed: the transform sends its files to PostgreSQL in UTF-8.*'Café' written as 'CafÃ©'/,
      ],
      [`SET NAMES win1252`, /line 2: SET client_encoding to another encoding than UTF8 is not allowed/],
    ];
    for (const [statement, message] of cases) {
      writeFileSync(path.join(dir, '19_maintenance.sql'), `SELECT 1;\n${statement};\nSELECT 2;\n`);
      const error = await runTransform(deps(['18_first.sql', '19_maintenance.sql']), {
        runId: await newRun(),
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TransformError);
      expect((error as Error).message).toMatch(/19_maintenance\.sql, line 2: /);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toMatch(/; nothing was run$/);
    }
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM kept`);
    expect(rows[0].n).toBe(2);

    // What may run in a transaction still does: ANALYZE, a materialized view refreshed CONCURRENTLY.
    writeFileSync(
      path.join(dir, '20_allowed.sql'),
      `ANALYZE kept;\nCREATE MATERIALIZED VIEW IF NOT EXISTS top_kept AS SELECT id FROM kept;\nCREATE UNIQUE INDEX IF NOT EXISTS top_kept_id ON top_kept (id);\nREFRESH MATERIALIZED VIEW CONCURRENTLY top_kept;\nSET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;\nSET client_encoding = 'UTF8';\nSET NAMES 'utf-8';\nRESET client_encoding;\n`,
    );
    const ok = await runTransform(deps(['20_allowed.sql']), { runId: await newRun() });
    expect(ok.files[0]?.statements).toBe(8);
  });

  it('checks deferred constraints once the files have run, in a run and in validate’s rolled-back try, failing with a TransformError that names them and the last file', async () => {
    writeFileSync(
      path.join(dir, '29_parents.sql'),
      `CREATE TABLE IF NOT EXISTS parents (id int PRIMARY KEY);\nCREATE TABLE IF NOT EXISTS children (parent int REFERENCES parents DEFERRABLE INITIALLY DEFERRED);\nDELETE FROM children;\n`,
    );
    writeFileSync(path.join(dir, '30_children.sql'), `INSERT INTO children VALUES (1);\n`);
    const expected =
      /^Transform: a deferred constraint failed when checked after the last file \(\S+30_children\.sql\) had run: insert or update on table "children" violates foreign key constraint "children_parent_fkey" \(SQLSTATE 23503\) — Key \(parent\)=\(1\) is not present in table "parents"\.; the transaction was rolled back, previous results are unchanged$/;
    const run = await runTransform(deps(['29_parents.sql', '30_children.sql']), {
      runId: await newRun(),
    }).catch((e: unknown) => e);
    expect(run).toBeInstanceOf(TransformError);
    expect((run as Error).message).toMatch(expected);

    // validate rolls back, and so never commits: the check is made before, as a run's.
    const tried = await tryTransform(
      deps(['29_parents.sql', '30_children.sql']),
      async () => 'inspected',
    ).catch((e: unknown) => e);
    expect(tried).toBeInstanceOf(TransformError);
    expect((tried as Error).message).toMatch(expected);
    const { rows } = await pool.query(`SELECT to_regclass('children') AS t`);
    expect(rows).toEqual([{ t: null }]);
  });

  describe('tryTransform (roundtrip validate)', () => {
    const TRIED = `DELETE FROM scores WHERE id = 1;\nCREATE TABLE tried_only AS SELECT id, score FROM scores;\n`;

    it('lets inspect see what the files made, in the same transaction, then rolls everything back', async () => {
      writeFileSync(path.join(dir, '09_tried.sql'), TRIED);
      const before = (await pool.query(`SELECT id, label, score FROM scores ORDER BY id`)).rows;
      expect(before.length).toBeGreaterThan(0);
      const runsBefore = (await pool.query(`SELECT count(*)::int AS n FROM roundtrip.runs`)).rows;
      const single = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 1 });
      try {
        const tried = await tryTransform({ ...deps(['09_tried.sql']), pg: single }, async (client) => {
          const { rows } = await client.query<{ id: number }>(`SELECT id FROM tried_only ORDER BY id`);
          return rows.map((r) => r.id);
        });
        expect(tried.files.map((f) => [path.basename(f.file), f.statements, f.rowCounts])).toEqual([
          ['09_tried.sql', 2, [1, before.length - 1]],
        ]);
        expect(tried.inspected).toEqual(before.map((r: { id: number }) => r.id).filter((id) => id !== 1));
        // The pool's only connection, back in the pool: no transaction left open on it.
        const { rows } = await single.query(
          `SELECT to_regclass('tried_only') AS made, (SELECT count(*)::int FROM scores) AS n`,
        );
        expect(rows).toEqual([{ made: null, n: before.length }]);
      } finally {
        await single.end();
      }
      expect((await pool.query(`SELECT id, label, score FROM scores ORDER BY id`)).rows).toEqual(before);
      expect((await pool.query(`SELECT count(*)::int AS n FROM roundtrip.runs`)).rows).toEqual(runsBefore);
    });

    it('rolls back when inspect throws, and names a failing statement by file and line as runTransform does', async () => {
      writeFileSync(path.join(dir, '09_tried.sql'), TRIED);
      const before = (await pool.query(`SELECT id, label, score FROM scores ORDER BY id`)).rows;
      // One connection: what the next query sees is what the failed attempt left on it.
      const single = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 1 });
      try {
        await expect(
          tryTransform({ ...deps(['09_tried.sql']), pg: single }, () =>
            Promise.reject(new Error('inspect failed')),
          ),
        ).rejects.toThrow('inspect failed');
        const { rows } = await single.query(
          `SELECT to_regclass('tried_only') AS made, (SELECT count(*)::int FROM scores) AS n`,
        );
        expect(rows).toEqual([{ made: null, n: before.length }]);
      } finally {
        await single.end();
      }
      expect((await pool.query(`SELECT id, label, score FROM scores ORDER BY id`)).rows).toEqual(before);

      writeFileSync(
        path.join(dir, '10_tried_fails.sql'),
        `DELETE FROM scores;\n\nSELECT nope\n  FROM scores;\n`,
      );
      const attempt = tryTransform(deps(['10_tried_fails.sql']), () => Promise.resolve(undefined));
      await expect(attempt).rejects.toThrow(TransformError);
      await expect(attempt).rejects.toThrow(/10_tried_fails\.sql, line 3: column "nope" does not exist/);
      expect((await pool.query(`SELECT id, label, score FROM scores ORDER BY id`)).rows).toEqual(before);
    });
  });

  describe('postgres.schema', () => {
    // As the extracts leave it: the run's copy in the configured schema, an older one in public
    // (the pipeline ran with schema public before), and a reference table only public has.
    beforeAll(async () => {
      await pool.query(`
        CREATE SCHEMA analytics;
        CREATE TABLE analytics.sf_lead ("Id" text PRIMARY KEY, points int);
        INSERT INTO analytics.sf_lead VALUES ('00Q-A', 1), ('00Q-B', 2);
        CREATE TABLE public.sf_lead ("Id" text PRIMARY KEY, points int);
        INSERT INTO public.sf_lead VALUES ('00Q-STALE', 9);
        CREATE TABLE public.lead_scores ("Id" text, score int);
        INSERT INTO public.lead_scores VALUES ('00Q-STALE', 900);
        CREATE TABLE public.weights (factor int);
        INSERT INTO public.weights VALUES (100);
      `);
      writeFileSync(
        path.join(dir, '30_schema.sql'),
        `CREATE TABLE IF NOT EXISTS lead_scores ("Id" text, score int);
DELETE FROM lead_scores;
INSERT INTO lead_scores SELECT l."Id", l.points * w.factor FROM sf_lead AS l CROSS JOIN weights AS w;
CREATE TABLE path_seen AS SELECT current_setting('search_path') AS path;
`,
      );
    });
    const publicTables = async (): Promise<unknown[]> =>
      (
        await pool.query(
          `SELECT 'sf_lead' AS t, "Id", points AS n FROM public.sf_lead
           UNION ALL SELECT 'lead_scores', "Id", score FROM public.lead_scores ORDER BY 1, 2`,
        )
      ).rows;

    it('runs the files with search_path at postgres.schema then public: a table named without a schema is read from the extract’s schema and made there, as the write-back reads it, though public has ones of the same names', async () => {
      const before = await publicTables();
      const single = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 1 });
      try {
        const runId = await newRun();
        const result = await runTransform({ ...deps(['30_schema.sql'], 'analytics'), pg: single }, { runId });
        expect(result.files[0]).toMatchObject({ statements: 4 });
        expect(await rowCountsOf(runId)).toEqual([[0, 0, 2, 1]]);
        // Where the write-back looks for `from: 'lead_scores'`: "analytics"."lead_scores".
        const { rows } = await pool.query(`SELECT "Id", score FROM "analytics"."lead_scores" ORDER BY 1`);
        expect(rows).toEqual([
          { Id: '00Q-A', score: 100 },
          { Id: '00Q-B', score: 200 },
        ]);
        const { rows: seen } = await pool.query(`SELECT path FROM analytics.path_seen`);
        expect(seen).toEqual([{ path: '"analytics", public' }]);
        expect(await publicTables()).toEqual(before);
        const { rows: runs } = await pool.query(`SELECT summary FROM roundtrip.runs WHERE run_id = $1`, [
          runId,
        ]);
        expect(runs[0].summary.transform.files[0].rows).toBe(3);
        // The setting ended with the transaction: the connection goes back with the default.
        const { rows: after } = await single.query(`SELECT current_setting('search_path') AS path`);
        expect(after).toEqual([{ path: '"$user", public' }]);
      } finally {
        await single.end();
        await pool.query('DROP TABLE IF EXISTS analytics.lead_scores, analytics.path_seen');
      }
    });

    it('tries the files the same way for validate (tryTransform): inspect sees the output in postgres.schema, then it is rolled back', async () => {
      const before = await publicTables();
      const tried = await tryTransform(deps(['30_schema.sql'], 'analytics'), async (client) => {
        const { rows } = await client.query<{ Id: string; score: number }>(
          `SELECT "Id", score FROM "analytics"."lead_scores" ORDER BY 1`,
        );
        return rows;
      });
      expect(tried.inspected).toEqual([
        { Id: '00Q-A', score: 100 },
        { Id: '00Q-B', score: 200 },
      ]);
      const { rows } = await pool.query(`SELECT to_regclass('analytics.lead_scores') AS made`);
      expect(rows).toEqual([{ made: null }]);
      expect(await publicTables()).toEqual(before);
    });

    it('sets the search_path to public alone with schema public, and quotes any other name', async () => {
      writeFileSync(
        path.join(dir, '31_path.sql'),
        `CREATE TABLE path_seen AS SELECT current_setting('search_path') AS path;\n`,
      );
      const seen = (schema: string | undefined) =>
        tryTransform(deps(['31_path.sql'], schema), async (client) => {
          const { rows } = await client.query<{ path: string }>(`SELECT path FROM path_seen`);
          const { rows: where } = await client.query<{ schema: string }>(
            `SELECT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'path_seen'`,
          );
          return { path: rows[0]?.path, schema: where[0]?.schema };
        });
      expect((await seen(undefined)).inspected).toEqual({ path: 'public', schema: 'public' });
      expect((await seen('public')).inspected).toEqual({ path: 'public', schema: 'public' });
      // A schema named after the user (with a user named roundtrip, roundtrip's own schema) came
      // first in PostgreSQL's default path ("$user", public), and the files' tables went there.
      const user = (await pool.query<{ u: string }>('SELECT current_user AS u')).rows[0]?.u as string;
      await pool.query(`CREATE SCHEMA ${quoteIdent(user)}`);
      try {
        expect((await seen('public')).inspected).toEqual({ path: 'public', schema: 'public' });
      } finally {
        await pool.query(`DROP SCHEMA ${quoteIdent(user)}`);
      }
      // A schema no extract has made yet is created, as an extract creates it, rather than the
      // output going to public, where the write-back does not read it; rolled back here.
      expect((await seen('Lead "Scores", 2')).inspected).toEqual({
        path: '"Lead ""Scores"", 2", public',
        schema: 'Lead "Scores", 2',
      });
      const { rows } = await pool.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1`, [
        'Lead "Scores", 2',
      ]);
      expect(rows).toEqual([{ n: 0 }]);
    });

    it('names postgres.schema when the schema does not exist and the user may not create it, before any file runs', async () => {
      const role = `rt_tf_noschema_${Date.now()}`;
      await pool.query(`CREATE ROLE ${role} LOGIN PASSWORD 'No-Schema-1'`);
      const url = new URL(db.url);
      url.username = role;
      url.password = 'No-Schema-1';
      const limited = createPool({ url: url.toString() }, { ssl: { mode: 'disable' } });
      try {
        const attempt = tryTransform({ ...deps(['31_path.sql'], 'not_there'), pg: limited }, () =>
          Promise.resolve(undefined),
        );
        await expect(attempt).rejects.toThrow(
          /creating schema "not_there" \(postgres\.schema\) for the transform: permission denied for database .* \(SQLSTATE 42501\); the transform makes the tables it names without a schema in postgres\.schema, .*: create the schema \(CREATE SCHEMA "not_there"\) .*; nothing was run$/,
        );
      } finally {
        await limited.end();
        await pool.query(`DROP ROLE ${role}`);
      }
    });
  });
});
