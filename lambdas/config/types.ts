/**
 * The shape of a pipeline config. `…Input` types are what a `roundtrip.config.ts` file
 * writes (optional keys may be left out); the other types are what {@link parseConfig}
 * returns, with every default applied. The two are checked against the zod schema in
 * schema.ts at compile time, so they cannot drift apart.
 *
 * Reference with the validation rules: docs/configuration.md.
 */

/** When a pipeline runs on its own. Leave `schedule` out for a pipeline that only runs by hand. */
export interface ScheduleInput {
  /**
   * An EventBridge Scheduler cron expression, six fields
   * `minutes hours day-of-month month day-of-week year`, bare or wrapped in `cron(...)`:
   * `'0 2 * * ? *'` is 02:00 every day. Exactly one of day-of-month and day-of-week is `?`.
   * Give `cron` or `rate`, not both.
   */
  readonly cron?: string;
  /** An EventBridge Scheduler rate expression, bare or wrapped: `'5 minutes'`, `'rate(1 hour)'`. */
  readonly rate?: string;
  /**
   * The IANA time zone the cron expression is read in (`'Asia/Tokyo'`, `'Europe/Berlin'`).
   * @default 'UTC'
   */
  readonly timezone?: string;
  /**
   * Deploy the schedule switched on. `false` keeps it deployed but paused.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * How many times Scheduler retries starting the state machine when the start itself fails
   * (0-185). Retries of the run's steps are the state machine's business, not this.
   * @default Scheduler's own default (185)
   */
  readonly retries?: number;
  /**
   * How long (60-86400 s) Scheduler keeps trying to start a run before it drops the event.
   * @default Scheduler's own default (86400)
   */
  readonly maximumEventAgeSeconds?: number;
  /**
   * Keep the events Scheduler could not deliver (the start failed after every retry) in an
   * encrypted SQS dead-letter queue that the stack creates, with an alarm on its depth.
   * `false` drops them.
   * @default true
   */
  readonly deadLetterQueue?: boolean;
}

/** A validated schedule. */
export interface Schedule extends ScheduleInput {
  readonly timezone: string;
  readonly enabled: boolean;
}

/** How to reach Salesforce. Credentials live in the secret, never here. */
export interface SalesforceSettingsInput {
  /**
   * Secrets Manager secret (name or ARN) holding the credentials: username/password/security
   * token, OAuth client id/secret, or a JWT key, and optionally the login URL.
   */
  readonly secret: string;
  /**
   * REST API version, `'NN.0'`. At least 46.0: sObject Collections upsert needs it.
   * @default '62.0'
   */
  readonly apiVersion?: string;
  /**
   * Login URL, overriding the one in the secret: `https://test.salesforce.com` for a
   * sandbox, a My Domain URL, or `http://127.0.0.1:PORT` for the local emulator
   * (plain http is accepted only for loopback hosts).
   * @default the secret's `loginUrl` (there is no built-in one: a secret without it, with no
   * `loginUrl` here, is refused when the run signs in)
   */
  readonly loginUrl?: string;
}

/** Validated Salesforce settings. */
export interface SalesforceSettings extends SalesforceSettingsInput {
  readonly apiVersion: string;
}

