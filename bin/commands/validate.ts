/**
 * `roundtrip validate`: is this pipeline ready to run? The config (loaded and validated: a bad one
 * exits 2), each secret, PostgreSQL, that no other pipeline holds one of its task names in the
 * database (`roundtrip.task_owners`, read, not claimed), the Salesforce sign-in and the org's API
 * allowance, every extract's fields and every write-back's mapping against the object's describe
 * (and that the records it synced were keyed by the same object and key, `roundtrip.sync_scope`),
 * each Salesforce extract's `where` condition (the COUNT() of a full read), Athena's endpoint,
 * credentials and queries, and last, as in a run, the transform and each write-back's source: the
 * transform's files run in a transaction that is rolled back, and inside it each write-back's
 * `from` is checked against its `fields` and `keyColumn` by the plan's own check (`--no-transform`:
 * the sources as they are). Nothing is kept in PostgreSQL or written to Salesforce (Athena writes
 * each EXPLAIN's one-line result file, and each LIMIT 0 query's header line, to the output
 * location); the Salesforce checks cost one `/limits` call, one describe per object and one COUNT()
 * per `where`.
 *
 * Athena is probed with a GetWorkGroup of the configured workgroup (nothing is run or paid for): its
 * answer proves the endpoint and the credentials, and says whether the workgroup exists, is ENABLED
 * and where its results go. A workgroup that does not exist or is DISABLED is named by
 * `athena.workgroup`; one that `athena.createWorkgroup` makes at deploy may not exist yet, which is
 * said, and its queries are then not checked. Then each Athena extract's query is checked with
 * `EXPLAIN (TYPE VALIDATE)`: parsed, and its tables, columns and functions resolved, without
 * scanning data (Athena charges nothing for an EXPLAIN). The check names the config path of a query
 * that is not valid. Then the query's result columns are read as the load reads them, without a
 * row (`SELECT * FROM (<query>) LIMIT 0`, which Trino answers without a scan; Athena's minimum
 * charge of a query, 10 MB of scan, may apply), and checked by the load's own check
 * (`athenaResultRefusal`): names a table cannot have as they are (one repeated, one past 63 bytes),
 * and a `key` column the result does not have, case and all. Each is named by the task's config
 * path in the load's words, before a run that would find it only after its query ran.
 */
import { proxyDescription } from '../../lambdas/shared/proxy';
import { GetWorkGroupCommand, type AthenaClient } from '@aws-sdk/client-athena';
import type { PoolClient } from 'pg';
import { configWarnings, taskName, type AthenaExtractTask, type PipelineConfig } from '../../lambdas/config';
import { AthenaQueryFailed, type AthenaConnector } from '../../lambdas/connectors/athena';
import {
  checkConnection,
  quoteQualified,
  resolveConnection,
  withClient,
  type PostgresSource,
} from '../../lambdas/connectors/postgres';
import { splitTableName, type CoreDeps } from '../../lambdas/core/deps';
import {
  extractTableClaims,
  extractTableConflictMessage,
  extractTableProblems,
  tableColumns,
  taskNameConflictMessage,
  taskNamesOwnedElsewhere,
} from '../../lambdas/core/run-state';
import {
  DELETED_FIELD,
  deletesFor,
  describeTaskObject,
  extractConfigPath,
  extractReadError,
  readFilter,
  resolveFields,
} from '../../lambdas/core/salesforce-read';
import { athenaResultRefusal } from '../../lambdas/core/extract-athena';
import { TransformError, tryTransform } from '../../lambdas/core/transform';
import { thrownFailureText } from '../../lambdas/shared/errors';
import { s3FolderUrl } from '../../lambdas/shared/s3-location';
import { mapWritebackTask } from '../../lambdas/core/writeback';
import {
  extractOfObject,
  keyNotExtracted,
  keyNotExtractedNote,
  mappedFieldsNotExtracted,
  sourceColumnsFor,
} from '../../lambdas/core/writeback/plan';
import { BULK_BATCH_RECORDS, DAILY_BULK_API_BATCHES_LIMIT } from '../../lambdas/core/writeback/api-budget';
import { checkRenamedTask, checkSyncScopeIn, syncScopeOf } from '../../lambdas/core/writeback/scope';
import { writebackConfigPath } from '../../lambdas/core/writeback/state';
import { databaseOptionsGiven, EXIT, parseOptions, type Command } from '../cli-common';
import { buildLocalDeps, buildLocalServices, type LocalServices } from '../local/deps';
import { notExtractedNote } from '../local/summary';
import { awsEndpointFrom, CONNECTION_OPTIONS, configFrom, loggerFrom, secretsFrom } from './run';

