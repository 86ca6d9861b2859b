/**
 * The steps of a run (DESIGN.md §1). Each takes its step input and {@link CoreDeps}; the Lambda
 * handlers, the CLI and the tests call them with the dependencies they build.
 */
export * from './contracts';
export * from './deps';
export * from './prepare';
export * from './extract-salesforce';
export * from './extract-athena';
export * from './run-extract';
export {
  WATERMARK_FIELD,
  DELETED_FIELD,
  ID_FIELD,
  REST_QUERY_PAGE_ROWS,
  FORECAST_BULK_JOB_SECONDS,
  chooseReadApi,
  forecastReadCalls,
  planSalesforceRead,
  readFilter,
  resolveFields,
  soqlDatetime,
  type SalesforceReadPlan,
} from './salesforce-read';