/** Where Athena extract queries run. Athena is reached with the Lambda role (or `roleArn`). */
export interface AthenaSettingsInput {
  /** The database (Glue schema) queries run in, unless they qualify their tables. */
  readonly database: string;
  /**
   * The Athena workgroup.
   * @default 'primary'
   */
  readonly workgroup?: string;
  /**
   * The data catalog.
   * @default 'AwsDataCatalog'
   */
  readonly catalog?: string;
  /**
   * Where Athena writes result files, an `s3://bucket/prefix/` URL. Leave it out only when
   * the workgroup sets (or enforces) an output location: otherwise Athena refuses the
   * query with `INVALID_INPUT`.
   * @default the workgroup's output location
   */
  readonly outputLocation?: string;
  /**
   * An IAM role to assume for Athena and the result bucket, when the data lives in another
   * account: `arn:aws:iam::123456789012:role/name`.
   * @default the Lambda execution role
   */
  readonly roleArn?: string;
  /**
   * How results are read: `'s3'` streams the result CSV from S3 (fast, the normal way);
   * `'api'` pages through GetQueryResults, 1,000 rows a call. Not a way around an unreadable
   * result bucket: GetQueryResults needs the same `s3:GetObject` on the result files (Athena
   * reads them with the caller's permissions); for a function that can reach Athena's API but
   * not S3's.
   * @default 's3'
   */
  readonly results?: AthenaResultsMode;
  /**
   * How long the state machine waits for a query, queued and running, in minutes (1-120): past it
   * the query is stopped (StopQueryExecution) and the run fails, naming the task, this setting and
   * the query execution. Raise it for a query that needs longer, within the account's Athena DML
   * query timeout (30 minutes unless raised; Athena stops a query past it itself).
   * @default 32 (Athena's default DML query timeout, and 2 minutes for a query that queued first)
   */
  readonly queryTimeoutMinutes?: number;
  /**
   * Deployment: the customer managed KMS key that encrypts the result files (SSE-KMS), as
   * `arn:aws:kms:<region>:<account>:key/<id>`. The state machine may use it through S3 to write
   * them and the Athena load to read them; with `createWorkgroup` the workgroup encrypts its
   * results with it. Not with `roleArn` (that role needs the key, in its own account).
   * @default none: the results are encrypted with S3's own keys (SSE-S3), or as the existing
   * workgroup says (a workgroup that uses SSE-KMS needs this key named, or every load fails
   * with AccessDenied)
   */
  readonly resultsKmsKeyArn?: string;
  /**
   * Deployment: `true` makes the stack create the workgroup named `workgroup`, enforcing its
   * result location in an encrypted results bucket the stack creates (public access blocked,
   * TLS only, results expiring after `resultsExpireDays`). `outputLocation` is then left out,
   * `workgroup` is not `'primary'` (every account has it) and `roleArn` is not set (a
   * cross-account role queries in the other account's workgroup). `false` uses an existing
   * workgroup.
   * @default false
   */
  readonly createWorkgroup?: boolean;
  /**
   * Deployment, with `createWorkgroup` only: days (1-3650) after which result files are
   * deleted from the results bucket.
   * @default 7
   */
  readonly resultsExpireDays?: number;
  /**
   * Deployment: the Glue tables of `database` that the queries read. The Glue read
   * permissions name exactly these tables.
   * @default every table of `database`
   */
  readonly tables?: readonly string[];
  /**
   * Deployment: where the tables' data lives, as `s3://bucket/prefix/` URLs. The state
   * machine (which runs the queries) may read exactly these prefixes; leave it out when Lake
   * Formation vends the data access instead.
   * @default none: no S3 read permission on source data
   */
  readonly dataLocations?: readonly string[];
  /**
   * Deployment: the customer managed KMS keys that encrypt the tables' data in S3 (SSE-KMS), as
   * `arn:aws:kms:<region>:<account>:key/<id>`. Athena reads the data with the permissions of the
   * role that runs the queries (the state machine's), and S3 decrypts an SSE-KMS object only for a
   * caller allowed `kms:Decrypt` on its key: the state machine may decrypt with these keys, through
   * S3 only. Not with `roleArn` (that role needs the keys, in its own account).
   * @default none: data encrypted with S3's own keys (SSE-S3) or unencrypted, or read through Lake
   * Formation (whose registered role decrypts it)
   */
  readonly dataKmsKeyArns?: readonly string[];
}

/** How Athena results are read. */
export type AthenaResultsMode = 's3' | 'api';

/** Validated Athena settings. */
export interface AthenaSettings extends AthenaSettingsInput {
  readonly workgroup: string;
  readonly catalog: string;
  readonly results: AthenaResultsMode;
}

/** TLS to PostgreSQL. */
export type PostgresSslMode = 'verify-full' | 'require' | 'disable';

