/**
 * The zod schema of a pipeline config: the shape of every section, the rules on single
 * values (a cron expression, a time zone, an ARN, an identifier) and the defaults. Rules that
 * relate several parts of the config (an `upsert` needs a key, two tasks cannot write one
 * table, …) live in rules.ts. Each schema carries the text of what it expects, so that
 * issues.ts can say `<path>: expected <what>, got <what was there>`.
 */
import path from 'node:path';
import * as z from 'zod';
import { noProxyDomain } from '../shared/proxy';
import { COMPLETE, describeValue, expected, objectError, siblingPath } from './issues';
import { cronExpressionProblem, rateExpressionProblem } from './schedule-expression';
import type {
  AthenaExtractTask,
  PipelineConfig,
  PipelineConfigInput,
  SalesforceExtractTask,
  WritebackTask,
} from './types';

/** Every default of the config in one place (docs/configuration.md lists the same). */
export const CONFIG_DEFAULTS = {
  timezone: 'UTC',
  scheduleEnabled: true,
  salesforceApiVersion: '62.0',
  athenaWorkgroup: 'primary',
  athenaCatalog: 'AwsDataCatalog',
  athenaResults: 's3',
  // Athena's default DML query timeout is 30 minutes (Athena service quotas, "DML query
  // timeout"): a query may queue for a while first, 2 minutes more.
  athenaQueryTimeoutMinutes: 32,
  postgresSchema: 'public',
  postgresSslMode: 'verify-full',
  extractMode: 'incremental',
  extractDeletes: 'flag',
  athenaDuplicateKeys: 'keep-last',
  extractOverlapSeconds: 300,
  // From this many rows (a `COUNT()` first) a read uses a Bulk API 2.0 query job instead of REST
  // paging. REST costs one call per 2,000 rows; a Bulk job one create, a handful of polls and one
  // call per result page, and counts against the 10,000 query jobs a day: at 10,000 rows REST
  // costs 5 calls and a short Bulk job about the same.
  extractBulkThreshold: 10_000,
  writebackMaxFailureRate: 0.05,
  writebackMaxRejectRate: 0.05,
  writebackBulkThreshold: 2_000,
  maxApiCallsPerRun: 5_000,
  reserveDailyApiPercent: 20,
  keepRunDetailsDays: 30,
} as const;

/** `postgres.keepRunDetailsDays` upper bound: ten years. */
export const MAX_KEEP_RUN_DETAILS_DAYS = 3650;

/**
 * sObject Collections upsert exists from API version 46.0 on (Salesforce REST API Developer
 * Guide, "Upsert Multiple Records with Fewer Round-Trips"); below it jsforce falls back to
 * one call per record (salesforce-wire.md).
 */
export const MIN_SALESFORCE_API_VERSION = 46;

/**
 * PostgreSQL truncates identifiers longer than NAMEDATALEN-1 = 63 bytes (PostgreSQL docs,
 * "Identifiers and Key Words"): a longer name would silently address another table.
 */
export const POSTGRES_MAX_IDENTIFIER_BYTES = 63;

/**
 * EventBridge Scheduler RetryPolicy limits (Scheduler API reference, "RetryPolicy"):
 * MaximumRetryAttempts 0-185, MaximumEventAgeInSeconds 60-86400.
 */
export const SCHEDULER_MAX_RETRY_ATTEMPTS = 185;
export const SCHEDULER_MIN_EVENT_AGE_SECONDS = 60;
export const SCHEDULER_MAX_EVENT_AGE_SECONDS = 86_400;

/** The longest pipeline name: it prefixes AWS resource names (Lambda names stop at 64 characters). */
export const MAX_PIPELINE_NAME_LENGTH = 32;

/**
 * The retention periods CloudWatch Logs accepts, in days (CloudWatch Logs API reference,
 * PutRetentionPolicy, `retentionInDays`).
 */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/**
 * The longest `athena.queryTimeoutMinutes`. Athena lets a DML query run up to 240 minutes at most
 * (service quotas, "DML query timeout"), but a task may run up to 4 queries (a retryable failure is
 * rerun, ATHENA_MAX_QUERIES_PER_TASK), all within the run's 12 hours (RUN_TIMEOUT_HOURS) beside
 * the write-backs: 4 × 120 minutes leaves 4 hours for the rest.
 */
