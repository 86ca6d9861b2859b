/**
 * The write-back steps' contracts, re-exported from lambdas/core/contracts.ts (the one place of
 * step contracts) so that the write-back modules keep importing them from beside them.
 */
export {
  WritebackApi,
  WritebackPlanInput,
  PlanSampleRow,
  HELD_BACK_CODES,
  WritebackPlanOutput,
  WritebackPushInput,
  WritebackBulkPending,
  WritebackPushPending,
  WritebackCollected,
  WritebackPushOutput,
  WritebackCollectInput,
  WritebackCollectOutput,
  ReportInput,
  TaskFailureInput,
  TaskFailureOutput,
  WritebackTaskSummary,
  ReportOutput,
  MAX_TASK_ERROR_CHARS,
  MAX_FAILED_TASKS_CAUSE_CHARS,
  MAX_REPORTED_REASON_CHARS,
  CaughtError,
} from '../contracts';
