/**
 * `roundtrip demo` (what `npm start` runs): the whole loop on this machine. PostgreSQL (embedded,
 * or the one DATABASE_URL names), the Salesforce emulator seeded with generated leads and the
 * Athena emulator with generated customers (a fixed seed: every run sees the same data), then the
 * example pipeline (examples/lead-scoring) through the same state machine definition that
 * deploys, and an account of what changed in Salesforce with a sample of leads and their scores.
 *
 * `--again` runs the pipeline a second time on the same data, in the same process, and shows that
 * nothing needed sending. The demo keeps no state between invocations: everything it starts is
 * stopped at the end (an honest rerun needs the same org and database, which the one process has).
 */
import path from 'node:path';
import { DEMO_DEFAULTS } from '../../examples/lead-scoring/generate';
import { loadConfig, type PipelineConfig } from '../../lambdas/config';
import { loadPipelineDefinition } from '../../statemachine/local';
import {
  finishRun,
  note,
  parseOptions,
  progressPrinter,
  stopOnSignal,
  untilStopped,
  wholeNumberOption,
  type Command,
} from '../cli-common';
import { buildLocalDeps, type LocalDeps } from '../local/deps';
import { startDemoEnvironment, type DemoEnvironment } from '../local/environment';
import { alignColumns } from '../local/columns';
import { runPipeline, type PipelineRunResult } from '../local/pipeline';
import { loggerFrom, noteFailure } from './run';

/** The example pipeline the demo runs. */
export const DEMO_CONFIG_FILE = path.resolve(__dirname, '../../examples/lead-scoring/roundtrip.config.ts');

/**
 * Where to go after a demo that succeeded. Everything the demo started is gone when it ends, so
 * `roundtrip status` has nothing to read: the next steps are a rerun (unless that is what just
 * ran, `--again`) and a pipeline of one's own.
 */
export function demoNextSteps(again: boolean): string {
  return [
    'next:',
    ...(again
      ? []
      : ['  npm start -- --again     the pipeline twice in one process: the second run has nothing to send']),
    '  your own pipeline here   docs/cli.md, "Your own pipeline on this laptop": roundtrip emulate',
    '                           postgres|salesforce|athena, then validate, plan, run, status, errors',
    '  (the demo stopped the PostgreSQL and the emulators it started: its data is gone)',
  ].join('\n');
}

/** Leads shown in the demo's account. */
export const DEMO_SAMPLE_LEADS = 8;

/** The example config for a laptop: the embedded server speaks no TLS. */
export async function demoConfig(): Promise<PipelineConfig> {
  const config = await loadConfig(DEMO_CONFIG_FILE);
  return { ...config, postgres: { ...config.postgres, ssl: { ...config.postgres.ssl, mode: 'disable' } } };
}

/** What one demo run changed in the Salesforce emulator. */
interface Account {
  readonly recordsWritten: number;
  readonly writeCalls: number;
  readonly apiCalls: number;
  readonly changedLeads: number;
}

function scoresOf(env: DemoEnvironment): (number | null)[] {
  return env.leadIds.map((id) => {
    const value = env.salesforce.store.get(id)?.LeadScore__c;
    return typeof value === 'number' ? value : null;
  });
}

function describeRun(
  env: DemoEnvironment,
  before: (number | null)[],
  callsBefore: number,
  result: PipelineRunResult,
): { account: Account; text: string } {
  const after = scoresOf(env);
  const calls = env.salesforce.calls.all().slice(callsBefore);
  const writes = calls.filter((c) => c.write);
  const changed = after.map((s, i) => (s !== before[i] ? i : -1)).filter((i) => i >= 0);
  const account: Account = {
    // Records written, as the run's summary counts them (a Bulk upload call carries a CSV, not a count).
    recordsWritten: result.summary.tasks
      .filter((t) => t.kind === 'writeback')
      .reduce((n, t) => n + t.written, 0),
    writeCalls: writes.length,
    apiCalls: calls.filter((c) => c.counted).length,
    changedLeads: changed.length,
  };
  const lines = [
    '',
    `What changed in Salesforce${result.summary.recorded === false ? '' : ` (run ${result.summary.runId})`}:`,
    `  ${account.changedLeads.toLocaleString('en-US')} of ${env.leadIds.length.toLocaleString('en-US')} leads got a new LeadScore__c` +
      `: ${account.recordsWritten.toLocaleString('en-US')} records written in ${account.writeCalls} write call${account.writeCalls === 1 ? '' : 's'}` +
      `, ${account.apiCalls} Salesforce API calls in all.`,
  ];
  if (account.changedLeads === 0 && result.summary.recorded === false) {
    lines.push('  Nothing was written: the run never started (its error is above).');
  } else if (account.changedLeads === 0 && result.summary.status !== 'succeeded') {
    lines.push(`  Nothing was written: run ${result.summary.runId} failed (its error is above).`);
  } else if (account.changedLeads === 0) {
    lines.push('  Nothing needed sending: every lead in Salesforce already has its score.');
  } else {
    lines.push('  A sample of leads and their new scores:');
    const sample = changed.slice(0, DEMO_SAMPLE_LEADS);
    const rows = sample.map((i) => {
      const lead = env.leads[i]!;
      return [
        env.leadIds[i]!,
        `${lead.FirstName} ${lead.LastName}`,
        lead.Company,
        lead.Status,
        `${before[i] ?? '—'} → ${after[i] ?? '—'}`,
      ];
    });
    const header = ['Id', 'Name', 'Company', 'Status', 'LeadScore__c'];
    for (const line of alignColumns([header, ...rows], () => false).lines) lines.push(`    ${line}`);
  }
  return { account, text: lines.join('\n') };
}