export const MAX_ATHENA_QUERY_TIMEOUT_MINUTES = 120;

/** The longest `athena.resultsExpireDays`: ten years of query results is an archive, not a cache. */
export const MAX_RESULTS_EXPIRE_DAYS = 3_650;

/** `overlapSeconds` upper bound: more than a day of overlap means the watermark is not doing its job. */
export const MAX_OVERLAP_SECONDS = 86_400;

// ---------------------------------------------------------------------------------------
// Value rules, exported for rules.ts and the tests.

const PIPELINE_NAME = /^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$/;
export const TASK_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** Salesforce API names: a letter, then letters, digits and underscores (`LeadScore__c`, `ns__Obj__c`). */
const SALESFORCE_API_NAME = /^[A-Za-z][A-Za-z0-9_]{0,79}$/;
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const S3_URL = /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:\/.*)?$/;
/** Athena API patterns: WorkGroup `[a-zA-Z0-9._-]{1,128}`; catalogs 1-127 of letters, digits, `_@-`. */
const ATHENA_WORKGROUP = /^[A-Za-z0-9._-]{1,128}$/;
const ATHENA_CATALOG = /^[A-Za-z0-9_@-]{1,127}$/;
const ATHENA_DATABASE = /^[A-Za-z0-9_-]{1,255}$/;
/** AWS resource ids (EC2 API: `vpc-`, `subnet-`, `sg-` followed by 8 or 17 hex digits). */
const VPC_ID = /^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$/;
const SUBNET_ID = /^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$/;
const SECURITY_GROUP_ID = /^sg-[0-9a-f]{8}(?:[0-9a-f]{9})?$/;
/** A KMS key ARN (an alias ARN cannot be the resource of an IAM policy statement for decrypt). */
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/(?:mrk-)?[0-9a-f-]{32,36}$/;
/** Glue table names (Glue API, "Table structure": 1-255 characters, lowercase in the catalog). */
const GLUE_TABLE = /^[A-Za-z0-9_-]{1,255}$/;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f]/;

/** Whether a string is a Salesforce API name. */
export function isSalesforceApiName(value: string): boolean {
  return SALESFORCE_API_NAME.test(value);
}

/** What is wrong with one PostgreSQL identifier (quoted later, so any character but control ones). */
function identifierPartProblem(part: string): string | undefined {
  if (part.length === 0) return 'an empty name';
  if (part.trim() !== part) return 'leading or trailing spaces';
  if (CONTROL_CHARACTERS.test(part)) return 'a control character';
  const bytes = Buffer.byteLength(part, 'utf8');
  if (bytes > POSTGRES_MAX_IDENTIFIER_BYTES)
    return `${bytes} bytes (at most ${POSTGRES_MAX_IDENTIFIER_BYTES})`;
  return undefined;
}

/** Whether a string can name a column: non-empty, at most 63 bytes. */
export function isColumnName(value: string): boolean {
  return identifierPartProblem(value) === undefined;
}

/** Whether a string can name a table: `name` or `schema.name`, each part a valid identifier. */
export function isTableName(value: string): boolean {
  const parts = value.split('.');
  return parts.length <= 2 && parts.every((p) => identifierPartProblem(p) === undefined);
}

/** Whether the runtime knows this IANA time zone (and it is a name, not an offset like `+09:00`). */
export function isTimeZone(value: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/.test(value)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value });
    return true;
  } catch {
    return false;
  }
}

/**
 * A time zone the runtime knows ({@link isTimeZone}) as EventBridge Scheduler takes it: spelt as
 * the IANA database spells it. `Intl` finds a zone by its name in any case, so `asia/tokyo` passes
 * {@link isTimeZone}, and Scheduler, which takes the name as spelt, would refuse it at deploy time.
 * A name that differs from the zone the runtime resolves it to only in case is given that zone's
 * spelling (`Asia/Tokyo`, `UTC`). Another name of the zone (a link: `Asia/Kolkata`, which Node 20
 * resolves to `Asia/Calcutta`, later versions not; `Etc/UTC`, `US/Pacific`) stays as written when
 * each of its parts starts with a capital letter, as every IANA name does; written otherwise
 * (`us/pacific`), the zone's name the runtime gives replaces it (`America/Los_Angeles`): the same
 * zone, spelt as Scheduler takes it. Applying it again changes nothing, so the config the functions
 * validate at cold start (lib/bundled-config.ts) keeps it.
 */
