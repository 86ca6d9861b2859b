/**
 * The notification of a run (DESIGN.md §1 step 5: the Report publishes to the SNS topic on failure
 * or when a threshold was crossed; a write-back past its `maxFailureRate` fails the run, so both
 * are a failed run).
 *
 * A failed run's says which run failed and why, each extract's figures and warnings (keys in more
 * than one row of an Athena result, columns retyped), each write-back's figures, the errors by task,
 * stage and code, the first records that failed with Salesforce's (or the plan's) message, and
 * where to see every one: the SQL, and the execution in the console.
 *
 * A run that succeeded is told of when it held back keys its task's previous run held back too
 * (`heldBackRepeatedly`, report.ts): one run holding keys back is the wait after a crash, the next
 * run sends them; the same keys twice in a row are stuck (a Bulk job Salesforce does not finish,
 * an insert whose outcome is to be recorded with `roundtrip resolve`), and would stay so, run
 * after run, unseen.
 * It says how many of which task, since which run, why (the other run's Bulk job and its state,
 * or its call), the first keys with their message, the SQL that lists them and what to do. A
 * failed run's notification says the same of its keys held back again.
 *
 * A run that succeeded is told of, too, when its upserts created second records: the key of a
 * record the task had synced was changed by hand in Salesforce, and Salesforce, finding no record
 * with it, created another (`KEY_CHANGED_RECORD_CREATED`, results.ts; or still
 * `CREATED_BESIDE_SYNCED_RECORD` when the old record was not looked up yet). The write counts as
 * written, so nothing else tells of it. It says which task, how many, the first keys with both
 * records' Ids and the `roundtrip errors` command that lists them; a failed run's notification
 * says the same, apart from its errors (they are not failures).
 *
 * Sent once per run: `summary.notifiedAt` records it, so a retried Report does not send it again
 * (but for a Report that died between sending it and recording so: {@link notifyRun}).
 */
import type { ClientBase } from 'pg';
import { taskName } from '../../config';
import { withTransaction } from '../../connectors/postgres';
import { storedFailureText } from '../../shared/errors';
import { warnOnFailure } from '../../shared/logging';
import { AthenaDuplicateKeysFound, AthenaKeptPrimaryKey } from '../contracts';
import type { CoreDeps, Notification } from '../deps';
import {
  duplicateKeysWarning,
  keptPrimaryKeyWarning,
  queryCountMismatchWarningOf,
  retypedColumnWarning,
} from '../load-warnings';
import type { ReportOutput } from './contracts';
import { shellOption } from '../../shared/shell';
import { CREATED_BESIDE_CODE, KEY_CHANGED_CREATED_CODE, WRITTEN_ERROR_CODES } from './results';
import {
  HELD_BACK_BY_BOTH_SQL,
  HELD_BACK_ERROR_SQL,
  mergeRunSummary,
  previousRunOfTask,
  sqlLiteral,
} from './state';

/** Records that fail, shown one per line. */
export const NOTIFICATION_SAMPLE_RECORDS = 10;

/** Groups of errors (task, stage, code) shown, the largest first. */
export const NOTIFICATION_ERROR_GROUPS = 10;

/** Other runs' sends (Bulk jobs, calls) shown as why a task's keys are held back again. */
export const NOTIFICATION_PENDING_SENDS = 5;

/**
 * A run that succeeded tells of keys held back again at most this often per task and streak: the
 * run that finds the streak tells, and then the first run at least this many hours after the last
 * notice of it. An hourly schedule stuck on a Bulk job is heard of about once a day, not 24 times
 * (a channel that cries every hour is muted, and then misses the failure); a daily one, whose runs
 * may start a little earlier from one day to the next, each day. A failed run always tells, and
 * says its keys held back again too. `roundtrip status` shows the streak at every run.
 */
export const HELD_BACK_NOTICE_EVERY_HOURS = 20;

/** SNS subjects are one line of fewer than 100 ASCII characters (SNS API reference, Publish). */
const SUBJECT_MAX_CHARS = 99;

/** A message line is cut here: a validation rule's message can be long. */
const LINE_MAX_CHARS = 300;

const fmt = (n: number): string => n.toLocaleString('en-US');

