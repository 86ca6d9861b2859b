/**
 * What the steps need to know of the connector's calls without loading the connector, whose
 * module loads jsforce (about 45 ms of a Lambda's cold start, for steps that sign in only on first
 * use): how often a GET is sent, and the path of a query's next page. connector.ts re-exports both.
 */
import { TerminalError } from '../../shared/errors';

/** Sends of a GET (describe, COUNT(), a job's state, limits) before its failure is the step's. */
export const GET_ATTEMPTS = 3;

/**
 * A `nextRecordsUrl` (`/services/data/vNN.N/query/<locator>`, relative to the instance) as a path
 * relative to the versioned API base that `fetchWithSession` prefixes.
 */
export function apiRelative(nextRecordsUrl: string): string {
  const m = /^\/services\/data\/v\d+\.\d+(\/.*)$/.exec(nextRecordsUrl);
  if (!m?.[1]) {
    throw new TerminalError(`Salesforce answered a nextRecordsUrl of an unexpected form: ${nextRecordsUrl}`);
  }
  return m[1];
}