/** TLS settings for PostgreSQL. */
export interface PostgresSslInput {
  /**
   * `'verify-full'` checks the server certificate and host name; `'require'` encrypts
   * without checking who answers; `'disable'` sends plain text (local only).
   * @default 'verify-full'
   */
  readonly mode?: PostgresSslMode;
  /**
   * Path of a PEM bundle of CA certificates to trust (e.g. the RDS global bundle).
   * @default Node's built-in CA store
   */
  readonly caBundle?: string;
}

/** Validated TLS settings. */
export interface PostgresSsl extends PostgresSslInput {
  readonly mode: PostgresSslMode;
}

/** How to reach PostgreSQL, where every table of the pipeline lives. */
export interface PostgresSettingsInput {
  /** Secrets Manager secret (name or ARN) in the standard RDS shape (host, port, dbname, username, password). */
  readonly secret: string;
  /**
   * The schema for tables named without one (`sf_lead` means `public.sf_lead`).
   * The tool's own state lives in the `roundtrip` schema regardless.
   * @default 'public'
   */
  readonly schema?: string;
  /**
   * TLS settings.
   * @default { mode: 'verify-full' }
   */
  readonly ssl?: PostgresSslInput;
  /**
   * Days the per-record details of a finished run are kept: its plan (`writeback_plan_pages`),
   * its ledger rows (`writeback_plans`) and its errors (`writeback_errors`). The Report step
   * deletes older ones; the runs themselves (`roundtrip.runs`, with their summaries) stay, and so
   * do the marks of inserts whose outcome is unknown. From 1 to 3,650.
   * @default 30
   */
  readonly keepRunDetailsDays?: number;
}

/** Validated PostgreSQL settings. */
export interface PostgresSettings extends PostgresSettingsInput {
  readonly schema: string;
  readonly ssl: PostgresSsl;
  readonly keepRunDetailsDays: number;
}

/** How a Salesforce extract reads: everything each run, or rows changed since the last run. */
export type SalesforceExtractMode = 'full' | 'incremental';

/** What happens to rows deleted in Salesforce: removed from the table, or kept with `IsDeleted` true. */
export type DeletePolicy = 'remove' | 'flag';

/** Copies a Salesforce object into a PostgreSQL table. */
export interface SalesforceExtractTaskInput {
  readonly from: 'salesforce';
  /** The object's API name: `Lead`, `Account`, `Invoice__c`. */
  readonly object: string;
  /**
   * Field API names to copy; each becomes a column named exactly like the field (`"Id"`,
   * `"LeadScore__c"`). Must include `Id`; no field twice (API names are case-insensitive).
   * Incremental reads use `SystemModstamp`, and `IsDeleted` shows deletes: both are added when
   * not listed (`IsDeleted` only when the object has it).
   */
  readonly fields: readonly string[];
  /**
   * Target table: `name` or `schema.name`, each part at most 63 bytes. Used exactly as
   * written (always quoted in SQL, so case matters and no part may contain a dot).
   */
  readonly table: string;
  /**
   * `'incremental'` reads rows whose `SystemModstamp` passed the stored watermark (minus
   * `overlapSeconds`); `'full'` reads every row each run.
   * @default 'incremental'
   */
  readonly mode?: SalesforceExtractMode;
  /**
   * Rows deleted in Salesforce: `'flag'` keeps them with `IsDeleted` true, `'remove'`
   * deletes them from the table. An object without `IsDeleted` (User, Profile, RecordType…:
   * deactivated, or deleted for good without a recycle bin) has nothing to flag: left out,
   * its rows gone from Salesforce are removed by a full read, as with `'remove'`; `'flag'`
   * written out is refused (docs/extract.md, "Objects without IsDeleted").
   * @default 'flag'
   */
  readonly deletes?: DeletePolicy;
  /**
   * How far before the watermark an incremental read starts, in seconds (0-86400), so that
   * rows committed late with an earlier `SystemModstamp` are not missed.
   * @default 300
   */
  readonly overlapSeconds?: number;
  /**
   * From this many rows to read on, the extract uses a Bulk API 2.0 query job instead of
   * REST query paging.
   * @default 10000
   */
  readonly bulkThreshold?: number;
  /** An extra SOQL condition, ANDed to the watermark condition: `"IsConverted = false"` (no `WHERE`). */
  readonly where?: string;
  /**
   * The task's name in logs, metrics, state and `{"tasks": [...]}` run input.
   * @default the object, e.g. 'Lead'
   */
  readonly name?: string;
}