export function canonicalTimeZone(value: string): string {
  const resolved = new Intl.DateTimeFormat('en-US', { timeZone: value }).resolvedOptions().timeZone;
  if (resolved.toLowerCase() === value.toLowerCase()) return resolved;
  return value.split('/').every((part) => /^[A-Z]/.test(part)) ? value : resolved;
}

function isSecretReference(value: string): boolean {
  return value.startsWith('arn:') ? SECRET_ARN.test(value) : SECRET_NAME.test(value);
}

/**
 * A proxy's URL for the deployed functions: `http://` or `https://`, a host, an optional port,
 * nothing else. No user name or password: they would sit in plain text in the config and in every
 * function's configuration (the credentials roundtrip keeps are Secrets Manager's).
 */
function isProxyUrl(value: string): boolean {
  const url = urlWithoutCredentials(value);
  if (url === undefined) return false;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  return url.hostname !== '' && (url.pathname === '/' || url.pathname === '') && !url.search && !url.hash;
}

/** A `NO_PROXY` entry: `*`, a host or an IP address, or a domain (`.example.com`, `*.example.com`), an optional port. */
const NO_PROXY_ENTRY = /^(?:\*|(?:\*\.|\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::\d{1,5})?)$/;

/** `value` parsed as a URL, or undefined when it is not one or holds a user name or password. */
function urlWithoutCredentials(value: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  return url.username || url.password ? undefined : url;
}

function isLoginUrl(value: string): boolean {
  // No user name or password: the URL is logged and shown in messages, the credentials are the secret's.
  const url = urlWithoutCredentials(value);
  if (url === undefined) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
}

// ---------------------------------------------------------------------------------------
// Schema building blocks.

/** A string that must pass `valid`; every failure reads `expected <what>`. */
function text(what: string, valid: (value: string) => boolean = (v) => v.length > 0) {
  return z.string({ error: expected(what) }).refine(valid, { error: what });
}

/** A whole number in [min, max]. */
function wholeNumber(what: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return z
    .number({ error: expected(what) })
    .int()
    .min(min)
    .max(max);
}

/** A number in [min, max]. */
function decimal(what: string, min: number, max: number) {
  return z
    .number({ error: expected(what) })
    .min(min)
    .max(max);
}

/** A strict object: unknown keys are errors that list the keys it knows. */
function section<Shape extends z.ZodRawShape>(what: string, shape: Shape) {
  return z.strictObject(shape, { error: objectError(what, Object.keys(shape)) });
}

const secret = text('a Secrets Manager secret name or ARN', isSecretReference);
const tableName = text(
  `a table name, "name" or "schema.name", each part 1-${POSTGRES_MAX_IDENTIFIER_BYTES} bytes`,
  isTableName,
);
const columnName = text(`a column name of 1-${POSTGRES_MAX_IDENTIFIER_BYTES} bytes`, isColumnName);
const objectName = text('a Salesforce object API name such as "Lead" or "Invoice__c"', isSalesforceApiName);
const fieldName = text('a Salesforce field API name such as "Email" or "LeadScore__c"', isSalesforceApiName);
const taskName = text('a task name: a letter, then up to 63 letters, digits, "_", "." or "-"', (v) =>
  TASK_NAME.test(v),
);

const CRON_TEXT =
  'an EventBridge Scheduler cron expression (minutes hours day-of-month month day-of-week year)';
const RATE_TEXT = 'an EventBridge Scheduler rate expression such as "5 minutes" or "rate(1 hour)"';

/** A string checked by a function that says what is wrong with it. */
function explained(what: string, problem: (value: string) => string | undefined) {
  return z.string({ error: expected(what) }).superRefine((value, ctx) => {
    const found = problem(value);
    if (found) {
      ctx.addIssue({
        code: 'custom',
        message: `expected ${what}, got ${describeValue(value)}: ${found}`,
        params: COMPLETE,
      });
    }
  });
}

