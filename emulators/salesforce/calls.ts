/**
 * The emulator's call log and its API-usage counter.
 *
 * Counting follows Salesforce's "API Request Limits and Allocations": every REST and Bulk API 2.0
 * call made with a session counts, status polls included; the login itself (SOAP `login()` or an
 * OAuth token request) does not (unverified: Salesforce documents OAuth token requests as not
 * counted; we treat SOAP login the same). Calls rejected before they run (401 expired session,
 * 403 REQUEST_LIMIT_EXCEEDED, an injected 503) are not counted either.
 */

/** What a logged call did. The list grows with the endpoints; strings, not an enum, on purpose. */
export type CallOperation =
  | 'login'
  | 'logout'
  | 'oauth.token'
  | 'oauth.authorize'
  | 'oauth.revoke'
  | 'identity'
  | 'versions'
  | 'resources'
  | 'describeGlobal'
  | 'describe'
  | 'sobject.info'
  | 'query'
  | 'queryAll'
  | 'queryMore'
  | 'limits'
  | 'collections.create'
  | 'collections.update'
  | 'collections.upsert'
  | 'collections.delete'
  | 'collections.retrieve'
  | 'composite'
  | 'sobject.create'
  | 'sobject.retrieve'
  | 'sobject.update'
  | 'sobject.upsert'
  | 'sobject.delete'
  | 'bulk.ingest.create'
  | 'bulk.ingest.upload'
  | 'bulk.ingest.close'
  | 'bulk.ingest.abort'
  | 'bulk.ingest.poll'
  | 'bulk.ingest.list'
  | 'bulk.ingest.delete'
  | 'bulk.ingest.results'
  | 'bulk.query.create'
  | 'bulk.query.abort'
  | 'bulk.query.poll'
  | 'bulk.query.list'
  | 'bulk.query.delete'
  | 'bulk.query.results'
  | 'unknown';

/** One call the emulator answered. */
export interface CallLogEntry {
  /** 1, 2, 3… in arrival order. */
  readonly seq: number;
  /** When the call arrived. */
  readonly at: Date;
  readonly method: string;
  /** The path, without the query string. */
  readonly path: string;
  operation: CallOperation;
  /** True for calls that change data (creates, updates, deletes, Bulk ingest uploads). */
  readonly write: boolean;
  /** The HTTP status answered. */
  status: number;
  /** Records sent (writes) or returned (reads), when the call carries records. */
  records?: number;
  /** Whether the call counted against the daily API allowance. */
  counted: boolean;
}

/** A filter for {@link CallLog.count}: the fields to match, or a predicate. */
export type CallFilter = Partial<Pick<CallLogEntry, 'operation' | 'method' | 'write' | 'status' | 'counted'>>;

/** Every call the emulator answered, in order. */
export class CallLog {
  private readonly entries: CallLogEntry[] = [];
  private nextSeq = 1;

  /** @internal */
  start(method: string, path: string, operation: CallOperation, write: boolean): CallLogEntry {
    const entry: CallLogEntry = {
      seq: this.nextSeq++,
      at: new Date(),
      method,
      path,
      operation,
      write,
      status: 0,
      counted: false,
    };
    this.entries.push(entry);
    return entry;
  }

  /** All entries (a copy of the list; entries are the live objects). */
  all(): CallLogEntry[] {
    return [...this.entries];
  }

  /** The calls that changed data. */
  writes(): CallLogEntry[] {
    return this.entries.filter((e) => e.write);
  }

  /** How many calls match the filter (all calls without one). */
  count(filter?: CallFilter | ((entry: CallLogEntry) => boolean)): number {
    if (!filter) return this.entries.length;
    if (typeof filter === 'function') return this.entries.filter(filter).length;
    return this.entries.filter((e) =>
      (Object.keys(filter) as (keyof CallFilter)[]).every((k) => e[k] === filter[k]),
    ).length;
  }

  /** Forgets every entry (sequence numbers keep growing). */
  clear(): void {
    this.entries.length = 0;
  }
}

/** Developer Edition's daily allowance of API requests (salesforce-wire.md, "Limits"). */
export const DEVELOPER_EDITION_DAILY_API_REQUESTS = 15_000;

/** The daily API allowance and what has been spent of it. */
export class ApiUsage {
  used = 0;
  constructor(public max: number = DEVELOPER_EDITION_DAILY_API_REQUESTS) {}

  /** True when no call is left. */
  get exhausted(): boolean {
    return this.used >= this.max;
  }

  /** `api-usage=USED/MAX`, the value of the `Sforce-Limit-Info` header. */
  header(): string {
    return `api-usage=${this.used}/${this.max}`;
  }

  /** Starts a new day: usage back to zero. */
  reset(): void {
    this.used = 0;
  }
}
