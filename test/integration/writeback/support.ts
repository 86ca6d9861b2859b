/**
 * Shared set-up of the write-back integration tests: the Salesforce emulator over real HTTP with
 * jsforce inside the real connector, a fresh database on the run's real PostgreSQL with the state
 * schema migrated, a config, and a run recorded in roundtrip.runs.
 */
import { writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import {
  parseConfig,
  type PipelineConfig,
  type PipelineConfigInput,
  type WritebackTaskInput,
} from '../../../lambdas/config';
import { createPool, migrate, withClient, type PostgresPool } from '../../../lambdas/connectors/postgres';
import { connectSalesforce, type SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import type { CoreDeps } from '../../../lambdas/core/deps';
import { planWriteback, pushWriteback } from '../../../lambdas/core/writeback';
import { INSERT_SETTLE_MS } from '../../../lambdas/core/writeback/reconcile';
import { acceleratedClock } from '../../../lambdas/shared/clock';
import { TransientError } from '../../../lambdas/shared/errors';
import { createMemoryLogger } from '../../../lambdas/shared/logging';
import {
  startSalesforceEmulator,
  type SalesforceEmulator,
  type SalesforceEmulatorOptions,
} from '../../../emulators/salesforce';
import { createTestDatabase, type TestDatabase } from '../../support/database';

/** The fields the tests' extracted copy of Lead holds. */
export const LEAD_EXTRACT_FIELDS = [
  'Id',
  'LastName',
  'Company',
  'Status',
  'LeadScore__c',
  'External_Id__c',
  'IsDeleted',
];

/** Update of Lead.LeadScore__c by Id from a table `lead_scores ("Id", score)`. */
export const SCORE_UPDATE = {
  to: 'salesforce' as const,
  object: 'Lead',
  from: 'lead_scores',
  mode: 'update' as const,
  fields: { LeadScore__c: 'score' },
};

/** Upsert of Lead by `External_Id__c` from a table `lead_src (ext, last_name, company, score)`. */
export const LEAD_SRC_UPSERT = {
  to: 'salesforce' as const,
  object: 'Lead',
  from: 'lead_src',
  mode: 'upsert' as const,
  key: 'External_Id__c',
  keyColumn: 'ext',
  fields: { LastName: 'last_name', Company: 'company', LeadScore__c: 'score' },
};

/** One emulator, one database, one pool and one connector for a test file. */
export interface WritebackEnv {
  sf: SalesforceEmulator;
  db: TestDatabase;
  pool: PostgresPool;
  connector: SalesforceConnector;
  logger: ReturnType<typeof createMemoryLogger>;
  /** The emulator's sign-in as a Salesforce secret (a secrets file's `roundtrip/salesforce` entry). */
  salesforceSecret: { loginUrl: string; username: string; password: string; securityToken: string };
  /** Another connector signed in to the emulator: another Lambda's container, with its own describes. */
  connect(): Promise<SalesforceConnector>;
  /** Deps for a config with these write-back tasks (and extracts). */
  deps(config: Partial<PipelineConfigInput> & { writeback: WritebackTaskInput[] }): CoreDeps;
  /**
   * Writes a config file of the tests' pipeline (`wb-test`, as {@link deps} has it) for the CLI:
   * Salesforce at the emulator's API version and PostgreSQL without TLS, both by their secrets'
   * names (the command's `--secrets` or `--database-url` gives them), with `config`'s parts
   * (write-backs, extracts). Answers the file.
   */
  writeConfigFile(file: string, config: Partial<PipelineConfigInput>): Promise<string>;
  /** Records a new run in roundtrip.runs and answers its id. */
  newRun(): Promise<string>;
  stop(): Promise<void>;
}

let runCounter = 0;

/** Starts the emulator and the database. */
export async function startWritebackEnv(options: SalesforceEmulatorOptions = {}): Promise<WritebackEnv> {
  const sf = await startSalesforceEmulator(options);
  const db = await createTestDatabase('rt_wb');
  // Two connections, as a Lambda's pool has (POOL_DEFAULTS.max): a step that needed a third while
  // holding the task's lock would wait here as it would there.
  const pool = createPool({ url: db.url }, { ssl: { mode: 'disable' }, max: 2 });
  await migrate(pool);
  const logger = createMemoryLogger('info');
  const salesforceSecret = {
    loginUrl: sf.loginUrl,
    username: sf.credentials.username,
    password: sf.credentials.password,
    securityToken: sf.credentials.securityToken,
  };
  const connect = (): Promise<SalesforceConnector> =>
    connectSalesforce({
      secret: salesforceSecret,
      apiVersion: sf.apiVersion,
      logger,
    });
  const connector = await connect();
  return {
    sf,
    db,
    pool,
    connector,
    logger,
    salesforceSecret,
    connect,
    deps(config) {
      const parsed: PipelineConfig = parseConfig({
        name: 'wb-test',
        salesforce: { secret: 'roundtrip/salesforce' },
        postgres: { secret: 'roundtrip/postgres' },
        ...config,
      });
      return { config: parsed, pg: pool, salesforce: connector, logger, clock: acceleratedClock(0) };
    },
    async writeConfigFile(file, config) {
      await writeFile(
        file,
        JSON.stringify({
          name: 'wb-test',
          salesforce: { secret: 'roundtrip/salesforce', apiVersion: sf.apiVersion },
          postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'disable' } },
          ...config,
        }),
      );
      return file;
    },
    async newRun() {
      runCounter += 1;
      const runId = `run-${Date.now()}-${runCounter}`;
      await pool.query(
        `INSERT INTO roundtrip.runs (run_id, pipeline, status) VALUES ($1, 'wb-test', 'running')`,
        [runId],
      );
      return runId;
    },
    async stop() {
      await pool.end();
      await db.drop();
      await sf.stop();
    },
  };
}