const apiVersion = explained('a Salesforce API version such as "62.0"', (value) => {
  if (!/^\d{2,3}\.0$/.test(value)) return 'it must look like "NN.0"';
  if (Number(value) < MIN_SALESFORCE_API_VERSION) {
    return `${MIN_SALESFORCE_API_VERSION}.0 or later is needed (sObject Collections upsert)`;
  }
  return undefined;
});

// ---------------------------------------------------------------------------------------
// Sections.

const scheduleSchema = section('an object with "cron" or "rate" and an optional "timezone"', {
  cron: explained(CRON_TEXT, cronExpressionProblem).optional(),
  rate: explained(RATE_TEXT, rateExpressionProblem).optional(),
  timezone: text('an IANA time zone name such as "Europe/Berlin" or "UTC"', isTimeZone)
    .transform(canonicalTimeZone)
    .default(CONFIG_DEFAULTS.timezone),
  enabled: z.boolean({ error: expected('true or false') }).default(CONFIG_DEFAULTS.scheduleEnabled),
  retries: wholeNumber(
    `a whole number from 0 to ${SCHEDULER_MAX_RETRY_ATTEMPTS}`,
    0,
    SCHEDULER_MAX_RETRY_ATTEMPTS,
  ).optional(),
  maximumEventAgeSeconds: wholeNumber(
    `a whole number of seconds from ${SCHEDULER_MIN_EVENT_AGE_SECONDS} to ${SCHEDULER_MAX_EVENT_AGE_SECONDS}`,
    SCHEDULER_MIN_EVENT_AGE_SECONDS,
    SCHEDULER_MAX_EVENT_AGE_SECONDS,
  ).optional(),
  deadLetterQueue: z.boolean({ error: expected('true or false') }).optional(),
}).superRefine((schedule, ctx) => {
  if ((schedule.cron === undefined) === (schedule.rate === undefined)) {
    const both = schedule.cron !== undefined;
    ctx.addIssue({
      code: 'custom',
      message: `expected exactly one of "cron" and "rate", got ${both ? 'both' : 'neither'}`,
      params: COMPLETE,
    });
  }
});

const salesforceSchema = section('an object with at least "secret"', {
  secret,
  apiVersion: apiVersion.default(CONFIG_DEFAULTS.salesforceApiVersion),
  loginUrl: text(
    'an https URL (http only for localhost) without a user name or password',
    isLoginUrl,
  ).optional(),
});

const athenaSchema = section('an object with at least "database"', {
  database: text('an Athena database name (letters, digits, "_" or "-")', (v) => ATHENA_DATABASE.test(v)),
  workgroup: text('an Athena workgroup name (1-128 letters, digits, ".", "_" or "-")', (v) =>
    ATHENA_WORKGROUP.test(v),
  ).default(CONFIG_DEFAULTS.athenaWorkgroup),
  catalog: text('a data catalog name (1-127 letters, digits, "_", "@" or "-")', (v) =>
    ATHENA_CATALOG.test(v),
  ).default(CONFIG_DEFAULTS.athenaCatalog),
  outputLocation: text('an S3 URL such as "s3://bucket/athena-results/"', (v) => S3_URL.test(v)).optional(),
  roleArn: text('an IAM role ARN such as "arn:aws:iam::123456789012:role/name"', (v) =>
    ROLE_ARN.test(v),
  ).optional(),
  results: z.enum(['s3', 'api']).default(CONFIG_DEFAULTS.athenaResults),
  queryTimeoutMinutes: wholeNumber(
    `a whole number of minutes from 1 to ${MAX_ATHENA_QUERY_TIMEOUT_MINUTES}`,
    1,
    MAX_ATHENA_QUERY_TIMEOUT_MINUTES,
  ).default(CONFIG_DEFAULTS.athenaQueryTimeoutMinutes),
  resultsKmsKeyArn: text(
    'a KMS key ARN such as "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"',
    (v) => KMS_KEY_ARN.test(v),
  ).optional(),
  createWorkgroup: z.boolean({ error: expected('true or false') }).optional(),
  resultsExpireDays: wholeNumber(
    `a whole number of days from 1 to ${MAX_RESULTS_EXPIRE_DAYS}`,
    1,
    MAX_RESULTS_EXPIRE_DAYS,
  ).optional(),
  tables: z
    .array(
      text('a Glue table name (letters, digits, "_" or "-")', (v) => GLUE_TABLE.test(v)),
      { error: expected('a list of Glue table names') },
    )
    .min(1)
    .superRefine((tables, ctx) => noRepeats(tables, ctx, 'table', (t) => t.toLowerCase()))
    .optional(),
  dataLocations: z
    .array(
      text('an S3 URL such as "s3://data-lake/customers/"', (v) => S3_URL.test(v)),
      { error: expected('a list of S3 URLs') },
    )
    .min(1)
    .superRefine((locations, ctx) => noRepeats(locations, ctx, 'location'))
    .optional(),
  dataKmsKeyArns: z
    .array(
      text(
        'a KMS key ARN such as "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"',
        (v) => KMS_KEY_ARN.test(v),
      ),
      { error: expected('a list of KMS key ARNs') },
    )
    .min(1)
    .superRefine((keys, ctx) => noRepeats(keys, ctx, 'key'))
    .optional(),
});