/** `roundtrip demo`: see the module comment. */
export const demo: Command = async (argv) => {
  // The demo's AWS SDK clients only talk to the local emulators: the SDK's notice that its
  // releases after January 2027 need Node 22 is noise in a first run on Node 20. `run`, `plan`
  // and `start`, which may reach AWS, keep it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { values } = parseOptions(argv, {
    leads: { type: 'string' },
    customers: { type: 'string' },
    seed: { type: 'string' },
    again: { type: 'boolean' },
    json: { type: 'boolean' },
    verbose: { type: 'boolean', short: 'v' },
  });
  const leads = wholeNumberOption('leads', values.leads as string | undefined, DEMO_DEFAULTS.leads, 1);
  const customers = wholeNumberOption(
    'customers',
    values.customers as string | undefined,
    DEMO_DEFAULTS.customers,
    0,
  );
  const seed = wholeNumberOption('seed', values.seed as string | undefined, DEMO_DEFAULTS.seed, 0);
  const json = values.json === true;
  const started = Date.now();
  const config = await demoConfig();
  note(
    `roundtrip demo: ${leads.toLocaleString('en-US')} leads, ${customers.toLocaleString('en-US')} customers, seed ${seed}`,
  );
  // Ctrl-C (or a SIGTERM) while the demo runs stops what it started — also while it is still
  // starting — instead of leaving the embedded PostgreSQL running with no parent.
  const starting = startDemoEnvironment({
    config,
    leads,
    customers,
    seed,
    ...(process.env.DATABASE_URL ? { postgresUrl: process.env.DATABASE_URL } : {}),
    onProgress: (line) => note(`  ${line}`),
  });
  // After the signal the steps still going fail as their servers go away: expected, not the run's
  // failure, so nothing more is printed of them, and the command waits for the handler to end the
  // process by the signal instead of reporting the run (as `run` does).
  let interrupted = false;
  let local: LocalDeps | undefined;
  const release = stopOnSignal(async () => {
    interrupted = true;
    const started = await starting.catch(() => undefined);
    await local?.close().catch(() => undefined);
    await started?.stop();
  });
  let env: DemoEnvironment;
  try {
    env = await starting;
  } catch (err) {
    release();
    throw err;
  }
  if (interrupted) return untilStopped();
  // The demo's database: DATABASE_URL's, or the embedded server it started.
  const postgresFrom = process.env.DATABASE_URL
    ? 'DATABASE_URL'
    : `the demo's embedded PostgreSQL (${env.postgresUrl.replace(/\/\/[^@/]*@/, '//')})`;
  try {
    local = await buildLocalDeps({
      config,
      secrets: env.secrets,
      logger: loggerFrom(values),
      aws: env.aws,
      postgresFrom,
    });
    note('  building the state machine definition (the one that deploys) …');
    const definition = await loadPipelineDefinition(config);
    const rounds = values.again === true ? 2 : 1;
    let code = 0;
    for (let round = 1; round <= rounds; round += 1) {
      note(round === 1 ? '\nrunning the pipeline:' : '\nrunning it again on the same data:');
      const before = scoresOf(env);
      const callsBefore = env.salesforce.calls.all().length;
      const printProgress = progressPrinter(note, config);
      const result = await runPipeline({
        local,
        definition,
        onEvent: (event) => {
          if (!interrupted) printProgress(event);
        },
      });
      if (interrupted) return await untilStopped();
      noteFailure(result, postgresFrom);
      const { text } = describeRun(env, before, callsBefore, result);
      const last = round === rounds;
      if (json) {
        // Only the last line of stdout is the JSON summary: the accounts go to stderr.
        note(text);
        if (last) code = finishRun(result.summary, true);
        else if (result.summary.status !== 'succeeded') return finishRun(result.summary, true);
      } else {
        code = finishRun(result.summary, false, text);
        if (code !== 0) return code;
      }
    }
    note(`\ndemo finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    note(demoNextSteps(values.again === true));
    return code;
  } catch (err) {
    if (interrupted) return await untilStopped();
    throw err;
  } finally {
    if (!interrupted) {
      await local?.close();
      await env.stop();
      release();
    }
  }
};
