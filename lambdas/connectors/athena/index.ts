/**
 * The Athena connector: start/poll queries, column metadata, the result file streamed from S3,
 * the GetQueryResults fallback, error mapping and cross-account role assumption.
 */
export * from './connector';
export * from './errors';
export * from './role';
export * from './tokens';