const postgresSchema = section('an object with at least "secret"', {
  secret,
  schema: text(`a schema name of 1-${POSTGRES_MAX_IDENTIFIER_BYTES} bytes`, isColumnName).default(
    CONFIG_DEFAULTS.postgresSchema,
  ),
  ssl: section('an object with "mode" and an optional "caBundle"', {
    mode: z.enum(['verify-full', 'require', 'disable']).default(CONFIG_DEFAULTS.postgresSslMode),
    caBundle: text('the path of a PEM file of CA certificates').optional(),
  }).prefault({}),
  keepRunDetailsDays: wholeNumber(
    `a whole number of days from 1 to ${MAX_KEEP_RUN_DETAILS_DAYS}`,
    1,
    MAX_KEEP_RUN_DETAILS_DAYS,
  ).default(CONFIG_DEFAULTS.keepRunDetailsDays),
});

/** Reports the entries of a list that repeat an earlier one (compared by `keyOf`). */
function noRepeats(items: readonly string[], ctx: z.RefinementCtx, what: string, keyOf = (s: string) => s) {
  const first = new Map<string, number>();
  items.forEach((item, i) => {
    const key = keyOf(item);
    const earlier = first.get(key);
    if (earlier === undefined) first.set(key, i);
    else {
      ctx.addIssue({
        code: 'custom',
        path: [i],
        message: `expected each ${what} once, got ${describeValue(item)} again (also at ${siblingPath(earlier)})`,
        params: COMPLETE,
      });
    }
  });
}

/**
 * A section that also takes `internal`, keys the parse itself writes beside the config's own (a
 * config parsed once is bundled for the functions and parsed again at their cold start:
 * lib/bundled-config.ts), which its unknown-key message does not offer to the config's author.
 */
function sectionWithInternal<Shape extends z.ZodRawShape, Internal extends z.ZodRawShape>(
  what: string,
  shape: Shape,
  internal: Internal,
) {
  return z.strictObject({ ...shape, ...internal }, { error: objectError(what, Object.keys(shape)) });
}

const salesforceExtractFields = {
  from: z.literal('salesforce'),
  object: objectName,
  fields: z
    .array(fieldName, { error: expected('a list of Salesforce field API names that includes "Id"') })
    .min(1)
    .superRefine((fields, ctx) => {
      // In any case, as every other field name (the extract matches them against the describe
      // without case, as SOQL does): `id` is the object's Id.
      if (!fields.some((f) => f.toLowerCase() === 'id')) {
        ctx.addIssue({
          code: 'custom',
          message: `expected a list of field API names that includes "Id", got ${describeValue(fields)}`,
          params: COMPLETE,
        });
      }
      noRepeats(fields, ctx, 'field', (f) => f.toLowerCase());
    }),
  table: tableName,
  mode: z.enum(['full', 'incremental']).default(CONFIG_DEFAULTS.extractMode),
  // Left undefined here, not defaulted: an object without IsDeleted (User) takes the default but
  // refuses 'flag' written out (salesforce-read.ts, deletesFor), so the task keeps which it was.
  deletes: z.enum(['remove', 'flag']).optional(),
  overlapSeconds: wholeNumber(
    `a whole number of seconds from 0 to ${MAX_OVERLAP_SECONDS}`,
    0,
    MAX_OVERLAP_SECONDS,
  ).default(CONFIG_DEFAULTS.extractOverlapSeconds),
  bulkThreshold: wholeNumber('a whole number of rows ≥ 1', 1).default(CONFIG_DEFAULTS.extractBulkThreshold),
  where: text(
    'a SOQL condition without the WHERE keyword, e.g. "IsConverted = false"',
    (v) => v.trim().length > 0 && !/^\s*where\b/i.test(v),
  ).optional(),
  name: taskName.optional(),
};