/** A validated Salesforce extract task. */
export interface SalesforceExtractTask extends SalesforceExtractTaskInput {
  readonly mode: SalesforceExtractMode;
  readonly deletes: DeletePolicy;
  /**
   * Set when the config left `deletes` out (it holds the default): an object without `IsDeleted`
   * then removes, where `'flag'` written out is refused.
   */
  readonly deletesDefaulted?: true;
  readonly overlapSeconds: number;
  readonly bulkThreshold: number;
  readonly name: string;
}

/** Copies the result of an Athena query into a PostgreSQL table. */
export interface AthenaExtractTaskInput {
  readonly from: 'athena';
  /** The SQL (Trino/Presto dialect) Athena runs. Column names of the result become column names. */
  readonly query: string;
  /** Target table: `name` or `schema.name` (see the Salesforce extract's `table`). */
  readonly table: string;
  /**
   * Columns that identify a row: the result is merged on them (insert new, update
   * changed). Without a key the table is replaced by the new result, swapped in atomically.
   * @default none: full refresh
   */
  readonly key?: readonly string[];
  /**
   * With `key`: what a result that returns a key in more than one row does. `'keep-last'` merges
   * one row a key (the last in the result file, which Athena orders arbitrarily without ORDER BY)
   * and warns, naming the keys; `'fail'` fails the task before the merge commits, the table left as
   * it was: only with `key`.
   * @default 'keep-last'
   */
  readonly duplicateKeys?: AthenaDuplicateKeys;
  /**
   * The task's name in logs, metrics, state and run input.
   * @default the table, e.g. 'athena_customers'
   */
  readonly name?: string;
}

/** What an Athena extract with a key does with a key its result holds more than once. */
export type AthenaDuplicateKeys = 'keep-last' | 'fail';

/** A validated Athena extract task. */
export interface AthenaExtractTask extends AthenaExtractTaskInput {
  readonly duplicateKeys: AthenaDuplicateKeys;
  readonly name: string;
}

/** An extract task as written in a config. */
export type ExtractTaskInput = SalesforceExtractTaskInput | AthenaExtractTaskInput;

/** A validated extract task. Narrow on `from`. */
export type ExtractTask = SalesforceExtractTask | AthenaExtractTask;

/** How write-back changes Salesforce: create records, change them by Id, or match on an external ID. */
export type WritebackMode = 'insert' | 'update' | 'upsert';

/** Sends rows of a PostgreSQL table or view to a Salesforce object. */
export interface WritebackTaskInput {
  readonly to: 'salesforce';
  /** The object's API name: `Lead`. */
  readonly object: string;
  /** The table or view to read, `name` or `schema.name`: usually made by a transform. */
  readonly from: string;
  /**
   * `'update'` changes existing records found by `Id`; `'upsert'` matches records on an
   * external-ID field (`key`) and creates those not found; `'insert'` creates records.
   */
  readonly mode: WritebackMode;
  /**
   * The Salesforce field that identifies a record. `update`: `'Id'` (the default, and the
   * only value allowed). `upsert`: an external-ID field, required, not `Id`. `insert`:
   * optional, an external-ID field the new record gets.
   * @default 'Id' for update; none otherwise
   */
  readonly key?: string;
  /**
   * The source column that holds each row's key value. For `insert` without `key` it is
   * still required: the new Salesforce Id is recorded per key, so a rerun never inserts a
   * row twice.
   * @default the key's name
   */
  readonly keyColumn?: string;
  /**
   * Salesforce field ← source column, e.g. `{ LeadScore__c: 'lead_score' }`. At least one;
   * the key field is not listed here (its value comes from `keyColumn`).
   */
  readonly fields: Readonly<Record<string, string>>;
  /**
   * The share of records (0-1) Salesforce may reject before the run fails (after
   * reporting every rejection).
   * @default 0.05
   */
  readonly maxFailureRate?: number;
  /**
   * The share of rows (0-1) the plan may reject before any call (a value Salesforce would
   * refuse, a missing or repeated key) before the run fails: of every source row for update and
   * upsert, of the rows whose key is not inserted yet for insert (a row whose key was inserted
   * before is never sent again, so not checked). The rows that pass are still sent; the run fails
   * after reporting, and so notifies.
   * @default 0.05
   */
  readonly maxRejectRate?: number;
  /**
   * Refuse to push a plan with more changed records than this: a guard against a broken
   * transform rewriting the whole object.
   * @default no limit
   */
  readonly maxChanges?: number;
  /**
   * From this many changed records on, the push uses a Bulk API 2.0 ingest job instead of
   * sObject Collections calls.
   * @default 2000
   */
  readonly bulkThreshold?: number;
  /**
   * `insert` and `upsert`: send a row whose key's record the extracted copy of the object holds
   * deleted in Salesforce (`"IsDeleted"` true, and no live record with the key), creating a new
   * record with that key beside the deleted one in the recycle bin. Without it such a row is
   * rejected by the plan (`ENTITY_IS_DELETED`). Not for `update`, which cannot create a record.
   * @default false
   */
  readonly recreateDeleted?: boolean;
  /**
   * The task's name in logs, metrics, state and run input.
   * @default `<object>-<mode>`, e.g. 'Lead-update'
   */
  readonly name?: string;
}

