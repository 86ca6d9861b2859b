/**
 * Collect (DESIGN.md §1 step 4): polls the task's Bulk ingest jobs once each; when every job is
 * finished, streams each job's `successfulResults` and `failedResults` CSV into PostgreSQL with
 * `COPY … FROM STDIN` (never into JS arrays: a million results stay a stream), applies them to the
 * plan, `sync_state` and `writeback_errors` (results.ts) and marks the job collected in the same
 * transaction (bulk-results.ts), so a retried collect neither loses nor doubles a result. Records refused with
 * `UNABLE_TO_LOCK_ROW` are then retried serially through Collections, a bounded number of times.
 * What was sent is collected by the plan's records and the result files' headers: the task's
 * mapping is not checked against today's describe (a mapped field deleted since is the next
 * plan's to report), and the retry pass, which sends the stored payloads again, maps the key alone.
 *
 * A job's results are collected, and a retry call made, only while the invocation has the time to
 * see it through (budget.ts); else the step answers `bulk-pending` with a wait of
 * {@link HAND_ON_WAIT_SECONDS}, and the next Collect goes on from what is recorded.
 *
 * The retry pass (records a completed job gave no result line for, rows locked) starts only when
 * its fewest calls fit the run's API budget, as the plan checks the push's (api-budget.ts,
 * {@link retryPassBudgetProblem}); refused, it sends nothing, and the task fails saying why, its
 * records left for the task's next plan.
 */
import { bulkPollDelaySeconds } from '../../connectors/salesforce/poll';
import { getIngestJob, type IngestJob, isFinalIngestState } from '../../connectors/salesforce/writes';
import type { SalesforceConnector } from '../../connectors/salesforce';
import { salesforceOf, type CoreDeps } from '../deps';
import { withClient } from '../../connectors/postgres';
import type { WritebackTask } from '../../config';
import type { Logger } from '../../shared/logging';
import { RetryPassOverBudgetError, retryPassBudgetProblem } from './api-budget';
import { collectJob, finishedJob, type FinishedJob } from './bulk-results';
import { CallBudget } from './budget';
import type { WritebackCollectInput, WritebackCollectOutput } from './contracts';
import { mapWritebackTask, withApiCallsSoFar, withStepApiCalls } from './plan';
import { withTaskLock } from './lock';
import { finishWriteback, retryLockedRows, type PushOptions } from './push';
import { reportRecordsCreatedBeside, ROW_LOCK_RETRIES } from './results';
import { readRunSummary, writebackConfigPath, writebackTaskOf } from './state';

/** The wait before the next Collect when this one ran out of time: none worth the name. */
export const HAND_ON_WAIT_SECONDS = 1;

interface JobRecord {
  job_id: string;
  state: string;
  first_seq: string;
  last_seq: string;
  /** Records the job carries. */
  rows: number;
  collected_at: Date | null;
  records_processed: number | null;
  records_failed: number | null;
  error_message: string | null;
}

/** The job as a poll recorded it, when that poll found it finished (its counters recorded). */
function recordedFinishedJob(j: JobRecord): IngestJob | undefined {
  if (!isFinalIngestState(j.state) || j.records_processed === null || j.records_failed === null)
    return undefined;
  return {
    id: j.job_id,
    state: j.state as IngestJob['state'],
    numberRecordsProcessed: j.records_processed,
    numberRecordsFailed: j.records_failed,
    errorMessage: j.error_message ?? undefined,
  };
}

/**
 * Whether the ledger holds a record of the run's task with no outcome: waiting for a row-lock
 * retry, or sent by a retry call that died. Only then does Collect need the object's describe.
 */
async function anyWithoutOutcome(deps: CoreDeps, runId: string, taskName: string): Promise<boolean> {
  const { rowCount } = await deps.pg.query(
    `SELECT 1 FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2 AND status IN ('planned', 'sent') LIMIT 1`,
    [runId, taskName],
  );
  return (rowCount ?? 0) > 0;
}

/**
 * Refuses the retry pass, before its first call, when its fewest calls would pass the run's API
 * budget (api-budget.ts): records sent with no outcome known (`sent`: a completed Bulk job gave
 * no result line for them) and records waiting for a row-lock retry (`planned`, attempts counted).
 * The step's own calls so far count with the run's, which the summary records only at its end.
 */
async function checkRetryPass(
  deps: CoreDeps,
  sf: SalesforceConnector,
  task: WritebackTask,
  input: WritebackCollectInput,
  callsBefore: number,
  logger: Logger,
): Promise<void> {
  const { rows } = await deps.pg.query<{ unknown: string; waiting: string }>(
    `SELECT count(*) FILTER (WHERE status = 'sent') AS unknown,
            count(*) FILTER (WHERE status = 'planned' AND attempts > 0) AS waiting
       FROM roundtrip.writeback_plans WHERE run_id = $1 AND task = $2 AND status IN ('planned', 'sent')`,
    [input.runId, input.task],
  );
  const summary = await withClient(deps.pg, (client) => readRunSummary(client, input.runId));
  const budget = {
    config: deps.config,
    task,
    runId: input.runId,
    unknown: Number(rows[0]?.unknown ?? 0),
    waiting: Number(rows[0]?.waiting ?? 0),
    summary,
    stepCalls: sf.apiCalls - callsBefore,
  };
  const problem = retryPassBudgetProblem(budget);
  if (problem === undefined) return;
  logger.warn('Retry pass refused: it would pass the run’s API budget; its records are left as they are', {
    unknown: budget.unknown,
    waiting: budget.waiting,
  });
  throw new RetryPassOverBudgetError(`Write-back ${input.task}: ${problem}`);
}