const salesforceExtractSchema = sectionWithInternal('an extract task object', salesforceExtractFields, {
  // Written by the parse when the config left `deletes` out, and read back from a bundled config.
  deletesDefaulted: z.literal(true).optional(),
}).transform(({ deletes, deletesDefaulted, ...task }): SalesforceExtractTask => ({
  ...task,
  deletes: deletes ?? CONFIG_DEFAULTS.extractDeletes,
  ...(deletes === undefined || deletesDefaulted === true ? { deletesDefaulted: true as const } : {}),
  name: task.name ?? task.object,
}));

/**
 * The statement's first word, past comments, blanks and opening parentheses (`select`, `with`,
 * `insert`, …), lower-cased; '' when there is none.
 */
export function firstSqlKeyword(sql: string): string {
  const rest = sql.replace(/^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/|\()*/, '');
  return (/^[A-Za-z]+/.exec(rest)?.[0] ?? '').toLowerCase();
}

/**
 * What an Athena extract may run: a query, which reads. Athena runs it every run; a statement
 * that writes (INSERT, CREATE TABLE AS, UNLOAD, DROP, …) would write each time, and SHOW or
 * DESCRIBE answer a text file, not a result CSV.
 */
const ATHENA_QUERY_STARTS = new Set(['select', 'with', 'values', 'table']);

const athenaExtractSchema = section('an extract task object', {
  from: z.literal('athena'),
  query: text(
    'a query Athena runs each run, starting with SELECT, WITH, VALUES or TABLE (not a statement that writes or a SHOW/DESCRIBE)',
    (v) => ATHENA_QUERY_STARTS.has(firstSqlKeyword(v)),
  ),
  table: tableName,
  key: z
    .array(columnName, { error: expected('a list of the column names that identify a row') })
    .min(1)
    .superRefine((key, ctx) => noRepeats(key, ctx, 'column'))
    .optional(),
  duplicateKeys: z.enum(['keep-last', 'fail']).default(CONFIG_DEFAULTS.athenaDuplicateKeys),
  name: taskName.optional(),
}).transform((task): AthenaExtractTask => ({ ...task, name: task.name ?? task.table }));

const EXTRACT_TEXT = 'an extract task object with "from": "salesforce" or "athena"';

const extractSchema = z.discriminatedUnion('from', [salesforceExtractSchema, athenaExtractSchema], {
  // zod types this map for invalid_union only, but a non-object element arrives here as invalid_type.
  error: (issue: { code: string }) => (issue.code === 'invalid_type' ? EXTRACT_TEXT : undefined),
});

const fieldMapping = z
  .record(z.string(), columnName, {
    error: expected(
      'an object mapping Salesforce fields to source columns, e.g. { LeadScore__c: "lead_score" }',
    ),
  })
  .superRefine(
    (fields, ctx) => {
      const names = Object.keys(fields);
      if (names.length === 0) {
        ctx.addIssue({
          code: 'custom',
          message:
            'expected at least one Salesforce field mapped to a source column, e.g. { LeadScore__c: "lead_score" }, got an empty object',
          params: COMPLETE,
        });
      }
      for (const name of names) {
        if (!isSalesforceApiName(name)) {
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: `expected a Salesforce field API name as the key, got ${describeValue(name)}`,
            params: COMPLETE,
          });
        }
      }
      // A field mapped twice (its API name in another case: Salesforce compares them without
      // case) would take two columns' values: named by its key, beside the one mapped first.
      const first = new Map<string, string>();
      for (const name of names) {
        const earlier = first.get(name.toLowerCase());
        if (earlier === undefined) first.set(name.toLowerCase(), name);
        else {
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: `expected each field once, got ${describeValue(name)} mapped to column ${describeValue(fields[name])}, while ${describeValue(earlier)} (the same field: API names are compared without case) is mapped to column ${describeValue(fields[earlier])}: a field takes one value, keep one of the two`,
            params: COMPLETE,
          });
        }
      }
    },
    // Key names are checked even when a mapped column is wrong, so all problems show at once.
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );

