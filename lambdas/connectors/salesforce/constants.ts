/**
 * Numbers and names fixed by Salesforce, each with the document that states it.
 */

/** The API version used when the config names none. jsforce's own default (50.0) is too old for Collections upsert. */
export const DEFAULT_SALESFORCE_API_VERSION = '62.0';

/**
 * REST query page size bounds for `Sforce-Query-Options: batchSize=` (200 to 2,000; default 2,000,
 * "not guaranteed"). https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_queryoptions.htm
 */
export const REST_QUERY_MIN_BATCH_SIZE = 200;
export const REST_QUERY_MAX_BATCH_SIZE = 2_000;

/**
 * The longest query URL path (`/query?q=` and the encoded SOQL) sent as a GET. Salesforce takes at
 * most 16,384 bytes of URI and headers in a call, answers a longer one 414 URI Too Long or 431
 * Request Header Fields Too Large, and advises putting a longer query in the body of a Composite
 * request (Help article 000386264, "Maximum number of rows returned by SOQL queries over the REST
 * API"). Half of it: the base URL, the session and the other headers fit in the rest.
 */
export const REST_QUERY_URL_MAX_CHARS = 8_000;

/**
 * Rows per Bulk API 2.0 query results page asked with `maxRecords`. The results are streamed, so
 * the page size does not change memory; larger pages cost fewer API calls (each page is one call).
 * https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm
 */
export const DEFAULT_BULK_RESULT_PAGE_RECORDS = 500_000;

/** The expiry of a JWT bearer assertion: "exp … within 3 minutes". https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm */
export const JWT_ASSERTION_LIFETIME_SECONDS = 180;

/** The OAuth 2.0 JWT bearer grant type (RFC 7523). */
export const JWT_BEARER_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** Bulk API 2.0 `Sforce-Locator` value on the last page. https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_job_results.htm */
export const LAST_PAGE_LOCATOR = 'null';

/** Bulk API 2.0 query job states. https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/query_get_one_job.htm */
export const BULK_QUERY_JOB_STATES = [
  'UploadComplete',
  'InProgress',
  'Aborted',
  'JobComplete',
  'Failed',
] as const;
export type BulkQueryJobState = (typeof BULK_QUERY_JOB_STATES)[number];
