/**
 * The Salesforce connector: sign-in from a secret, describe, COUNT(), REST query paging and Bulk
 * API 2.0 query jobs streamed as COPY CSV, error mapping, API usage. See connector.ts.
 */
export * from './auth';
export * from './connector';
export * from './constants';
export * from './csv';
export * from './errors';
export * from './json';
export * from './poll';
export * from './writes';