interface WritebackTaskBase extends Omit<WritebackTaskInput, 'mode' | 'key' | 'keyColumn'> {
  readonly maxFailureRate: number;
  readonly maxRejectRate: number;
  readonly bulkThreshold: number;
  readonly recreateDeleted: boolean;
  readonly name: string;
  /** The source column holding each row's key value. */
  readonly keyColumn: string;
}

/** A validated `insert` write-back. */
export interface InsertWritebackTask extends WritebackTaskBase {
  readonly mode: 'insert';
  /** The external-ID field the new records get, if any. */
  readonly key?: string;
}

/** A validated `update` write-back: records found by their Salesforce Id. */
export interface UpdateWritebackTask extends WritebackTaskBase {
  readonly mode: 'update';
  readonly key: 'Id';
}

/** A validated `upsert` write-back: records matched on an external-ID field. */
export interface UpsertWritebackTask extends WritebackTaskBase {
  readonly mode: 'upsert';
  /** The external-ID field records are matched on. */
  readonly key: string;
}

/** A validated write-back task. Narrow on `mode`. */
export type WritebackTask = InsertWritebackTask | UpdateWritebackTask | UpsertWritebackTask;

/** Limits on the Salesforce API calls a run may spend. */
export interface BudgetInput {
  /**
   * The most API calls one run may make; Prepare refuses to start a run whose forecast
   * exceeds it.
   * @default 5000
   */
  readonly maxApiCallsPerRun?: number;
  /**
   * The share (0-100 %) of the org's daily API allowance left for everyone else: a run
   * does not start when it would eat into it.
   * @default 20
   */
  readonly reserveDailyApiPercent?: number;
}

/** Validated budget. */
export interface Budget {
  readonly maxApiCallsPerRun: number;
  readonly reserveDailyApiPercent: number;
}

/** Who hears about failed runs and crossed thresholds. */
export interface NotificationsInput {
  /** Email addresses subscribed to the pipeline's SNS topic. */
  readonly emails: readonly string[];
}

/** The existing network the functions that reach PostgreSQL run in. */
export interface NetworkSettings {
  /** `vpc-…`: the VPC of the PostgreSQL database. */
  readonly vpcId: string;
  /**
   * `subnet-…` ids, private subnets with a route to a NAT gateway: Salesforce is on the
   * internet (docs/deploy.md, "Network").
   */
  readonly subnetIds: readonly string[];
  /** `sg-…` ids the functions get; PostgreSQL's security group must admit them on its port. */
  readonly securityGroupIds: readonly string[];
  /**
   * A proxy the functions reach Salesforce and AWS through, where the VPC's way out is one (no NAT
   * gateway): set as `HTTPS_PROXY`, and `noProxy` as `NO_PROXY` (docs/deploy.md, "Network").
   */
  readonly proxy?: ProxySettings;
}