/** One check's outcome. */
export interface CheckResult {
  readonly check: string;
  readonly ok: boolean;
  /**
   * Set when the check could not be made (the tables a transform reads not extracted yet,
   * `--no-transform`): not a failure, but not a pass either; the detail says why and what to do.
   */
  readonly skipped?: true;
  readonly detail: string;
}

/** Polls of an EXPLAIN, which Athena answers in a second or two: 0.25 s, 0.5 s, 1 s, then every 2 s. */
function validatePollDelayMs(attempt: number): number {
  return Math.min(250 * 2 ** attempt, 2000);
}

function message(err: unknown): string {
  // A fault in the code keeps its built-in name (TypeError: …), as the CLI's failure line does.
  return thrownFailureText(err);
}

/**
 * An Athena extract's result checked as the load checks it once the query ran
 * ({@link athenaResultRefusal}: names a table cannot have as they are, a name repeated or past 63
 * bytes; too many columns; a `key` column the result does not have, case and all), with the
 * columns read without the rows ({@link AthenaConnector.resultColumns}: the query under `LIMIT 0`,
 * nothing scanned). Throws the load's words (its refusal comes after the query ran), naming the
 * task's config path; `; …` for the check's line otherwise (a check that could not be made is
 * said, not failed: the query itself was found valid).
 */
async function checkAthenaResult(
  athena: AthenaConnector,
  config: PipelineConfig,
  task: AthenaExtractTask,
  index: number,
): Promise<string> {
  const keyText = (task.key ?? []).map((k) => `"${k}"`).join(', ');
  let names: string[];
  try {
    const columns = await athena.resultColumns(task.query, { pollDelays: validatePollDelayMs });
    names = columns.map((c) => c.Name ?? '');
  } catch (err) {
    return `; its result's columns not checked${keyText ? `, nor its key ${keyText}` : ''} (${message(err)})`;
  }
  const { schema, table } = splitTableName(task.table, config.postgres.schema);
  const refusal = athenaResultRefusal(task, `extract[${index}]`, names, `${schema}.${table}`);
  if (refusal !== undefined) throw new Error(refusal);
  return `; ${names.length} result column${names.length === 1 ? '' : 's'} a table takes as named (read with LIMIT 0: no row read)${keyText ? `; key ${keyText} in its result` : ''}`;
}

/**
 * The Athena check: a GetWorkGroup of the configured workgroup, which needs `athena:GetWorkGroup`
 * and runs nothing. Its answer proves the endpoint and the credentials (any other error, a refused
 * connection or AccessDenied, fails the check as it comes) and says whether the queries can run
 * there: the workgroup exists and is ENABLED, and the results have a location (the request's
 * `athena.outputLocation` or the workgroup's) that is the one the stack grants (a workgroup that
 * enforces its own location writes there, whatever the request says). `queries` says whether each
 * Athena extract's query is checked next: not when the check failed, and not, said as such, when
 * the workgroup does not exist yet because `athena.createWorkgroup` makes it at deploy.
 */