/** Asks Salesforce for a job's state (one call) and records it. */
async function pollJob(
  deps: CoreDeps,
  sf: SalesforceConnector,
  input: WritebackCollectInput,
  jobId: string,
): Promise<IngestJob> {
  const job = await getIngestJob(sf, jobId);
  await deps.pg.query(
    `UPDATE roundtrip.writeback_jobs SET state = $4, records_processed = $5, records_failed = $6, error_message = $7,
            updated_at = now()
      WHERE run_id = $1 AND task = $2 AND job_id = $3`,
    [
      input.runId,
      input.task,
      job.id,
      job.state,
      job.numberRecordsProcessed,
      job.numberRecordsFailed,
      job.errorMessage ?? null,
    ],
  );
  return job;
}

/**
 * Polls the task's Bulk jobs and, once all are finished, collects their results (see the module
 * comment). Answers `bulk-pending` (wait `waitSeconds`, call again with this output) or
 * `collected` with the task's counts. Idempotent: collected jobs are skipped.
 */
export async function collectWriteback(
  deps: CoreDeps,
  input: WritebackCollectInput,
  options: Pick<PushOptions, 'lockRetries' | 'timeLeft'> = {},
): Promise<WritebackCollectOutput> {
  return withApiCallsSoFar(
    deps,
    await withTaskLock(deps, input.task, () => collectLocked(deps, input, options)),
  );
}

async function collectLocked(
  deps: CoreDeps,
  input: WritebackCollectInput,
  options: Pick<PushOptions, 'lockRetries' | 'timeLeft'>,
): Promise<WritebackCollectOutput> {
  const task = writebackTaskOf(deps, input.task);
  const logger = deps.logger.child({ runId: input.runId, task: input.task, step: 'writeback-collect' });
  const sf = await salesforceOf(deps, `Write-back ${input.task}`);
  const callsBefore = sf.apiCalls;
  const lockRetries = options.lockRetries ?? ROW_LOCK_RETRIES;
  // The calls spent are recorded whether the collect ends or fails; when it failed and the record
  // fails too (PostgreSQL down), the collect's own error is the one thrown.
  return withStepApiCalls(
    deps,
    sf,
    callsBefore,
    input,
    'collect',
    logger,
    async (): Promise<WritebackCollectOutput> => {
      const { rows: jobs } = await deps.pg.query<JobRecord>(
        `SELECT job_id, state, first_seq, last_seq, rows, collected_at, records_processed, records_failed, error_message
         FROM roundtrip.writeback_jobs
        WHERE run_id = $1 AND task = $2 AND api = 'bulk' AND state <> 'Superseded' ORDER BY chunk`,
        [input.runId, input.task],
      );
      const open = jobs.filter((j) => j.collected_at === null);
      const finished: FinishedJob[] = [];
      let running = 0;
      // Of the jobs still running: their records, and those Salesforce has processed so far.
      let runningRecords = 0;
      let recordsProcessed = 0;
      for (const j of open) {
        // A job an earlier Collect of this run found finished, and handed on before collecting: a
        // finished job changes no more, so what that poll recorded is Salesforce's answer still.
        // Asking again would cost each Collect that hands on a call per job left.
        const job = recordedFinishedJob(j) ?? (await pollJob(deps, sf, input, j.job_id));
        if (!isFinalIngestState(job.state)) {
          running += 1;
          runningRecords += j.rows;
          recordsProcessed += job.numberRecordsProcessed;
          continue;
        }
        finished.push(finishedJob(job, j));
      }
      if (running > 0) {
        const attempt = input.attempt + 1;
        logger.info('Bulk ingest jobs still running', {
          running,
          attempt,
          records: runningRecords,
          recordsProcessed,
        });
        return { ...input, attempt, waitSeconds: bulkPollDelaySeconds(attempt) };
      }
      const budget = new CallBudget(options.timeLeft, sf.timeouts);
      for (const job of finished) {
        if (!budget.mayStart('read')) break;
        await collectJob(deps, sf, input.runId, input.task, job, lockRetries, logger);
      }
      // Only once every job is collected: a job not collected yet leaves its records `sent`, which
      // the retry pass of an insert would take for records of a call that died.
      if (!budget.handedOn && (await anyWithoutOutcome(deps, input.runId, input.task))) {
        // Before any call of the pass, its describe included: refused, it makes none.
        await checkRetryPass(deps, sf, task, input, callsBefore, logger);
        // The retry pass sends again the payloads the plan stored, and needs only the key: what was
        // sent is collected whatever changed in the org since (a permission, a mapped field deleted:
        // the next plan reports that).
        const mapping = mapWritebackTask(task, await sf.describe(task.object), {
          checkAccess: false,
          keyOnly: true,
          configPath: writebackConfigPath(deps.config, task),
          step: 'collect',
        });
        await retryLockedRows(deps, sf, mapping, input.runId, input.task, { lockRetries, budget });
      }
      // Upserts Salesforce created beside a record the task had synced: their old records looked up.
      if (!budget.handedOn && task.mode === 'upsert') {
        await reportRecordsCreatedBeside(deps, sf, {
          runId: input.runId,
          task: input.task,
          object: task.object,
          keyField: task.key,
          budget,
        });
      }
      if (budget.handedOn) {
        logger.info('Collect handed on: too little time left in this invocation for another call', {
          attempt: input.attempt,
        });
        return { ...input, waitSeconds: HAND_ON_WAIT_SECONDS };
      }
      return await finishWriteback(deps, input.runId, task, input.task, 'bulk');
    },
  );
}
