/**
 * The write-back steps' contracts (plan → push → [wait → collect]* → report), as zod schemas with
 * their inferred types. Only small JSON: ids, counts, job ids, and a dry run's short sample.
 * To be merged into lambdas/core/contracts.ts, the one place of step contracts.
 */
import { z } from 'zod';
import { RunId, TaskName } from '../contracts';

/** Which API a push uses: none when nothing changed. */
export const WritebackApi = z.enum(['collections', 'bulk', 'none']);
export type WritebackApi = z.infer<typeof WritebackApi>;

/** The Plan step's input. */
export const WritebackPlanInput = z.strictObject({
  runId: RunId,
  task: TaskName,
  /** Stop after the plan: nothing is sent. */
  dryRun: z.boolean().default(false),
});
export type WritebackPlanInput = z.input<typeof WritebackPlanInput>;

/** One row of a dry run's sample: what Salesforce has and what would be sent. */
export const PlanSampleRow = z.strictObject({
  key: z.string(),
  salesforceId: z.string().nullable(),
  current: z.record(z.string(), z.unknown()).nullable(),
  next: z.record(z.string(), z.unknown()),
});
export type PlanSampleRow = z.infer<typeof PlanSampleRow>;

/** What the Plan step returns. */
export const WritebackPlanOutput = z.strictObject({
  runId: RunId,
  task: TaskName,
  /** `dry-run`: stopped here on purpose; `planned`: push next (api `none`: nothing to send). */
  status: z.enum(['planned', 'dry-run']),
  api: WritebackApi,
  /** Rows read from the source table or view. */
  sourceRows: z.number().int().nonnegative(),
  /** Rows refused before any API call (in roundtrip.writeback_errors, stage `plan`). */
  rejected: z.number().int().nonnegative(),
  /** Rows whose mapped values Salesforce already has. */
  unchanged: z.number().int().nonnegative(),
  /** Rows to send. */
  changed: z.number().int().nonnegative(),
  /** What the diff compared with: `extract:<table>` or `sync_state`. */
  comparedWith: z.string(),
  /** Dry run only: the first rows of the plan, in key order. */
  sample: z.array(PlanSampleRow).optional(),
});
export type WritebackPlanOutput = z.infer<typeof WritebackPlanOutput>;

/** The Push step's input. */
export const WritebackPushInput = z.strictObject({ runId: RunId, task: TaskName });
export type WritebackPushInput = z.input<typeof WritebackPushInput>;

/** Bulk ingest jobs still running: the state machine Waits `waitSeconds`, then calls Collect with this. */
export const WritebackBulkPending = z.strictObject({
  status: z.literal('bulk-pending'),
  runId: RunId,
  task: TaskName,
  jobIds: z.array(z.string().regex(/^[A-Za-z0-9]{15,18}$/, 'expected a Salesforce Bulk job id')).min(1),
  /** Polls made so far. */
  attempt: z.number().int().nonnegative(),
  waitSeconds: z.number().int().positive(),
});
export type WritebackBulkPending = z.infer<typeof WritebackBulkPending>;

/** Every result is in PostgreSQL: counts of the task's push. */
export const WritebackCollected = z.strictObject({
  status: z.literal('collected'),
  runId: RunId,
  task: TaskName,
  api: WritebackApi,
  /** Records in the plan. */
  planned: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  /** Records Salesforce refused (after the row-lock retries). */
  failed: z.number().int().nonnegative(),
  failureRate: z.number().min(0).max(1),
  maxFailureRate: z.number().min(0).max(1),
  /** The run fails after the report when true. */
  failureRateExceeded: z.boolean(),
});
export type WritebackCollected = z.infer<typeof WritebackCollected>;

/** What Push and Collect return. */
export const WritebackPushOutput = z.discriminatedUnion('status', [WritebackBulkPending, WritebackCollected]);
export type WritebackPushOutput = z.infer<typeof WritebackPushOutput>;

/** Collect's input: the pending output of Push or of the previous Collect. */
export const WritebackCollectInput = WritebackBulkPending;
export type WritebackCollectInput = WritebackBulkPending;

/** What Collect returns (the same union as Push). */
export const WritebackCollectOutput = WritebackPushOutput;
export type WritebackCollectOutput = WritebackPushOutput;

/** The Report step's input: the run, and the error that stopped it when one did. */
export const ReportInput = z.strictObject({
  runId: RunId,
  /** From the state machine's Catch (`$.error`): `{ Error, Cause }`. */
  error: z.looseObject({ Error: z.string().optional(), Cause: z.string().optional() }).optional(),
});
export type ReportInput = z.input<typeof ReportInput>;

/** Per write-back task, as written to the run's summary. */
export const WritebackTaskSummary = z.strictObject({
  sourceRows: z.number().int().nonnegative(),
  rejected: z.number().int().nonnegative(),
  unchanged: z.number().int().nonnegative(),
  changed: z.number().int().nonnegative(),
  written: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  apiCalls: z.number().int().nonnegative(),
  api: WritebackApi,
  durationMs: z.number().int().nonnegative(),
  failureRateExceeded: z.boolean(),
});
export type WritebackTaskSummary = z.infer<typeof WritebackTaskSummary>;

/** What Report returns: the run's final status. */
export const ReportOutput = z.strictObject({
  runId: RunId,
  status: z.enum(['succeeded', 'failed']),
  /** Why it failed, when it did. */
  reason: z.string().optional(),
  writeback: z.record(z.string(), WritebackTaskSummary),
});
export type ReportOutput = z.infer<typeof ReportOutput>;