function oneLine(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** A subject SNS takes: printable ASCII only, cut with "..." within {@link SUBJECT_MAX_CHARS}. */
export function snsSubject(text: string): string {
  const ascii = text.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return ascii.length <= SUBJECT_MAX_CHARS ? ascii : `${ascii.slice(0, SUBJECT_MAX_CHARS - 3)}...`;
}

/**
 * The Step Functions console page of an execution, from its ARN
 * (`arn:aws:states:<region>:<account>:execution:<machine>:<name>`); none for another form (a
 * local run's), nor for another partition (China, GovCloud), whose console lives elsewhere than
 * `<region>.console.aws.amazon.com`.
 */
export function executionConsoleUrl(executionArn: string | null | undefined): string | undefined {
  const m = /^arn:aws:states:([a-z0-9-]+):\d{12}:execution:[^:]+:[^:]+$/.exec(executionArn ?? '');
  if (!m) return undefined;
  const region = m[1] as string;
  return `https://${region}.console.aws.amazon.com/states/home?region=${region}#/v2/executions/details/${executionArn}`;
}

/**
 * What the run's summary holds of an extract task (`summary.extract.<task>`, run-state.ts
 * recordTaskResult): the step's output once it loaded, its calls alone when it failed. Read
 * loosely: the summary of a run an earlier version recorded may lack a figure.
 */
type StoredExtract = Record<string, unknown>;

/**
 * The extract figures of a notification: a heading, a line per task (rows read and written,
 * removed or flagged deleted, calls) and a line under it per warning of its load: keys in more than
 * one row of an Athena result (which row was kept may change from run to run), columns retyped
 * because Salesforce changed their field's type (a transform reading them may then fail).
 */
export function extractLines(extract: Readonly<Record<string, StoredExtract>>): string[] {
  const tasks = Object.entries(extract).filter(([, t]) => t !== null && typeof t === 'object');
  if (tasks.length === 0) return [];
  const lines = ['', 'Extract:'];
  for (const [name, t] of tasks) {
    const n = (key: string): number => (typeof t[key] === 'number' ? (t[key] as number) : 0);
    // An Athena load's calls are Athena's and S3's (it reports s3Reads), not Salesforce's.
    const count = n('apiCalls') + n('s3Reads');
    const calls = `${fmt(count)} ${'s3Reads' in t ? 'Athena/S3' : 'API'} call${count === 1 ? '' : 's'}`;
    if (t.status !== 'loaded') {
      lines.push(`  ${name}: not loaded; ${calls}`);
      continue;
    }
    const deleted = n('deleted');
    const deletedText =
      deleted === 0 || 's3Reads' in t
        ? ''
        : t.deletes === 'flag'
          ? `, ${fmt(deleted)} flagged deleted`
          : t.deletes === 'remove'
            ? `, ${fmt(deleted)} removed`
            : `, ${fmt(deleted)} deleted`;
    lines.push(
      `  ${name}: ${fmt(n('rows'))} rows read, ${fmt(n('inserted') + n('updated'))} written${deletedText}; ${calls}`,
    );
    // In the words the log, `roundtrip run` and its summary use.
    const duplicates = AthenaDuplicateKeysFound.safeParse(t.duplicateKeys);
    if (duplicates.success) lines.push(`    ${duplicateKeysWarning(name, duplicates.data)}`);
    const kept = AthenaKeptPrimaryKey.safeParse(t.keptPrimaryKey);
    if (kept.success) lines.push(`    ${keptPrimaryKeyWarning(name, kept.data)}`);
    const retyped = Array.isArray(t.retypedColumns) ? (t.retypedColumns as Record<string, unknown>[]) : [];
    for (const c of retyped) lines.push(`    ${retypedColumnWarning(c)}`);
    const mismatch = queryCountMismatchWarningOf(name, t);
    if (mismatch) lines.push(`    ${mismatch}`);
  }
  return lines;
}

/** The write-back figures of a notification: a heading and a line per task. */
function writebackLines(output: ReportOutput): string[] {
  const tasks = Object.entries(output.writeback);
  if (tasks.length === 0) return [];
  const lines = ['', 'Write-back:'];
  for (const [name, t] of tasks) {
    lines.push(
      `  ${name}: ${fmt(t.changed)} to send, ${fmt(t.written)} written` +
        (t.secondRecords ? ` (${fmt(t.secondRecords)} of them as a second record)` : '') +
        `, ${fmt(t.failed)} failed in Salesforce, ${fmt(t.rejected)} rejected before sending` +
        (t.heldBack > 0 ? `, ${fmt(t.heldBack)} held back for another run's send of their key` : '') +
        (t.heldBackRepeatedly > 0 ? ` (${fmt(t.heldBackRepeatedly)} of them by the previous run too)` : '') +
        (t.superseded > 0 ? `, ${fmt(t.superseded)} superseded by a run that planned later` : '') +
        (t.outcomeUnknown > 0 ? `, ${fmt(t.outcomeUnknown)} sent with no outcome recorded` : '') +
        `; ${fmt(t.apiCalls)} API calls` +
        (t.failureRateExceeded ? ' (more failed than maxFailureRate allows)' : '') +
        (t.rejectRateExceeded ? ' (more rejected than maxRejectRate allows)' : ''),
    );
  }
  return lines;
}

/** A task's keys held back by the run and by its previous run too, as a notification tells. */
export interface HeldBackAgain {
  readonly task: string;
  /** Keys held back by the run and its previous run (`heldBackRepeatedly`). */
  readonly keys: number;
  /** The previous run. */
  readonly previousRunId: string;
  /** The first run of the streak (`heldBackSince`), when it started and how many runs it has. */
  readonly since?: { readonly runId: string; readonly startedAt: Date; readonly runs: number };
  /** Other runs' sends of the keys with no outcome yet, the most keys first. */
  readonly pending: readonly {
    readonly runId: string;
    /** The Bulk job, none for a Composite call. */
    readonly jobId: string | null;
    /** The job's state as last recorded in `writeback_jobs`, and when. */
    readonly state: string | null;
    readonly recordedAt: Date | null;
    readonly keys: number;
  }[];
  /** The held-back codes of the keys, the most first. */
  readonly codes: readonly { readonly code: string; readonly keys: number }[];
  /** The first keys in key order, with their message. */
  readonly samples: readonly { readonly key: string; readonly code: string; readonly message: string }[];
}

/**
 * For each task of `output` with keys held back by the previous run too (`heldBackRepeatedly`):
 * which, why and since when ({@link HeldBackAgain}), read from the run's and the previous run's
 * errors, the other runs' ledger rows still `sent` for those keys and their jobs.
 */
export async function heldBackAgainOf(client: ClientBase, output: ReportOutput): Promise<HeldBackAgain[]> {
  const found: HeldBackAgain[] = [];
  for (const [task, t] of Object.entries(output.writeback)) {
    if (t.heldBackRepeatedly === 0) continue;
    const previous = await previousRunOfTask(client, output.runId, task);
    if (!previous) continue;
    const args = [output.runId, previous.runId, task];
    const { rows: pending } = await client.query<{
      run_id: string;
      job_id: string | null;
      state: string | null;
      recorded_at: Date | null;
      keys: number;
    }>(
      `WITH again AS (${HELD_BACK_BY_BOTH_SQL})
       SELECT p.run_id, p.job_id, j.state, j.updated_at AS recorded_at, count(*)::int AS keys
         FROM again
         JOIN roundtrip.writeback_plans p ON p.task = $3 AND p.key = again.key AND p.status = 'sent' AND p.run_id <> $1
         LEFT JOIN roundtrip.writeback_jobs j ON j.run_id = p.run_id AND j.task = p.task AND j.job_id = p.job_id
        GROUP BY p.run_id, p.job_id, j.state, j.updated_at
        ORDER BY keys DESC, p.run_id, p.job_id LIMIT $4`,
      [...args, NOTIFICATION_PENDING_SENDS + 1],
    );
    const { rows: codes } = await client.query<{ code: string; keys: number }>(
      `WITH again AS (${HELD_BACK_BY_BOTH_SQL})
       SELECT e.code, count(DISTINCT e.key)::int AS keys
         FROM roundtrip.writeback_errors e JOIN again ON again.key = e.key
        WHERE e.run_id = $1 AND e.task = $3 AND ${HELD_BACK_ERROR_SQL}
        GROUP BY e.code ORDER BY keys DESC, e.code`,
      args,
    );
    const { rows: samples } = await client.query<{ key: string; code: string; message: string }>(
      `WITH again AS (${HELD_BACK_BY_BOTH_SQL})
       SELECT DISTINCT ON (e.key) e.key, e.code, e.message
         FROM roundtrip.writeback_errors e JOIN again ON again.key = e.key
        WHERE e.run_id = $1 AND e.task = $3 AND ${HELD_BACK_ERROR_SQL}
        ORDER BY e.key, e.id LIMIT $4`,
      [...args, NOTIFICATION_SAMPLE_RECORDS],
    );
    let since: HeldBackAgain['since'];
    if (t.heldBackSince) {
      // The runs of the task from the streak's first to this one: each held back keys of the one before.
      const { rows } = await client.query<{ started_at: Date; runs: number }>(
        `SELECT s.started_at,
                (SELECT count(*)::int FROM roundtrip.runs r
                  WHERE r.pipeline = me.pipeline AND NOT r.dry_run
                    AND jsonb_typeof(r.summary->'writeback'->$3) = 'object'
                    AND (r.started_at, r.run_id) >= (s.started_at, s.run_id)
                    AND (r.started_at, r.run_id) <= (me.started_at, me.run_id)) AS runs
           FROM roundtrip.runs me, roundtrip.runs s WHERE me.run_id = $1 AND s.run_id = $2`,
        [output.runId, t.heldBackSince, task],
      );
      const row = rows[0];
      if (row) since = { runId: t.heldBackSince, startedAt: row.started_at, runs: row.runs };
    }
    found.push({
      task,
      keys: t.heldBackRepeatedly,
      previousRunId: previous.runId,
      ...(since ? { since } : {}),
      pending: pending.map((p) => ({
        runId: p.run_id,
        jobId: p.job_id,
        state: p.state,
        recordedAt: p.recorded_at,
        keys: p.keys,
      })),
      codes,
      samples,
    });
  }
  return found;
}

const records = (n: number): string => (n === 1 ? '1 record' : `${fmt(n)} records`);

/**
 * What a notification says of keys held back again ({@link HeldBackAgain}): per task, how many
 * since when, why, the first keys, the SQL that lists them; then what to do.
 */
export function heldBackAgainLines(runId: string, held: readonly HeldBackAgain[]): string[] {
  if (held.length === 0) return [];
  const lines: string[] = [];
  for (const h of held) {
    const runs = h.since && h.since.runs > 2 ? h.since.runs : 2;
    lines.push(
      '',
      `Held back again: ${records(h.keys)} of ${h.task} held back by ${runs} runs in a row` +
        (h.since && h.since.runs > 2
          ? `, since run ${h.since.runId} (started ${h.since.startedAt.toISOString()})`
          : `, this run and the previous one (${h.previousRunId})`) +
        ': the next run does not send them either until what holds them back is resolved.',
    );
    if (h.pending.length > 0) {
      lines.push('  Why: sent by another run with no outcome recorded yet:');
      for (const p of h.pending.slice(0, NOTIFICATION_PENDING_SENDS)) {
        lines.push(
          p.jobId
            ? `    Bulk job ${p.jobId} of run ${p.runId}, not collected` +
                (p.state
                  ? ` (last recorded ${p.state}${p.recordedAt ? ` at ${p.recordedAt.toISOString()}` : ''})`
                  : '') +
                `: ${records(p.keys)}`
            : `    a Composite call of run ${p.runId}: ${records(p.keys)}`,
        );
      }
      if (h.pending.length > NOTIFICATION_PENDING_SENDS) lines.push('    … and other sends');
    }
    if (h.codes.length > 0) {
      lines.push(`  Codes: ${h.codes.map((c) => `${c.code} ${fmt(c.keys)}`).join(', ')}`);
    }
    if (h.samples.length > 0) {
      lines.push(`  The first ${h.samples.length === 1 ? 'key' : `${h.samples.length} keys`}:`);
      for (const r of h.samples)
        lines.push(`    ${oneLine(`${r.key}: ${r.code} ${r.message}`, LINE_MAX_CHARS)}`);
    }
    const codes = (
      h.codes.length > 0 ? h.codes.map((c) => c.code) : ['OUTCOME_PENDING', 'INSERT_OUTCOME_UNKNOWN']
    )
      .map((c) => sqlLiteral(c))
      .join(', ');
    lines.push(
      '  Every one:',
      `    SELECT key, code, message FROM roundtrip.writeback_errors WHERE run_id = ${sqlLiteral(runId)} AND task = ${sqlLiteral(h.task)} AND code IN (${codes}) ORDER BY key;`,
    );
    if (h.pending.some((p) => p.jobId)) {
      lines.push(
        `    SELECT run_id, job_id, state, updated_at FROM roundtrip.writeback_jobs WHERE task = ${sqlLiteral(h.task)} AND api = 'bulk' AND collected_at IS NULL ORDER BY run_id;`,
      );
    }
  }
  lines.push('', 'What to do:');
  if (held.some((h) => h.pending.some((p) => p.jobId))) {
    lines.push(
      "  Look the job up in Salesforce (Setup → Bulk Data Load Jobs, by its id). A later plan collects it once Salesforce has finished it (completed, failed, or aborted there) and then sends the keys' current values; while Salesforce has not, its keys stay held back, run after run.",
    );
  }
  lines.push(
    "  Each key's message says what holds it back and what resolves it (an insert whose outcome cannot be looked up, its task having no external-ID key, is recorded with npx roundtrip resolve --task TASK --key KEY --inserted ID or --not-inserted, once you have looked for it in Salesforce): see the SQL above, or npx roundtrip errors --run " +
      `${runId} (with the pipeline's --config and --secrets).`,
  );
  return lines;
}

/** A task's upserts written as a second record in Salesforce, as a notification tells. */
export interface SecondRecords {
  readonly task: string;
  /** Rows `KEY_CHANGED_RECORD_CREATED`: the old record was found live under another key. */
  readonly reported: number;
  /** Rows still `CREATED_BESIDE_SYNCED_RECORD`: the old record was not looked up yet. */
  readonly unchecked: number;
  /** The first keys in key order: the new record (the ledger's), the old one (the row's). */
  readonly samples: readonly {
    readonly key: string;
    readonly code: string;
    readonly newId: string | null;
    readonly oldId: string | null;
  }[];
}

/**
 * The run's upserts of `tasks` that created a second record ({@link SecondRecords}), per task with
 * any, in task order: its `writeback_errors` rows of stage `push` coded
 * {@link WRITTEN_ERROR_CODES}, by the (run, task, stage) index.
 */
export async function secondRecordsOf(
  client: ClientBase,
  runId: string,
  tasks: readonly string[],
): Promise<SecondRecords[]> {
  if (tasks.length === 0) return [];
  const { rows: counts } = await client.query<{ task: string; reported: number; unchecked: number }>(
    `SELECT task, count(*) FILTER (WHERE code = $3)::int AS reported,
            count(*) FILTER (WHERE code = $4)::int AS unchecked
       FROM roundtrip.writeback_errors
      WHERE run_id = $1 AND task = ANY($2::text[]) AND stage = 'push' AND code IN ($3, $4)
      GROUP BY task ORDER BY task`,
    [runId, tasks, KEY_CHANGED_CREATED_CODE, CREATED_BESIDE_CODE],
  );
  const found: SecondRecords[] = [];
  for (const c of counts) {
    const { rows: samples } = await client.query<{
      key: string;
      code: string;
      new_id: string | null;
      old_id: string | null;
    }>(
      `SELECT e.key, e.code, p.salesforce_id AS new_id, e.salesforce_id AS old_id
         FROM roundtrip.writeback_errors e
         LEFT JOIN roundtrip.writeback_plans p ON p.run_id = e.run_id AND p.task = e.task AND p.key = e.key
        WHERE e.run_id = $1 AND e.task = $2 AND e.stage = 'push' AND e.code IN ($3, $4)
        ORDER BY e.key, e.id LIMIT $5`,
      [runId, c.task, KEY_CHANGED_CREATED_CODE, CREATED_BESIDE_CODE, NOTIFICATION_SAMPLE_RECORDS],
    );
    found.push({
      task: c.task,
      reported: c.reported,
      unchecked: c.unchecked,
      samples: samples.map((r) => ({ key: r.key, code: r.code, newId: r.new_id, oldId: r.old_id })),
    });
  }
  return found;
}

const upserts = (n: number): string => (n === 1 ? '1 upsert' : `${fmt(n)} upserts`);

/**
 * What a notification says of upserts written as a second record ({@link SecondRecords}): per
 * task, how many, the first keys with both Ids, the command that lists them; then what to do.
 */
export function secondRecordsLines(runId: string, second: readonly SecondRecords[]): string[] {
  if (second.length === 0) return [];
  const lines: string[] = [];
  for (const t of second) {
    lines.push('');
    if (t.reported > 0) {
      lines.push(
        `Second records: ${upserts(t.reported)} of ${t.task} created a second record in Salesforce (${KEY_CHANGED_CREATED_CODE}): ` +
          `the key field of the record the task had synced with ${t.reported === 1 ? 'that key' : 'those keys'} was changed there, and Salesforce, finding no record with the key, created one. ` +
          'The values were written, to the new record, which roundtrip.sync_state now holds for the key; the old record keeps the values it had.',
      );
    }
    if (t.unchecked > 0) {
      lines.push(
        `${t.reported > 0 ? '  And' : 'Second records:'} ${upserts(t.unchecked)} of ${t.task} ${t.unchecked === 1 ? 'was' : 'were'} created beside a record the task had synced with ${t.unchecked === 1 ? 'its key' : 'their keys'}, ` +
          `not looked up yet (${CREATED_BESIDE_CODE}: the step ended before it; the next plan of the task looks them up and rewrites the rows of this run): each old record is either live under another key (a second record) or deleted in Salesforce (an ordinary re-create).`,
      );
    }
    lines.push(`  The first ${t.samples.length === 1 ? 'key' : `${t.samples.length} keys`}:`);
    for (const r of t.samples) {
      lines.push(
        `    ${oneLine(
          `${r.key}: new record ${r.newId ?? '(unknown)'}, old record ${r.oldId ?? '(unknown)'}` +
            (r.code === CREATED_BESIDE_CODE ? ' (not looked up yet)' : ''),
          LINE_MAX_CHARS,
        )}`,
      );
    }
    lines.push('  Every one, with what the old record holds and the ways out:');
    for (const [code, n] of [
      [KEY_CHANGED_CREATED_CODE, t.reported],
      [CREATED_BESIDE_CODE, t.unchecked],
    ] as const) {
      if (n > 0) {
        lines.push(
          `    npx roundtrip errors --run ${runId} ${shellOption('--task', t.task)} --code ${code} (with the pipeline's --config and --secrets)`,
        );
      }
    }
  }
  lines.push(
    '',
    "What to do with a second record: merge the two records in Salesforce (keeping the one other systems link to); or, if the key was changed by mistake, delete the new record and set the key back on the old one; or, if the new key is right, make the source write it and delete the new record. Each record's message says which Ids and values.",
  );
  return lines;
}

/**
 * The notification of a run that succeeded but held back keys its task's previous run held back
 * too (`held`, from {@link heldBackAgainOf}), or made second records (`second`, from
 * {@link secondRecordsOf}): a subject of its own, so that it does not read as a failure.
 */
export function succeededRunNotification(
  pipeline: string,
  output: ReportOutput,
  held: readonly HeldBackAgain[],
  second: readonly SecondRecords[],
  executionArn: string | null,
  extract: Readonly<Record<string, StoredExtract>> = {},
): Notification {
  const runId = output.runId;
  const heldTotal = held.reduce((n, h) => n + h.keys, 0);
  const secondTotal = second.reduce((n, t) => n + t.reported + t.unchecked, 0);
  const buts = [
    ...(heldTotal > 0 ? [`it held back ${records(heldTotal)} that the previous run held back too`] : []),
    ...(secondTotal > 0
      ? [
          `${upserts(secondTotal)} created a second record in Salesforce, the key of the record synced before having been changed there`,
        ]
      : []),
  ];
  const subjects = [
    ...(heldTotal > 0 ? [`${records(heldTotal)} held back again`] : []),
    ...(secondTotal > 0
      ? [`${fmt(secondTotal)} second ${secondTotal === 1 ? 'record' : 'records'} created`]
      : []),
  ];
  const lines = [
    `roundtrip pipeline ${pipeline}: run ${runId} succeeded, but ${buts.join(', and ')}.`,
    ...extractLines(extract),
    ...writebackLines(output),
    ...heldBackAgainLines(runId, held),
    ...secondRecordsLines(runId, second),
    ...runLines(runId, executionArn),
  ];
  return {
    subject: snsSubject(`roundtrip ${pipeline}: run ${runId} succeeded, ${subjects.join(', ')}`),
    text: lines.join('\n'),
  };
}

/** Where to see the run: the SQL, and the execution in the console when it has one. */
function runLines(runId: string, executionArn: string | null): string[] {
  const url = executionConsoleUrl(executionArn);
  return [
    '',
    `The run: SELECT * FROM roundtrip.runs WHERE run_id = ${sqlLiteral(runId)};`,
    ...(url ? [`The execution: ${url}`] : []),
  ];
}

/**
 * When the streak of keys held back again of task `task` since run `since` (`heldBackSince`) was
 * last told of: the latest `notifiedAt` of another run of the pipeline, started after `since`, that
 * held back keys of the task again (a notice of a failed run of the streak counts: it tells of them
 * too). `undefined` when no run of the streak has told of it.
 */
export async function heldBackLastToldAt(
  client: ClientBase,
  runId: string,
  task: string,
  since: string,
): Promise<Date | undefined> {
  const { rows } = await client.query<{ last: Date | null }>(
    `SELECT max((r.summary->>'notifiedAt')::timestamptz) AS last
       FROM roundtrip.runs s JOIN roundtrip.runs r ON r.pipeline = s.pipeline
      WHERE s.run_id = $2 AND r.run_id <> $1 AND (r.started_at, r.run_id) > (s.started_at, s.run_id)
        AND r.summary ? 'notifiedAt'
        AND coalesce((r.summary->'writeback'->$3->>'heldBackRepeatedly')::int, 0) > 0`,
    [runId, since, task],
  );
  return rows[0]?.last ?? undefined;
}

/**
 * The notification of the failed run `output`, with its errors read from `client`, and what it held
 * back again (`heldBackAgain`, from {@link heldBackAgainOf}).
 */
export async function failedRunNotification(
  client: ClientBase,
  pipeline: string,
  output: ReportOutput,
  executionArn: string | null,
  heldBackAgain: readonly HeldBackAgain[] = [],
  second: readonly SecondRecords[] = [],
  extract: Readonly<Record<string, StoredExtract>> = {},
): Promise<Notification> {
  const runId = output.runId;
  // Upserts written as a second record are not errors: told of apart (secondRecordsLines).
  const notWritten = `NOT (stage = 'push' AND code IN (${WRITTEN_ERROR_CODES.map((c) => sqlLiteral(c)).join(', ')}))`;
  const { rows: groups } = await client.query<{ task: string; stage: string; code: string; n: number }>(
    `SELECT task, stage, code, count(*)::int AS n FROM roundtrip.writeback_errors
      WHERE run_id = $1 AND ${notWritten}
      GROUP BY task, stage, code ORDER BY n DESC, task, stage, code LIMIT $2`,
    [runId, NOTIFICATION_ERROR_GROUPS + 1],
  );
  const { rows: samples } = await client.query<{
    task: string;
    stage: string;
    key: string | null;
    code: string;
    message: string;
    fields: string[];
  }>(
    `SELECT task, stage, key, code, message, fields FROM roundtrip.writeback_errors
      WHERE run_id = $1 AND ${notWritten} ORDER BY task, stage, key NULLS FIRST, id LIMIT $2`,
    [runId, NOTIFICATION_SAMPLE_RECORDS],
  );
  const lines = [`roundtrip pipeline ${pipeline}: run ${runId} failed.`, ''];
  lines.push(`Why: ${output.reason ? storedFailureText(output.reason) : 'no reason recorded'}`);
  const tasks = Object.entries(output.writeback);
  lines.push(...extractLines(extract), ...writebackLines(output));
  if (groups.length > 0) {
    lines.push('', 'Errors by task, stage and code:');
    for (const g of groups.slice(0, NOTIFICATION_ERROR_GROUPS)) {
      lines.push(`  ${g.task} ${g.stage} ${g.code}: ${fmt(g.n)}`);
    }
    if (groups.length > NOTIFICATION_ERROR_GROUPS) lines.push('  … and other codes');
    lines.push('', `The first ${samples.length === 1 ? 'record' : `${samples.length} records`}:`);
    for (const r of samples) {
      const fields = r.fields.length > 0 ? ` [${r.fields.join(', ')}]` : '';
      lines.push(
        `  ${oneLine(`${r.task} ${r.key ?? '(no key)'}: ${r.code} ${r.message}${fields}`, LINE_MAX_CHARS)}`,
      );
    }
    lines.push(
      '',
      'Every record:',
      `  SELECT task, stage, key, salesforce_id, code, message, fields FROM roundtrip.writeback_errors WHERE run_id = ${sqlLiteral(runId)};`,
      `  or: npx roundtrip errors --run ${runId} --csv (with the pipeline's --config and --secrets)`,
    );
  }
  if (tasks.some(([, t]) => t.outcomeUnknown > 0)) {
    lines.push(
      '',
      'Sent with no outcome recorded (the run ended before it heard back):',
      `  SELECT task, key, salesforce_id, job_id FROM roundtrip.writeback_plans WHERE run_id = ${sqlLiteral(runId)} AND status = 'sent';`,
      '  The next plan of each task resolves them once their call is certainly over (Salesforce runs a call for up to 10 minutes) or their Bulk job has finished: a job is collected, update and upsert records sent by a call are sent again, insert records are looked up by their external ID (without one, look for them in Salesforce and record what you found with npx roundtrip resolve).',
    );
  }
  lines.push(
    ...heldBackAgainLines(runId, heldBackAgain),
    ...secondRecordsLines(runId, second),
    ...runLines(runId, executionArn),
  );
  return {
    subject: snsSubject(`roundtrip ${pipeline}: run ${runId} failed`),
    text: lines.join('\n'),
  };
}

/**
 * What {@link notifyRun} did: `sent` the notification, found none `due` (no notifier, nothing to
 * tell, told already or lately), or `failed` to send one that was due (the topic did not take it).
 */
export type RunNotice = 'sent' | 'none-due' | 'failed';

/**
 * Sends the notification of a failed run, of one that held back keys its task's previous run held
 * back too (`heldBackRepeatedly`), or of one whose upserts created second records
 * ({@link secondRecordsOf}), through `deps.notifier`, once (see the module comment). Only a run
 * with an upsert task that wrote records reads the latter: the others make no query for it.
 * Best effort: a notification the topic does not take is logged and returned as `failed` (the
 * Report's output says so, measured as `NotificationsFailed`, which the stack alarms on); the
 * run's outcome stands, and the alarm on failed executions still goes to the same topic.
 * PostgreSQL failing around it (reading
 * the run and its errors, recording `notifiedAt`) fails the step as any of its statements would: a
 * TransientError, retried, and the retry sends it (swallowed with the topic's, a dropped connection
 * left the run never told of). A Report whose Lambda dies, or whose connection drops, between the
 * send and the commit of `notifiedAt` sends it again when retried: at least once, never lost.
 */
export async function notifyRun(
  deps: Pick<CoreDeps, 'config' | 'pg' | 'logger' | 'clock' | 'notifier'>,
  output: ReportOutput,
): Promise<RunNotice> {
  const notifier = deps.notifier;
  const failed = output.status === 'failed';
  const heldAgain = Object.values(output.writeback).some((t) => t.heldBackRepeatedly > 0);
  // Only an upsert that wrote a record can have written it as a second record.
  const upsertsWritten = deps.config.writeback
    .filter((t) => t.mode === 'upsert' && (output.writeback[taskName(t)]?.written ?? 0) > 0)
    .map(taskName);
  if (!notifier || (!failed && !heldAgain && upsertsWritten.length === 0)) return 'none-due';
  let what = 'the failed run';
  const notice = await withTransaction(deps.pg, async (client): Promise<RunNotice> => {
    const { rows } = await client.query<{
      notified: boolean;
      execution_arn: string | null;
      extract: Record<string, StoredExtract> | null;
    }>(
      `SELECT coalesce(summary ? 'notifiedAt', false) AS notified, execution_arn, summary->'extract' AS extract
         FROM roundtrip.runs WHERE run_id = $1 FOR UPDATE`,
      [output.runId],
    );
    const run = rows[0];
    if (!run || run.notified) return 'none-due';
    const second = await secondRecordsOf(client, output.runId, upsertsWritten);
    if (!failed && heldAgain) {
      // Told of within HELD_BACK_NOTICE_EVERY_HOURS for every task: not again yet.
      const now = deps.clock.now().getTime();
      let untold = false;
      for (const [task, t] of Object.entries(output.writeback)) {
        if (t.heldBackRepeatedly === 0) continue;
        const last = t.heldBackSince
          ? await heldBackLastToldAt(client, output.runId, task, t.heldBackSince)
          : undefined;
        if (!last || now - last.getTime() >= HELD_BACK_NOTICE_EVERY_HOURS * 3_600_000) untold = true;
      }
      // A notification sent all the same (for second records) tells of them too: a notice of a run
      // of the streak counts as told (heldBackLastToldAt).
      if (!untold && second.length === 0) {
        deps.logger.info(
          `Records held back again, told of less than ${HELD_BACK_NOTICE_EVERY_HOURS} hours ago: no notification`,
          { runId: output.runId },
        );
        return 'none-due';
      }
    }
    if (!failed) {
      // Every second record is told of: each is made once (the next run updates it).
      if (!heldAgain && second.length === 0) return 'none-due';
      what = [
        ...(heldAgain ? ['records held back again'] : []),
        ...(second.length > 0 ? ['upserts written as a second record'] : []),
      ].join(' and ');
    }
    const held = heldAgain ? await heldBackAgainOf(client, output) : [];
    const extract = run.extract ?? {};
    const message = failed
      ? await failedRunNotification(
          client,
          deps.config.name,
          output,
          run.execution_arn,
          held,
          second,
          extract,
        )
      : succeededRunNotification(deps.config.name, output, held, second, run.execution_arn, extract);
    const published = await warnOnFailure(
      deps.logger,
      `Could not send the notification of ${what}`,
      { runId: output.runId },
      async () => {
        await notifier.publish(message);
        return true;
      },
    );
    // Not sent: not recorded either, so that a later report of the run (a retried step) sends it.
    if (!published) return 'failed';
    await mergeRunSummary(client, output.runId, ['notifiedAt'], deps.clock.now().toISOString());
    return 'sent';
  });
  if (notice === 'sent') deps.logger.info(`Sent the notification of ${what}`, { runId: output.runId });
  return notice;
}