/** `deployment.network.proxy`. */
export interface ProxySettings {
  /** `http://host:port` (or `https://`), without credentials. */
  readonly url: string;
  /** Hosts, IP addresses and domains (`.amazonaws.com`) reached directly. */
  readonly noProxy?: readonly string[];
  /**
   * A Secrets Manager secret (name or ARN) `{ "username": "…", "password": "…" }`: the proxy's
   * credentials, for a proxy that asks for them (407). The functions read it before any call goes
   * through the proxy, so `noProxy` must let Secrets Manager be reached directly (an interface
   * endpoint, and `.amazonaws.com` or `secretsmanager.<region>.amazonaws.com` in `noProxy`).
   */
  readonly credentialsSecret?: string;
}

/** Settings that matter only when the pipeline is deployed to AWS (`cdk deploy`). */
export interface DeploymentSettings {
  /**
   * Run the functions in an existing VPC (where PostgreSQL is reachable).
   * @default none: the functions run outside any VPC, and PostgreSQL must be reachable from the internet
   */
  readonly network?: NetworkSettings;
  /**
   * The ARN of the customer-managed KMS key (`arn:aws:kms:REGION:ACCOUNT:key/ID`) that
   * encrypts the Salesforce and PostgreSQL secrets. The functions may decrypt with it only
   * through Secrets Manager.
   * @default the secrets use the AWS managed key `aws/secretsmanager`
   */
  readonly kmsKeyArn?: string;
  /**
   * How long the functions' and the state machine's logs are kept, in days: one of the
   * values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400,
   * 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653).
   * @default 30
   */
  readonly logRetentionDays?: number;
}

/** What `roundtrip.config.ts` exports (through {@link defineConfig}). */
export interface PipelineConfigInput {
  /**
   * The pipeline's name: lowercase letters, digits and single dashes, starting with a
   * letter, at most 32 characters. It names the stack, the state machine and other AWS
   * resources.
   */
  readonly name: string;
  /**
   * When the pipeline runs on its own.
   * @default none: runs only when started by hand
   */
  readonly schedule?: ScheduleInput;
  /**
   * Salesforce connection. Required when any extract reads Salesforce or any write-back exists.
   * @default none
   */
  readonly salesforce?: SalesforceSettingsInput;
  /**
   * Athena settings. Required when any extract reads Athena.
   * @default none
   */
  readonly athena?: AthenaSettingsInput;
  /** PostgreSQL connection. */
  readonly postgres: PostgresSettingsInput;
  /**
   * Extract tasks, run in parallel. No two write the same table.
   * @default []
   */
  readonly extract?: readonly ExtractTaskInput[];
  /**
   * SQL files run in order, in one transaction, after the extracts. Paths are relative to
   * the config file.
   * @default []
   */
  readonly transform?: readonly string[];
  /**
   * Write-back tasks, run after the transform.
   * @default []
   */
  readonly writeback?: readonly WritebackTaskInput[];
  /**
   * Salesforce API budget.
   * @default { maxApiCallsPerRun: 5000, reserveDailyApiPercent: 20 }
   */
  readonly budget?: BudgetInput;
  /**
   * Alarm recipients.
   * @default none
   */
  readonly notifications?: NotificationsInput;
  /**
   * AWS deployment settings: network, secrets key, log retention.
   * @default none
   */
  readonly deployment?: DeploymentSettings;
}

/** A validated pipeline config, defaults applied: what {@link parseConfig} and `loadConfig` return. */
export interface PipelineConfig {
  readonly name: string;
  readonly schedule?: Schedule;
  readonly salesforce?: SalesforceSettings;
  readonly athena?: AthenaSettings;
  readonly postgres: PostgresSettings;
  readonly extract: readonly ExtractTask[];
  /** SQL file paths: as written after {@link parseConfig}; absolute after `loadConfig`. */
  readonly transform: readonly string[];
  readonly writeback: readonly WritebackTask[];
  readonly budget: Budget;
  readonly notifications?: NotificationsInput;
  readonly deployment?: DeploymentSettings;
}
