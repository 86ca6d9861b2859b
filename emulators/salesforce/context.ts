/**
 * What every endpoint of the emulator shares: the store, sessions, the call log, the usage
 * counter and the faults. Built once by `startSalesforceEmulator`.
 */
import type { AuthService } from './auth';
import type { ApiUsage, CallLog } from './calls';
import type { FaultController } from './faults';
import type { SalesforceStore } from './store';

/** Counters of the Bulk API allocations that `/limits` reports. */
export interface BulkUsage {
  /** Bulk API 2.0 query jobs created today. */
  queryJobs: number;
  /** Ingest batches processed today (Salesforce counts one per 10,000 records). */
  ingestBatches: number;
}

/** The shared state of one emulator. */
export interface EmulatorContext {
  readonly store: SalesforceStore;
  readonly auth: AuthService;
  readonly calls: CallLog;
  readonly faults: FaultController;
  readonly usage: ApiUsage;
  readonly bulkUsage: BulkUsage;
  /** API versions served, e.g. `['62.0', …]`. */
  readonly apiVersions: readonly string[];
}

/** The `attributes.url` / Location of a record. */
export function recordUrl(version: string, objectName: string, id: string): string {
  return `/services/data/v${version}/sobjects/${objectName}/${id}`;
}