const writebackSchema = section('a write-back task object', {
  to: z.literal('salesforce'),
  object: objectName,
  from: tableName,
  mode: z.enum(['insert', 'update', 'upsert']),
  key: fieldName.optional(),
  keyColumn: columnName.optional(),
  fields: fieldMapping,
  maxFailureRate: decimal('a number from 0 to 1', 0, 1).default(CONFIG_DEFAULTS.writebackMaxFailureRate),
  maxRejectRate: decimal('a number from 0 to 1', 0, 1).default(CONFIG_DEFAULTS.writebackMaxRejectRate),
  maxChanges: wholeNumber('a whole number ≥ 1', 1).optional(),
  bulkThreshold: wholeNumber('a whole number of records ≥ 1', 1).default(
    CONFIG_DEFAULTS.writebackBulkThreshold,
  ),
  recreateDeleted: z.boolean({ error: expected('true or false') }).default(false),
  name: taskName.optional(),
}).transform((task): WritebackTask => {
  // The mode rules (update keys on Id, upsert needs a key, …) are checked in rules.ts; a
  // config that breaks them never leaves parseConfig, so the fallbacks below are not used.
  const { mode, key, keyColumn, ...rest } = task;
  const name = task.name ?? `${task.object}-${mode}`;
  switch (mode) {
    case 'update':
      return { ...rest, name, mode, key: 'Id', keyColumn: keyColumn ?? 'Id' };
    case 'upsert':
      return { ...rest, name, mode, key: key ?? '', keyColumn: keyColumn ?? key ?? '' };
    case 'insert':
      return key === undefined
        ? { ...rest, name, mode, keyColumn: keyColumn ?? '' }
        : { ...rest, name, mode, key, keyColumn: keyColumn ?? key };
  }
});

const budgetSchema = section('an object with "maxApiCallsPerRun" and "reserveDailyApiPercent"', {
  maxApiCallsPerRun: wholeNumber('a whole number of API calls ≥ 1', 1).default(
    CONFIG_DEFAULTS.maxApiCallsPerRun,
  ),
  reserveDailyApiPercent: decimal('a percentage from 0 to 100', 0, 100).default(
    CONFIG_DEFAULTS.reserveDailyApiPercent,
  ),
});

const notificationsSchema = section('an object with "emails"', {
  emails: z
    .array(
      text('an email address', (v) => EMAIL.test(v)),
      { error: expected('a list of email addresses') },
    )
    .min(1),
});

/**
 * Whether a `NO_PROXY` list lets Secrets Manager be reached directly, in any region: `*`,
 * `amazonaws.com` (or `.cn`), a region's `<region>.amazonaws.com`, or Secrets Manager's own host
 * (`secretsmanager.<region>.amazonaws.com`), each as a domain or a host, as proxyFor matches them
 * ({@link noProxyDomain}).
 */
function secretsManagerDirect(noProxy: readonly string[]): boolean {
  return noProxy.some((written) => {
    const entry = noProxyDomain(written);
    return (
      entry === '*' ||
      /^(?:(?:secretsmanager\.)?[a-z]{2}(?:-[a-z]+)+-\d+\.)?amazonaws\.com(?:\.cn)?$/.test(entry)
    );
  });
}