/** Replaces table `table` (made with `columns`) by `rows`: a transform's output for a test. */
export async function replaceTable(
  env: WritebackEnv,
  table: string,
  columns: string,
  rows: unknown[][],
): Promise<void> {
  await env.pool.query(`DROP TABLE IF EXISTS ${table}`);
  await env.pool.query(`CREATE TABLE ${table} (${columns})`);
  for (const r of rows) {
    await env.pool.query(`INSERT INTO ${table} VALUES (${r.map((_, i) => `$${i + 1}`).join(', ')})`, r);
  }
}

/** The fields of an extracted copy of Lead, and its columns as the extract types them. */
export interface LeadCopy {
  readonly fields: readonly string[];
  /** The column list of `CREATE TABLE sf_lead (…)`, in the order of `fields`. */
  readonly columns: string;
}

/** The copy most tests compare with: {@link LEAD_EXTRACT_FIELDS}. */
export const LEAD_COPY: LeadCopy = {
  fields: LEAD_EXTRACT_FIELDS,
  columns: `"Id" varchar(18) PRIMARY KEY, "LastName" text, "Company" text, "Status" text,
      "LeadScore__c" numeric, "External_Id__c" text, "IsDeleted" boolean`,
};

/**
 * A fresh extracted copy of Lead in `sf_lead` (columns named like the fields), read with the
 * connector's REST query and COPY, its load time in `extract_state`: what the Salesforce extract
 * leaves for the plan to compare with.
 */
export async function extractLeads(env: WritebackEnv, copy: LeadCopy = LEAD_COPY): Promise<void> {
  await withClient(env.pool, async (client) => {
    await client.query('DROP TABLE IF EXISTS sf_lead');
    await client.query(`CREATE TABLE sf_lead (${copy.columns})`);
    const csv = env.connector.queryRestCsv(`SELECT ${copy.fields.join(', ')} FROM Lead`, copy.fields, {
      includeDeleted: true,
    });
    await pipeline(csv, client.query(copyFrom('COPY sf_lead FROM STDIN (FORMAT csv, HEADER true)')));
    // When the copy was loaded, as the extract records it (task `Lead`, the object's default name).
    await client.query(
      `INSERT INTO roundtrip.extract_state (task, updated_at) VALUES ('Lead', now())
       ON CONFLICT (task) DO UPDATE SET updated_at = now()`,
    );
  });
}

/** `n` leads with External_Id__c `ext-0001`… and no score. */
export function leadSeed(n: number, offset = 0): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({
    LastName: `Lead ${i + offset}`,
    Company: `Company ${(i + offset) % 7}`,
    External_Id__c: `ext-${String(i + offset).padStart(4, '0')}`,
  }));
}

/** The scores Salesforce holds, by Id. */
export function scoresInSalesforce(env: WritebackEnv): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const r of env.sf.store.all('Lead')) out.set(r.Id as string, r.LeadScore__c);
  return out;
}

/** How many of a run's records stand in each status of roundtrip.writeback_plans (its ledger), by status. */
export async function ledgerByStatus(
  env: WritebackEnv,
  runId: string,
): Promise<{ status: string; n: number }[]> {
  const { rows } = await env.pool.query<{ status: string; n: number }>(
    `SELECT status, count(*)::int AS n FROM roundtrip.writeback_plans WHERE run_id = $1 GROUP BY status ORDER BY status`,
    [runId],
  );
  return rows;
}

