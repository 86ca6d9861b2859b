/**
 * The notification of a failed run (DESIGN.md §1 step 5: the Report publishes to the SNS topic on
 * failure or when a threshold was crossed; a write-back past its `maxFailureRate` fails the run,
 * so both are a failed run). It says which run failed and why, each write-back's figures, the
 * errors by task, stage and code, the first records that failed with Salesforce's (or the plan's)
 * message, and where to see every one: the SQL, and the execution in the console.
 *
 * Sent once per run: `summary.notifiedAt` records it, so a retried Report does not send it again
 * (but for a Report that died between sending it and recording so: {@link notifyFailedRun}).
 */
import type { ClientBase } from 'pg';
import { withTransaction } from '../../connectors/postgres';
import { storedFailureText } from '../../shared/errors';
import { warnOnFailure } from '../../shared/logging';
import type { CoreDeps, Notification } from '../deps';
import type { ReportOutput } from './contracts';
import { mergeRunSummary } from './state';

/** Records that fail, shown one per line. */
export const NOTIFICATION_SAMPLE_RECORDS = 10;

/** Groups of errors (task, stage, code) shown, the largest first. */
export const NOTIFICATION_ERROR_GROUPS = 10;

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

/** The notification of the failed run `output`, with its errors read from `client`. */
export async function failedRunNotification(
  client: ClientBase,
  pipeline: string,
  output: ReportOutput,
  executionArn: string | null,
): Promise<Notification> {
  const runId = output.runId;
  const { rows: groups } = await client.query<{ task: string; stage: string; code: string; n: number }>(
    `SELECT task, stage, code, count(*)::int AS n FROM roundtrip.writeback_errors
      WHERE run_id = $1 GROUP BY task, stage, code ORDER BY n DESC, task, stage, code LIMIT $2`,
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
      WHERE run_id = $1 ORDER BY task, stage, key NULLS FIRST, id LIMIT $2`,
    [runId, NOTIFICATION_SAMPLE_RECORDS],
  );
  const lines = [`roundtrip pipeline ${pipeline}: run ${runId} failed.`, ''];
  lines.push(`Why: ${output.reason ? storedFailureText(output.reason) : 'no reason recorded'}`);
  const tasks = Object.entries(output.writeback);
  if (tasks.length > 0) {
    lines.push('', 'Write-back:');
    for (const [name, t] of tasks) {
      lines.push(
        `  ${name}: ${fmt(t.changed)} to send, ${fmt(t.written)} written, ${fmt(t.failed)} failed in Salesforce, ` +
          `${fmt(t.rejected)} rejected before sending` +
          (t.heldBack > 0 ? `, ${fmt(t.heldBack)} held back for another run's send of their key` : '') +
          (t.outcomeUnknown > 0 ? `, ${fmt(t.outcomeUnknown)} sent with no outcome recorded` : '') +
          `; ${fmt(t.apiCalls)} API calls` +
          (t.failureRateExceeded ? ' (more failed than maxFailureRate allows)' : '') +
          (t.rejectRateExceeded ? ' (more rejected than maxRejectRate allows)' : ''),
      );
    }
  }
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
      `  SELECT task, stage, key, salesforce_id, code, message, fields FROM roundtrip.writeback_errors WHERE run_id = '${runId}';`,
      `  or: npx roundtrip errors --run ${runId} --csv (with the pipeline's --config and --secrets)`,
    );
  }
  if (tasks.some(([, t]) => t.outcomeUnknown > 0)) {
    lines.push(
      '',
      'Sent with no outcome recorded (the run ended before it heard back):',
      `  SELECT task, key, salesforce_id, job_id FROM roundtrip.writeback_plans WHERE run_id = '${runId}' AND status = 'sent';`,
      '  The next plan of each task resolves them once their call is certainly over (Salesforce runs a call for up to 10 minutes) or their Bulk job has finished: a job is collected, update and upsert records sent by a call are sent again, insert records are looked up by their external ID (without one, they are to be recorded by hand).',
    );
  }
  const url = executionConsoleUrl(executionArn);
  lines.push('', `The run: SELECT * FROM roundtrip.runs WHERE run_id = '${runId}';`);
  if (url) lines.push(`The execution: ${url}`);
  return {
    subject: snsSubject(`roundtrip ${pipeline}: run ${runId} failed`),
    text: lines.join('\n'),
  };
}

/**
 * Sends the notification of a failed run through `deps.notifier`, once (see the module comment).
 * Best effort: a notification the topic does not take is logged; the run's outcome stands, and the
 * alarm on failed executions still goes to the same topic. PostgreSQL failing around it (reading
 * the run and its errors, recording `notifiedAt`) fails the step as any of its statements would: a
 * TransientError, retried, and the retry sends it (swallowed with the topic's, a dropped connection
 * left the run never told of). A Report whose Lambda dies, or whose connection drops, between the
 * send and the commit of `notifiedAt` sends it again when retried: at least once, never lost.
 */
export async function notifyFailedRun(
  deps: Pick<CoreDeps, 'config' | 'pg' | 'logger' | 'clock' | 'notifier'>,
  output: ReportOutput,
): Promise<void> {
  const notifier = deps.notifier;
  if (!notifier || output.status !== 'failed') return;
  const sent = await withTransaction(deps.pg, async (client) => {
    const { rows } = await client.query<{ notified: boolean; execution_arn: string | null }>(
      `SELECT coalesce(summary ? 'notifiedAt', false) AS notified, execution_arn
         FROM roundtrip.runs WHERE run_id = $1 FOR UPDATE`,
      [output.runId],
    );
    const run = rows[0];
    if (!run || run.notified) return false;
    const message = await failedRunNotification(client, deps.config.name, output, run.execution_arn);
    const published = await warnOnFailure(
      deps.logger,
      'Could not send the notification of the failed run',
      { runId: output.runId },
      async () => {
        await notifier.publish(message);
        return true;
      },
    );
    // Not sent: not recorded either, so that a later report of the run (a retried step) sends it.
    if (!published) return false;
    await mergeRunSummary(client, output.runId, ['notifiedAt'], deps.clock.now().toISOString());
    return true;
  });
  if (sent) deps.logger.info('Sent the notification of the failed run', { runId: output.runId });
}
