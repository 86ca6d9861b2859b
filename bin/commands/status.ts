/**
 * `roundtrip status`: the recent runs of a pipeline, from `roundtrip.runs` in its PostgreSQL
 * (the database the config's secret names, or `--database-url`): when each ran, how it ended,
 * what it moved, and why it failed.
 */
import type { Pool } from 'pg';
import { postgresCredentialsSource, type PipelineConfig } from '../../lambdas/config';
import { createPool, withClient } from '../../lambdas/connectors/postgres';
import type { PostgresSource } from '../../lambdas/connectors/postgres';
import {
  EXIT,
  parseOptions,
  storedFailureText,
  UsageError,
  wholeNumberOption,
  type Command,
} from '../cli-common';
import { alignColumns } from '../local/columns';
import { heldBackAgainNote, tasksHeldBackAgain, readStoredRuns, taskSummaries } from '../local/summary';
import { CONNECTION_OPTIONS, configFrom, secretsFrom } from './run';

/** Runs listed when `--limit` is not given. */
export const DEFAULT_STATUS_LIMIT = 10;

/** The TLS mode a `--database-url` asks for with `?sslmode=`: `require`/`verify-full`, else none. */
export function urlSslMode(url: string): 'require' | 'verify-full' | 'disable' {
  let mode: string | null = null;
  try {
    mode = new URL(url).searchParams.get('sslmode');
  } catch {
    mode = null;
  }
  return mode === 'require' || mode === 'verify-full' ? mode : 'disable';
}

function protocolOf(url: string): string {
  try {
    return new URL(url).protocol;
  } catch {
    return '';
  }
}

/** Options of the commands that read a pipeline's runs from its database (`status`, `errors`). */
export const DATABASE_OPTIONS = { ...CONNECTION_OPTIONS, 'database-url': { type: 'string' } } as const;

/**
 * The config and a pool to the pipeline's database (one connection unless `connections` says
 * more): `--database-url`, else the config's PostgreSQL secret. A `--database-url` that is not a
 * PostgreSQL URL is bad input.
 */
export async function runsDatabase(
  values: Record<string, unknown>,
  options: { connections?: number } = {},
): Promise<{ config: PipelineConfig; pool: Pool }> {
  const databaseUrl = values['database-url'];
  if (typeof databaseUrl === 'string' && !/^postgres(ql)?:$/.test(protocolOf(databaseUrl))) {
    throw new UsageError(
      `--database-url expects a URL such as postgres://user:password@127.0.0.1:5432/db, got "${databaseUrl}"`,
    );
  }
  const config = await configFrom(values);
  const source: PostgresSource =
    typeof databaseUrl === 'string'
      ? { url: databaseUrl }
      : ((await secretsFrom(values).getSecret(config.postgres.secret)) as PostgresSource);
  const pool = createPool(source, {
    ssl: {
      mode: typeof databaseUrl === 'string' ? urlSslMode(databaseUrl) : config.postgres.ssl.mode,
      ...(config.postgres.ssl.caBundle ? { caBundle: config.postgres.ssl.caBundle } : {}),
    },
    max: options.connections ?? 1,
    applicationName: 'roundtrip-cli',
    credentialsFrom: typeof databaseUrl === 'string' ? '--database-url' : postgresCredentialsSource(config),
  });
  // Connect once here, so that a database that cannot be reached is named as run and validate
  // name it (PostgreSQL, the address, why), not by the socket's bare "connect ECONNREFUSED".
  try {
    await withClient(pool, async () => undefined);
  } catch (err) {
    await pool.end();
    throw err;
  }
  return { config, pool };
}

/** `roundtrip status`: see the module comment. */
export const status: Command = async (argv) => {
  const { values } = parseOptions(argv, {
    ...DATABASE_OPTIONS,
    limit: { type: 'string' },
    json: { type: 'boolean' },
  });
  const limit = wholeNumberOption('limit', values.limit as string | undefined, DEFAULT_STATUS_LIMIT, 1);
  const { config, pool } = await runsDatabase(values);
  try {
    const runs = await readStoredRuns(pool, { pipeline: config.name, limit });
    const rows = runs.map((run) => {
      const tasks = taskSummaries(config, run);
      const sum = (
        kind: string,
        key: 'rowsRead' | 'written' | 'failed' | 'rejected' | 'heldBack' | 'superseded' | 'apiCalls',
      ): number => tasks.filter((t) => t.kind === kind).reduce((n, t) => n + t[key], 0);
      return {
        runId: run.runId,
        status: run.status,
        dryRun: run.dryRun,
        startedAt: run.startedAt.toISOString(),
        durationSeconds: run.finishedAt
          ? Math.round((run.finishedAt.getTime() - run.startedAt.getTime()) / 100) / 10
          : null,
        rowsExtracted: sum('extract', 'rowsRead'),
        written: sum('writeback', 'written'),
        rejected: sum('writeback', 'rejected'),
        heldBack: sum('writeback', 'heldBack'),
        superseded: sum('writeback', 'superseded'),
        failed: sum('writeback', 'failed'),
        heldBackAgain: tasksHeldBackAgain(run.summary.writeback),
        apiCalls: sum('prepare', 'apiCalls') + sum('extract', 'apiCalls') + sum('writeback', 'apiCalls'),
        error: run.error,
      };
    });
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify({ pipeline: config.name, runs: rows })}\n`);
      return EXIT.ok;
    }
    if (rows.length === 0) {
      process.stdout.write(`no runs of pipeline ${config.name} yet\n`);
      return EXIT.ok;
    }
    // Superseded records come only of runs started by hand that overlap: a column when some run has them.
    const superseded = rows.some((r) => r.superseded > 0);
    const header = [
      'run',
      'status',
      'started',
      'seconds',
      'extracted',
      'written',
      'rejected',
      'held back',
      ...(superseded ? ['superseded'] : []),
      'failed',
      'API calls',
    ];
    const cells = rows.map((r) => [
      r.runId + (r.dryRun ? ' (dry run)' : ''),
      r.status,
      r.startedAt.replace('T', ' ').slice(0, 19),
      r.durationSeconds === null ? '—' : String(r.durationSeconds),
      r.rowsExtracted.toLocaleString('en-US'),
      r.written.toLocaleString('en-US'),
      r.rejected.toLocaleString('en-US'),
      r.heldBack.toLocaleString('en-US'),
      ...(superseded ? [r.superseded.toLocaleString('en-US')] : []),
      r.failed.toLocaleString('en-US'),
      String(r.apiCalls),
    ]);
    process.stdout.write(alignColumns([header, ...cells], (i) => i >= 3).lines.join('\n') + '\n');
    for (const r of rows) {
      if (r.error) process.stdout.write(`\n${r.runId}: ${storedFailureText(r.error)}\n`);
      for (const held of r.heldBackAgain)
        process.stdout.write(`\n${r.runId}: ${heldBackAgainNote(r.runId, held)}\n`);
    }
    return EXIT.ok;
  } finally {
    await pool.end();
  }
};