/** A run's stored figures of one write-back task (`runs.summary.writeback[task]`). */
export async function runFigures(
  env: WritebackEnv,
  runId: string,
  task: string,
): Promise<Record<string, unknown>> {
  const { rows } = await env.pool.query<{ s: Record<string, unknown> }>(
    `SELECT summary->'writeback'->$2 AS s FROM roundtrip.runs WHERE run_id = $1`,
    [runId, task],
  );
  return rows[0]?.s as Record<string, unknown>;
}

/** Rows of writeback_errors of a run, by key. */
export async function errorsOf(
  env: WritebackEnv,
  runId: string,
): Promise<{ key: string | null; stage: string; code: string; message: string; fields: string[] }[]> {
  const { rows } = await env.pool.query(
    `SELECT key, stage, code, message, fields FROM roundtrip.writeback_errors WHERE run_id = $1 ORDER BY key`,
    [runId],
  );
  return rows;
}

/**
 * A connector whose calls reach Salesforce and then "crash" before the answer is recorded, for
 * the calls `crashesAfter` picks: what a Lambda timeout or a dropped connection does to a step.
 */
export function crashingConnector(
  connector: SalesforceConnector,
  crashesAfter: (operation: string, method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE') => boolean,
): SalesforceConnector {
  return Object.create(connector, {
    request: {
      value: async (
        operation: string,
        method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
        path: string,
        body?: unknown,
      ) => {
        const answer = await connector.request(operation, method, path, body);
        if (crashesAfter(operation, method))
          throw new TransientError(`simulated crash after ${operation} reached Salesforce`);
        return answer;
      },
    },
  }) as SalesforceConnector;
}

/**
 * A connector through which Salesforce writes every record of a Composite call but answers its
 * second subrequest with a 500 (UNKNOWN_EXCEPTION): records whose outcome the answer does not tell.
 */
export function secondSubrequestFails(connector: SalesforceConnector): SalesforceConnector {
  return Object.create(connector, {
    request: {
      value: async (operation: string, method: 'POST', path: string, body?: unknown) => {
        const answer = (await connector.request(operation, method, path, body)) as {
          compositeResponse?: { httpStatusCode: number; body: unknown }[];
        };
        const second = answer.compositeResponse?.[1];
        if (second) {
          second.httpStatusCode = 500;
          second.body = [{ errorCode: 'UNKNOWN_EXCEPTION', message: 'An unexpected error occurred' }];
        }
        return answer;
      },
    },
  }) as SalesforceConnector;
}

/**
 * A connector through which a Composite call's subrequest responses come back in reverse order,
 * each with its own referenceId: Salesforce's answer names each subrequest, and its order is not
 * to be relied on.
 */
export function compositeAnswerReversed(connector: SalesforceConnector): SalesforceConnector {
  return Object.create(connector, {
    request: {
      value: async (operation: string, method: 'POST', path: string, body?: unknown) => {
        const answer = (await connector.request(operation, method, path, body)) as {
          compositeResponse?: unknown[];
        };
        if (path === '/composite' && Array.isArray(answer.compositeResponse))
          answer.compositeResponse.reverse();
        return answer;
      },
    },
  }) as SalesforceConnector;
}

/**
 * A connector whose next write (a call that is not a GET) goes out through `change`, which may act
 * first and answers the body to send; every other call as it is.
 */
function onNextWrite(
  connector: SalesforceConnector,
  change: (body: unknown) => unknown,
): SalesforceConnector {
  let changed = false;
  return Object.create(connector, {
    request: {
      value: async (
        operation: string,
        method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
        path: string,
        body?: unknown,
      ) => {
        if (method === 'GET' || changed) return connector.request(operation, method, path, body);
        changed = true;
        return connector.request(operation, method, path, change(body));
      },
    },
  }) as SalesforceConnector;
}

/**
 * A connector through which Salesforce refuses the next write as a whole: `refuse` (an emulator
 * fault, a describe changed by an admin) runs right before the write is sent, once.
 */
export function refusingNextWrite(connector: SalesforceConnector, refuse: () => void): SalesforceConnector {
  return onNextWrite(connector, (body) => {
    refuse();
    return body;
  });
}

/**
 * A connector whose next write reaches Salesforce with its JSON body cut short by its last
 * character: Salesforce refuses the whole call with its own error list, 400 `JSON_PARSER_ERROR`.
 */
export function nextWriteBodyCut(connector: SalesforceConnector): SalesforceConnector {
  return onNextWrite(connector, (body) => (typeof body === 'string' ? body.slice(0, -1) : body));
}

/**
 * A connector through which every Composite subrequest carrying one of `keys` (External_Id__c)
 * fails, every time: by default on Salesforce's side, a 500 UNKNOWN_EXCEPTION, none of its records
 * written (as an org's broken trigger does), or with the `refusal` given; the other subrequests
 * reach Salesforce as usual.
 */
export function subrequestsWithKeysFail(
  connector: SalesforceConnector,
  keys: readonly string[],
  refusal: { status: number; errorCode: string; message: string } = {
    status: 500,
    errorCode: 'UNKNOWN_EXCEPTION',
    message: 'An unexpected error occurred',
  },
): SalesforceConnector {
  return Object.create(connector, {
    request: {
      value: async (operation: string, method: 'POST', path: string, body?: unknown) => {
        if (path !== '/composite' || typeof body !== 'string') {
          return connector.request(operation, method, path, body);
        }
        const composite = JSON.parse(body) as {
          compositeRequest: { referenceId: string; body: { records: Record<string, unknown>[] } }[];
        };
        const fails = composite.compositeRequest.map((sub) =>
          sub.body.records.some((r) => keys.includes(String(r.External_Id__c))),
        );
        const sent = composite.compositeRequest.filter((_, i) => !fails[i]);
        const answered =
          sent.length === 0
            ? []
            : (
                (await connector.request(
                  operation,
                  method,
                  path,
                  JSON.stringify({ ...composite, compositeRequest: sent }),
                )) as { compositeResponse: unknown[] }
              ).compositeResponse;
        let next = 0;
        return {
          compositeResponse: fails.map((failed, i) =>
            failed
              ? {
                  httpStatusCode: refusal.status,
                  // The subrequest's own (a connector wrapped in another sees only some of them).
                  referenceId: composite.compositeRequest[i]?.referenceId,
                  body: [{ errorCode: refusal.errorCode, message: refusal.message }],
                }
              : answered[next++],
          ),
        };
      },
    },
  }) as SalesforceConnector;
}

/**
 * A connector whose client gives up on every write (a timeout) before Salesforce answers;
 * `late()` delivers the last of them, as Salesforce finishing it after the client left.
 */
export function givingUpOnWrites(connector: SalesforceConnector): {
  connector: SalesforceConnector;
  late: () => Promise<unknown>;
} {
  let late: () => Promise<unknown> = async () => undefined;
  const giving = Object.create(connector, {
    request: {
      value: async (operation: string, method: 'GET' | 'POST', path: string, body?: unknown) => {
        if (method === 'GET') return connector.request(operation, method, path, body);
        late = () => connector.request(operation, method, path, body);
        throw new TransientError(
          `${operation}: the request timed out; whether Salesforce applied it is unknown`,
        );
      },
    },
  }) as SalesforceConnector;
  return { connector: giving, late: () => late() };
}

/**
 * `deps` whose step fails (transiently) when it would wait before its row-lock retry round: the
 * records Salesforce refused with UNABLE_TO_LOCK_ROW stay in the ledger waiting to be sent again.
 */
export function failingBeforeRowLockRetry(deps: CoreDeps): CoreDeps {
  return {
    ...deps,
    clock: {
      now: () => new Date(),
      sleep: async () => {
        throw new TransientError('simulated failure before the row-lock retry round');
      },
    },
  };
}

/** As if the run's `sent` records had been sent longer ago than any call of theirs can run. */
export async function outlastCallTimeLimit(env: WritebackEnv, runId: string): Promise<void> {
  await env.pool.query(
    `UPDATE roundtrip.writeback_plans SET updated_at = updated_at - $2 * interval '1 millisecond' WHERE run_id = $1`,
    [runId, INSERT_SETTLE_MS],
  );
}

/**
 * Plans the task, then pushes it through a connector that crashes after each write reached
 * Salesforce: the records are written there, their results lost (the push rejects).
 */
export async function planThenCrashInPush(
  env: WritebackEnv,
  deps: CoreDeps,
  runId: string,
  task: string,
): Promise<void> {
  await planWriteback(deps, { runId, task });
  await expect(
    pushWriteback(
      { ...deps, salesforce: crashingConnector(env.connector, (_operation, method) => method !== 'GET') },
      { runId, task },
    ),
  ).rejects.toThrow(/simulated crash/);
}