const proxySchema = section('an object with "url" and optionally "noProxy" and "credentialsSecret"', {
  url: text(
    'a proxy URL without credentials, such as "http://proxy.corp.example:3128" (http or https, a host, a port)',
    isProxyUrl,
  ),
  noProxy: z
    .array(
      text('a host, an IP address or a domain such as ".amazonaws.com", optionally with ":port"', (v) =>
        NO_PROXY_ENTRY.test(v),
      ),
      { error: expected('a list of hosts and domains') },
    )
    .optional(),
  credentialsSecret: secret.optional(),
}).superRefine((proxy, ctx) => {
  // The functions read the credentials before the proxy can be used: not through it.
  if (proxy.credentialsSecret !== undefined && !secretsManagerDirect(proxy.noProxy ?? [])) {
    ctx.addIssue({
      code: 'custom',
      path: ['noProxy'],
      message:
        'expected Secrets Manager among the hosts reached directly, since the functions read the proxy\'s credentials (credentialsSecret) before they can use it: give the VPC an interface endpoint for Secrets Manager and add ".amazonaws.com" or "secretsmanager.<region>.amazonaws.com"' +
        (proxy.noProxy === undefined ? ', got nothing' : `, got ${describeValue(proxy.noProxy)}`),
      params: COMPLETE,
    });
  }
});

const networkSchema = section(
  'an object with "vpcId", "subnetIds", "securityGroupIds" and optionally "proxy"',
  {
    vpcId: text('a VPC id such as "vpc-0a1b2c3d4e5f67890"', (v) => VPC_ID.test(v)),
    subnetIds: z
      .array(
        text('a subnet id such as "subnet-0a1b2c3d4e5f67890"', (v) => SUBNET_ID.test(v)),
        { error: expected('a list of subnet ids') },
      )
      .min(1)
      .superRefine((ids, ctx) => noRepeats(ids, ctx, 'subnet')),
    securityGroupIds: z
      .array(
        text('a security group id such as "sg-0a1b2c3d4e5f67890"', (v) => SECURITY_GROUP_ID.test(v)),
        { error: expected('a list of security group ids') },
      )
      .min(1)
      .superRefine((ids, ctx) => noRepeats(ids, ctx, 'security group')),
    /** The proxy the functions reach Salesforce and AWS through (HTTPS_PROXY, NO_PROXY). */
    proxy: proxySchema.optional(),
  },
);

const LOG_RETENTION_TEXT = `a number of days CloudWatch Logs accepts (${LOG_RETENTION_DAYS.join(', ')})`;

const deploymentSchema = section('an object with any of "network", "kmsKeyArn" and "logRetentionDays"', {
  network: networkSchema.optional(),
  kmsKeyArn: text(
    'a KMS key ARN such as "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"',
    (v) => KMS_KEY_ARN.test(v),
  ).optional(),
  logRetentionDays: z
    .number({ error: expected(LOG_RETENTION_TEXT) })
    .refine((v) => (LOG_RETENTION_DAYS as readonly number[]).includes(v), {
      error: LOG_RETENTION_TEXT,
    })
    .optional(),
});

const transformFile = text('the path of a .sql file, relative to the config file', (v) => /\.sql$/i.test(v));

/**
 * The whole config. Its input and output types are pinned to the documented interfaces in
 * types.ts, so a change to one without the other fails to compile.
 */
export const pipelineConfigSchema: z.ZodType<PipelineConfig, PipelineConfigInput> = section(
  'a pipeline config object',
  {
    name: text(
      `a pipeline name: lowercase letters, digits and single dashes, starting with a letter, at most ${MAX_PIPELINE_NAME_LENGTH} characters`,
      (v) => PIPELINE_NAME.test(v) && v.length <= MAX_PIPELINE_NAME_LENGTH,
    ),
    schedule: scheduleSchema.optional(),
    salesforce: salesforceSchema.optional(),
    athena: athenaSchema.optional(),
    postgres: postgresSchema,
    extract: z.array(extractSchema, { error: expected('a list of extract tasks') }).default([]),
    transform: z
      .array(transformFile, { error: expected('a list of .sql file paths') })
      // Compared as paths, not strings: `./a.sql` and `sql/../a.sql` are `a.sql`, and a file named
      // twice runs twice (a non-idempotent INSERT doubles its rows). loadConfig compares what is
      // left to compare only on disk: an absolute path, a symbolic link.
      .superRefine((files, ctx) => noRepeats(files, ctx, 'file', (f) => path.normalize(f)))
      .default([]),
    writeback: z.array(writebackSchema, { error: expected('a list of write-back tasks') }).default([]),
    budget: budgetSchema.prefault({}),
    notifications: notificationsSchema.optional(),
    deployment: deploymentSchema.optional(),
  },
);
