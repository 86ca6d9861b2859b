/**
 * The roundtrip CLI against the emulators and a real PostgreSQL: `validate`, `plan`, `run` and
 * `status` with a config file, a local secrets file and `--aws-endpoint`, their `--json` last
 * lines, and the exit codes (0 success, 2 bad input). The commands run in-process through
 * `main()`; one test runs the installed bin in a child process for its exit code.
 */
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { promisify } from 'node:util';
import { Pool } from 'pg';
import { startDemoEnvironment, type DemoEnvironment } from '../../../bin/local/environment';
import { startAthenaEmulator } from '../../../emulators/athena';
import { migrate } from '../../../lambdas/connectors/postgres';
import { DRY_RUN_SAMPLE_VALUE_CHARS } from '../../../lambdas/core/writeback/plan';
import { main } from '../../../bin/commands';
import { cli, writeExampleConfig } from '../../support/cli';
import { createTestDatabase, type TestDatabase } from '../../support/database';

/** One line of `validate --json`'s checks. */
interface CheckLine {
  check: string;
  ok: boolean;
  skipped?: true;
  detail: string;
}

function lastJsonLine(stdout: string): unknown {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] as string);
}

describe('the roundtrip CLI', () => {
  let db: TestDatabase;
  let env: DemoEnvironment;
  let dir: string;
  let configFile: string;
  let secretsFile: string;
  let connection: string[];
  /** The options of the commands of the pipeline's database: no --aws-endpoint (they call no AWS). */
  const databaseConnection = (): string[] => connection.slice(0, 4);

  beforeAll(async () => {
    db = await createTestDatabase('rt_cli');
    dir = await mkdtemp(path.join(os.tmpdir(), 'roundtrip-cli-'));
    // The example pipeline as a JSON config, without TLS to the local server.
    configFile = path.join(dir, 'roundtrip.config.json');
    const example = await writeExampleConfig(configFile);
    env = await startDemoEnvironment({ config: example, leads: 300, customers: 150, postgresUrl: db.url });
    secretsFile = path.join(dir, 'secrets.json');
    const secrets: Record<string, unknown> = {};
    for (const name of ['roundtrip/salesforce', 'roundtrip/postgres'])
      secrets[name] = await env.secrets.getSecret(name);
    await writeFile(secretsFile, JSON.stringify(secrets));
    connection = ['--config', configFile, '--secrets', secretsFile, '--aws-endpoint', env.aws.endpoint];
  });
  afterAll(async () => {
    await env?.stop();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('validates the config, secrets, PostgreSQL, Salesforce describes and Athena', async () => {
    const result = await cli(['validate', ...connection, '--json']);
    const report = lastJsonLine(result.stdout) as {
      ok: boolean;
      checks: { check: string; ok: boolean; detail: string }[];
    };
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.checks.map((c) => c.check)).toEqual([
      'config',
      'secret roundtrip/postgres',
      'secret roundtrip/salesforce',
      'PostgreSQL',
      'task names',
      'extract tables',
      'Salesforce sign-in',
      'extract Lead',
      'write-back Lead-update',
      'Athena',
      'extract athena_customers',
      'transform',
      'write-back Lead-update columns',
    ]);
    expect(report.checks.find((c) => c.check === 'write-back Lead-update')?.detail).toBe(
      'Lead update by Id: LeadScore__c writable',
    );
    // The allowances the run's budget is checked against.
    expect(report.checks.find((c) => c.check === 'Salesforce sign-in')?.detail).toMatch(
      /^API allowance today: \d{2},\d{3} of 15,000 calls left; Bulk API batches: 15,000 of 15,000 left \(a Bulk write-back takes one per 10,000 records\)$/,
    );
    // Behind a proxy it says which way the calls go, and the emulators on this machine are still
    // reached directly: every check passes as before.
    const saved = process.env.HTTPS_PROXY;
    process.env.HTTPS_PROXY = 'http://bob:hunter2@127.0.0.1:9';
    let proxied: typeof result;
    try {
      proxied = await cli(['validate', ...connection, '--json']);
    } finally {
      if (saved === undefined) delete process.env.HTTPS_PROXY;
      else process.env.HTTPS_PROXY = saved;
    }
    const behind = lastJsonLine(proxied.stdout) as typeof report;
    expect(behind.checks.filter((c) => !c.ok)).toEqual([]);
    expect(behind.checks.map((c) => c.check)).toEqual([
      'config',
      'proxy',
      ...report.checks.map((c) => c.check).slice(1),
    ]);
    expect(behind.checks[1]?.detail).toBe(
      'Salesforce and AWS calls go through http://127.0.0.1:9 (HTTPS_PROXY), in a CONNECT tunnel; directly to this machine (localhost, 127.0.0.0/8, ::1)',
    );
    // No extract has run into this database yet: the transform cannot run, which is said with what
    // to run, and is not a failure.
    expect(report.checks.slice(-2)).toEqual([
      {
        check: 'transform',
        ok: true,
        skipped: true,
        detail: expect.stringMatching(
          /^not checked: it reads tables the extracts make, and sf_lead \(extract\[0\]\.table\), athena_customers \(extract\[1\]\.table\) do not exist in this database yet: run `roundtrip plan` once \(extract, transform and a dry-run plan: nothing is sent to Salesforce\), then validate again \(Transform \S+lead_score\.sql, line \d+: relation "athena_customers" does not exist/,
        ),
      },
      {
        check: 'write-back Lead-update columns',
        ok: true,
        skipped: true,
        detail: 'not checked: the transform could not run (above)',
      },
    ]);
    // Tried, not run to a check: said so before it stops at the first table it reads.
    expect(result.stderr).toContain(
      'validate: trying the transform (1 file) in a transaction that is rolled back, though sf_lead (extract[0].table), athena_customers (extract[1].table) do not exist in this database yet: a statement that reads one stops it… (--no-transform skips it)\n',
    );
    expect(result.stderr).not.toContain('running the transform');
    expect(report.checks.find((c) => c.check === 'extract athena_customers')?.detail).toBe(
      'query valid in marketing (EXPLAIN (TYPE VALIDATE): nothing scanned, not charged); 5 result columns a table takes as named (read with LIMIT 0: no row read)',
    );
    expect(report.checks.find((c) => c.check === 'Athena')?.detail).toBe(
      'reachable (workgroup primary, ENABLED, results in s3://roundtrip-athena-results/lead-scoring/; database marketing)',
    );
    expect(result.code).toBe(0);
  });

  it('says what to do about a mapped field the integration user may not edit: grant Edit access to it, or remove the mapping', async () => {
    // As Salesforce describes a field whose field-level security gives the user Read, not Edit.
    const field = env.salesforce.store.describe('Lead')?.fields.find((f) => f.name === 'LeadScore__c');
    if (!field) throw new Error('the emulator has no Lead.LeadScore__c');
    field.updateable = false;
    let result: Awaited<ReturnType<typeof cli>>;
    try {
      result = await cli(['validate', ...connection]);
    } finally {
      field.updateable = true;
    }
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      '✗ write-back Lead-update: Cannot plan the write-back Lead-update (update of Lead): field LeadScore__c is not updateable by the integration user (writeback[0].fields.LeadScore__c): grant the integration user Edit access to Lead.LeadScore__c (field-level security, in its profile or a permission set), or remove it from the mapping',
    );
  });

  it("says that User has no IsDeleted, and refuses deletes: 'flag' written out for it by its config path", async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { extract: unknown[] };
    const file = path.join(dir, 'user-extract.config.json');
    const user = { from: 'salesforce', object: 'User', fields: ['Id', 'Name', 'UserRoleId', 'IsActive'] };
    await writeFile(
      file,
      JSON.stringify({
        ...config,
        extract: [
          ...config.extract,
          { ...user, table: 'sf_user' },
          { ...user, name: 'UserFlag', table: 'sf_user_flag', deletes: 'flag' },
        ],
      }),
    );
    const at = config.extract.length + 1;
    const result = await cli(['validate', ...connection.slice(2), '--config', file]);
    const lines = result.stdout.split('\n');
    expect(lines).toContain(
      "✓ extract User: User: 5 fields readable (SystemModstamp added); no IsDeleted field: read through query, rows Salesforce no longer returns removed by a full read (deletes 'remove')",
    );
    expect(lines.filter((l) => l.startsWith('✗'))).toEqual([
      `✗ extract UserFlag: extract[${at}].deletes: User has no IsDeleted field (its records are deactivated, not deleted: IsActive): 'flag' cannot mark deleted records; remove the option (or set 'remove'): a full read then removes the rows Salesforce no longer returns`,
    ]);
    expect(result.code).toBe(1);
  });

  describe("validate's Athena check asks for the workgroup (GetWorkGroup)", () => {
    const withAthena = async (name: string, athena: Record<string, unknown>): Promise<string> => {
      const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
      const file = path.join(dir, `${name}.config.json`);
      await writeFile(file, JSON.stringify({ ...config, athena }));
      return file;
    };

    it('names a workgroup that does not exist by athena.workgroup, and checks no query in it', async () => {
      const file = await withAthena('no-workgroup', {
        database: 'marketing',
        workgroup: 'analytics',
        outputLocation: 's3://roundtrip-athena-results/lead-scoring/',
      });
      const result = await cli(['validate', ...connection.slice(2), '--config', file]);
      expect(result.code).toBe(1);
      expect(result.stdout.split('\n').filter((l) => l.startsWith('✗'))).toEqual([
        '✗ Athena: workgroup "analytics" does not exist (athena.workgroup): name an existing workgroup of this account and Region (aws athena list-work-groups), or set athena.createWorkgroup to true to have cdk deploy create it (WorkGroup analytics is not found.)',
      ]);
      expect(result.stdout).not.toContain('extract athena_customers');
    });

    it('says that a workgroup cdk deploy creates does not exist yet, and that its queries are not checked: not a failure', async () => {
      const file = await withAthena('created-workgroup', {
        database: 'marketing',
        workgroup: 'roundtrip-lead-scoring',
        createWorkgroup: true,
      });
      const result = await cli(['validate', ...connection.slice(2), '--config', file]);
      const lines = result.stdout.split('\n');
      expect(lines).toContain(
        '– Athena: workgroup "roundtrip-lead-scoring" does not exist yet: cdk deploy creates it (athena.createWorkgroup), with its results bucket',
      );
      expect(lines).toContain(
        '– extract athena_customers: not checked: the query (extract[1].query) runs in workgroup "roundtrip-lead-scoring", which cdk deploy creates (athena.createWorkgroup); validate again once it is deployed',
      );
      expect(lines.filter((l) => l.startsWith('✗'))).toEqual([]);
      expect(result.code).toBe(0);
    });

    it('names a DISABLED workgroup, and one that enforces a result location other than athena.outputLocation', async () => {
      const data = path.join(dir, 'athena-workgroups');
      await mkdir(path.join(data, 'marketing'), { recursive: true });
      await writeFile(
        path.join(data, 'marketing', 'customers.csv'),
        '"email","lifetime_value","order_count","last_order_at","segment"\n',
      );
      const emulator = await startAthenaEmulator({
        dataDir: data,
        workgroups: {
          retired: { outputLocation: 's3://roundtrip-athena-results/lead-scoring/', state: 'DISABLED' },
          governed: { outputLocation: 's3://governed-results/athena/', enforce: true },
          // The same folder, written without the "/": no mismatch.
          aligned: { outputLocation: 's3://roundtrip-athena-results/lead-scoring', enforce: true },
        },
      });
      try {
        const validate = async (workgroup: string) =>
          cli([
            'validate',
            '--config',
            await withAthena(`wg-${workgroup}`, {
              database: 'marketing',
              workgroup,
              outputLocation: 's3://roundtrip-athena-results/lead-scoring/',
            }),
            '--secrets',
            secretsFile,
            '--aws-endpoint',
            emulator.endpoint,
          ]);
        const failedLines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('✗'));
        const disabled = await validate('retired');
        expect(disabled.code).toBe(1);
        expect(failedLines(disabled.stdout)).toEqual([
          '✗ Athena: workgroup "retired" is DISABLED (athena.workgroup): Athena runs no query in it; enable it (aws athena update-work-group --work-group retired --state ENABLED) or name another',
        ]);
        const governed = await validate('governed');
        expect(governed.code).toBe(1);
        expect(failedLines(governed.stdout)).toEqual([
          '✗ Athena: workgroup "governed" enforces its result location s3://governed-results/athena/, so the queries write there and not to athena.outputLocation s3://roundtrip-athena-results/lead-scoring/, the location the stack grants: set athena.outputLocation to s3://governed-results/athena/',
        ]);
        const aligned = await validate('aligned');
        expect(failedLines(aligned.stdout)).toEqual([]);
        expect(aligned.stdout).toContain(
          '✓ Athena: reachable (workgroup aligned, ENABLED, results in s3://roundtrip-athena-results/lead-scoring; database marketing)',
        );
        expect(emulator.calls.filter((c) => c.operation === 'GetWorkGroup')).toHaveLength(3);
      } finally {
        await emulator.stop();
      }
    });
  });

  it('checks each Athena query without running it and names the config path of one that is not valid', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { extract: Record<string, unknown>[] };
    const misspelt = path.join(dir, 'misspelt-athena.config.json');
    await writeFile(
      misspelt,
      JSON.stringify({
        ...config,
        extract: config.extract.map((task) =>
          task.from === 'athena'
            ? { ...task, query: 'SELECT email,\n       lifetime_valu\nFROM customers' }
            : task,
        ),
      }),
    );
    const result = await cli(['validate', ...connection.slice(2), '--config', misspelt]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^✗ extract athena_customers: the query \(extract\[1\]\.query\) is not valid: Athena query \S+ failed: COLUMN_NOT_FOUND: line 2:8: Column 'lifetime_valu' cannot be resolved$/m,
    );
    // Only the query is reported wrong.
    expect(result.stdout.split('\n').filter((l) => l.startsWith('✗'))).toHaveLength(1);
  });

  it("checks an Athena task's key against its query's result without reading a row, and names a key the result lacks by its config path", async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { extract: Record<string, unknown>[] };
    const keyed = (key: string[]): string =>
      JSON.stringify({
        ...config,
        extract: config.extract.map((task) => (task.from === 'athena' ? { ...task, key } : task)),
      });
    const wrongKey = path.join(dir, 'athena-wrong-key.config.json');
    await writeFile(wrongKey, keyed(['customer_id']));
    const explainsBefore = env.athena.calls.filter((c) => c.operation === 'StartQueryExecution').length;
    const wrong = await cli(['validate', ...connection.slice(2), '--config', wrongKey]);
    expect(wrong.code).toBe(1);
    expect(wrong.stdout.split('\n').filter((l) => l.startsWith('✗'))).toEqual([
      '✗ extract athena_customers: key column "customer_id" (extract[1].key) is not in the query\'s result (columns: email, lifetime_value, order_count, last_order_at, segment): ' +
        "name columns of the result in the key, or give the column that name with AS in the task's query",
    ]);
    // An EXPLAIN of the query, then its result's columns read with LIMIT 0: no row read.
    expect(
      env.athena.calls.filter((c) => c.operation === 'StartQueryExecution').length - explainsBefore,
    ).toBe(2);

    const rightKey = path.join(dir, 'athena-right-key.config.json');
    await writeFile(rightKey, keyed(['email']));
    const right = await cli(['validate', ...connection.slice(2), '--config', rightKey]);
    expect(right.stdout).toMatch(
      /^✓ extract athena_customers: query valid in marketing \(EXPLAIN \(TYPE VALIDATE\): nothing scanned, not charged\); 5 result columns a table takes as named \(read with LIMIT 0: no row read\); key "email" in its result$/m,
    );
  });

  it('names the config path of a misspelt Salesforce extract field and the field it was likely meant to be', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { extract: Record<string, unknown>[] };
    const misspelt = path.join(dir, 'misspelt-field.config.json');
    await writeFile(
      misspelt,
      JSON.stringify({
        ...config,
        extract: config.extract.map((task) =>
          task.from === 'salesforce' ? { ...task, fields: ['Id', 'Emial', 'LeadScore__c'] } : task,
        ),
      }),
    );
    const result = await cli(['validate', ...connection.slice(2), '--config', misspelt]);
    expect(result.code).toBe(1);
    expect(result.stdout.split('\n').filter((l) => l.startsWith('✗'))).toEqual([
      '✗ extract Lead: Extract task Lead: Lead has no field "Emial" (extract[0].fields[1]; did you mean "Email"?) (check the spelling and the field-level security of the integration user)',
    ]);
  });

  it('says what to do when Athena has no region (no --aws-endpoint) or its --aws-endpoint refuses the connection', async () => {
    // A laptop without AWS settings: no region in the environment nor in a profile.
    const saved = { ...process.env };
    for (const name of ['AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE']) delete process.env[name];
    process.env.AWS_CONFIG_FILE = path.join(dir, 'no-aws-config');
    try {
      const noEndpoint = await cli(['validate', ...connection.slice(0, 4)]);
      expect(noEndpoint.code).toBe(1);
      expect(noEndpoint.stdout.split('\n').filter((l) => l.startsWith('✗'))).toEqual([
        '✗ Athena: No AWS Region for Athena and S3: pass --aws-endpoint http://127.0.0.1:PORT to use the local emulator (roundtrip emulate athena), or set AWS_REGION (or AWS_PROFILE, with a region) to use Athena in AWS',
      ]);
    } finally {
      process.env = saved;
    }
    // A port nothing listens on: one that was just free.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const endpoint = `http://127.0.0.1:${port}`;
    const refused = await cli(['validate', ...connection.slice(0, 4), '--aws-endpoint', endpoint]);
    expect(refused.code).toBe(1);
    const failed = refused.stdout.split('\n').filter((l) => l.startsWith('✗'));
    expect(failed).toHaveLength(1);
    // (In jest the SDK wraps the socket's error, from another realm, in "AWS SDK error wrapper for";
    // the CLI shows it as it is.)
    expect(failed[0]).toMatch(/^✗ Athena: /);
    expect(failed[0]).toContain(
      `connect ECONNREFUSED 127.0.0.1:${port} (nothing accepts connections at --aws-endpoint ${endpoint}: is the Athena emulator running, on that port? roundtrip emulate athena --port PORT --data DIR)`,
    );
  });

  it('reports a task name another pipeline holds in the database, without claiming any, and exits 1', async () => {
    const pool = new Pool({ connectionString: db.url });
    try {
      await migrate(pool);
      await pool.query(`INSERT INTO roundtrip.task_owners (task, pipeline) VALUES ('Lead', 'marketing')`);
      const result = await cli(['validate', ...connection]);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain(
        '✗ task names: Pipeline "lead-scoring" cannot use task name "Lead" (used by pipeline "marketing" since ',
      );
      expect(result.stdout).toContain('Give the task a distinct `name` in one of the configs');
      expect((await pool.query(`SELECT task, pipeline FROM roundtrip.task_owners`)).rows).toEqual([
        { task: 'Lead', pipeline: 'marketing' },
      ]);
    } finally {
      await pool
        .query(`DELETE FROM roundtrip.task_owners WHERE pipeline = 'marketing'`)
        .catch(() => undefined);
      await pool.end();
    }
  });

  it('reports an extract table another pipeline loads, without claiming any, and exits 1', async () => {
    const pool = new Pool({ connectionString: db.url });
    try {
      await migrate(pool);
      await pool.query(
        `INSERT INTO roundtrip.table_owners (schema_name, table_name, pipeline, task) VALUES ('public', 'athena_customers', 'marketing', 'customers')
         ON CONFLICT (schema_name, table_name) DO UPDATE SET pipeline = 'marketing', task = 'customers'`,
      );
      const result = await cli(['validate', ...connection]);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain(
        '✗ extract tables: Pipeline "lead-scoring" cannot load this table; nothing was read or written: extract task athena_customers (extract[1].table): table public.athena_customers is loaded by task customers of pipeline "marketing" (since ',
      );
      expect(
        (await pool.query(`SELECT table_name, pipeline FROM roundtrip.table_owners ORDER BY 1`)).rows,
      ).toEqual([{ table_name: 'athena_customers', pipeline: 'marketing' }]);
    } finally {
      await pool
        .query(`DELETE FROM roundtrip.table_owners WHERE pipeline = 'marketing'`)
        .catch(() => undefined);
      await pool.end();
    }
  });

  it('answers status and errors while a transform file is renamed, which run and validate refuse', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
    const file = path.join(dir, 'transform-renamed.config.json');
    await writeFile(file, JSON.stringify({ ...config, transform: ['transforms/renamed-since.sql'] }));
    const options = ['--config', file, '--secrets', secretsFile];
    const status = await cli(['status', ...options, '--limit', '1']);
    expect(status.code).toBe(0);
    expect(status.stderr).toBe('');
    expect((await cli(['errors', ...options])).code).toBe(0);
    const validate = await cli(['validate', ...options, '--aws-endpoint', env.aws.endpoint]);
    expect(validate.code).toBe(2);
    expect(validate.stderr).toContain(
      'transform[0]: expected an existing SQL file, got "transforms/renamed-since.sql"',
    );
  });

  it('answers status, errors, forget and rename-task despite mistakes where they do not read the config, saying so once, which validate and plan refuse; resolve refuses one in the salesforce section it reads', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as {
      extract: Record<string, unknown>[];
      writeback: Record<string, unknown>[];
    };
    // A write-back field named as no Salesforce field can be, and an extract option out of its range.
    const mistaken = {
      ...config,
      extract: config.extract.map((t, i) => (i === 0 ? { ...t, overlapSeconds: -5 } : t)),
      writeback: config.writeback.map((t, i) =>
        i === 0 ? { ...t, fields: { 'Lead Score': 'lead_score' } } : t,
      ),
    };
    const file = path.join(dir, 'mistaken.config.json');
    await writeFile(file, JSON.stringify(mistaken));
    const options = ['--config', file, '--secrets', secretsFile];
    const mind = (command: string): string =>
      `roundtrip ${command}: mind: the config has 2 problems where this command does not read it ` +
      `(extract[0].overlapSeconds, writeback[0].fields["Lead Score"]), which run and plan refuse: roundtrip validate names them\n`;
    const status = await cli(['status', ...options, '--limit', '3', '--json']);
    expect(status.code).toBe(0);
    expect(status.stderr).toBe(mind('status'));
    // The answer of the config without the mistakes.
    const fixed = await cli([
      'status',
      '--config',
      configFile,
      '--secrets',
      secretsFile,
      '--limit',
      '3',
      '--json',
    ]);
    expect(lastJsonLine(status.stdout)).toEqual(lastJsonLine(fixed.stdout));
    const errors = await cli(['errors', ...options]);
    expect(errors.code).toBe(0);
    expect(errors.stderr).toBe(mind('errors'));
    // forget reads the config, then refuses the task, not the config.
    const forget = await cli(['forget', ...options, '--task', 'never-named']);
    expect(forget.code).toBe(2);
    expect(forget.stderr).toContain(
      '--task: the database knows no task never-named of pipeline lead-scoring',
    );
    const rename = await cli(['rename-task', ...options, '--from', 'never-named', '--to', 'Lead-update']);
    expect(rename.code).toBe(2);
    expect(rename.stderr).toContain(
      '--from: the database knows no task never-named of pipeline lead-scoring',
    );
    // resolve reads the salesforce section (it asks Salesforce about Bulk jobs): a mistake there is
    // refused, which status, not reading it, only mentions.
    await writeFile(
      file,
      JSON.stringify({ ...mistaken, salesforce: { secret: 'roundtrip/salesforce', apiVersion: '62' } }),
    );
    const resolve = await cli(['resolve', ...options, '--task', 'Lead-update', '--collect-jobs']);
    expect(resolve.code).toBe(2);
    expect(resolve.stderr).toContain(
      'salesforce.apiVersion: expected a Salesforce API version such as "62.0"',
    );
    expect((await cli(['status', ...options, '--limit', '1'])).code).toBe(0);
    await writeFile(file, JSON.stringify(mistaken));
    for (const command of ['validate', 'plan']) {
      const refused = await cli([command, ...options, '--aws-endpoint', env.aws.endpoint]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(
        'writeback[0].fields["Lead Score"]: expected a Salesforce field API name as the key, got "Lead Score"',
      );
      expect(refused.stderr).toContain('extract[0].overlapSeconds: expected a whole number of seconds');
    }
    // A mistake in what they read is refused all the same, with every problem named.
    await writeFile(file, JSON.stringify({ ...mistaken, name: 'Lead Scoring' }));
    const badName = await cli(['status', ...options]);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain('name: expected a pipeline name');
    expect(badName.stderr).toContain('writeback[0].fields["Lead Score"]');
  });

  it('reports a write-back whose synced records are keyed by another object or key, as the plan would refuse it', async () => {
    const pool = new Pool({ connectionString: db.url });
    try {
      await migrate(pool);
      await pool.query(
        `INSERT INTO roundtrip.sync_scope (task, object, key_field) VALUES ('Lead-update', 'Contact', 'Id')`,
      );
      await pool.query(
        `INSERT INTO roundtrip.sync_state (task, key, value_hash) VALUES ('Lead-update', '003000000000001AAA', 'h')`,
      );
      const result = await cli(['validate', ...connection]);
      expect(result.code).toBe(1);
      expect(result.stdout).toContain(
        '✗ write-back Lead-update: Write-back Lead-update (writeback[0]): its 1 synced record(s) in roundtrip.sync_state were written to Contact, and the task now writes Lead.',
      );
    } finally {
      await pool.query(`DELETE FROM roundtrip.sync_state WHERE task = 'Lead-update'`).catch(() => undefined);
      await pool.query(`DELETE FROM roundtrip.sync_scope WHERE task = 'Lead-update'`).catch(() => undefined);
      await pool.end();
    }
  });

  it('says in validate which mapped fields the extract of the object does not read, what is not seen of them and how to have it seen', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as {
      writeback: { fields: Record<string, string> }[];
    };
    const [task] = config.writeback;
    const file = path.join(dir, 'not-extracted.config.json');
    await writeFile(
      file,
      JSON.stringify({
        ...config,
        writeback: [{ ...task, fields: { ...task?.fields, Rating: 'lead_score' } }],
      }),
    );
    const result = await cli(['validate', ...connection.slice(2), '--config', file]);
    expect(result.stdout.split('\n')).toContain(
      '✓ write-back Lead-update: Lead update by Id: LeadScore__c, Rating writable; note: write-back Lead-update compares Rating with what it last sent (roundtrip.sync_state), not with the extracted copy, as extract[0].fields does not list it: an edit of it made in Salesforce is not seen nor put back (the copy still catches deleted records and edits of the other fields); add it to extract[0].fields to compare it with the copy',
    );
  });

  it('says in validate, without failing, two write-backs writing one field of one object, and an upsert whose key the extract of its object does not read', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as {
      writeback: { fields: Record<string, string> }[];
    };
    const [task] = config.writeback;
    const file = path.join(dir, 'same-field.config.json');
    // The second task writes LeadScore__c too (its API name in another case: the same field), by
    // External_Id__c, which extract[0] does not read.
    const upsert = {
      to: 'salesforce',
      object: 'lead',
      from: 'lead_reverse',
      mode: 'upsert',
      key: 'External_Id__c',
      keyColumn: 'ext',
      fields: { leadscore__c: 'lead_score' },
      name: 'scores-b',
    };
    await writeFile(file, JSON.stringify({ ...config, writeback: [task, upsert] }));
    const result = await cli(['validate', ...connection.slice(2), '--config', file, '--json']);
    const { checks } = lastJsonLine(result.stdout) as { checks: CheckLine[] };
    expect(checks.find((c) => c.check === 'config')).toEqual({
      check: 'config',
      ok: true,
      detail:
        "pipeline lead-scoring: 2 extract, 1 transform, 2 write-back task(s); mind: writeback[0] (Lead-update) and writeback[1] (scores-b) both write Lead.LeadScore__c: on a record both sources hold, each overwrites the other's value, and with the extracted copy of Lead to compare with, each run each task finds the other's value there and sends its own again, so the field flips on every run and API calls are spent on it for ever (without the copy, Salesforce keeps whichever sent last, unseen). Fine if the two sources never hold the same record; otherwise map the field in one of the two tasks only",
    });
    expect(checks.find((c) => c.check === 'write-back scores-b')).toEqual({
      check: 'write-back scores-b',
      ok: true,
      detail:
        'lead upsert by External_Id__c: External_Id__c, LeadScore__c writable; note: write-back scores-b cannot find its records in the extracted copy, as extract[0].fields does not list its key External_Id__c: it compares every record with what it last sent (roundtrip.sync_state) instead, so an edit made in Salesforce of a field it writes is not seen nor put back, a record deleted in Salesforce is not detected, and a record whose key was changed in Salesforce is upserted again under its old key, as a second record, once its values change (reported after the push as KEY_CHANGED_RECORD_CREATED, not prevented); add External_Id__c to extract[0].fields to compare with the copy; mind: an upsert creates a record for a key Lead has none of, and a new Lead needs LastName, Company (required: not nillable, no default), which writeback[1].fields does not map: each such row is refused (REQUIRED_FIELD_MISSING, by the plan when the extracted copy shows the key has no record, else by Salesforce). Map them if the source can hold keys new to Salesforce',
    });
    // Said, not failed: the rest of validate decides the exit code.
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    expect(result.code).toBe(0);
  });

  it('says as plan starts two write-backs it runs writing one field of one object, and not when it runs neither', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as {
      writeback: Record<string, unknown>[];
    };
    const [task] = config.writeback;
    const file = path.join(dir, 'same-field-plan.config.json');
    await writeFile(file, JSON.stringify({ ...config, writeback: [task, { ...task, name: 'scores-b' }] }));
    const mind =
      'mind: writeback[0] (Lead-update) and writeback[1] (scores-b) both write Lead.LeadScore__c: on a record both sources hold,';
    const planned = await cli(['plan', ...connection.slice(2), '--config', file]);
    expect(planned.code).toBe(0);
    expect(planned.stderr.split('\n').filter((l) => l.startsWith('mind: '))).toEqual([
      expect.stringContaining(mind),
    ]);
    const extractOnly = await cli(['plan', ...connection.slice(2), '--config', file, '--tasks', 'Lead']);
    expect(extractOnly.code).toBe(0);
    expect(extractOnly.stderr).not.toContain('mind: ');
  });

  it('says that a login URL answering 404 is not one, named by its config path, in validate and in a run', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { salesforce: Record<string, unknown> };
    const secrets = JSON.parse(await readFile(secretsFile, 'utf8')) as Record<string, { loginUrl: string }>;
    const loginUrl = `${secrets['roundtrip/salesforce']?.loginUrl ?? ''}/services`;
    const wrong = path.join(dir, 'wrong-login-url.config.json');
    await writeFile(wrong, JSON.stringify({ ...config, salesforce: { ...config.salesforce, loginUrl } }));
    const notOne = `the login URL ${loginUrl} (salesforce.loginUrl of the config) answered 404 Not Found to POST /services/services/Soap/u/62.0 ("NOT_FOUND: The requested resource does not exist"): there is no Salesforce sign-in at that URL. Check it:`;
    const validated = await cli(['validate', ...connection.slice(2), '--config', wrong]);
    expect(validated.code).toBe(1);
    expect(validated.stdout).toContain(`✗ Salesforce sign-in: Salesforce sign-in (soap) failed: ${notOne}`);
    expect(validated.stdout).not.toContain('[{');
    const planned = await cli(['plan', ...connection.slice(2), '--config', wrong]);
    expect(planned.code).toBe(1);
    expect(planned.stderr).toMatch(/^run \S+ failed: Salesforce sign-in \(soap\) failed: the login URL /m);
    expect(planned.stderr).toContain(notOne);
  });

  it('names where the login URL of a Salesforce that refuses the connection is set, in validate and in a run', async () => {
    // A port nothing listens on: the emulator stopped.
    const closed = await new Promise<number>((resolve) => {
      const server = net.createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const stopped = `http://127.0.0.1:${closed}`;
    const secrets = JSON.parse(await readFile(secretsFile, 'utf8')) as Record<
      string,
      Record<string, unknown>
    >;
    const stoppedSecrets = path.join(dir, 'stopped-emulator-secrets.json');
    await writeFile(
      stoppedSecrets,
      JSON.stringify({
        ...secrets,
        'roundtrip/salesforce': { ...secrets['roundtrip/salesforce'], loginUrl: stopped },
      }),
    );
    const options = ['--config', configFile, '--secrets', stoppedSecrets, ...connection.slice(4)];
    const refused = `Salesforce sign-in (soap) at ${stopped} (loginUrl of the secret roundtrip/salesforce) failed: `;
    const validated = await cli(['validate', ...options]);
    expect(validated.code).toBe(1);
    expect(validated.stdout).toContain(`✗ Salesforce sign-in: ${refused}`);
    expect(validated.stdout).toContain(`ECONNREFUSED 127.0.0.1:${closed}`);
    const planned = await cli(['plan', ...options]);
    expect(planned.code).toBe(1);
    expect(planned.stderr).toMatch(/^run \S+ failed: Salesforce sign-in \(soap\) at /m);
    expect(planned.stderr).toContain(refused);

    // Set in the config, it is named there.
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { salesforce: Record<string, unknown> };
    const fromConfig = path.join(dir, 'stopped-login-url.config.json');
    await writeFile(
      fromConfig,
      JSON.stringify({ ...config, salesforce: { ...config.salesforce, loginUrl: stopped } }),
    );
    const named = await cli(['validate', ...connection.slice(2), '--config', fromConfig]);
    expect(named.stdout).toContain(
      `✗ Salesforce sign-in: Salesforce sign-in (soap) at ${stopped} (salesforce.loginUrl of the config) failed: `,
    );
  });

  it('reports a missing secret by name and exits 1', async () => {
    const empty = path.join(dir, 'empty-secrets.json');
    await writeFile(empty, '{}');
    const result = await cli([
      'validate',
      '--config',
      configFile,
      '--secrets',
      empty,
      ...connection.slice(4),
    ]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('✗ secret roundtrip/salesforce: Secret "roundtrip/salesforce" not found');
    expect(result.stdout).toContain('✗ secret roundtrip/postgres: Secret "roundtrip/postgres" not found');
    // Neither secret: Athena is checked all the same.
    expect(result.stdout).toContain('✓ extract athena_customers: query valid in marketing');

    // The database's secret alone: what does not need Salesforce is still checked, in the same run.
    const secrets = JSON.parse(await readFile(secretsFile, 'utf8')) as Record<string, unknown>;
    const postgresOnly = path.join(dir, 'postgres-only-secrets.json');
    await writeFile(postgresOnly, JSON.stringify({ 'roundtrip/postgres': secrets['roundtrip/postgres'] }));
    const partial = await cli([
      'validate',
      ...connection.slice(0, 2),
      '--secrets',
      postgresOnly,
      ...connection.slice(4),
      '--json',
    ]);
    expect(partial.code).toBe(1);
    const checks = (lastJsonLine(partial.stdout) as { checks: CheckLine[] }).checks;
    expect(checks.filter((c) => !c.ok).map((c) => c.check)).toEqual(['secret roundtrip/salesforce']);
    expect(checks.map((c) => c.check)).toEqual(
      expect.arrayContaining(['PostgreSQL', 'task names', 'Athena', 'extract athena_customers', 'transform']),
    );
    expect(checks.find((c) => c.check === 'Salesforce sign-in')).toEqual({
      check: 'Salesforce sign-in',
      ok: true,
      skipped: true,
      detail:
        "not checked, nor the extracts' fields and the write-backs' mappings: the secret roundtrip/salesforce (above) is needed first",
    });

    // Salesforce's secret alone: the sign-in, the describes and Athena are still checked, and what
    // needs the database is said not checked until its secret is there.
    const salesforceOnly = path.join(dir, 'salesforce-only-secrets.json');
    await writeFile(
      salesforceOnly,
      JSON.stringify({ 'roundtrip/salesforce': secrets['roundtrip/salesforce'] }),
    );
    const noDatabase = await cli([
      'validate',
      ...connection.slice(0, 2),
      '--secrets',
      salesforceOnly,
      ...connection.slice(4),
      '--json',
    ]);
    expect(noDatabase.code).toBe(1);
    const sfChecks = (lastJsonLine(noDatabase.stdout) as { checks: CheckLine[] }).checks;
    expect(sfChecks.filter((c) => !c.ok).map((c) => c.check)).toEqual(['secret roundtrip/postgres']);
    expect(sfChecks.map((c) => c.check)).toEqual([
      'config',
      'secret roundtrip/postgres',
      'secret roundtrip/salesforce',
      'PostgreSQL',
      'Salesforce sign-in',
      'extract Lead',
      'write-back Lead-update',
      'Athena',
      'extract athena_customers',
    ]);
    expect(sfChecks.find((c) => c.check === 'PostgreSQL')).toEqual({
      check: 'PostgreSQL',
      ok: true,
      skipped: true,
      detail:
        "not checked, nor the task names, the write-backs' synced keys and the transform: the secret roundtrip/postgres (above) is needed first",
    });
  });

  it('reports a database secret of neither shape on its own line, naming it, and plan names it too', async () => {
    const misspelt = path.join(dir, 'misspelt-secrets.json');
    const secrets = JSON.parse(await readFile(secretsFile, 'utf8')) as Record<string, unknown>;
    await writeFile(
      misspelt,
      JSON.stringify({ ...secrets, 'roundtrip/postgres': { URL: 'postgres://u:p@127.0.0.1:5432/db' } }),
    );
    const validated = await cli([
      'validate',
      '--config',
      configFile,
      '--secrets',
      misspelt,
      ...connection.slice(4),
    ]);
    expect(validated.code).toBe(1);
    expect(validated.stdout).toContain(
      '✗ secret roundtrip/postgres: PostgreSQL secret: expected { "url": "postgres://user:password@host:port/db" } or the RDS shape',
    );
    // The other checks still ran and reported.
    expect(validated.stdout).toContain('✓ secret roundtrip/salesforce: found');
    expect(validated.stdout).not.toContain('postgres://u:p@');
    const planned = await cli(['plan', '--config', configFile, '--secrets', misspelt]);
    expect(planned.code).not.toBe(0);
    expect(planned.stderr).toContain('(the secret roundtrip/postgres (postgres.secret of the config))');
    expect(planned.stderr).not.toContain('postgres://u:p@');
  });

  it('names the config path of a misspelt object, in validate and in a run (whose Prepare counts its rows first)', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as {
      extract: Record<string, unknown>[];
      writeback: Record<string, unknown>[];
    };
    const misspelt = path.join(dir, 'misspelt-object.config.json');
    await writeFile(
      misspelt,
      JSON.stringify({
        ...config,
        extract: config.extract.map((task) =>
          task.from === 'salesforce' ? { ...task, object: 'Leads' } : task,
        ),
        writeback: config.writeback.map((task) => ({ ...task, object: 'Lead_c' })),
      }),
    );
    const check = (object: string): string =>
      `Salesforce has no object ${object} that the integration user can see: check the API name (a custom object ends in __c) and the user's permission to read it (`;
    const validated = await cli(['validate', ...connection.slice(2), '--config', misspelt]);
    expect(validated.code).toBe(1);
    const failed = validated.stdout.split('\n').filter((l) => l.startsWith('✗'));
    expect(failed).toHaveLength(2);
    expect(failed[0]).toContain(
      `✗ extract Leads: extract[0].object: ${check('Leads')}Salesforce describe Leads failed: NOT_FOUND`,
    );
    expect(failed[1]).toContain(
      `: writeback[0].object: ${check('Lead_c')}Salesforce describe Lead_c failed: NOT_FOUND`,
    );
    const planned = await cli(['plan', ...connection.slice(2), '--config', misspelt, '--json']);
    expect(planned.code).toBe(1);
    expect(planned.stderr).toContain(
      `extract[0].object: ${check('Leads')}Salesforce count failed: INVALID_TYPE`,
    );
    // The calls of the Prepare that failed (its /limits, the COUNT() refused) are in the progress
    // lines' count too, as in the summary: Prepare recorded them, and the Report says them.
    const prepareCalls = (
      lastJsonLine(planned.stdout) as { tasks: { kind: string; apiCalls: number }[] }
    ).tasks.find((t) => t.kind === 'prepare')?.apiCalls;
    expect(prepareCalls).toBeGreaterThan(0);
    expect(planned.stderr).toContain(
      `✓ Report failure  (so far: 0 rows read, ${prepareCalls} Salesforce API calls)`,
    );
    // The message as it is, not after the class name the state machine matches on (TerminalError).
    expect(planned.stderr).toMatch(/^ {2}✗ Prepare: extract\[0\]\.object: /m);
    expect(planned.stderr).toMatch(/^run \S+ failed: extract\[0\]\.object: /m);
  });

  it("checks an extract's where condition in validate, and names it by its config path there and in a run", async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { extract: Record<string, unknown>[] };
    const withWhere = (where: string): Record<string, unknown> => ({
      ...config,
      // A name of its own: the run claims its task names, and "Lead" stays free for the others.
      extract: config.extract.map((task) =>
        task.from === 'salesforce' ? { ...task, where, name: 'Lead-where' } : task,
      ),
    });
    const good = path.join(dir, 'where.config.json');
    await writeFile(good, JSON.stringify(withWhere("Status = 'Open - Not Contacted' OR Status = 'Nope'")));
    const accepted = await cli(['validate', ...connection.slice(2), '--config', good]);
    expect(accepted.stdout).toMatch(/^✓ extract Lead-where: Lead: .*; where accepted, \d+ records match$/m);
    const misspelt = path.join(dir, 'misspelt-where.config.json');
    await writeFile(misspelt, JSON.stringify(withWhere("Stauts = 'Open - Not Contacted'")));
    const refusal =
      'extract[0].where: Salesforce refused the condition "Stauts = \'Open - Not Contacted\'" on Lead: check its field names and syntax (a SOQL condition, without the WHERE keyword) (Salesforce count failed: INVALID_FIELD: ';
    const validated = await cli(['validate', ...connection.slice(2), '--config', misspelt]);
    expect(validated.code).toBe(1);
    expect(validated.stdout.split('\n').filter((l) => l.startsWith('✗'))).toEqual([
      expect.stringContaining(`✗ extract Lead-where: ${refusal}`),
    ]);
    const planned = await cli(['plan', ...connection.slice(2), '--config', misspelt]);
    expect(planned.code).toBe(1);
    expect(planned.stderr).toContain(refusal);
  });

  it('counts the calls of an extract whose Bulk job failed in the progress, the summary and status', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { extract: Record<string, unknown>[] };
    const bulk = path.join(dir, 'bulk-failed.config.json');
    await writeFile(
      bulk,
      JSON.stringify({
        ...config,
        // A name of its own, as above; a Bulk read whatever the count.
        extract: config.extract.map((task) =>
          task.from === 'salesforce' ? { ...task, name: 'Lead-bulk', bulkThreshold: 1 } : task,
        ),
      }),
    );
    // The job fails after 3 s: time for the Athena branch beside it to load and record its calls
    // (a Parallel's other branches are stopped once one fails), on a loaded machine too.
    env.salesforce.faults.set({
      failNextBulkJob: 'InvalidBatch : Field name not found : Nope__c',
      bulkJobDelayMs: 3_000,
    });
    let planned: Awaited<ReturnType<typeof cli>>;
    try {
      planned = await cli(['plan', ...connection.slice(2), '--config', bulk, '--json']);
    } finally {
      env.salesforce.faults.clear();
    }
    expect(planned.code).toBe(1);
    expect(planned.stderr).toMatch(
      /✗ Lead-bulk.*: Salesforce Bulk query job 750\w+ of extract task Lead-bulk ended Failed: InvalidBatch : Field name not found : Nope__c/,
    );
    const summary = lastJsonLine(planned.stdout) as {
      runId: string;
      tasks: { task: string; kind: string; apiCalls: number }[];
    };
    // The job's creation and a poll at least: recorded by the step that failed (its COUNT() is
    // Prepare's, which it reuses; the describe is Prepare's when the table is new, cached for the
    // extract in this one process).
    expect(summary.tasks.find((t) => t.task === 'Lead-bulk')?.apiCalls).toBeGreaterThanOrEqual(2);
    const total = summary.tasks.reduce((n, t) => n + t.apiCalls, 0);
    // The Athena load's calls are Athena's and S3's: counted apart in the progress.
    const athena = summary.tasks.find((t) => t.task === 'athena_customers')?.apiCalls ?? 0;
    expect(athena).toBeGreaterThan(0);
    // The Athena branch runs on beside the failed one (a Parallel's other branches are not waited
    // for once one fails, as in Step Functions), so its load may record its calls before the Report
    // of the failure or after it: the Report's line counts every Salesforce call, and the Athena/S3
    // calls when the load had recorded them by then; the summary (read once the load ended) and
    // the run's total (status, below) have them all.
    expect(planned.stderr).toMatch(
      new RegExp(
        `✓ Report failure {2}\\(so far: [\\d,]+ rows read, ${total - athena} Salesforce API calls(, ${athena} Athena/S3 calls)?\\)`,
      ),
    );
    const status = await cli(['status', ...connection.slice(2, 4), '--config', bulk, '--json']);
    const listed = lastJsonLine(status.stdout) as {
      runs: { runId: string; apiCalls: number; salesforceApiCalls: number; athenaApiCalls: number }[];
    };
    const run = listed.runs.find((r) => r.runId === summary.runId);
    expect(run?.apiCalls).toBe(total);
    // Salesforce's calls apart from Athena's and S3's: what the budget and the org's allowance count.
    expect(run?.salesforceApiCalls).toBe(total - athena);
    expect(run?.athenaApiCalls).toBe(athena);
    expect(summary.tasks.filter((t) => (t as { athena?: true }).athena).map((t) => t.task)).toEqual([
      'athena_customers',
    ]);
    // The table says them in two columns, the run's row with both figures.
    const text = (await cli(['status', ...connection.slice(2, 4), '--config', bulk])).stdout.split('\n');
    expect(text[0]).toMatch(/ {2}failed {2}Salesforce calls {2}Athena\/S3 calls$/);
    const cells = text.find((l) => l.startsWith(summary.runId))?.split(/ {2,}/);
    expect(cells?.slice(-2)).toEqual([
      (total - athena).toLocaleString('en-US'),
      athena.toLocaleString('en-US'),
    ]);
  });

  it('prints the summary only once every Parallel branch has ended, with the calls of a branch still running when another failed', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { extract: Record<string, unknown>[] };
    const file = path.join(dir, 'branch-failed.config.json');
    const lead = config.extract.find((task) => task.from === 'salesforce') as Record<string, unknown>;
    await writeFile(
      file,
      JSON.stringify({
        ...config,
        // Names and tables of their own: a whole read each. One reads by REST, slowly; the other's
        // Bulk job fails meanwhile, which fails the Extract's Parallel state.
        extract: [
          { ...lead, name: 'Lead-slow', table: 'sf_lead_slow', mode: 'full' },
          { ...lead, name: 'Lead-failing', table: 'sf_lead_failing', mode: 'full', bulkThreshold: 1 },
        ],
      }),
    );
    // stdout and stderr as one stream, in the order written.
    const written: string[] = [];
    const capture = (chunk: string | Uint8Array): boolean => {
      written.push(String(chunk));
      return true;
    };
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(capture);
    const err = jest.spyOn(process.stderr, 'write').mockImplementation(capture);
    env.salesforce.faults.set({
      failNextBulkJob: 'InvalidBatch : Field name not found : Gone__c',
      slowStream: { chunkBytes: 2048, pauseMs: 60 },
    });
    let code: number;
    try {
      code = await main(['run', ...connection.slice(2), '--config', file]);
    } finally {
      env.salesforce.faults.clear();
      out.mockRestore();
      err.mockRestore();
    }
    expect(code).toBe(1);
    const lines = written.join('').split('\n');
    const table = lines.findIndex((l) => l.startsWith('task '));
    const slowDone = lines.findIndex((l) => l.startsWith('  ✓ Lead-slow'));
    expect(lines.find((l) => l.startsWith('  ✗ Lead-failing'))).toContain('Gone__c');
    expect(slowDone).toBeGreaterThan(-1);
    expect(table).toBeGreaterThan(slowDone);
    const row = (task: string): string[] | undefined =>
      lines
        .slice(table)
        .find((l) => l.startsWith(`${task} `))
        ?.split(/ {2,}/);
    // The slow branch's row: 300 rows read, and its calls.
    expect(row('Lead-slow')?.slice(1, 3)).toEqual(['extract', '300']);
    const calls = (task: string): number => Number(row(task)?.at(-1)?.replace(/,/g, ''));
    expect(calls('Lead-slow')).toBeGreaterThan(0);
    // status, read later, says the same total as the table.
    const status = await cli([
      'status',
      ...connection.slice(2, 4),
      '--config',
      file,
      '--json',
      '--limit',
      '1',
    ]);
    const listed = lastJsonLine(status.stdout) as { runs: { apiCalls: number }[] };
    const total = ['Prepare', 'Lead-slow', 'Lead-failing'].reduce((n, t) => n + calls(t), 0);
    expect(listed.runs[0]?.apiCalls).toBe(total);
  });

  it("says when a field's type changed in Salesforce retyped the copy's column, and names it in the error of a transform that reads it", async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { extract: Record<string, unknown>[] };
    const lead = config.extract.find((task) => task.from === 'salesforce') as Record<string, unknown>;
    const sql = path.join(dir, 'employees.sql');
    await writeFile(
      sql,
      'CREATE TABLE IF NOT EXISTS employees (n integer);\nTRUNCATE employees;\nINSERT INTO employees\nSELECT COALESCE("NumberOfEmployees", 0) FROM sf_lead_typed;\n',
    );
    const file = path.join(dir, 'retyped.config.json');
    // A table of its own: the other tests' copy keeps its types.
    await writeFile(
      file,
      JSON.stringify({
        ...config,
        extract: [{ ...lead, name: 'Lead-typed', table: 'sf_lead_typed' }],
        transform: [sql],
      }),
    );
    const args = ['plan', ...connection.slice(2), '--config', file];
    const first = await cli(args);
    expect(first.stderr).toContain('✓ Transform');
    expect(first.stderr).not.toContain('changed the type');

    // An admin makes NumberOfEmployees a text field.
    const field = env.salesforce.store.describe('Lead')?.fields.find((f) => f.name === 'NumberOfEmployees');
    if (!field) throw new Error('the emulator has no Lead.NumberOfEmployees');
    const before = { ...field };
    Object.assign(field, { type: 'string', soapType: 'xsd:string', length: 40, digits: 0 });
    let second: Awaited<ReturnType<typeof cli>>;
    try {
      second = await cli(args);
    } finally {
      Object.assign(field, before);
    }
    expect(second.code).toBe(1);
    const lines = second.stderr.split('\n');
    expect(lines).toContain(
      '  ! Lead-typed: Salesforce changed the type of Lead.NumberOfEmployees: column NumberOfEmployees of public.sf_lead_typed retyped from integer to text; a transform that reads it as integer may fail',
    );
    expect(second.stderr).toContain(
      `Transform ${sql}, line 4: COALESCE types text and integer cannot be matched (SQLSTATE 42804); the transaction was rolled back, previous results are unchanged. This run's extract retyped a column the file reads, Salesforce having changed the type of its field: Lead.NumberOfEmployees (column public.sf_lead_typed.NumberOfEmployees, integer before, text now); change the transform for the new type, or have the field's type changed back in Salesforce`,
    );
  });

  it('plans without sending anything, the summary as the last JSON line', async () => {
    const writesBefore = env.salesforce.calls.writes().length;
    const result = await cli(['plan', ...connection, '--json']);
    const summary = lastJsonLine(result.stdout) as {
      runId: string;
      status: string;
      tasks: { task: string; kind: string }[];
    };
    expect(summary.status).toBe('succeeded');
    expect(summary.tasks.map((t) => [t.task, t.kind])).toEqual(
      expect.arrayContaining([
        ['Lead', 'extract'],
        ['athena_customers', 'extract'],
        ['lead_score.sql', 'transform'],
      ]),
    );
    expect(env.salesforce.calls.writes().length).toBe(writesBefore);
    expect(result.stderr).toContain('Prepare');
    expect(result.code).toBe(0);
  });

  describe("validate checks the write-backs' sources as the transform leaves them", () => {
    /** A config whose transform is `sql` and whose write-back reads `writeback` over the example's. */
    const configWith = async (
      name: string,
      sql: string,
      writeback: Record<string, unknown>,
    ): Promise<{ file: string; sqlFile: string }> => {
      const base = JSON.parse(await readFile(configFile, 'utf8')) as { writeback: Record<string, unknown>[] };
      const sqlFile = path.join(dir, `${name}.sql`);
      await writeFile(sqlFile, sql);
      const file = path.join(dir, `${name}.config.json`);
      await writeFile(
        file,
        JSON.stringify({
          ...base,
          transform: [sqlFile],
          writeback: base.writeback.map((task) => ({ ...task, ...writeback })),
        }),
      );
      return { file, sqlFile };
    };
    const failedLines = (stdout: string): string[] => stdout.split('\n').filter((l) => l.startsWith('✗'));
    const relationExists = async (name: string): Promise<boolean> => {
      const pool = new Pool({ connectionString: db.url });
      try {
        const { rows } = await pool.query<{ present: boolean }>(
          'SELECT to_regclass($1) IS NOT NULL AS present',
          [name],
        );
        return rows[0]?.present === true;
      } finally {
        await pool.end();
      }
    };

    it('names a mapped column the source lacks (a typo in an alias) by its config path', async () => {
      const { file } = await configWith(
        'typo-alias',
        'DROP TABLE IF EXISTS lead_typo;\nCREATE TABLE lead_typo AS SELECT "Id", 10 AS lead_socre FROM sf_lead;\n',
        { from: 'lead_typo' },
      );
      const result = await cli(['validate', ...connection.slice(2), '--config', file]);
      expect(result.code).toBe(1);
      expect(failedLines(result.stdout)).toEqual([
        '✗ write-back Lead-update columns: after the transform (rolled back): Write-back Lead-update: the source "public"."lead_typo" has no column "lead_score" (writeback[0].fields.LeadScore__c; did you mean "lead_socre"?) (it has "Id", "lead_socre"): correct the name in the config, or the SQL that makes the source (a column\'s alias)',
      ]);
      expect(result.stdout).toMatch(
        /^✓ transform: 1 file, 2 statements ran \(\d+ rows written\) in \d+\.\d s, then rolled back: nothing kept$/m,
      );
      expect(result.stderr).toContain(
        'validate: running the transform (1 file) in a transaction that is rolled back… (--no-transform skips it)',
      );
      expect(await relationExists('lead_typo')).toBe(false);
    });

    it('names a key column the source lacks by writeback[0].keyColumn', async () => {
      const { file } = await configWith(
        'no-key',
        'CREATE TABLE lead_no_key AS SELECT "Id" AS lead_id, 10 AS lead_score FROM sf_lead;\n',
        { from: 'lead_no_key' },
      );
      const result = await cli(['validate', ...connection.slice(2), '--config', file]);
      expect(result.code).toBe(1);
      expect(failedLines(result.stdout)).toEqual([
        expect.stringMatching(
          /^✗ write-back Lead-update columns: after the transform \(rolled back\): Write-back Lead-update: the source "public"\."lead_no_key" has no column "Id" \(writeback\[0\]\.keyColumn[;)].* \(it has "lead_id", "lead_score"\): correct the name in the config/,
        ),
      ]);
    });

    it('names a source the transform does not make by writeback[0].from', async () => {
      const { file } = await configWith(
        'not-made',
        'CREATE TABLE lead_reversal AS SELECT "Id", 10 AS lead_score FROM sf_lead;\n',
        { from: 'lead_reversals' },
      );
      const result = await cli(['validate', ...connection.slice(2), '--config', file]);
      expect(result.code).toBe(1);
      expect(failedLines(result.stdout)).toEqual([
        '✗ write-back Lead-update columns: after the transform (rolled back): Write-back Lead-update: the source "public"."lead_reversals" does not exist (writeback[0].from; did you mean "lead_reversal"?; the transform ran and did not make it: check the name here and in its SQL)',
      ]);
    });

    it('names a transform SQL error by its file and line, as a run does', async () => {
      const { file, sqlFile } = await configWith(
        'broken-validate',
        'SELECT 1;\n\nSELECT "Id",\n       nope\n  FROM sf_lead;\n',
        {},
      );
      const result = await cli(['validate', ...connection.slice(2), '--config', file]);
      expect(result.code).toBe(1);
      expect(failedLines(result.stdout)).toEqual([
        `✗ transform: Transform ${sqlFile}, line 4: column "nope" does not exist (SQLSTATE 42703); the transaction was rolled back, previous results are unchanged`,
      ]);
      expect(result.stdout).toContain(
        '– write-back Lead-update columns: not checked: the transform failed (above)',
      );
    });

    it('says of a transform that timed out on a lock that validate does not retry it (run it again), not that a step is retried', async () => {
      const pool = new Pool({ connectionString: db.url });
      const holder = await pool.connect();
      try {
        await pool.query('CREATE TABLE validate_locked ("Id" text, lead_score int)');
        // Another session holds the table: the transform's read waits 200 ms, then times out.
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE validate_locked IN ACCESS EXCLUSIVE MODE');
        const { file, sqlFile } = await configWith(
          'locked',
          `SET LOCAL lock_timeout = '200ms';\nCREATE TABLE lead_locked AS SELECT * FROM validate_locked;\n`,
          { from: 'lead_locked' },
        );
        const result = await cli(['validate', ...connection.slice(2), '--config', file]);
        expect(result.code).toBe(1);
        expect(failedLines(result.stdout)).toEqual([
          `✗ transform: Transform ${sqlFile}, line 2: canceling statement due to lock timeout (SQLSTATE 55P03); the transaction was rolled back, previous results are unchanged (transient: validate does not retry it; run validate again once the other session is done (a run retries its transform step))`,
        ]);
        expect(result.stdout).not.toContain('the step is retried');
      } finally {
        await holder.query('ROLLBACK').catch(() => undefined);
        holder.release();
        await pool.query('DROP TABLE IF EXISTS validate_locked');
        await pool.end();
      }
    });

    it('says to extract first when the transform reads a field added to an extract since its last run', async () => {
      const base = JSON.parse(await readFile(configFile, 'utf8')) as { extract: Record<string, unknown>[] };
      const { file } = await configWith(
        'new-field',
        'CREATE TABLE lead_titles AS SELECT "Id", "Title", 10 AS lead_score FROM sf_lead;\n',
        { from: 'lead_titles' },
      );
      const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
      await writeFile(
        file,
        JSON.stringify({
          ...config,
          extract: base.extract.map((task) =>
            task.from === 'salesforce' ? { ...task, fields: [...(task.fields as string[]), 'Title'] } : task,
          ),
        }),
      );
      const result = await cli(['validate', ...connection.slice(2), '--config', file]);
      expect(failedLines(result.stdout)).toEqual([]);
      expect(result.stdout).toMatch(
        /^– transform: not checked: it reads what the extracts make, and Title \(extract\[0\]\.fields\[14\], a column of sf_lead\) is not extracted yet \(the next extract adds the column\): run `roundtrip plan` once .*, then validate again \(Transform \S+new-field\.sql, line 1: column "Title" does not exist/m,
      );
      expect(result.code).toBe(0);
    });

    it('rolls the transform back: a table it makes does not exist afterwards, rows it changes are unchanged', async () => {
      const pool = new Pool({ connectionString: db.url });
      const snapshot = async (): Promise<unknown> => ({
        reverse: (await pool.query('SELECT "Id", lead_score FROM lead_reverse ORDER BY "Id"')).rows,
        leads: (
          await pool.query(
            `SELECT md5(string_agg(l::text, ',' ORDER BY "Id")) AS h, count(*) AS n FROM sf_lead l`,
          )
        ).rows,
      });
      try {
        const before = await snapshot();
        expect((before as { reverse: unknown[] }).reverse.length).toBeGreaterThan(0);
        const { file } = await configWith(
          'rolled-back',
          [
            'DELETE FROM lead_reverse;',
            `UPDATE sf_lead SET "Email" = 'changed@validate.test';`,
            'CREATE TABLE made_by_validate AS SELECT "Id", 42 AS lead_score FROM sf_lead;',
            '',
          ].join('\n'),
          { from: 'made_by_validate' },
        );
        const result = await cli(['validate', ...connection.slice(2), '--config', file, '--json']);
        const report = lastJsonLine(result.stdout) as { ok: boolean; checks: CheckLine[] };
        expect(report.checks.filter((c) => !c.ok)).toEqual([]);
        // The check saw the table inside the transaction...
        expect(report.checks.find((c) => c.check === 'write-back Lead-update columns')).toEqual({
          check: 'write-back Lead-update columns',
          ok: true,
          detail:
            'made_by_validate, as the transform leaves it, has Id (keyColumn), lead_score → LeadScore__c',
        });
        expect(result.code).toBe(0);
        // ...and nothing of it is left.
        expect(await relationExists('made_by_validate')).toBe(false);
        expect(await snapshot()).toEqual(before);
      } finally {
        await pool.end();
      }
    });

    it('skips the transform with --no-transform and checks the sources as they are in the database', async () => {
      // A transform that would fail: not run. The source exists (the plan above made it).
      const misspelt = await configWith('no-transform', 'SELECT nope FROM sf_lead;\n', {
        fields: { LeadScore__c: 'lead_socre' },
      });
      const checked = await cli([
        'validate',
        ...connection.slice(2),
        '--config',
        misspelt.file,
        '--no-transform',
      ]);
      expect(checked.code).toBe(1);
      expect(checked.stderr).not.toContain('running the transform');
      expect(checked.stdout).toContain(
        '– transform: not run (--no-transform): the write-back sources are checked as they are in the database',
      );
      expect(failedLines(checked.stdout)).toEqual([
        '✗ write-back Lead-update columns: Write-back Lead-update: the source "public"."lead_reverse" has no column "lead_socre" (writeback[0].fields.LeadScore__c; did you mean "lead_score"?) (it has "Id", "lead_score"): correct the name in the config, or the SQL that makes the source (a column\'s alias)',
      ]);
      // A source the transform would make, and that does not exist: not checked, and said why.
      const absent = await configWith('no-transform-absent', 'SELECT nope FROM sf_lead;\n', {
        from: 'lead_not_made_yet',
      });
      const skipped = await cli([
        'validate',
        ...connection.slice(2),
        '--config',
        absent.file,
        '--no-transform',
      ]);
      expect(failedLines(skipped.stdout)).toEqual([]);
      expect(skipped.stdout).toContain(
        '– write-back Lead-update columns: not checked: "public"."lead_not_made_yet" (writeback[0].from) does not exist in this database yet; without --no-transform, validate runs the transform (rolled back) and checks what it makes',
      );
      expect(skipped.code).toBe(0);
    });
  });

  it('lists no record of a dry run that failed in its transform, and says why it failed', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
    const broken = path.join(dir, 'broken.sql');
    await writeFile(broken, 'SELECT 1;\nSELECT nope FROM sf_lead;\n');
    const brokenConfig = path.join(dir, 'broken-transform.config.json');
    await writeFile(brokenConfig, JSON.stringify({ ...config, transform: [broken] }));
    const plan = await cli(['plan', ...connection.slice(2), '--config', brokenConfig]);
    expect(plan.code).toBe(1);
    // Not "nothing would be sent", which reads as a plan that found nothing to send.
    expect(plan.stdout).toContain(
      'dry run: no plan: the run failed before any write-back planned (why: above)',
    );
    expect(plan.stdout).not.toContain('nothing would be sent');
    const failed = (
      lastJsonLine(
        (await cli(['status', ...connection.slice(2, 4), '--config', brokenConfig, '--limit', '1', '--json']))
          .stdout,
      ) as { runs: { runId: string; error: string }[] }
    ).runs[0];
    const runId = failed?.runId;
    // Its error as the table gives it: the message, not the name of our error class stored with it.
    const pool = new Pool({ connectionString: db.url });
    const stored = await pool
      .query<{ error: string }>('SELECT error FROM roundtrip.runs WHERE run_id = $1', [runId])
      .finally(() => pool.end());
    expect(stored.rows[0]?.error).toMatch(/^TransformError: /);
    expect(failed?.error).toBe(stored.rows[0]?.error.replace(/^TransformError: /, ''));
    expect(failed?.error).toContain('column "nope" does not exist');
    const result = await cli([
      'errors',
      ...connection.slice(2, 4),
      '--config',
      brokenConfig,
      '--run',
      runId ?? '',
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      new RegExp(
        `^run ${runId} \\(dry run, failed, started .* UTC\\): 0 rejected before sending, 0 failed when sent\nno record to show; the run failed: Transform ${broken}, line 2: column "nope" does not exist`,
      ),
    );
  });

  it('shows a dry run’s first planned records with what Salesforce has and what would be sent', async () => {
    const writesBefore = env.salesforce.calls.writes().length;
    const result = await cli(['plan', ...connection]);
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    const at = lines.indexOf('dry run: a sample of what would be sent (current → new)');
    expect(at).toBeGreaterThanOrEqual(0);
    const sample = lines.slice(at + 1, at + 11);
    expect(sample).toHaveLength(10);
    for (const line of sample)
      expect(line).toMatch(/^ {2}Lead-update 00Q\w{15}: \{"LeadScore__c":null\} → \{"LeadScore__c":\d+\}$/);
    // Nothing scored yet: the extracted copy has no score. In key order (Ids compared as
    // Salesforce does, ignoring case in their 18-character form), the first page of the plan.
    const keys = sample.map((l) => l.split(' ')[3]?.replace(':', '') ?? '');
    const upper = (k: string): string => k.toUpperCase();
    expect(keys).toEqual([...keys].sort((a, b) => (upper(a) < upper(b) ? -1 : upper(a) > upper(b) ? 1 : 0)));
    expect(env.salesforce.calls.writes().length).toBe(writesBefore);
  });

  it('says of a dry run whose write-back plan failed that it has no plan, and why, not that nothing would be sent', async () => {
    // As Salesforce describes a field whose field-level security gives the user Read, not Edit:
    // the plan refuses the mapping.
    const field = env.salesforce.store.describe('Lead')?.fields.find((f) => f.name === 'LeadScore__c');
    if (!field) throw new Error('the emulator has no Lead.LeadScore__c');
    field.updateable = false;
    let result: Awaited<ReturnType<typeof cli>>;
    try {
      result = await cli(['plan', ...connection]);
    } finally {
      field.updateable = true;
    }
    expect(result.code).toBe(1);
    const why =
      'Cannot plan the write-back Lead-update (update of Lead): field LeadScore__c is not updateable by the integration user (writeback[0].fields.LeadScore__c)';
    const lines = result.stdout.split('\n');
    expect(lines).toContainEqual(expect.stringMatching(/^✗ write-back Lead-update failed: Cannot plan /));
    expect(lines.filter((l) => l.startsWith('dry run: '))).toEqual([
      expect.stringContaining(`dry run: no plan: the plan of write-back Lead-update failed: ${why}`),
    ]);
    expect(result.stdout).not.toContain('nothing would be sent');
  });

  it("shows in errors --task the task's own step error, beside its records (none here)", async () => {
    const field = env.salesforce.store.describe('Lead')?.fields.find((f) => f.name === 'LeadScore__c');
    if (!field) throw new Error('the emulator has no Lead.LeadScore__c');
    field.updateable = false;
    try {
      expect((await cli(['plan', ...connection])).code).toBe(1);
    } finally {
      field.updateable = true;
    }
    const why =
      'Cannot plan the write-back Lead-update (update of Lead): field LeadScore__c is not updateable by the integration user (writeback[0].fields.LeadScore__c)';
    const text = await cli(['errors', ...databaseConnection(), '--task', 'Lead-update']);
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      /^run \S+ \(dry run, failed, started .* UTC\), task Lead-update: 0 rejected before sending, 0 failed when sent$/,
    );
    expect(lines[1]).toContain(`no record to show; task Lead-update failed: ${why}`);
    const json = lastJsonLine(
      (await cli(['errors', ...databaseConnection(), '--task', 'Lead-update', '--json'])).stdout,
    );
    expect(json).toMatchObject({ total: 0, taskError: expect.stringContaining(why) });
  });

  it("shows the first planned records of each write-back task, not only the first task's", async () => {
    const base = JSON.parse(await readFile(configFile, 'utf8')) as { writeback: Record<string, unknown>[] };
    const [task] = base.writeback;
    const twoTasks = path.join(dir, 'two-tasks.config.json');
    await writeFile(
      twoTasks,
      JSON.stringify({ ...base, writeback: [task, { ...task, name: 'Lead-update-again' }] }),
    );
    const result = await cli([
      'plan',
      ...connection.slice(2, 4),
      '--config',
      twoTasks,
      ...connection.slice(4),
    ]);
    expect(result.stderr).not.toContain('✗');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    const at = lines.indexOf('dry run: a sample of what would be sent (current → new)');
    expect(at).toBeGreaterThanOrEqual(0);
    const sample = lines.slice(at + 1).filter((l) => l.startsWith('  '));
    const tasks = sample.map((l) => l.trim().split(' ')[0]);
    expect(tasks.filter((t) => t === 'Lead-update')).toHaveLength(10);
    expect(tasks.filter((t) => t === 'Lead-update-again')).toHaveLength(10);
  });

  it("cuts a long text in the printed sample as the Plan step's own output does, saying its length", async () => {
    // Account.Description is a Long Text Area of 32,000 characters: a value that long is valid,
    // and printed whole it would fill the terminal.
    const base = JSON.parse(await readFile(configFile, 'utf8')) as {
      transform: string[];
      writeback: Record<string, unknown>[];
    };
    const transform = path.join(dir, 'account-notes.sql');
    await writeFile(
      transform,
      `DROP TABLE IF EXISTS account_notes;
       CREATE TABLE account_notes AS
         SELECT '001000000000001AAA'::text AS "Id", repeat('n', 32000) AS notes
         UNION ALL SELECT '001000000000002AAA', 'short notes';`,
    );
    const config = path.join(dir, 'long-text.config.json');
    await writeFile(
      config,
      JSON.stringify({
        ...base,
        transform: [...base.transform, transform],
        writeback: [
          ...base.writeback,
          {
            to: 'salesforce',
            object: 'Account',
            from: 'account_notes',
            mode: 'update',
            key: 'Id',
            fields: { Description: 'notes' },
          },
        ],
      }),
    );
    const result = await cli(['plan', ...connection.slice(2, 4), '--config', config, ...connection.slice(4)]);
    expect(result.stderr).not.toContain('✗');
    expect(result.code).toBe(0);
    const accounts = result.stdout.split('\n').filter((l) => l.startsWith('  Account-update '));
    expect(accounts).toEqual([
      `  Account-update 001000000000001AAA: null → {"Description":"${'n'.repeat(DRY_RUN_SAMPLE_VALUE_CHARS)}… (32000 characters)"}`,
      '  Account-update 001000000000002AAA: null → {"Description":"short notes"}',
    ]);
    expect(result.stdout.length).toBeLessThan(10_000);
  });

  it('warns when a dry run plans more records than maxChanges, which a real run would refuse', async () => {
    // Three scored leads with a score no rule gives: whatever ran before, the plan sends at least
    // them (and the next real run puts their scores back).
    const leads = [...env.salesforce.store.all('Lead')]
      .filter((r) => r.IsConverted !== true && r.IsDeleted !== true)
      .slice(0, 3)
      .map((r) => String(r.Id));
    env.salesforce.store.update(
      'Lead',
      leads.map((Id) => ({ Id, LeadScore__c: 999 })),
    );
    const limited = path.join(dir, 'max-changes.config.json');
    const base = JSON.parse(await readFile(configFile, 'utf8')) as { writeback: Record<string, unknown>[] };
    await writeFile(
      limited,
      JSON.stringify({ ...base, writeback: base.writeback.map((task) => ({ ...task, maxChanges: 2 })) }),
    );
    const writesBefore = env.salesforce.calls.writes().length;
    const result = await cli([
      'plan',
      '--config',
      limited,
      '--secrets',
      secretsFile,
      '--aws-endpoint',
      env.aws.endpoint,
      '--json',
    ]);
    const summary = lastJsonLine(result.stdout) as {
      runId: string;
      tasks: { task: string; planned: number }[];
    };
    const planned = summary.tasks.find((t) => t.task === 'Lead-update')?.planned ?? 0;
    expect(planned).toBeGreaterThanOrEqual(3);
    expect(result.stderr).toContain(
      `dry run: write-back Lead-update would send ${planned.toLocaleString('en-US')} records, more than its maxChanges (2, writeback[0].maxChanges): a real run would send none of them and fail`,
    );
    expect(result.code).toBe(0);
    expect(env.salesforce.calls.writes().length).toBe(writesBefore);
  });

  it('runs the pipeline, then lists the runs with status', async () => {
    const run = await cli(['run', ...connection, '--json']);
    const summary = lastJsonLine(run.stdout) as {
      runId: string;
      status: string;
      tasks: Record<string, unknown>[];
    };
    expect(Object.keys(summary)).toEqual(['runId', 'status', 'tasks']);
    for (const task of summary.tasks) {
      expect(Object.keys(task)).toEqual([
        'task',
        'kind',
        'rowsRead',
        'planned',
        'written',
        'rejected',
        'heldBack',
        'superseded',
        'failed',
        'apiCalls',
        // An Athena load's calls are Athena's and S3's, not Salesforce's: its row says so.
        ...(task.task === 'athena_customers' ? ['athena'] : []),
      ]);
    }
    expect(summary.tasks.find((t) => t.task === 'athena_customers')?.athena).toBe(true);
    expect(run.code).toBe(summary.status === 'succeeded' ? 0 : 1);
    // Each extract's progress line says what its summary row says: rows read, and of them written
    // (rows read again through the overlap window, unchanged, are not written).
    const fmt = (n: unknown): string => Number(n).toLocaleString('en-US');
    const extracts = summary.tasks.filter((t) => t.kind === 'extract');
    expect(extracts.map((t) => t.task)).toEqual(['Lead', 'athena_customers']);
    for (const t of extracts) {
      const line = run.stderr
        .split('\n')
        .find((l) => l.startsWith(`  ✓ ${String(t.task)} `) && l.includes(' rows read'));
      expect(line).toContain(`: ${fmt(t.rowsRead)} rows read, ${fmt(t.written)} written, `);
    }

    const status = await cli(['status', ...databaseConnection(), '--json']);
    const listed = lastJsonLine(status.stdout) as {
      pipeline: string;
      runs: { runId: string; dryRun: boolean }[];
    };
    expect(listed.pipeline).toBe('lead-scoring');
    expect(listed.runs[0]).toMatchObject({ runId: summary.runId, dryRun: false });
    expect(listed.runs[1]).toMatchObject({ dryRun: true });
    expect(status.code).toBe(0);

    // The table's start time is UTC's, and its header says so (a time without its zone, read on a
    // laptop in another zone, would be taken for local time).
    const startedAt = (listed.runs[0] as unknown as { startedAt: string }).startedAt;
    expect(startedAt).toMatch(/Z$/);
    const text = (await cli(['status', ...databaseConnection(), '--limit', '1'])).stdout.split('\n');
    expect(text[0]).toMatch(/^run {2,}status {2,}started \(UTC\) {2,}seconds {2}/);
    expect(text[1]?.split(/ {2,}/).slice(0, 3)).toEqual([
      summary.runId,
      summary.status,
      startedAt.replace('T', ' ').slice(0, 19),
    ]);
  });

  it('says in status which write-backs held back records the previous run held back too', async () => {
    // A run's summary as its report stores it (integration/writeback/notify.test.ts makes one for
    // real); started long ago, so that it is no later command's latest run.
    const runId = `held-again-${Date.now()}`;
    const pool = new Pool({ connectionString: db.url });
    try {
      await pool.query(
        `INSERT INTO roundtrip.runs (run_id, pipeline, status, started_at, finished_at, summary)
         VALUES ($1, 'lead-scoring', 'succeeded', '2020-01-01T00:00:00Z', '2020-01-01T00:01:00Z', $2::jsonb)`,
        [
          runId,
          JSON.stringify({
            writeback: {
              'Lead-update': {
                sourceRows: 6,
                heldBack: 6,
                heldBackRepeatedly: 6,
                heldBackSince: 'run-before',
              },
            },
          }),
        ],
      );
    } finally {
      await pool.end();
    }
    const text = await cli(['status', ...databaseConnection(), '--limit', '1000']);
    expect(text.stdout).toContain(
      `\n${runId}: write-back Lead-update: 6 records held back again, as by the previous run (held back by every run since run-before): an earlier send of their keys still has no outcome; roundtrip errors --run ${runId} ${databaseConnection().join(' ')} says why for each (a run still recorded as running, a Bulk job Salesforce has not finished, or keys to record by hand)\n`,
    );
    const json = lastJsonLine(
      (await cli(['status', ...databaseConnection(), '--limit', '1000', '--json'])).stdout,
    ) as {
      runs: { runId: string; heldBack: number; heldBackAgain: unknown[] }[];
    };
    expect(json.runs.find((r) => r.runId === runId)).toMatchObject({
      heldBack: 6,
      heldBackAgain: [{ task: 'Lead-update', records: 6, since: 'run-before' }],
    });
    expect(json.runs.filter((r) => r.runId !== runId).every((r) => r.heldBackAgain.length === 0)).toBe(true);
  });

  it("shows a run's figures as it recorded them, tasks the config no longer names included", async () => {
    // A failed run of a write-back since renamed (Contact-rs; the config's is Lead-update), as its
    // report stores it; started long ago, so that it is no later command's latest run.
    const runId = `renamed-task-${Date.now()}`;
    const pool = new Pool({ connectionString: db.url });
    try {
      await pool.query(
        `INSERT INTO roundtrip.runs (run_id, pipeline, status, started_at, finished_at, error, summary)
         VALUES ($1, 'lead-scoring', 'failed', '2020-01-02T00:00:00Z', '2020-01-02T00:01:00Z', 'WritebackFailureRateExceeded: too many', $2::jsonb)`,
        [
          runId,
          JSON.stringify({
            prepare: { apiCalls: 3 },
            extract: {
              Lead: { rows: 12, inserted: 2, updated: 1, apiCalls: 4 },
              // An Athena load (its figures count S3 reads) since removed: its calls are not Salesforce's.
              Old_extract: { rows: 5, apiCalls: 1, s3Reads: 1 },
            },
            writeback: {
              'Lead-update': { sourceRows: 3, changed: 1, written: 1, apiCalls: 1 },
              'Contact-rs': { sourceRows: 9, changed: 7, written: 5, failed: 2, rejected: 1, apiCalls: 2 },
            },
          }),
        ],
      );
      await pool.query(
        `INSERT INTO roundtrip.runs (run_id, pipeline, status, started_at, finished_at, summary)
         VALUES ($1, 'lead-scoring', 'succeeded', '2020-01-01T12:00:00Z', '2020-01-01T12:01:00Z', $2::jsonb)`,
        [
          `${runId}-named`,
          JSON.stringify({ writeback: { 'Lead-update': { sourceRows: 3, changed: 1, written: 1 } } }),
        ],
      );
      // An earlier run of the task before its rename.
      await pool.query(
        `INSERT INTO roundtrip.runs (run_id, pipeline, status, started_at, finished_at, summary)
         VALUES ($1, 'lead-scoring', 'succeeded', '2020-01-01T06:00:00Z', '2020-01-01T06:01:00Z', $2::jsonb)`,
        [
          `${runId}-earlier`,
          JSON.stringify({ writeback: { 'Contact-rs': { sourceRows: 2, changed: 1, written: 1 } } }),
        ],
      );
    } finally {
      await pool.end();
    }
    const json = lastJsonLine(
      (await cli(['status', ...databaseConnection(), '--limit', '1000', '--json'])).stdout,
    ) as {
      runs: Record<string, unknown>[];
    };
    expect(json.runs.find((r) => r.runId === runId)).toMatchObject({
      status: 'failed',
      rowsExtracted: 17,
      written: 6,
      rejected: 1,
      failed: 2,
      apiCalls: 12,
      salesforceApiCalls: 10,
      athenaApiCalls: 2,
      notInConfig: ['Old_extract', 'Contact-rs'],
    });
    // A run of the config's tasks alone names none.
    expect(json.runs.find((r) => r.runId === `${runId}-named`)).toMatchObject({
      written: 1,
      notInConfig: [],
    });
    const text = (await cli(['status', ...databaseConnection(), '--limit', '1000'])).stdout;
    const row = text.split('\n').find((l) => l.startsWith(`${runId} `));
    expect(row?.split(/\s{2,}/)).toEqual([
      runId,
      'failed',
      '2020-01-02 00:00:00',
      '60',
      '17',
      '6',
      '1',
      '0',
      '2',
      '10',
      '2',
    ]);
    // Said once, for every run listed that has such figures (earlier tests' runs of tasks of
    // their own configs among them), not once a run.
    const notNamed = text.split('\n').filter((l) => l.includes('which the config no longer names'));
    expect(notNamed).toHaveLength(1);
    expect(notNamed[0]).toMatch(
      /^\d+ runs above \(\S+ to \S+\): their figures include tasks (\S+, )*Old_extract, Contact-rs(, \S+)*, which the config no longer names \(as the runs recorded them; status --json lists each run's in notInConfig\)$/,
    );
    // With one run listed, that run is named.
    const one = (await cli(['status', ...databaseConnection(), '--limit', '1'])).stdout;
    expect(one).not.toContain('runs above');

    // Its records are listed by that task's name, though the config no longer has it.
    const records = new Pool({ connectionString: db.url });
    try {
      await records.query(
        `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message, fields)
         VALUES ($1, 'Contact-rs', 'C-7', 'push', 'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'Title is required', '{Title}')`,
        [runId],
      );
    } finally {
      await records.end();
    }
    const listed = await cli([
      'errors',
      ...databaseConnection(),
      '--run',
      runId,
      '--task',
      'Contact-rs',
      '--json',
    ]);
    expect(listed.code).toBe(0);
    expect(listed.stderr).toContain('task Contact-rs is not in the config (renamed or removed since)');
    expect(lastJsonLine(listed.stdout)).toMatchObject({
      runId,
      total: 1,
      records: [{ task: 'Contact-rs', key: 'C-7', code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION' }],
    });
    const unknown = await cli(['errors', ...databaseConnection(), '--task', 'Contact-nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(
      '--task: pipeline lead-scoring has no write-back task Contact-nope (it has Lead-update), and none of its runs recorded a record of one',
    );
  });

  it('leads errors of a pruned run with the prune and the figures the run recorded', async () => {
    // Two failed runs whose details the Report pruned: one with nothing kept, one with an
    // INSERT_OUTCOME_UNKNOWN mark kept for later plans. Started long ago: no command's latest run.
    const stamp = Date.now();
    const [gone, kept] = [`pruned-${stamp}`, `pruned-kept-${stamp}`];
    const pool = new Pool({ connectionString: db.url });
    try {
      for (const [runId, day] of [
        [gone, '03'],
        [kept, '04'],
      ] as const) {
        await pool.query(
          `INSERT INTO roundtrip.runs (run_id, pipeline, status, started_at, finished_at, error, summary)
           VALUES ($1, 'lead-scoring', 'failed', $2::timestamptz, $2::timestamptz + interval '1 minute', 'too many failed', $3::jsonb)`,
          [
            runId,
            `2020-01-${day}T00:00:00Z`,
            JSON.stringify({
              detailsPrunedAt: '2020-02-10T00:00:00.000Z',
              writeback: {
                'Lead-update': { sourceRows: 9, changed: 6, written: 3, rejected: 1, failed: 2, heldBack: 1 },
              },
            }),
          ],
        );
      }
      await pool.query(
        `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message)
         VALUES ($1, 'Lead-update', 'k1', 'plan', 'INSERT_OUTCOME_UNKNOWN', 'sent, no outcome')`,
        [kept],
      );
    } finally {
      await pool.end();
    }
    const pruned = 'its records were pruned at 2020-02-10T00:00:00.000Z (postgres.keepRunDetailsDays: 30)';
    const recorded =
      "it recorded 1 rejected before sending, 1 held back for another run's send of their key, 2 failed when sent";
    const text = await cli(['errors', ...databaseConnection(), '--run', gone]);
    expect(text.code).toBe(0);
    expect(text.stdout.trim().split('\n')).toEqual([
      `run ${gone} (failed, started 2020-01-03 00:00:00 UTC): ${pruned}; ${recorded}`,
      'the run failed: too many failed',
    ]);
    const withKept = (await cli(['errors', ...databaseConnection(), '--run', kept])).stdout
      .trim()
      .split('\n');
    expect(withKept.slice(0, 2)).toEqual([
      `run ${kept} (failed, started 2020-01-04 00:00:00 UTC): ${pruned}; ${recorded}`,
      "kept, as later runs read them (outcomes unknown, keys held back): 0 rejected before sending, 1 held back for another run's send of their key, 0 failed when sent",
    ]);
    expect(withKept.join('\n')).toContain('INSERT_OUTCOME_UNKNOWN');
    const json = lastJsonLine(
      (await cli(['errors', ...databaseConnection(), '--run', gone, '--json'])).stdout,
    );
    expect(json).toMatchObject({
      total: 0,
      detailsPrunedAt: '2020-02-10T00:00:00.000Z',
      recorded: { rejected: 1, heldBack: 1, failed: 2 },
    });
  });

  it('lists the records a run could not write, with their code and fields, as text, JSON and CSV', async () => {
    // A run that brings every score in; then three scored leads are edited in Salesforce: the
    // next run sends their scores again, and a validation rule refuses two of them.
    await cli(['run', ...connection]);
    const scored = [...env.salesforce.store.all('Lead')].filter((r) => typeof r.LeadScore__c === 'number');
    const edited = scored.slice(0, 3).map((r) => String(r.Id));
    const refused = new Set(edited.slice(0, 2));
    env.salesforce.store.update(
      'Lead',
      edited.map((Id) => ({ Id, LeadScore__c: 999 })),
    );
    env.salesforce.store.setRecordFault((_object, record, op) =>
      op === 'update' && refused.has(String(record.Id ?? record.id))
        ? {
            statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
            message: 'Score is locked: ask ops',
            fields: ['LeadScore__c'],
          }
        : undefined,
    );
    let runId: string;
    let printed: string;
    try {
      const run = await cli(['run', ...connection, '--json']);
      const summary = lastJsonLine(run.stdout) as {
        runId: string;
        tasks: { task: string; failed: number; written: number }[];
      };
      runId = summary.runId;
      expect(summary.tasks.find((t) => t.task === 'Lead-update')).toMatchObject({ written: 1, failed: 2 });
      // With the --config and --secrets the run was given, to be pasted as it is.
      printed = `roundtrip errors --run ${runId} ${databaseConnection().join(' ')}`;
      expect(run.stderr).toContain(`2 records were rejected or failed: ${printed} lists them and why\n`);
    } finally {
      env.salesforce.store.setRecordFault(undefined);
    }

    // The command printed, through a shell.
    const { stdout: words } = await promisify(execFile)('sh', [
      '-c',
      `printf '%s\\n' ${printed.replace(/^roundtrip /, '')}`,
    ]);
    const text = await cli(words.trimEnd().split('\n'));
    expect(text.code).toBe(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      new RegExp(
        `^run ${runId} \\((failed|succeeded), started .* UTC\\): 0 rejected before sending, 2 failed when sent$`,
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^Lead-update\s+push\s+FIELD_CUSTOM_VALIDATION_EXCEPTION\s+2$/),
    );
    for (const id of refused) {
      expect(lines).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^Lead-update\\s+push\\s+${id}\\s+${id}\\s+FIELD_CUSTOM_VALIDATION_EXCEPTION\\s+LeadScore__c\\s+Score is locked: ask ops$`,
          ),
        ),
      );
    }

    // A misspelt --code: not a bare "no record to show", but the codes the run's records have.
    const misspelt = await cli([
      'errors',
      ...databaseConnection(),
      '--run',
      runId,
      '--code',
      'FIELD_CUSTOM_VALIDATION',
    ]);
    expect(misspelt.code).toBe(0);
    expect(misspelt.stdout.trim().split('\n')[1]).toBe(
      "no record to show with code FIELD_CUSTOM_VALIDATION; this run's records have code FIELD_CUSTOM_VALIDATION_EXCEPTION",
    );
    const typo = await cli([
      'errors',
      ...databaseConnection(),
      '--run',
      runId,
      '--task',
      'Lead-update',
      '--code',
      'FIELD_CUSTOM_VALIDATION_EXCEPTOIN',
    ]);
    expect(typo.stdout.trim().split('\n')[1]).toBe(
      "no record to show with code FIELD_CUSTOM_VALIDATION_EXCEPTOIN; this run's records of Lead-update have code FIELD_CUSTOM_VALIDATION_EXCEPTION (did you mean --code FIELD_CUSTOM_VALIDATION_EXCEPTION?)",
    );

    const json = await cli([
      'errors',
      ...databaseConnection(),
      '--run',
      runId,
      '--task',
      'Lead-update',
      '--limit',
      '1',
      '--json',
    ]);
    expect(lastJsonLine(json.stdout)).toEqual({
      pipeline: 'lead-scoring',
      runId,
      status: expect.any(String),
      total: 2,
      rejected: 0,
      heldBack: 0,
      failed: 2,
      secondRecords: 0,
      insertOutcomeUnknown: 0,
      counts: [
        {
          task: 'Lead-update',
          stage: 'push',
          code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
          records: 2,
          heldBack: 0,
          outcomeUnknown: 0,
        },
      ],
      records: [
        {
          task: 'Lead-update',
          stage: 'push',
          key: [...refused].sort()[0],
          salesforceId: [...refused].sort()[0],
          code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
          fields: ['LeadScore__c'],
          message: 'Score is locked: ask ops',
          jobId: null,
          values: { LeadScore__c: expect.any(Number) },
          heldBack: false,
        },
      ],
      // Refused, every one: none left sent without an outcome.
      outcomeUnknown: 0,
      sentCounts: [],
      sentRecords: [],
    });

    const csv = await cli(['errors', ...databaseConnection(), '--run', runId, '--csv']);
    expect(csv.code).toBe(0);
    const rows = csv.stdout.trim().split('\n');
    expect(rows[0]).toBe(
      'task,stage,key,salesforce_id,code,fields,message,job_id,values,created_at,held_back',
    );
    expect(rows).toHaveLength(3);
    expect(rows.slice(1).map((r) => r.split(',').slice(0, 7))).toEqual(
      [...refused]
        .sort()
        .map((id) => [
          'Lead-update',
          'push',
          id,
          id,
          'FIELD_CUSTOM_VALIDATION_EXCEPTION',
          'LeadScore__c',
          'Score is locked: ask ops',
        ]),
    );

    // Keys a plan held back (an earlier run's Bulk job not finished) are stage plan too, counted apart.
    const pool = new Pool({ connectionString: db.url });
    try {
      await pool.query(
        `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message, fields)
         SELECT $1, 'Lead-update', k, 'plan', 'OUTCOME_PENDING', 'kept back', '{Id}'
           FROM unnest(ARRAY['00Q000000000001AAA', '00Q000000000002AAA']) AS k`,
        [runId],
      );
    } finally {
      await pool.end();
    }
    const held = await cli(['errors', ...databaseConnection(), '--run', runId, '--code', 'OUTCOME_PENDING']);
    expect(held.stdout).toContain(
      "code OUTCOME_PENDING: 0 rejected before sending, 2 held back for another run's send of their key, 0 failed when sent",
    );

    // So are insert keys a push held back (another run took them since the plan): stage push,
    // ledger status held_back (as the push writes them), not counted as failed when sent.
    const pushPool = new Pool({ connectionString: db.url });
    try {
      await pushPool.query(
        `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash, status)
         VALUES ($1, 'Lead-update', 'k-1', 1000001, 'insert', '{}', 'x', 'held_back')`,
        [runId],
      );
      await pushPool.query(
        `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message, fields)
         VALUES ($1, 'Lead-update', 'k-1', 'push', 'ALREADY_INSERTED', 'inserted as 00Q000000000003AAA by run other after this run planned it (the runs overlapped): not inserted again', '{}')`,
        [runId],
      );
    } finally {
      await pushPool.end();
    }
    const taken = await cli([
      'errors',
      ...databaseConnection(),
      '--run',
      runId,
      '--code',
      'ALREADY_INSERTED',
    ]);
    expect(taken.stdout).toContain(
      "code ALREADY_INSERTED: 0 rejected before sending, 1 held back for another run's send of their key, 0 failed when sent",
    );
    expect(taken.stdout).toContain('inserted as 00Q000000000003AAA by run other after this run planned it');
    // --json tells them apart as the first line does: in all, per count and per record.
    const heldJson = lastJsonLine(
      (await cli(['errors', ...databaseConnection(), '--run', runId, '--json'])).stdout,
    ) as {
      counts: unknown[];
      records: { key: string; code: string; heldBack: boolean }[];
    };
    expect(heldJson).toMatchObject({ total: 5, rejected: 0, heldBack: 3, failed: 2 });
    expect(heldJson.counts).toEqual([
      {
        task: 'Lead-update',
        stage: 'plan',
        code: 'OUTCOME_PENDING',
        records: 2,
        heldBack: 2,
        outcomeUnknown: 0,
      },
      {
        task: 'Lead-update',
        stage: 'push',
        code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
        records: 2,
        heldBack: 0,
        outcomeUnknown: 0,
      },
      {
        task: 'Lead-update',
        stage: 'push',
        code: 'ALREADY_INSERTED',
        records: 1,
        heldBack: 1,
        outcomeUnknown: 0,
      },
    ]);
    expect(heldJson.records.map((r) => [r.code, r.heldBack])).toEqual([
      ['OUTCOME_PENDING', true],
      ['OUTCOME_PENDING', true],
      ['FIELD_CUSTOM_VALIDATION_EXCEPTION', false],
      ['FIELD_CUSTOM_VALIDATION_EXCEPTION', false],
      ['ALREADY_INSERTED', true],
    ]);
    // --csv too, in its last column held_back (the others keep their places): a record held back
    // (by the plan or by the push), one rejected in the plan, one failed when sent.
    const rejectPool = new Pool({ connectionString: db.url });
    try {
      await rejectPool.query(
        `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message, fields, payload)
         VALUES ($1, 'Lead-update', '00Q000000000009AAA', 'plan', 'INVALID_EMAIL_ADDRESS',
                 'Email: invalid email address: a,b', '{Email}', '{"Email": "a,b"}')`,
        [runId],
      );
    } finally {
      await rejectPool.end();
    }
    const heldCsv = await cli(['errors', ...databaseConnection(), '--run', runId, '--csv']);
    expect(heldCsv.code).toBe(0);
    const csvRows = heldCsv.stdout.trim().split('\n');
    expect(csvRows[0]).toMatch(/,created_at,held_back$/);
    // task, stage, key and code hold no comma here; held_back, last, none either.
    expect(
      csvRows.slice(1).map((r) => {
        const [task, stage, key, , code] = r.split(',');
        return [task, stage, key, code, r.slice(r.lastIndexOf(',') + 1)];
      }),
    ).toEqual([
      ['Lead-update', 'plan', '00Q000000000001AAA', 'OUTCOME_PENDING', 'true'],
      ['Lead-update', 'plan', '00Q000000000002AAA', 'OUTCOME_PENDING', 'true'],
      ['Lead-update', 'plan', '00Q000000000009AAA', 'INVALID_EMAIL_ADDRESS', 'false'],
      ...[...refused]
        .sort()
        .map((id) => ['Lead-update', 'push', id, 'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'false']),
      ['Lead-update', 'push', 'k-1', 'ALREADY_INSERTED', 'true'],
    ]);

    // A run from before the held_back status (migration 9) wrote such records failed, and its
    // summary says so. The first line counts them as the ledger and the summary do: failed. A
    // push's own INSERT_OUTCOME_UNKNOWN (a keyless insert sent, its answer lost) is neither: of
    // unknown outcome, as the summary (ledgerOutcomes' `reported`) and status count it.
    const oldRun = `before-held-back-${Date.now()}`;
    const oldPool = new Pool({ connectionString: db.url });
    try {
      await oldPool.query(
        `INSERT INTO roundtrip.runs (run_id, pipeline, status, started_at, finished_at, summary)
         VALUES ($1, 'lead-scoring', 'failed', '2020-01-01T00:00:00Z', '2020-01-01T00:01:00Z', $2::jsonb)`,
        [
          oldRun,
          JSON.stringify({
            writeback: {
              'Lead-update': {
                sourceRows: 3,
                changed: 3,
                written: 0,
                failed: 2,
                outcomeUnknown: 1,
                failureRate: 1,
              },
            },
          }),
        ],
      );
      await oldPool.query(
        `INSERT INTO roundtrip.writeback_plans (run_id, task, key, seq, operation, payload, value_hash, status)
         SELECT $1, 'Lead-update', k, n, 'insert', '{}', 'x', 'failed'
           FROM unnest(ARRAY['old-1', 'old-2', 'old-3']) WITH ORDINALITY AS u(k, n)`,
        [oldRun],
      );
      await oldPool.query(
        `INSERT INTO roundtrip.writeback_errors (run_id, task, key, stage, code, message, fields)
         VALUES ($1, 'Lead-update', 'old-1', 'push', 'ALREADY_INSERTED', 'inserted by run other', '{}'),
                ($1, 'Lead-update', 'old-2', 'push', 'INSERT_PENDING_ELSEWHERE', 'sent by run other', '{}'),
                ($1, 'Lead-update', 'old-3', 'push', 'INSERT_OUTCOME_UNKNOWN', 'sent by an attempt that died', '{}')`,
        [oldRun],
      );
    } finally {
      await oldPool.end();
    }
    const old = await cli(['errors', ...databaseConnection(), '--run', oldRun]);
    expect(old.stdout.split('\n')[0]).toBe(
      `run ${oldRun} (failed, started 2020-01-01 00:00:00 UTC): 0 rejected before sending, 2 failed when sent, 1 sent for insert whose outcome is unknown (INSERT_OUTCOME_UNKNOWN: Salesforce's answer was lost)`,
    );
    const oldJson = lastJsonLine(
      (await cli(['errors', ...databaseConnection(), '--run', oldRun, '--json'])).stdout,
    ) as {
      counts: { heldBack: number }[];
      records: { heldBack: boolean }[];
    };
    expect(oldJson).toMatchObject({
      total: 3,
      rejected: 0,
      heldBack: 0,
      failed: 2,
      insertOutcomeUnknown: 1,
      outcomeUnknown: 1,
    });
    expect(oldJson.counts.map((c) => c.heldBack)).toEqual([0, 0, 0]);
    expect(oldJson.records.map((r) => r.heldBack)).toEqual([false, false, false]);
    const oldCsv = (await cli(['errors', ...databaseConnection(), '--run', oldRun, '--csv'])).stdout
      .trim()
      .split('\n');
    expect(oldCsv.slice(1).map((r) => r.slice(r.lastIndexOf(',') + 1))).toEqual(['false', 'false', 'false']);
    const oldStatus = lastJsonLine(
      (await cli(['status', ...databaseConnection(), '--limit', '1000', '--json'])).stdout,
    ) as { runs: { runId: string; failed: number; heldBack: number }[] };
    expect(oldStatus.runs.find((r) => r.runId === oldRun)).toMatchObject({
      failed: 2,
      heldBack: 0,
      outcomeUnknown: 1,
    });

    const none = await cli([
      'errors',
      ...databaseConnection(),
      '--run',
      runId,
      '--code',
      'unable_to_lock_row',
    ]);
    expect(none.stdout).toContain(
      'code UNABLE_TO_LOCK_ROW: 0 rejected before sending, 0 failed when sent\nno record to show',
    );

    expect(await cli(['errors', ...databaseConnection(), '--run', 'no-such-run'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        '--run: pipeline lead-scoring has no run no-such-run (roundtrip status lists its runs)',
      ),
    });
    expect(await cli(['errors', ...databaseConnection(), '--task', 'Contact-update'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('has no write-back task Contact-update (it has Lead-update)'),
    });
    expect(await cli(['errors', ...databaseConnection(), '--csv', '--json'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--csv and --json cannot be used together'),
    });
  });

  it('acts as athena.roleArn in Athena and S3, as deployed: the role assumed through STS, every call signed with its credentials', async () => {
    const crossAccount = path.join(dir, 'cross-account.config.json');
    const base = JSON.parse(await readFile(configFile, 'utf8')) as { athena: Record<string, unknown> };
    const roleArn = 'arn:aws:iam::210987654321:role/roundtrip-athena-reader';
    await writeFile(crossAccount, JSON.stringify({ ...base, athena: { ...base.athena, roleArn } }));
    const options = ['--config', crossAccount, '--secrets', secretsFile, '--aws-endpoint', env.aws.endpoint];
    const from = env.athena.calls.length;
    const assumedBefore = env.athena.assumedRoles.length;

    const validate = await cli(['validate', ...options, '--json']);
    const run = await cli(['run', ...options, '--tasks', 'athena_customers']);

    expect(validate.code).toBe(0);
    // (Whether the run then succeeds depends on the other tests' tables: the extract is what reads Athena.)
    expect(run.stderr).toMatch(/^ {2}✓ athena_customers load: 150 rows read, [\d,]+ written/m);
    const assumed = env.athena.assumedRoles.slice(assumedBefore);
    // One role per command (each its own process of credentials), as the CLI names its sessions.
    expect(assumed.map((a) => [a.roleArn, a.sessionName])).toEqual([
      [roleArn, 'roundtrip-cli'],
      [roleArn, 'roundtrip-cli'],
    ]);
    const calls = env.athena.calls.slice(from);
    const byRole = new Set(assumed.map((a) => a.accessKeyId));
    const signedBy = (operation: string) =>
      calls.filter((c) => c.operation === operation).map((c) => byRole.has(c.accessKeyId ?? ''));
    expect(signedBy('AssumeRole')).toEqual([false, false]);
    for (const operation of ['GetWorkGroup', 'StartQueryExecution', 'GetQueryExecution', 'GetObject']) {
      expect(signedBy(operation).length).toBeGreaterThan(0);
      expect(signedBy(operation).every(Boolean)).toBe(true);
    }
  });

  it('names the reason of a failed Athena query, not its whole GetQueryExecution JSON', async () => {
    const misspelt = path.join(dir, 'athena-typo.config.json');
    const base = JSON.parse(await readFile(configFile, 'utf8')) as { extract: Record<string, unknown>[] };
    await writeFile(
      misspelt,
      JSON.stringify({
        ...base,
        extract: base.extract.map((task) =>
          task.from === 'athena' ? { ...task, query: 'SELECT email FROM custmers' } : task,
        ),
      }),
    );
    const options = ['--config', misspelt, '--secrets', secretsFile, '--aws-endpoint', env.aws.endpoint];
    const run = await cli(['run', ...options, '--tasks', 'athena_customers']);
    expect(run.code).toBe(1);
    const reason = /Athena query \S+ FAILED: TABLE_NOT_FOUND: line 1:19: Table '\S*custmers' does not exist/;
    // Step Functions' States.TaskFailed says no more than the query's reason does: left out.
    expect(run.stderr).toMatch(new RegExp(`✗ athena_customers query: ${reason.source}`));
    // The run's error names the task and its query's config path: which of several queries failed.
    const named = `Extract task athena_customers \\(extract\\[1\\]\\.query\\): ${reason.source}`;
    expect(run.stderr).toMatch(new RegExp(`^run \\S+ failed: ${named}$`, 'm'));
    expect(run.stderr).not.toContain('States.TaskFailed');
    expect(run.stderr).not.toContain('"QueryExecution"');

    const status = await cli(['status', ...options.slice(0, 4), '--limit', '1']);
    expect(status.stdout).toMatch(new RegExp(`^\\S+: ${named}$`, 'm'));
    expect(status.stdout).not.toContain('States.TaskFailed');
    expect(status.stdout).not.toContain('"QueryExecution"');

    // A syntax error, which Athena refuses at the query's start: named the same.
    await writeFile(
      misspelt,
      JSON.stringify({
        ...base,
        extract: base.extract.map((task) =>
          task.from === 'athena' ? { ...task, query: 'SELECT FROM customers' } : task,
        ),
      }),
    );
    const malformed = await cli(['run', ...options, '--tasks', 'athena_customers']);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(
      /^run \S+ failed: Athena\.InvalidRequestException: Extract task athena_customers \(extract\[1\]\.query\): SELECT clause without selection list$/m,
    );
  });

  it('records a run stopped with Ctrl-C as failed, not running', async () => {
    // Slow Salesforce down so that the run is still going when the signal comes.
    env.salesforce.faults.set({ latencyMs: 300 });
    const bin = path.resolve(__dirname, '../../../bin/roundtrip.cjs');
    const child = spawn(process.execPath, [bin, 'run', ...connection], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let stderr = '';
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      );
      await new Promise<void>((resolve, reject) => {
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          if (stderr.includes('… Lead extract')) resolve();
        });
        child.once('exit', () => reject(new Error(`the run ended before it was interrupted: ${stderr}`)));
      });
      child.kill('SIGINT');
      expect((await exited).signal).toBe('SIGINT');
      const runId = /run (\S+) recorded as failed \(interrupted\)/.exec(stderr)?.[1];
      expect(runId).toEqual(expect.any(String));
      const pool = new Pool({ connectionString: db.url });
      try {
        const { rows } = await pool.query(
          `SELECT status, error, finished_at IS NOT NULL AS finished FROM roundtrip.runs WHERE run_id = $1`,
          [runId],
        );
        expect(rows).toEqual([
          {
            status: 'failed',
            error: 'Interrupted by SIGINT on this machine before its report',
            finished: true,
          },
        ]);
      } finally {
        await pool.end();
      }
    } finally {
      env.salesforce.faults.clear();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  it('says nothing more of a run stopped with Ctrl-C during its push than that it was recorded as failed', async () => {
    // Three scored leads edited in Salesforce: the run's push sends their scores back.
    const leads = [...env.salesforce.store.all('Lead')]
      .filter((r) => typeof r.LeadScore__c === 'number' && r.IsDeleted !== true)
      .slice(0, 3)
      .map((r) => String(r.Id));
    env.salesforce.store.update(
      'Lead',
      leads.map((Id) => ({ Id, LeadScore__c: 999 })),
    );
    const bin = path.resolve(__dirname, '../../../bin/roundtrip.cjs');
    const child = spawn(process.execPath, [bin, 'run', ...connection], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let stderr = '';
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      );
      await new Promise<void>((resolve, reject) => {
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          // Salesforce's writes held from the plan on (the extract's Bulk query job is created by
          // a POST), so that the push is still sending when the signal comes, however loaded the
          // machine: the command's cleanup closes the connection the push holds.
          if (stderr.includes('… Lead-update plan')) env.salesforce.faults.set({ writeLatencyMs: 60_000 });
          if (stderr.includes('… Lead-update push')) resolve();
        });
        child.once('exit', () => reject(new Error(`the run ended before it was interrupted: ${stderr}`)));
      });
      child.kill('SIGINT');
      expect((await exited).signal).toBe('SIGINT');
      const after = stderr.slice(stderr.indexOf('… Lead-update push'));
      const runId = /run (\S+) recorded as failed \(interrupted\)/.exec(after)?.[1];
      expect(after.split('\n').slice(1)).toEqual([
        '',
        'SIGINT: stopping what this command started …',
        `  run ${runId} recorded as failed (interrupted); the next run goes on from what it sent`,
        '  closed 1 PostgreSQL connection a step still held (waiting on a call that had not answered)',
        '',
      ]);
      expect(stdout).toBe('');
    } finally {
      env.salesforce.faults.clear();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    // The data is fine: the next run sends what is left and succeeds.
    const again = await cli(['run', ...connection, '--json']);
    expect(again.code).toBe(0);
    expect(leads.map((Id) => env.salesforce.store.get(Id)?.LeadScore__c)).not.toContain(999);
  });

  it('exits 2 on bad input, naming what is wrong', async () => {
    expect(await cli(['nope'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('unknown command "nope"'),
    });
    expect(await cli(['demo', '--leads', 'many'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--leads expects a whole number ≥ 1, got "many"'),
    });
    // A number past the safe integers is bad input by its flag, not PostgreSQL's "value … is out of
    // range for type bigint" (exit 1) once the LIMIT reaches it; the runs recorded above are there.
    for (const command of ['status', 'errors']) {
      expect(
        await cli([
          command,
          '--config',
          configFile,
          '--secrets',
          secretsFile,
          '--limit',
          '99999999999999999999',
        ]),
      ).toMatchObject({
        code: 2,
        stderr: expect.stringContaining(
          '--limit expects a whole number from 1 to 9007199254740991, got "99999999999999999999"',
        ),
      });
    }
    // Decimal digits only: Number() reads 0x10 as 16 and 1e3 as 1000.
    for (const limit of ['0x10', '1e3']) {
      expect(
        await cli(['status', '--config', configFile, '--secrets', secretsFile, '--limit', limit]),
      ).toMatchObject({
        code: 2,
        stderr: expect.stringContaining(`--limit expects a whole number ≥ 1, got "${limit}"`),
      });
    }
    expect(await cli(['run', '--config', path.join(dir, 'missing.ts')])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('the file does not exist'),
    });
    expect(
      await cli(['validate', '--config', configFile, '--secrets', path.join(dir, 'nope.json')]),
    ).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        `--secrets names a secrets file that does not exist: ${path.join(dir, 'nope.json')}`,
      ),
    });
    expect(await cli(['run', '--bogus'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("Unknown option '--bogus'"),
    });
    // The config given as a bare argument, as a newcomer types it: not ignored for the default.
    expect(await cli(['validate', configFile])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        `to use "${configFile}" as the pipeline config, pass --config ${configFile}`,
      ),
    });
    // No --config, and no roundtrip.config.ts where the command runs: say so, and how to name one.
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const result = await cli(['status']);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        `roundtrip status: no --config given, and there is no roundtrip.config.ts in ${process.cwd()}: pass --config FILE`,
      );
      expect(result.stderr).not.toContain('Invalid pipeline config');
    } finally {
      process.chdir(cwd);
    }
    expect(await cli(['start', '--state-machine-arn', 'not-an-arn'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--state-machine-arn must be a state machine ARN'),
    });
    const arn = 'arn:aws:states:eu-west-1:123456789012:stateMachine:roundtrip-lead-scoring';
    // A wait past Node's timers (2^31-1 ms) would fire at once: refused before any AWS call.
    expect(await cli(['start', '--state-machine-arn', arn, '--poll-seconds', '2147484'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--poll-seconds expects a whole number from 1 to 3600, got "2147484"'),
    });
    // An input Prepare would refuse is refused before any execution is started (no AWS call).
    expect(await cli(['start', '--state-machine-arn', arn, '--input', '{"ful":true}'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        'roundtrip start: --input {"ful":true}: Unrecognized key: "ful" (the input takes dryRun, full, tasks, onOverlap',
      ),
    });
    expect(await cli(['start', '--state-machine-arn', arn, '--input', '{"dryRun":"yes"}'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--input {"dryRun":"yes"}: dryRun: Invalid input: expected boolean'),
    });
    // A problem of the whole input reads as the message alone: the words before it name the input.
    expect(await cli(['start', '--state-machine-arn', arn, '--input', '[]'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        'roundtrip start: --input []: Invalid input: expected object, received array (the input takes dryRun',
      ),
    });
    // The execution name is the run id: one Prepare would refuse (a '.') is refused before any
    // execution is started, which would fail without ever being recorded in roundtrip.runs.
    for (const name of ['nightly.backfill', 'x'.repeat(81), '']) {
      const refused = await cli(['start', '--state-machine-arn', arn, '--name', name]);
      expect(refused).toMatchObject({
        code: 2,
        stderr: expect.stringContaining(
          `roundtrip start: --name must be 1 to 80 letters, digits, "-" or "_" (it becomes the run id), got ${JSON.stringify(name)}`,
        ),
      });
    }
  });

  it('refuses, as cdk synth does, a config only a deployment rejects: exit 2, by file and path, before any secret', async () => {
    const file = path.join(dir, 'deploy-only.config.json');
    await writeFile(
      file,
      JSON.stringify({
        name: 'deploy-only',
        athena: { database: 'marketing', workgroup: 'analytics' },
        postgres: { secret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:roundtrip/postgres' },
        extract: [{ from: 'athena', query: 'SELECT 1 AS one', table: 'ones' }],
      }),
    );
    // No --secrets: the config's problems come first, not "Secret … not found".
    for (const command of ['plan', 'run', 'validate']) {
      const result = await cli([command, '--config', file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`roundtrip ${command}: Invalid pipeline config ${file} (2 problems):`);
      expect(result.stderr).toContain(
        '  athena.outputLocation: expected the result location of workgroup "analytics"',
      );
      expect(result.stderr).toContain(
        '  postgres.secret: expected the secret\'s name or its complete ARN, which ends in "-" and the six characters',
      );
      expect(result.stderr).not.toContain('not found');
    }
  });

  it('refuses a CA bundle that holds no PEM certificate in validate, plan and run: exit 2, before anything connects', async () => {
    const config = JSON.parse(await readFile(configFile, 'utf8')) as { postgres: Record<string, unknown> };
    const der = path.join(dir, 'rds-ca.der');
    await writeFile(der, new X509Certificate(rootCertificates[0] as string).raw);
    const file = path.join(dir, 'der-bundle.config.json');
    await writeFile(
      file,
      JSON.stringify({
        ...config,
        postgres: { ...config.postgres, ssl: { mode: 'verify-full', caBundle: der } },
      }),
    );
    for (const command of ['validate', 'plan', 'run']) {
      const result = await cli([command, ...connection.slice(2), '--config', file]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        `roundtrip ${command}: Invalid pipeline config ${file} (1 problem):\n  postgres.ssl.caBundle: expected a PEM file of CA certificates ("-----BEGIN CERTIFICATE-----" blocks, such as the RDS global bundle), got ${JSON.stringify(der)} (${der}), which holds binary data, likely a DER certificate, not PEM text (convert it: openssl x509 -inform der -in FILE -out FILE.pem)`,
      );
      expect(result.stdout).toBe('');
    }
  });

  it('says that roundtrip start found no AWS credentials, and where it looks for them', async () => {
    const names = [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_PROFILE',
      'AWS_CONFIG_FILE',
      'AWS_SHARED_CREDENTIALS_FILE',
      'AWS_WEB_IDENTITY_TOKEN_FILE',
      'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
      'AWS_CONTAINER_CREDENTIALS_FULL_URI',
      'AWS_EC2_METADATA_DISABLED',
    ];
    const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
    for (const n of names) delete process.env[n];
    // Nowhere to find any: no files, no instance metadata.
    process.env.AWS_CONFIG_FILE = path.join(dir, 'no-aws-config');
    process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'no-aws-credentials');
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
    try {
      const arn = 'arn:aws:states:eu-west-1:123456789012:stateMachine:roundtrip-lead-scoring';
      const result = await cli(['start', '--state-machine-arn', arn, '--input', '{"dryRun":true}']);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `roundtrip start: no AWS credentials to start ${arn}: roundtrip start calls Step Functions with the credentials of the environment. Set AWS_PROFILE`,
      );
    } finally {
      for (const n of names) {
        if (saved[n] === undefined) delete process.env[n];
        else process.env[n] = saved[n];
      }
    }
  });

  it('installs a bin that passes the exit code through', async () => {
    const bin = path.resolve(__dirname, '../../../bin/roundtrip.cjs');
    const failure = await promisify(execFile)(process.execPath, [bin, 'emulate', 'nothing']).then(
      () => undefined,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(failure?.code).toBe(2);
    expect(failure?.stderr).toContain(
      'emulate: expected "salesforce", "athena" or "postgres", got "nothing"',
    );
  });
});
