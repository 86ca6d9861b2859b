import { defineConfig, parseConfig, taskName, type PipelineConfigInput } from '../../../lambdas/config';
import { firstSqlKeyword } from '../../../lambdas/config/schema';
import { ConfigError, type ConfigIssue } from '../../../lambdas/shared/errors';
import example from '../../../examples/lead-scoring/roundtrip.config';

/** A config as plain data, for tests to break in any way. */
type Item = Record<string, unknown>;
interface Raw {
  [key: string]: unknown;
  extract?: Item[];
  writeback?: Item[];
}

/** A complete, valid config; each test changes one thing. */
function valid(): Raw {
  return {
    name: 'lead-scoring',
    schedule: { cron: '0 2 * * ? *', timezone: 'Asia/Tokyo' },
    salesforce: { secret: 'roundtrip/salesforce' },
    athena: { database: 'marketing', outputLocation: 's3://results-bucket/athena/' },
    postgres: { secret: 'roundtrip/postgres' },
    extract: [
      { from: 'salesforce', object: 'Lead', fields: ['Id', 'Email', 'LeadScore__c'], table: 'sf_lead' },
      { from: 'athena', query: 'SELECT email FROM customers', table: 'athena_customers' },
    ],
    transform: ['transforms/lead_score.sql'],
    writeback: [
      {
        to: 'salesforce',
        object: 'Lead',
        from: 'lead_reverse',
        mode: 'update',
        fields: { LeadScore__c: 'lead_score' },
      },
    ],
  };
}

/** The issues of a config that must not validate. */
function problems(value: unknown): ConfigIssue[] {
  try {
    parseConfig(value);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.issues];
    throw error;
  }
  throw new Error('the config was accepted');
}

/** Shorthand for one expected issue. */
const issue = (path: string, message: string): ConfigIssue => ({ path, message });

/** Index access that fails loudly instead of returning undefined. */
function at<T>(list: readonly T[] | undefined, index: number): T {
  const item = list?.[index];
  if (item === undefined) throw new Error(`no element ${index}`);
  return item;
}