async function checkAthenaWorkgroup(
  client: AthenaClient,
  athena: NonNullable<PipelineConfig['athena']>,
): Promise<{ result: CheckResult; queries: 'checked' | 'not checked' | 'failed' }> {
  const check = 'Athena';
  const name = athena.workgroup;
  let answer;
  try {
    answer = await client.send(new GetWorkGroupCommand({ WorkGroup: name }));
  } catch (err) {
    // Athena answers an unknown workgroup with InvalidRequestException "WorkGroup <name> is not found."
    if (err instanceof Error && err.name === 'InvalidRequestException' && /not found/i.test(err.message)) {
      if (athena.createWorkgroup === true) {
        return {
          result: {
            check,
            ok: true,
            skipped: true,
            detail: `workgroup "${name}" does not exist yet: cdk deploy creates it (athena.createWorkgroup), with its results bucket`,
          },
          queries: 'not checked',
        };
      }
      return {
        result: {
          check,
          ok: false,
          detail: `workgroup "${name}" does not exist (athena.workgroup): name an existing workgroup of this account and Region (aws athena list-work-groups), or set athena.createWorkgroup to true to have cdk deploy create it (${err.message})`,
        },
        queries: 'failed',
      };
    }
    return { result: { check, ok: false, detail: message(err) }, queries: 'failed' };
  }
  const workgroup = answer.WorkGroup;
  const fail = (detail: string) => ({ result: { check, ok: false, detail }, queries: 'failed' as const });
  if (workgroup?.State === 'DISABLED') {
    return fail(
      `workgroup "${name}" is DISABLED (athena.workgroup): Athena runs no query in it; enable it (aws athena update-work-group --work-group ${name} --state ENABLED) or name another`,
    );
  }
  const own = workgroup?.Configuration?.ResultConfiguration?.OutputLocation;
  const enforced = workgroup?.Configuration?.EnforceWorkGroupConfiguration === true;
  const requested = athena.outputLocation;
  if (enforced && own && requested && s3FolderUrl(own) !== s3FolderUrl(requested)) {
    return fail(
      `workgroup "${name}" enforces its result location ${own}, so the queries write there and not to athena.outputLocation ${requested}, the location the stack grants: set athena.outputLocation to ${own}`,
    );
  }
  const location = enforced && own ? own : (requested ?? own);
  if (!location) {
    return fail(
      `workgroup "${name}" has no result location, and athena.outputLocation is not set: Athena refuses every query (INVALID_INPUT); set athena.outputLocation`,
    );
  }
  return {
    result: {
      check,
      ok: true,
      detail: `reachable (workgroup ${name}, ${workgroup?.State ?? 'ENABLED'}, results in ${location}; database ${athena.database})`,
    },
    queries: 'checked',
  };
}

/**
 * How a write-back task finds its records, for the validate line: by its key field, or, for an
 * insert without one, by the source column it keeps keys from (in roundtrip.sync_state only).
 */
export function writebackKeyText(task: { mode: string; key?: string; keyColumn: string }): string {
  if (task.key !== undefined) return `by ${task.key}`;
  return `keyed by column ${task.keyColumn} (no external-ID field: inserted keys are remembered by roundtrip, not looked up in Salesforce)`;
}

