/** SOQL error codes the emulator raises (REST: HTTP 400 `[{message, errorCode}]`). */
export type SoqlErrorCode =
  'MALFORMED_QUERY' | 'INVALID_FIELD' | 'INVALID_TYPE' | 'INVALID_QUERY_FILTER_OPERATOR';

/** A query that Salesforce would reject as a whole; `errorCode` is the wire `errorCode`. */
export class SoqlError extends Error {
  constructor(
    readonly errorCode: SoqlErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SoqlError';
  }
}
