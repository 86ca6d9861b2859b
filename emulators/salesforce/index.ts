/**
 * The Salesforce emulator: a local HTTP server that speaks Salesforce's SOAP login, OAuth 2,
 * REST, sObject Collections, Composite and Bulk API 2.0 wire protocols, so that jsforce and the
 * project's connectors run against it unchanged. See docs/salesforce-emulator.md.
 *
 * @example
 * const sf = await startSalesforceEmulator({ seed: { Lead: [{ LastName: 'Ng', Company: 'Acme' }] } });
 * const conn = new Connection({ loginUrl: sf.loginUrl, version: sf.apiVersion });
 * await conn.login(sf.credentials.username, sf.credentials.password);
 * …
 * await sf.stop();
 */
export {
  startSalesforceEmulator,
  CALLS_PATH,
  FAULTS_CONTROL_PATH,
  PROXY_BAD_REQUEST_PAGE,
  DEFAULT_API_VERSION,
  DEFAULT_API_VERSIONS,
  type SalesforceEmulator,
  type SalesforceEmulatorOptions,
} from './server';
export { DEFAULT_CREDENTIALS, JWT_BEARER_GRANT, type SalesforceCredentials } from './auth';
export { DEFAULT_DESCRIBES_DIR } from './describe';
export {
  FaultController,
  FAULT_NAMES,
  InvalidFaultError,
  UNABLE_TO_LOCK_ROW_MESSAGE,
  DEFAULT_FAILED_JOB_MESSAGE,
  type SalesforceFaults,
} from './faults';
export {
  CallLog,
  DEVELOPER_EDITION_DAILY_API_REQUESTS,
  type CallLogEntry,
  type CallFilter,
  type CallOperation,
} from './calls';
export { loadSeed, seedFromData, SeedError, type SeedData } from './seed';
export { COLLECTIONS_MAX_RECORDS, COMPOSITE_MAX_SUBREQUESTS, QUERY_BATCH_SIZE } from './rest';
export {
  BULK_INGEST_MAX_UPLOAD_BYTES,
  BULK_QUERY_DEFAULT_PAGE_RECORDS,
  BULK_PROCESSING_SLICE_RECORDS,
} from './bulk';
export { JSON_CONTENT_TYPE, CSV_CONTENT_TYPE } from './http';
export type { SalesforceStore, SfRecord, SfValue, SaveResult, RecordError } from './store';
export type { ObjectDescribe, FieldDescribe } from './describe';