/** `roundtrip validate`: see the module comment. Exit 0 when every check passes, 1 otherwise. */
export const validate: Command = async (argv) => {
  const { values } = parseOptions(argv, {
    ...CONNECTION_OPTIONS,
    json: { type: 'boolean' },
    'no-transform': { type: 'boolean' },
  });
  const config = await configFrom(values, { deployment: true });
  // What the config allows but is probably wrong (two write-backs writing one field): said, not failed.
  const mind = configWarnings(config).map((w) => `; mind: ${w.message}`);
  const results: CheckResult[] = [
    {
      check: 'config',
      ok: true,
      detail: `pipeline ${config.name}: ${config.extract.length} extract, ${config.transform.length} transform, ${config.writeback.length} write-back task(s)${mind.join('')}`,
    },
  ];
  // Behind a proxy, which way the checks' calls (and a run's) go: said, not checked apart (a
  // proxy that refuses fails the Salesforce and Athena checks with an error naming it).
  const proxy = proxyDescription();
  if (proxy !== undefined) results.push({ check: 'proxy', ok: true, detail: proxy });
  const record = async (check: string, run: () => Promise<string>): Promise<boolean> => {
    try {
      results.push({ check, ok: true, detail: await run() });
      return true;
    } catch (err) {
      results.push({ check, ok: false, detail: message(err) });
      return false;
    }
  };
  const secrets = secretsFrom(values);
  const secretNames = [config.postgres.secret, ...(config.salesforce ? [config.salesforce.secret] : [])];
  const failedSecrets = new Set<string>();
  for (const name of secretNames) {
    const found = await record(`secret ${name}`, async () => {
      const secret = await secrets.getSecret(name);
      // The database's secret must have one of its shapes: checked here, on its own line,
      // rather than failing the whole command when the pool is built.
      if (name === config.postgres.secret) resolveConnection(secret as PostgresSource);
      return 'found';
    });
    if (!found) failedSecrets.add(name);
  }
  // Without the database's secret, what needs PostgreSQL is said not checked; without
  // Salesforce's, the sign-in and describes are: the rest is checked all the same, so that one run
  // of validate names every problem.
  const aws = awsEndpointFrom(values);
  // The commands that messages name (roundtrip forget, rename-task, resolve) carry the --config and
  // --secrets given, to be pasted as they are.
  const commandOptions = databaseOptionsGiven(values).options;
  const localOptions = {
    config,
    secrets,
    logger: loggerFrom(values),
    ...(aws ? { aws } : {}),
    commandOptions,
  };
  const postgresSecretOk = !failedSecrets.has(config.postgres.secret);
  const local = postgresSecretOk ? await buildLocalDeps(localOptions) : undefined;
  // Salesforce and Athena as the run's deps have them, or built alone without the database's secret.
  const standalone = local ? undefined : await buildLocalServices(localOptions);
  const services: Omit<LocalServices, 'close'> = local
    ? { salesforce: local.salesforce, athena: local.deps.athena, athenaClient: local.athenaClient }
    : (standalone as LocalServices);
  const pool = local?.pool;
  try {
    let postgresOk = false;
    if (pool) {
      postgresOk = await record('PostgreSQL', async () => {
        const c = await checkConnection(pool);
        return `PostgreSQL ${c.serverVersion}${c.ssl ? ', TLS' : ', no TLS'} at ${pool.target}`;
      });
    } else {
      results.push({
        check: 'PostgreSQL',
        ok: true,
        skipped: true,
        detail: `not checked, nor the task names, the write-backs' synced keys and the transform: the secret ${config.postgres.secret} (above) is needed first`,
      });
    }
    if (pool && postgresOk) {
      // What Prepare would refuse (lambdas/core/prepare.ts), without claiming the names.
      await record('task names', async () => {
        const names = [...config.extract, ...config.writeback].map((t) => t.name);
        const owners = await withClient(pool, (client) =>
          taskNamesOwnedElsewhere(client, config.name, names),
        );
        if (owners.length > 0) throw new Error(taskNameConflictMessage(config.name, owners));
        return `${names.join(', ') || 'none'}: no other pipeline uses them in this database`;
      });
      // And its extract tables (Prepare claims them): none another pipeline loads, none holding
      // rows that no run of this pipeline loaded.
      if (config.extract.length > 0) {
        await record('extract tables', async () => {
          const claims = extractTableClaims(config);
          const problems = await withClient(pool, (client) =>
            extractTableProblems(client, config.name, claims),
          );
          if (problems.length > 0) throw new Error(extractTableConflictMessage(config.name, problems));
          return `${claims.map((c) => `${c.schema}.${c.table}`).join(', ')}: this pipeline's to load`;
        });
      }
    }
    if (config.salesforce && failedSecrets.has(config.salesforce.secret)) {
      results.push({
        check: 'Salesforce sign-in',
        ok: true,
        skipped: true,
        detail: `not checked, nor the extracts' fields and the write-backs' mappings: the secret ${config.salesforce.secret} (above) is needed first`,
      });
    } else if (services.salesforce) {
      const signIn = services.salesforce;
      const signedIn = await record('Salesforce sign-in', async () => {
        const sf = await signIn();
        const limits = await sf.limits();
        const daily = limits.DailyApiRequests;
        // What the run's budget is checked against (Prepare, and each write-back's plan).
        const batches = limits[DAILY_BULK_API_BATCHES_LIMIT];
        const left = [
          ...(daily
            ? [
                `API allowance today: ${daily.Remaining.toLocaleString('en-US')} of ${daily.Max.toLocaleString('en-US')} calls left`,
              ]
            : []),
          ...(batches
            ? [
                `Bulk API batches: ${batches.Remaining.toLocaleString('en-US')} of ${batches.Max.toLocaleString('en-US')} left (a Bulk write-back takes one per ${BULK_BATCH_RECORDS.toLocaleString('en-US')} records)`,
              ]
            : []),
        ];
        return left.length > 0 ? left.join('; ') : 'signed in';
      });
      if (signedIn) {
        const sf = await signIn();
        for (const task of config.extract) {
          if (task.from !== 'salesforce') continue;
          await record(`extract ${task.name}`, async () => {
            const describe = await describeTaskObject(
              sf,
              task.object,
              `${extractConfigPath(config, task)}.object`,
            );
            const { fields, added, deletedField } = resolveFields(
              task,
              describe.fields,
              extractConfigPath(config, task),
            );
            // A `deletes` its object cannot have (User has no IsDeleted: 'flag') is refused.
            const deletes = deletesFor(task, deletedField, extractConfigPath(config, task));
            // The condition, as a full read's COUNT() would send it (one API call): parsed, its
            // fields resolved.
            let matching = '';
            if (task.where !== undefined && task.where.trim() !== '') {
              const filter = readFilter(task, { full: true, watermark: undefined, deletedField });
              const rows = await sf
                .count(filter.countSoql, { includeDeleted: filter.includeDeleted })
                .catch((err: unknown) => {
                  throw extractReadError(err, task, extractConfigPath(config, task));
                });
              matching = `; where accepted, ${rows.toLocaleString('en-US')} records match`;
            }
            // Without IsDeleted, what the default `deletes` does there is said.
            const noDeletedField = deletedField
              ? ''
              : `; no ${DELETED_FIELD} field: read through query, rows Salesforce no longer returns removed by a full read (deletes '${deletes.mode}')`;
            return `${task.object}: ${fields.length} fields readable${added.length ? ` (${added.join(', ')} added)` : ''}${noDeletedField}${matching}`;
          });
        }
        for (const task of config.writeback) {
          await record(`write-back ${taskName(task)}`, async () => {
            const configPath = writebackConfigPath(config, task);
            const describe = await describeTaskObject(sf, task.object, `${configPath}.object`);
            const mapping = mapWritebackTask(task, describe, { configPath });
            // What the plan would refuse: synced records keyed by another object or key, or an
            // insert renamed away from the records it inserted (an update's or upsert's: said).
            let renamed: string | undefined;
            if (pool && postgresOk) {
              await checkSyncScopeIn(
                pool,
                taskName(task),
                syncScopeOf(mapping),
                configPath,
                { ...splitTableName(task.from, config.postgres.schema), fields: task.fields },
                commandOptions,
              );
              renamed = await checkRenamedTask(pool, config, task, configPath, commandOptions);
            }
            // Fields the extract of the object does not read: compared with what was last sent, as
            // each plan's run summary says too.
            const notExtracted = mappedFieldsNotExtracted(config, mapping);
            const extract = extractOfObject(config, mapping);
            // A key it does not read: the whole task compared with what was last sent.
            const unread = keyNotExtracted(config, mapping);
            const note =
              notExtracted.length > 0 && extract
                ? `; ${notExtractedNote(taskName(task), { fields: notExtracted, extract: extractConfigPath(config, extract) })}`
                : unread
                  ? `; ${keyNotExtractedNote(taskName(task), { field: unread.field, extract: extractConfigPath(config, unread.extract), mode: task.mode })}`
                  : '';
            // An upsert need not map what a new record needs (a row that updates needs none), but
            // each row it would create without it is refused: said, as the plan cannot always tell.
            const required = mapping.unmappedRequired;
            const creates =
              required.length > 0
                ? `; mind: an upsert creates a record for a key ${mapping.object} has none of, and a new ${mapping.object} needs ${required.join(', ')} (required: not nillable, no default), which ${configPath}.fields does not map: each such row is refused (REQUIRED_FIELD_MISSING, by the plan when the extracted copy shows the key has no record, else by Salesforce). Map ${required.length === 1 ? 'it' : 'them'} if the source can hold keys new to Salesforce`
                : '';
            return `${task.object} ${task.mode} ${writebackKeyText(task)}: ${mapping.fields.map((f) => f.field.name).join(', ')} writable${note}${creates}${renamed ? `; mind: ${renamed}` : ''}`;
          });
        }
      }
    }
    const athenaClient = services.athenaClient;
    const athena = services.athena;
    if (athenaClient && athena && config.athena) {
      const workgroup = await checkAthenaWorkgroup(athenaClient, config.athena);
      results.push(workgroup.result);
      for (const [index, task] of config.extract.entries()) {
        if (task.from !== 'athena') continue;
        if (workgroup.queries === 'not checked') {
          results.push({
            check: `extract ${task.name}`,
            ok: true,
            skipped: true,
            detail: `not checked: the query (extract[${index}].query) runs in workgroup "${config.athena.workgroup}", which cdk deploy creates (athena.createWorkgroup); validate again once it is deployed`,
          });
          continue;
        }
        if (workgroup.queries === 'checked') {
          await record(`extract ${task.name}`, async () => {
            try {
              await athena.validateQuery(task.query, { pollDelays: validatePollDelayMs });
            } catch (err) {
              throw new Error(
                err instanceof AthenaQueryFailed
                  ? `the query (extract[${index}].query) is not valid: ${err.message}`
                  : `the query (extract[${index}].query) could not be checked: ${message(err)}`,
              );
            }
            const resultNote = await checkAthenaResult(athena, config, task, index);
            return `query valid in ${config.athena?.database} (EXPLAIN (TYPE VALIDATE): nothing scanned, not charged)${resultNote}`;
          });
        }
      }
    }
    // Last, as in a run: the transform over what the extracts left, then the write-backs' sources.
    if (local && postgresOk) {
      try {
        results.push(
          ...(await checkWritebackSources(local.deps, { transform: values['no-transform'] !== true })),
        );
      } catch (err) {
        // The database went away between two checks, say: named on its own line like the others.
        results.push({ check: 'transform', ok: false, detail: message(err) });
      }
    }
  } finally {
    standalone?.close();
    await local?.close();
  }
  const ok = results.every((r) => r.ok);
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify({ ok, checks: results })}\n`);
  } else {
    for (const r of results)
      process.stdout.write(`${r.skipped ? '–' : r.ok ? '✓' : '✗'} ${r.check}: ${r.detail}\n`);
  }
  return ok ? EXIT.ok : EXIT.failed;
};

/** An extract's table that does not exist in the database: no extract has run into it yet. */
interface UnextractedTable {
  readonly configPath: string;
  readonly schema: string;
  readonly table: string;
}

async function unextractedTables(client: PoolClient, config: PipelineConfig): Promise<UnextractedTable[]> {
  const tables = config.extract.map((task, index) => ({
    configPath: `extract[${index}].table`,
    ...splitTableName(task.table, config.postgres.schema),
  }));
  if (tables.length === 0) return [];
  const { rows } = await client.query<{ present: boolean }>(
    'SELECT to_regclass(name) IS NOT NULL AS present FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n) ORDER BY n',
    [tables.map((t) => quoteQualified(t.schema, t.table))],
  );
  return tables.filter((_t, i) => rows[i]?.present !== true);
}

/**
 * A Salesforce extract's field that its table has no column for yet: added to the config since the
 * table was last extracted (the next extract adds the column).
 */
interface UnextractedField {
  readonly configPath: string;
  readonly table: string;
  readonly field: string;
}

async function unextractedFields(client: PoolClient, config: PipelineConfig): Promise<UnextractedField[]> {
  const out: UnextractedField[] = [];
  for (const [index, task] of config.extract.entries()) {
    if (task.from !== 'salesforce') continue;
    const { schema, table } = splitTableName(task.table, config.postgres.schema);
    const columns = await tableColumns(client, schema, table);
    // A table that does not exist is an unextracted table, not a field.
    if (!columns || columns.size === 0) continue;
    // The extract names each column as the describe spells its field, which the config may not.
    const has = new Set([...columns].map((c) => c.toLowerCase()));
    task.fields.forEach((field, i) => {
      if (!has.has(field.toLowerCase()))
        out.push({ configPath: `extract[${index}].fields[${i}]`, table, field });
    });
  }
  return out;
}

/** The PostgreSQL error a transform statement failed with, when it failed with one. */
function transformSqlState(err: unknown): string | undefined {
  if (!(err instanceof TransformError)) return undefined;
  const code = (err.cause as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** SQLSTATE undefined_table: `relation "sf_lead" does not exist`. */
const UNDEFINED_TABLE = '42P01';
/** SQLSTATE undefined_column: `column "Title" does not exist`. */
const UNDEFINED_COLUMN = '42703';

/**
 * The transform and each write-back's source: by default the transform's files run as a run runs
 * them, in one transaction that is then ROLLED BACK ({@link tryTransform}), and, inside it, each
 * write-back's `from` is checked against its `fields` and `keyColumn` with the plan's own check
 * ({@link sourceColumnsFor}). With `transform: false` (`--no-transform`), or a pipeline without
 * transform files, the sources are checked as they are in the database. A transform that reads
 * tables no extract has made yet, or columns of fields added to an extract since its last run,
 * cannot run: that is said, with what to run, and is not a failure.
 */
async function checkWritebackSources(
  deps: CoreDeps,
  options: { transform: boolean },
): Promise<CheckResult[]> {
  const { config, pg } = deps;
  const { unextracted, newFields } = await withClient(pg, async (client) => ({
    unextracted: await unextractedTables(client, config),
    newFields: await unextractedFields(client, config),
  }));
  const unextractedList = unextracted.map((t) => `${t.table} (${t.configPath})`).join(', ');
  const runPlanFirst =
    'run `roundtrip plan` once (extract, transform and a dry-run plan: nothing is sent to Salesforce), then validate again';
  const hasTransform = config.transform.length > 0;
  const transformRuns = hasTransform && options.transform;

  const checkSources = async (client: PoolClient): Promise<CheckResult[]> => {
    const out: CheckResult[] = [];
    for (const task of config.writeback) {
      const check = `write-back ${taskName(task)} columns`;
      const configPath = writebackConfigPath(config, task);
      const source = splitTableName(task.from, config.postgres.schema);
      const { rows } = await client.query<{ present: boolean }>(
        'SELECT to_regclass($1) IS NOT NULL AS present',
        [quoteQualified(source.schema, source.table)],
      );
      if (rows[0]?.present !== true) {
        const extract = unextracted.find((t) => t.schema === source.schema && t.table === source.table);
        if (extract) {
          out.push({
            check,
            ok: true,
            skipped: true,
            detail: `not checked: ${configPath}.from is ${extract.configPath}, which no extract has made in this database yet: ${runPlanFirst}`,
          });
          continue;
        }
        if (hasTransform && !transformRuns) {
          out.push({
            check,
            ok: true,
            skipped: true,
            detail: `not checked: ${quoteQualified(source.schema, source.table)} (${configPath}.from) does not exist in this database yet; without --no-transform, validate runs the transform (rolled back) and checks what it makes`,
          });
          continue;
        }
      }
      try {
        await sourceColumnsFor(client, task, {
          taskName: taskName(task),
          configPath,
          source,
          absentHint: transformRuns
            ? 'the transform ran and did not make it: check the name here and in its SQL'
            : 'no transform is configured: it must exist before a run',
        });
        const named = [
          `${task.keyColumn} (keyColumn)`,
          ...Object.entries(task.fields).map(([field, column]) => `${column} → ${field}`),
        ];
        out.push({
          check,
          ok: true,
          detail: `${task.from}${transformRuns ? ', as the transform leaves it,' : ''} has ${named.join(', ')}`,
        });
      } catch (err) {
        out.push({
          check,
          ok: false,
          detail: `${transformRuns ? 'after the transform (rolled back): ' : ''}${message(err)}`,
        });
      }
    }
    return out;
  };

  if (!transformRuns) {
    const transform: CheckResult[] = hasTransform
      ? [
          {
            check: 'transform',
            ok: true,
            skipped: true,
            detail: `not run (--no-transform): the write-back sources are checked as they are in the database`,
          },
        ]
      : [];
    return [...transform, ...(await withClient(pg, checkSources))];
  }

  const files = config.transform.length;
  // With tables no extract has made yet, the transform is tried all the same (it may not read
  // them), and said so: a statement that reads one stops it, and its check is then not made.
  const mayStop = unextracted.length > 0;
  process.stderr.write(
    `validate: ${mayStop ? 'trying' : 'running'} the transform (${files} file${files === 1 ? '' : 's'}) in a transaction that is rolled back` +
      `${mayStop ? `, though ${unextractedList} ${unextracted.length === 1 ? 'does' : 'do'} not exist in this database yet: a statement that reads one stops it` : ''}` +
      `… (--no-transform skips it)\n`,
  );
  const notChecked = (why: string): CheckResult[] =>
    config.writeback.map((task) => ({
      check: `write-back ${taskName(task)} columns`,
      ok: true,
      skipped: true as const,
      detail: `not checked: ${why}`,
    }));
  try {
    const tried = await tryTransform(deps, checkSources, {
      // A lock another session holds, a deadlock: validate does not retry, a run's step would.
      retry:
        'validate does not retry it; run validate again once the other session is done (a run retries its transform step)',
    });
    const statements = tried.files.reduce((n, f) => n + f.statements, 0);
    const rows = tried.files.reduce((n, f) => n + f.rows, 0);
    return [
      {
        check: 'transform',
        ok: true,
        detail: `${files} file${files === 1 ? '' : 's'}, ${statements} statement${statements === 1 ? '' : 's'} ran (${rows.toLocaleString('en-US')} rows written) in ${(tried.durationMs / 1000).toFixed(1)} s, then rolled back: nothing kept`,
      },
      ...tried.inspected,
    ];
  } catch (err) {
    if (transformSqlState(err) === UNDEFINED_TABLE && unextracted.length > 0) {
      return [
        {
          check: 'transform',
          ok: true,
          skipped: true,
          detail: `not checked: it reads tables the extracts make, and ${unextractedList} ${unextracted.length === 1 ? 'does' : 'do'} not exist in this database yet: ${runPlanFirst} (${message(err)})`,
        },
        ...notChecked('the transform could not run (above)'),
      ];
    }
    if (transformSqlState(err) === UNDEFINED_COLUMN && newFields.length > 0) {
      const fields = newFields.map((f) => `${f.field} (${f.configPath}, a column of ${f.table})`).join(', ');
      return [
        {
          check: 'transform',
          ok: true,
          skipped: true,
          detail: `not checked: it reads what the extracts make, and ${fields} ${newFields.length === 1 ? 'is' : 'are'} not extracted yet (the next extract adds the column): ${runPlanFirst} (${message(err)})`,
        },
        ...notChecked('the transform could not run (above)'),
      ];
    }
    return [
      { check: 'transform', ok: false, detail: message(err) },
      ...notChecked('the transform failed (above)'),
    ];
  }
}
