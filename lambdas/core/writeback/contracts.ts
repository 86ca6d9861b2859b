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
  WritebackTaskSummary,
  ReportOutput,
} from '../contracts';