describe('parseConfig', () => {
  // The deployed functions read the config bundled as the CLI parsed it (lib/bundled-config.ts:
  // defaults filled in, and whatever the parse records beside them), and parse it again at cold
  // start: that second parse must accept it and give the same config, or every function fails.
  it('parses a config it parsed, as bundled for the functions, to the same config', () => {
    const keyed = valid();
    (keyed.extract as Item[]).push({
      from: 'athena',
      query: 'SELECT id, email FROM customers',
      table: 'athena_keyed',
      key: ['id'],
    });
    for (const raw of [valid(), keyed, example as unknown as Raw]) {
      const once = parseConfig(raw);
      const again = parseConfig(JSON.parse(JSON.stringify(once)));
      expect(again).toEqual(once);
    }
  });

  describe('a valid config', () => {
    // Intl finds a zone by its name in any case; EventBridge Scheduler takes the name as the IANA
    // database spells it. The parse gives the zone that spelling, and keeps another name of it
    // (a link) written so; parsed again, as the functions do at cold start, it stays.
    it.each([
      ['asia/tokyo', 'Asia/Tokyo'],
      ['ASIA/TOKYO', 'Asia/Tokyo'],
      ['utc', 'UTC'],
      ['america/argentina/buenos_aires', expect.stringMatching(/^America\/(Argentina\/)?Buenos_Aires$/)],
      ['Asia/Tokyo', 'Asia/Tokyo'],
      ['Asia/Kolkata', 'Asia/Kolkata'],
      ['Etc/UTC', 'Etc/UTC'],
      ['US/Pacific', 'US/Pacific'],
      ['us/pacific', expect.stringMatching(/^(America\/Los_Angeles|US\/Pacific)$/)],
    ])('has the schedule time zone %s spelt as Scheduler takes it', (timezone, spelt) => {
      const config = parseConfig({ ...valid(), schedule: { cron: '0 2 * * ? *', timezone } });
      expect(config.schedule?.timezone).toEqual(spelt);
      expect(parseConfig(JSON.parse(JSON.stringify(config))).schedule?.timezone).toBe(
        config.schedule?.timezone,
      );
    });

    it('is returned with every default applied', () => {
      expect(parseConfig(valid())).toEqual({
        name: 'lead-scoring',
        schedule: { cron: '0 2 * * ? *', timezone: 'Asia/Tokyo', enabled: true },
        salesforce: { secret: 'roundtrip/salesforce', apiVersion: '62.0' },
        athena: {
          database: 'marketing',
          workgroup: 'primary',
          catalog: 'AwsDataCatalog',
          outputLocation: 's3://results-bucket/athena/',
          results: 's3',
          queryTimeoutMinutes: 32,
        },
        postgres: {
          secret: 'roundtrip/postgres',
          schema: 'public',
          ssl: { mode: 'verify-full' },
          keepRunDetailsDays: 30,
        },
        extract: [
          {
            from: 'salesforce',
            object: 'Lead',
            fields: ['Id', 'Email', 'LeadScore__c'],
            table: 'sf_lead',
            mode: 'incremental',
            deletes: 'flag',
            deletesDefaulted: true,
            overlapSeconds: 300,
            bulkThreshold: 10_000,
            name: 'Lead',
          },
          {
            from: 'athena',
            query: 'SELECT email FROM customers',
            table: 'athena_customers',
            duplicateKeys: 'keep-last',
            name: 'athena_customers',
          },
        ],
        transform: ['transforms/lead_score.sql'],
        writeback: [
          {
            to: 'salesforce',
            object: 'Lead',
            from: 'lead_reverse',
            mode: 'update',
            key: 'Id',
            keyColumn: 'Id',
            fields: { LeadScore__c: 'lead_score' },
            maxFailureRate: 0.05,
            maxRejectRate: 0.05,
            bulkThreshold: 2_000,
            recreateDeleted: false,
            name: 'Lead-update',
          },
        ],
        budget: { maxApiCallsPerRun: 5_000, reserveDailyApiPercent: 20 },
      });
    });

    it('keeps every option that is given instead of its default', () => {
      const input: Raw = {
        ...valid(),
        schedule: { rate: 'rate(15 minutes)', enabled: false, retries: 3, maximumEventAgeSeconds: 3600 },
        salesforce: {
          secret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:roundtrip/sf-AbCdEf',
          apiVersion: '46.0',
          loginUrl: 'http://127.0.0.1:8383',
        },
        athena: {
          database: 'marketing',
          workgroup: 'etl',
          catalog: 'lake',
          roleArn: 'arn:aws:iam::123456789012:role/lake-reader',
          results: 'api',
          queryTimeoutMinutes: 90,
        },
        postgres: {
          secret: 'pg',
          schema: 'crm',
          ssl: { mode: 'require', caBundle: '/etc/ssl/rds.pem' },
          keepRunDetailsDays: 90,
        },
        extract: [
          {
            from: 'salesforce',
            object: 'Lead',
            fields: ['Id'],
            table: 'raw.sf_lead',
            mode: 'full',
            deletes: 'remove',
            overlapSeconds: 0,
            bulkThreshold: 1,
            where: 'IsConverted = false',
            name: 'leads',
          },
          {
            from: 'athena',
            query: 'SELECT 1 AS k',
            table: 'k',
            key: ['k'],
            duplicateKeys: 'fail',
            name: 'keys',
          },
        ],
        writeback: [
          {
            to: 'salesforce',
            object: 'Contact',
            from: 'contacts_out',
            mode: 'upsert',
            key: 'External_Id__c',
            keyColumn: 'ext_id',
            fields: { Email: 'email' },
            maxFailureRate: 0,
            maxRejectRate: 0.25,
            maxChanges: 10,
            bulkThreshold: 50,
            recreateDeleted: true,
            name: 'contacts',
          },
          {
            to: 'salesforce',
            object: 'Task',
            from: 'tasks_out',
            mode: 'insert',
            key: 'Ref__c',
            fields: { Subject: 's' },
          },
        ],
        budget: { maxApiCallsPerRun: 1, reserveDailyApiPercent: 0 },
        notifications: { emails: ['data-team@example.com'] },
      };
      const config = parseConfig(input);
      expect(config.schedule).toEqual({
        rate: 'rate(15 minutes)',
        enabled: false,
        retries: 3,
        maximumEventAgeSeconds: 3600,
        timezone: 'UTC',
      });
      expect(config.salesforce).toEqual(input.salesforce);
      expect(config.athena).toEqual(input.athena);
      expect(config.postgres).toEqual(input.postgres);
      expect(config.extract).toEqual(input.extract);
      expect(config.writeback).toEqual([
        { ...at(input.writeback, 0) },
        {
          ...at(input.writeback, 1),
          keyColumn: 'Ref__c',
          maxFailureRate: 0.05,
          maxRejectRate: 0.05,
          bulkThreshold: 2_000,
          recreateDeleted: false,
          name: 'Task-insert',
        },
      ]);
      expect(config.budget).toEqual(input.budget);
      expect(config.notifications).toEqual(input.notifications);
    });

    it('needs neither schedule, salesforce nor athena for a pipeline that only transforms', () => {
      const config = parseConfig({ name: 'sql-only', postgres: { secret: 'pg' }, transform: ['a.sql'] });
      expect(config).toEqual({
        name: 'sql-only',
        postgres: { secret: 'pg', schema: 'public', ssl: { mode: 'verify-full' }, keepRunDetailsDays: 30 },
        extract: [],
        transform: ['a.sql'],
        writeback: [],
        budget: { maxApiCallsPerRun: 5_000, reserveDailyApiPercent: 20 },
      });
    });

    it('treats tables in different schemas as different tables', () => {
      const input = valid();
      input.extract = [
        { from: 'salesforce', object: 'Lead', fields: ['Id'], table: 'sf_lead' },
        {
          from: 'salesforce',
          object: 'Lead',
          fields: ['Id'],
          table: 'archive.sf_lead',
          name: 'Lead-archive',
        },
      ];
      expect(parseConfig(input).extract.map((t) => t.table)).toEqual(['sf_lead', 'archive.sf_lead']);
    });

    it('accepts the lead-scoring example', () => {
      const config = parseConfig(example);
      expect(config.name).toBe('lead-scoring');
      expect(config.extract.map(taskName)).toEqual(['Lead', 'athena_customers']);
      expect(at(config.writeback, 0)).toMatchObject({
        object: 'Lead',
        from: 'lead_reverse',
        mode: 'update',
        key: 'Id',
        fields: { LeadScore__c: 'lead_score' },
      });
    });
  });

  // Each case breaks one rule and asserts the exact message.
  describe('an invalid config', () => {
    const cases: [string, (c: Raw) => void, ConfigIssue[]][] = [
      [
        'a write-back mode that does not exist',
        (c) => Object.assign(at(c.writeback, 0), { mode: 'merge' }),
        [issue('writeback[0].mode', 'expected "insert" | "update" | "upsert", got "merge"')],
      ],
      [
        'an unknown key, with a suggestion',
        (c) => {
          const task = at(c.extract, 0);
          task.feilds = task.fields;
          delete task.fields;
        },
        [
          issue(
            'extract[0].fields',
            'expected a list of Salesforce field API names that includes "Id", got nothing',
          ),
          issue(
            'extract[0].feilds',
            'unknown key (expected one of: from, object, fields, table, mode, deletes, overlapSeconds, bulkThreshold, where, name); did you mean "fields"?',
          ),
        ],
      ],
      [
        'an unknown top-level key',
        (c) => (c.schedules = {}),
        [
          issue(
            'schedules',
            'unknown key (expected one of: name, schedule, salesforce, athena, postgres, extract, transform, writeback, budget, notifications, deployment); did you mean "schedule"?',
          ),
        ],
      ],
      [
        'an upsert without a key',
        (c) => Object.assign(at(c.writeback, 0), { mode: 'upsert' }),
        [
          issue(
            'writeback[0].key',
            'expected the external-ID field that upsert matches records on, got nothing',
          ),
        ],
      ],
      [
        'an upsert keyed on Id',
        (c) => Object.assign(at(c.writeback, 0), { mode: 'upsert', key: 'Id' }),
        [
          issue(
            'writeback[0].key',
            'expected an external-ID field other than Id (use mode "update" to match on Id), got "Id"',
          ),
        ],
      ],
      [
        'an update keyed on another field',
        (c) => Object.assign(at(c.writeback, 0), { key: 'Email' }),
        [
          issue(
            'writeback[0].key',
            'expected "Id" (update finds records by their Salesforce Id; use mode "upsert" to match on an external-ID field), got "Email"',
          ),
        ],
      ],
      [
        'an update that maps the key as a field to write',
        (c) => Object.assign(at(c.writeback, 0), { fields: { Id: 'Id', LeadScore__c: 'lead_score' } }),
        [
          issue(
            'writeback[0].fields.Id',
            'expected only fields to write, got the key field "Id" (the key\'s value comes from "keyColumn"; remove it from "fields")',
          ),
        ],
      ],
      [
        'an update asked to re-create deleted records',
        (c) => Object.assign(at(c.writeback, 0), { recreateDeleted: true }),
        [
          issue(
            'writeback[0].recreateDeleted',
            'expected no recreateDeleted on an update (an update cannot create a record; to create records anew for keys deleted in Salesforce, use mode "upsert" on an external-ID field), got true',
          ),
        ],
      ],
      [
        "an Athena extract's duplicateKeys that is neither 'keep-last' nor 'fail'",
        (c) => Object.assign(at(c.extract, 1), { key: ['email'], duplicateKeys: 'first' }),
        [issue('extract[1].duplicateKeys', 'expected "keep-last" | "fail", got "first"')],
      ],
      [
        "an Athena extract's duplicateKeys 'fail' without a key",
        (c) => Object.assign(at(c.extract, 1), { duplicateKeys: 'fail' }),
        [
          issue(
            'extract[1].duplicateKeys',
            'expected "keep-last" or nothing on a task without "key" (without a key the table is replaced by the whole result: no row is dropped, and "fail" would never fail; give the task a key to merge on), got "fail"',
          ),
        ],
      ],
      [
        'recreateDeleted that is not a boolean',
        (c) => Object.assign(at(c.writeback, 0), { mode: 'upsert', key: 'Ext__c', recreateDeleted: 'yes' }),
        [issue('writeback[0].recreateDeleted', 'expected true or false, got "yes"')],
      ],
      [
        'an insert with no way to recognise a row on a rerun',
        (c) => Object.assign(at(c.writeback, 0), { mode: 'insert' }),
        [
          issue(
            'writeback[0].keyColumn',
            'expected the source column that identifies each row (insert records the new Salesforce Id per row, so a rerun never inserts it twice), got nothing',
          ),
        ],
      ],
      [
        'two extracts writing one table (qualified or not)',
        (c) => Object.assign(at(c.extract, 1), { table: 'public.sf_lead' }),
        [
          issue(
            'extract[1].table',
            'expected a table no other task writes, got "public.sf_lead" (extract[0] writes it too)',
          ),
        ],
      ],
      [
        'two tasks with the same name',
        (c) => Object.assign(at(c.extract, 1), { name: 'Lead' }),
        [
          issue(
            'extract[1].name',
            'expected a task name no other task uses, got "Lead" (extract[0] has it too)',
          ),
        ],
      ],
      [
        'two tasks whose default names collide',
        (c) => c.writeback?.push({ ...at(c.writeback, 0), from: 'other_scores' }),
        [
          issue(
            'writeback[1].name',
            'expected a task name no other task uses, got nothing (the default name "Lead-update" is taken by writeback[0]; set "name")',
          ),
        ],
      ],
      [
        'Salesforce tasks without a salesforce section',
        (c) => delete c.salesforce,
        [
          issue(
            'salesforce',
            'expected an object with at least "secret" (extract[0] and writeback[0] use Salesforce), got nothing',
          ),
        ],
      ],
      [
        'an Athena extract without an athena section',
        (c) => delete c.athena,
        [
          issue(
            'athena',
            'expected an object with at least "database" (extract[1] reads from Athena), got nothing',
          ),
        ],
      ],
      [
        'a cron expression with both day fields set',
        (c) => (c.schedule = { cron: '0 2 * * * *' }),
        [
          issue(
            'schedule.cron',
            'expected an EventBridge Scheduler cron expression (minutes hours day-of-month month day-of-week year), got "0 2 * * * *": one of day-of-month and day-of-week must be "?"',
          ),
        ],
      ],
      [
        'a cron expression with five fields',
        (c) => (c.schedule = { cron: '0 2 * * ?' }),
        [
          issue(
            'schedule.cron',
            'expected an EventBridge Scheduler cron expression (minutes hours day-of-month month day-of-week year), got "0 2 * * ?": it has 5 fields, not 6 (Scheduler\'s cron has a sixth field, the year, and "?" in one of day-of-month and day-of-week, and counts days of the week from SUN = 1 where Unix cron counts from 0: did you mean "0 2 * * ? *"?)',
          ),
        ],
      ],
      [
        'a time zone that does not exist',
        (c) => (c.schedule = { cron: '0 2 * * ? *', timezone: 'Mars/Olympus_Mons' }),
        [
          issue(
            'schedule.timezone',
            'expected an IANA time zone name such as "Europe/Berlin" or "UTC", got "Mars/Olympus_Mons"',
          ),
        ],
      ],
      [
        'a time zone given as an offset',
        (c) => (c.schedule = { cron: '0 2 * * ? *', timezone: '+09:00' }),
        [
          issue(
            'schedule.timezone',
            'expected an IANA time zone name such as "Europe/Berlin" or "UTC", got "+09:00"',
          ),
        ],
      ],
      [
        'a schedule with both cron and rate',
        (c) => (c.schedule = { cron: '0 2 * * ? *', rate: '1 hour' }),
        [issue('schedule', 'expected exactly one of "cron" and "rate", got both')],
      ],
      [
        'a rate with a plural unit for 1',
        (c) => (c.schedule = { rate: 'rate(1 minutes)' }),
        [
          issue(
            'schedule.rate',
            'expected an EventBridge Scheduler rate expression such as "5 minutes" or "rate(1 hour)", got "rate(1 minutes)": the unit must be "minute" for the value 1',
          ),
        ],
      ],
      [
        'more Scheduler retries than it allows',
        (c) => (c.schedule = { cron: '0 2 * * ? *', retries: 186 }),
        [issue('schedule.retries', 'expected a whole number from 0 to 185, got 186')],
      ],
      [
        'extract fields without Id',
        (c) => Object.assign(at(c.extract, 0), { fields: ['Email', 'Company'] }),
        [
          issue(
            'extract[0].fields',
            'expected a list of field API names that includes "Id", got ["Email","Company"]',
          ),
        ],
      ],
      [
        'an extract field listed twice, in another case',
        (c) => Object.assign(at(c.extract, 0), { fields: ['Id', 'Email', 'email'] }),
        [
          issue(
            'extract[0].fields[2]',
            'expected each field once, got "email" again (also at extract[0].fields[1])',
          ),
        ],
      ],
      [
        'a field that is not an API name',
        (c) => Object.assign(at(c.extract, 0), { fields: ['Id', 'Lead Score'] }),
        [
          issue(
            'extract[0].fields[1]',
            'expected a Salesforce field API name such as "Email" or "LeadScore__c", got "Lead Score"',
          ),
        ],
      ],
      [
        'a table name over 63 bytes (in UTF-8)',
        (c) => Object.assign(at(c.extract, 0), { table: 'é'.repeat(32) }),
        [
          issue(
            'extract[0].table',
            `expected a table name, "name" or "schema.name", each part 1-63 bytes, got "${'é'.repeat(32)}"`,
          ),
        ],
      ],
      [
        'a table name with three parts',
        (c) => Object.assign(at(c.extract, 1), { table: 'db.public.customers' }),
        [
          issue(
            'extract[1].table',
            'expected a table name, "name" or "schema.name", each part 1-63 bytes, got "db.public.customers"',
          ),
        ],
      ],
      [
        'a pipeline name that cannot name AWS resources',
        (c) => (c.name = 'Lead_Scoring'),
        [
          issue(
            'name',
            'expected a pipeline name: lowercase letters, digits and single dashes, starting with a letter, at most 32 characters, got "Lead_Scoring"',
          ),
        ],
      ],
      [
        'a Salesforce API version too old for collection upsert',
        (c) => (c.salesforce = { secret: 'sf', apiVersion: '45.0' }),
        [
          issue(
            'salesforce.apiVersion',
            'expected a Salesforce API version such as "62.0", got "45.0": 46.0 or later is needed (sObject Collections upsert)',
          ),
        ],
      ],
      [
        'an API version given as a number',
        (c) => (c.salesforce = { secret: 'sf', apiVersion: 62 }),
        [issue('salesforce.apiVersion', 'expected a Salesforce API version such as "62.0", got 62')],
      ],
      [
        'a plain-http login URL to a remote host',
        (c) => (c.salesforce = { secret: 'sf', loginUrl: 'http://login.salesforce.com' }),
        [
          issue(
            'salesforce.loginUrl',
            'expected an https URL (http only for localhost) without a user name or password, got "http://login.salesforce.com"',
          ),
        ],
      ],
      [
        'a login URL with a user name and password in it',
        (c) =>
          (c.salesforce = { secret: 'sf', loginUrl: 'https://admin:Hunter2-Canary@login.salesforce.com' }),
        [
          issue(
            'salesforce.loginUrl',
            'expected an https URL (http only for localhost) without a user name or password, got "https://admin:[REDACTED]@login.salesforce.com"',
          ),
        ],
      ],
      [
        'a malformed secret ARN',
        (c) => (c.postgres = { secret: 'arn:aws:secretsmanager:eu-west-1:123:secret:pg' }),
        [
          issue(
            'postgres.secret',
            'expected a Secrets Manager secret name or ARN, got "arn:aws:secretsmanager:eu-west-1:123:secret:pg"',
          ),
        ],
      ],
      [
        // A connection URL pasted where the secret's name belongs: shown without its password.
        'a connection URL in place of a secret name',
        (c) => (c.postgres = { secret: 'postgres://app:Hunter2-Canary@db.example.com/rt' }),
        [
          issue(
            'postgres.secret',
            'expected a Secrets Manager secret name or ARN, got "postgres://app:[REDACTED]@db.example.com/rt"',
          ),
        ],
      ],
      [
        'an extract source that does not exist',
        (c) => c.extract?.push({ from: 'hubspot' }),
        [issue('extract[2].from', 'expected "salesforce" | "athena", got "hubspot"')],
      ],
      [
        'an extract task that is not an object',
        (c) => Object.assign(c, { extract: [...(c.extract ?? []), 'Lead'] }),
        [
          issue(
            'extract[2]',
            'expected an extract task object with "from": "salesforce" or "athena", got "Lead"',
          ),
        ],
      ],
      [
        'an empty write-back source',
        (c) => Object.assign(at(c.writeback, 0), { from: '' }),
        [
          issue(
            'writeback[0].from',
            'expected a table name, "name" or "schema.name", each part 1-63 bytes, got ""',
          ),
        ],
      ],
      [
        'a write-back with no fields mapped',
        (c) => Object.assign(at(c.writeback, 0), { fields: {} }),
        [
          issue(
            'writeback[0].fields',
            'expected at least one Salesforce field mapped to a source column, e.g. { LeadScore__c: "lead_score" }, got an empty object',
          ),
        ],
      ],
      [
        'a field mapping with a bad key and a bad column',
        (c) =>
          Object.assign(at(c.writeback, 0), { fields: { 'Lead Score': 'lead_score', LeadScore__c: '' } }),
        [
          issue('writeback[0].fields.LeadScore__c', 'expected a column name of 1-63 bytes, got ""'),
          issue(
            'writeback[0].fields["Lead Score"]',
            'expected a Salesforce field API name as the key, got "Lead Score"',
          ),
        ],
      ],
      [
        'one field mapped twice, its API name in another case, from two columns',
        (c) =>
          Object.assign(at(c.writeback, 0), {
            fields: { LeadScore__c: 'score_a', Rating: 'rating', leadscore__c: 'score_b' },
          }),
        [
          issue(
            'writeback[0].fields.leadscore__c',
            'expected each field once, got "leadscore__c" mapped to column "score_b", while "LeadScore__c" (the same field: API names are compared without case) is mapped to column "score_a": a field takes one value, keep one of the two',
          ),
        ],
      ],
      [
        'a failure rate above 1',
        (c) => Object.assign(at(c.writeback, 0), { maxFailureRate: 5 }),
        [issue('writeback[0].maxFailureRate', 'expected a number from 0 to 1, got 5')],
      ],
      [
        'a reject rate below 0',
        (c) => Object.assign(at(c.writeback, 0), { maxRejectRate: -0.1 }),
        [issue('writeback[0].maxRejectRate', 'expected a number from 0 to 1, got -0.1')],
      ],
      [
        'a fractional change limit',
        (c) => Object.assign(at(c.writeback, 0), { maxChanges: 10.5 }),
        [issue('writeback[0].maxChanges', 'expected a whole number ≥ 1, got 10.5')],
      ],
      [
        'a write-back to another destination',
        (c) => Object.assign(at(c.writeback, 0), { to: 'hubspot' }),
        [issue('writeback[0].to', 'expected "salesforce", got "hubspot"')],
      ],
      [
        'an output location that is not an S3 URL',
        (c) => (c.athena = { database: 'marketing', outputLocation: 'https://bucket.s3.amazonaws.com/x' }),
        [
          issue(
            'athena.outputLocation',
            'expected an S3 URL such as "s3://bucket/athena-results/", got "https://bucket.s3.amazonaws.com/x"',
          ),
        ],
      ],
      [
        'a role ARN that is not a role',
        (c) => (c.athena = { database: 'marketing', roleArn: 'arn:aws:iam::123456789012:user/bob' }),
        [
          issue(
            'athena.roleArn',
            'expected an IAM role ARN such as "arn:aws:iam::123456789012:role/name", got "arn:aws:iam::123456789012:user/bob"',
          ),
        ],
      ],
      [
        'an SSL mode PostgreSQL has but the config does not offer',
        (c) => (c.postgres = { secret: 'pg', ssl: { mode: 'prefer' } }),
        [issue('postgres.ssl.mode', 'expected "verify-full" | "require" | "disable", got "prefer"')],
      ],
      [
        'details kept for no day at all',
        (c) => (c.postgres = { secret: 'pg', keepRunDetailsDays: 0 }),
        [issue('postgres.keepRunDetailsDays', 'expected a whole number of days from 1 to 3650, got 0')],
      ],
      [
        'details kept for part of a day',
        (c) => (c.postgres = { secret: 'pg', keepRunDetailsDays: 7.5 }),
        [issue('postgres.keepRunDetailsDays', 'expected a whole number of days from 1 to 3650, got 7.5')],
      ],
      [
        'a SOQL condition that repeats WHERE',
        (c) => Object.assign(at(c.extract, 0), { where: 'WHERE IsConverted = false' }),
        [
          issue(
            'extract[0].where',
            'expected a SOQL condition without the WHERE keyword, e.g. "IsConverted = false", got "WHERE IsConverted = false"',
          ),
        ],
      ],
      [
        'an Athena extract that writes instead of reading',
        (c) =>
          Object.assign(at(c.extract, 1), {
            query: '-- refresh\nINSERT INTO archive SELECT * FROM customers',
          }),
        [
          issue(
            'extract[1].query',
            'expected a query Athena runs each run, starting with SELECT, WITH, VALUES or TABLE (not a statement that writes or a SHOW/DESCRIBE), got "-- refresh\\nINSERT INTO archive SELECT * FROM customers"',
          ),
        ],
      ],
      [
        'a duplicate Athena merge key column',
        (c) => Object.assign(at(c.extract, 1), { key: ['email', 'email'] }),
        [
          issue(
            'extract[1].key[1]',
            'expected each column once, got "email" again (also at extract[1].key[0])',
          ),
        ],
      ],
      [
        'a transform file that is not SQL, and one listed twice',
        (c) => (c.transform = ['a.sql', 'b.py', 'a.sql']),
        [
          issue('transform[1]', 'expected the path of a .sql file, relative to the config file, got "b.py"'),
          issue('transform[2]', 'expected each file once, got "a.sql" again (also at transform[0])'),
        ],
      ],
      [
        'a transform file listed twice by paths that differ as text alone',
        (c) => (c.transform = ['sql/a.sql', './sql/a.sql', 'sql/../sql/a.sql', 'sql//a.sql']),
        [
          issue('transform[1]', 'expected each file once, got "./sql/a.sql" again (also at transform[0])'),
          issue(
            'transform[2]',
            'expected each file once, got "sql/../sql/a.sql" again (also at transform[0])',
          ),
          issue('transform[3]', 'expected each file once, got "sql//a.sql" again (also at transform[0])'),
        ],
      ],
      [
        'an Athena query limit of no time',
        (c) => (c.athena = { ...(c.athena as Record<string, unknown>), queryTimeoutMinutes: 0 }),
        [issue('athena.queryTimeoutMinutes', 'expected a whole number of minutes from 1 to 120, got 0')],
      ],
      [
        'an Athena query limit past the longest',
        (c) => (c.athena = { ...(c.athena as Record<string, unknown>), queryTimeoutMinutes: 121 }),
        [issue('athena.queryTimeoutMinutes', 'expected a whole number of minutes from 1 to 120, got 121')],
      ],
      [
        'an Athena query limit in parts of a minute',
        (c) => (c.athena = { ...(c.athena as Record<string, unknown>), queryTimeoutMinutes: 2.5 }),
        [issue('athena.queryTimeoutMinutes', 'expected a whole number of minutes from 1 to 120, got 2.5')],
      ],
      [
        'a budget percentage above 100',
        (c) => (c.budget = { reserveDailyApiPercent: 150 }),
        [issue('budget.reserveDailyApiPercent', 'expected a percentage from 0 to 100, got 150')],
      ],
      [
        'a notification address that is not an email',
        (c) => (c.notifications = { emails: ['data-team'] }),
        [issue('notifications.emails[0]', 'expected an email address, got "data-team"')],
      ],
      [
        'a missing postgres section',
        (c) => delete c.postgres,
        [issue('postgres', 'expected an object with at least "secret", got nothing')],
      ],
      [
        'a pipeline with nothing to do',
        (c) => {
          c.extract = [];
          c.transform = [];
          c.writeback = [];
        },
        [issue('', 'expected at least one task in "extract", "transform" or "writeback", got none')],
      ],
    ];

    it.each(cases)('%s', (_title, breakIt, expected) => {
      const config = valid();
      breakIt(config);
      expect(problems(config)).toEqual(expected);
    });

    it('rejects a value that is not an object', () => {
      expect(problems(null)).toEqual([issue('', 'expected a pipeline config object, got null')]);
      expect(problems([])).toEqual([issue('', 'expected a pipeline config object, got an empty list')]);
    });
  });

  describe('the error', () => {
    it('lists every problem at once, in the order of the config, naming the source', () => {
      const config = valid();
      config.writeback = [{ ...at(config.writeback, 0), mode: 'merge' }];
      Object.assign(at(config.extract, 0), { fields: ['Email'], table: 'athena_customers' });
      config.schedule = { cron: '0 2 * * ? *', timezone: 'Nowhere/Town' };
      config.name = 'x_';
      delete config.salesforce;
      let error: unknown;
      try {
        parseConfig(config, 'pipelines/roundtrip.config.ts');
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const configError = error as ConfigError;
      expect(configError.name).toBe('ConfigError');
      expect(configError.source).toBe('pipelines/roundtrip.config.ts');
      expect(configError.message).toBe(
        [
          'Invalid pipeline config pipelines/roundtrip.config.ts (6 problems):',
          '  name: expected a pipeline name: lowercase letters, digits and single dashes, starting with a letter, at most 32 characters, got "x_"',
          '  schedule.timezone: expected an IANA time zone name such as "Europe/Berlin" or "UTC", got "Nowhere/Town"',
          '  salesforce: expected an object with at least "secret" (extract[0] and writeback[0] use Salesforce), got nothing',
          '  extract[0].fields: expected a list of field API names that includes "Id", got ["Email"]',
          '  extract[1].table: expected a table no other task writes, got "athena_customers" (extract[0] writes it too)',
          '  writeback[0].mode: expected "insert" | "update" | "upsert", got "merge"',
        ].join('\n'),
      );
    });
  });
});

describe('parseConfig: Salesforce extract fields', () => {
  // Field names are matched without case (as SOQL does, and as the config's own check for a field
  // listed twice does): "id" names the Id as "email" names Email. It was refused as a list
  // without "Id".
  it('takes the Id field in any case', () => {
    const raw = valid();
    Object.assign(at(raw.extract as Item[], 0), { fields: ['id', 'Email'] });
    expect(parseConfig(raw).extract[0]).toMatchObject({ fields: ['id', 'Email'] });
    Object.assign(at(raw.extract as Item[], 0), { fields: ['ID', 'Email'] });
    expect(parseConfig(raw).extract[0]).toMatchObject({ fields: ['ID', 'Email'] });
  });

  it('still refuses a list without the Id field, and "Id" twice in two cases', () => {
    const raw = valid();
    Object.assign(at(raw.extract as Item[], 0), { fields: ['Email', 'Identifier__c'] });
    expect(problems(raw)).toEqual([
      issue(
        'extract[0].fields',
        'expected a list of field API names that includes "Id", got ["Email","Identifier__c"]',
      ),
    ]);
    Object.assign(at(raw.extract as Item[], 0), { fields: ['Id', 'Email', 'id'] });
    expect(problems(raw)).toEqual([
      issue(
        'extract[0].fields[2]',
        'expected each field once, got "id" again (also at extract[0].fields[0])',
      ),
    ]);
  });
});

describe('defineConfig', () => {
  it('returns the config it is given, unchanged', () => {
    const config: PipelineConfigInput = { name: 'x', postgres: { secret: 'pg' }, transform: ['a.sql'] };
    expect(defineConfig(config)).toBe(config);
  });
});

describe('taskName', () => {
  const salesforce = { from: 'salesforce', object: 'Lead', fields: ['Id'], table: 'sf_lead' } as const;
  const athena = { from: 'athena', query: 'SELECT 1', table: 'athena_customers' } as const;
  const writeback = {
    to: 'salesforce',
    object: 'Lead',
    from: 'lead_reverse',
    mode: 'update',
    fields: { LeadScore__c: 'lead_score' },
  } as const;

  it('applies the default to a task as written: the object, the table, or <object>-<mode>', () => {
    expect([salesforce, athena, writeback].map(taskName)).toEqual([
      'Lead',
      'athena_customers',
      'Lead-update',
    ]);
  });

  it('is the given name when there is one', () => {
    expect(taskName({ ...salesforce, name: 'leads' })).toBe('leads');
    expect(taskName({ ...athena, name: 'customers' })).toBe('customers');
    expect(taskName({ ...writeback, name: 'scores' })).toBe('scores');
  });

  it('reads the name parseConfig filled in', () => {
    const parsed = parseConfig({
      name: 'x',
      salesforce: { secret: 'sf' },
      athena: { database: 'db' },
      postgres: { secret: 'pg' },
      extract: [salesforce, athena],
      writeback: [writeback],
    });
    expect([...parsed.extract, ...parsed.writeback].map(taskName)).toEqual([
      'Lead',
      'athena_customers',
      'Lead-update',
    ]);
  });
});

describe('firstSqlKeyword', () => {
  it('reads past blanks, comments and parentheses, lower-cased', () => {
    expect(firstSqlKeyword('  SELECT 1')).toBe('select');
    expect(
      firstSqlKeyword('-- the customers\n/* all of them */ (\n  with c AS (SELECT 1) SELECT * FROM c)'),
    ).toBe('with');
    expect(firstSqlKeyword("/* a\n-- b */UNLOAD (SELECT 1) TO 's3://b/'")).toBe('unload');
    expect(firstSqlKeyword('-- nothing but a comment')).toBe('');
  });
});
