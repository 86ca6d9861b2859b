/**
 * Rules that relate several parts of a config, checked on the raw input so that they are
 * reported together with every shape error (zod skips an object's refinements once any of
 * its fields is wrong). Each rule reads only values of the right type and stays silent
 * otherwise: the shape check already reports a value of the wrong type.
 */
import type { ConfigIssue } from '../shared/errors';
import { listed } from '../shared/words';
import { describeValue, formatPath } from './issues';
import { CONFIG_DEFAULTS, isTableName } from './schema';

type Raw = Record<string, unknown>;

function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function records(value: unknown): { item: Raw; index: number }[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item: unknown, index) => (isRecord(item) ? [{ item, index }] : []));
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

const WRITEBACK_MODES = new Set(['insert', 'update', 'upsert']);

function requiredSections(config: Raw): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const salesforceUsers = [
    ...records(config.extract)
      .filter(({ item }) => item.from === 'salesforce')
      .map(({ index }) => `extract[${index}]`),
    ...records(config.writeback).map(({ index }) => `writeback[${index}]`),
  ];
  if (config.salesforce === undefined && salesforceUsers.length > 0) {
    issues.push({
      path: 'salesforce',
      message: `expected an object with at least "secret" (${listed(salesforceUsers)} ${
        salesforceUsers.length === 1 ? 'uses' : 'use'
      } Salesforce), got nothing`,
    });
  }
  const athenaUsers = records(config.extract)
    .filter(({ item }) => item.from === 'athena')
    .map(({ index }) => `extract[${index}]`);
  if (config.athena === undefined && athenaUsers.length > 0) {
    issues.push({
      path: 'athena',
      message: `expected an object with at least "database" (${listed(athenaUsers)} ${
        athenaUsers.length === 1 ? 'reads' : 'read'
      } from Athena), got nothing`,
    });
  }
  return issues;
}

/** Two extracts cannot fill one table; `sf_lead` and `public.sf_lead` are the same table. */
function uniqueTables(config: Raw): ConfigIssue[] {
  const schema = isRecord(config.postgres)
    ? (str(config.postgres.schema) ?? CONFIG_DEFAULTS.postgresSchema)
    : 'public';
  const writers = new Map<string, number>();
  const issues: ConfigIssue[] = [];
  for (const { item, index } of records(config.extract)) {
    const table = str(item.table);
    if (table === undefined || !isTableName(table)) continue;
    const qualified = table.includes('.') ? table : `${schema}.${table}`;
    const earlier = writers.get(qualified);
    if (earlier === undefined) writers.set(qualified, index);
    else {
      issues.push({
        path: `extract[${index}].table`,
        message: `expected a table no other task writes, got ${describeValue(table)} (extract[${earlier}] writes it too)`,
      });
    }
  }
  return issues;
}

/** The name a task gets when it has none (the same defaults the schema applies). */
function defaultTaskName(kind: 'extract' | 'writeback', task: Raw): string | undefined {
  if (kind === 'writeback') {
    const object = str(task.object);
    const mode = str(task.mode);
    return object !== undefined && mode !== undefined ? `${object}-${mode}` : undefined;
  }
  return task.from === 'salesforce' ? str(task.object) : task.from === 'athena' ? str(task.table) : undefined;
}

/** Task names select tasks in run input and key their state: no two tasks share one. */
function uniqueTaskNames(config: Raw): ConfigIssue[] {
  const owners = new Map<string, string>();
  const issues: ConfigIssue[] = [];
  for (const kind of ['extract', 'writeback'] as const) {
    for (const { item, index } of records(config[kind])) {
      const explicit = item.name !== undefined;
      const name = explicit ? str(item.name) : defaultTaskName(kind, item);
      if (name === undefined) continue;
      const here = `${kind}[${index}]`;
      const owner = owners.get(name);
      if (owner === undefined) owners.set(name, here);
      else {
        issues.push({
          path: `${here}.name`,
          message: explicit
            ? `expected a task name no other task uses, got ${describeValue(name)} (${owner} has it too)`
            : `expected a task name no other task uses, got nothing (the default name ${describeValue(name)} is taken by ${owner}; set "name")`,
        });
      }
    }
  }
  return issues;
}

/**
 * An Athena extract's `duplicateKeys: 'fail'` fails the merge on a key its result repeats: a task
 * without `key` replaces its table with the whole result, has no key to repeat, and would never
 * fail so. (`'keep-last'`, the default, is taken anywhere: a parsed config, defaults filled in, is
 * read again.)
 */
function athenaDuplicateKeys(config: Raw): ConfigIssue[] {
  return records(config.extract).flatMap(({ item, index }) =>
    item.from === 'athena' && item.duplicateKeys === 'fail' && item.key === undefined
      ? [
          {
            path: formatPath(['extract', index, 'duplicateKeys']),
            message: `expected "keep-last" or nothing on a task without "key" (without a key the table is replaced by the whole result: no row is dropped, and "fail" would never fail; give the task a key to merge on), got ${describeValue(item.duplicateKeys)}`,
          },
        ]
      : [],
  );
}

/** The key rules of each write-back mode. */
function writebackKeys(config: Raw): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const { item, index } of records(config.writeback)) {
    const mode = str(item.mode);
    if (mode === undefined || !WRITEBACK_MODES.has(mode)) continue;
    const at = (key: string): string => formatPath(['writeback', index, key]);
    const key = item.key;
    if (mode === 'update' && typeof key === 'string' && key !== 'Id') {
      issues.push({
        path: at('key'),
        message: `expected "Id" (update finds records by their Salesforce Id; use mode "upsert" to match on an external-ID field), got ${describeValue(key)}`,
      });
    }
    if (mode === 'upsert' && key === undefined) {
      issues.push({
        path: at('key'),
        message: 'expected the external-ID field that upsert matches records on, got nothing',
      });
    }
    if (mode === 'upsert' && typeof key === 'string' && key.toLowerCase() === 'id') {
      issues.push({
        path: at('key'),
        message: `expected an external-ID field other than Id (use mode "update" to match on Id), got ${describeValue(key)}`,
      });
    }
    if (mode === 'update' && item.recreateDeleted === true) {
      issues.push({
        path: at('recreateDeleted'),
        message:
          'expected no recreateDeleted on an update (an update cannot create a record; to create records anew for keys deleted in Salesforce, use mode "upsert" on an external-ID field), got true',
      });
    }
    if (mode === 'insert' && key === undefined && item.keyColumn === undefined) {
      issues.push({
        path: at('keyColumn'),
        message:
          'expected the source column that identifies each row (insert records the new Salesforce Id per row, so a rerun never inserts it twice), got nothing',
      });
    }
    const effectiveKey = mode === 'update' && key === undefined ? 'Id' : str(key);
    if (effectiveKey !== undefined && isRecord(item.fields)) {
      const mapped = Object.keys(item.fields).find((f) => f.toLowerCase() === effectiveKey.toLowerCase());
      if (mapped !== undefined) {
        issues.push({
          path: formatPath(['writeback', index, 'fields', mapped]),
          message: `expected only fields to write, got the key field ${describeValue(mapped)} (the key's value comes from "keyColumn"; remove it from "fields")`,
        });
      }
    }
  }
  return issues;
}

/**
 * A workgroup the stack creates enforces its own result location, cannot be `primary` (every
 * account has one) and lives in this account, so it does not go with a cross-account role; nor
 * does a results key, which only that role can be allowed to use, nor the tables, data locations
 * and data keys the stack would grant in this account.
 */
function athenaWorkgroup(config: Raw): ConfigIssue[] {
  const athena = config.athena;
  if (!isRecord(athena)) return [];
  const issues: ConfigIssue[] = [];
  if (athena.createWorkgroup === true) {
    const workgroup = athena.workgroup === undefined ? CONFIG_DEFAULTS.athenaWorkgroup : athena.workgroup;
    if (workgroup === 'primary') {
      issues.push({
        path: 'athena.workgroup',
        message: `expected the name of the workgroup to create, not "primary" (every account already has it), got ${
          athena.workgroup === undefined ? 'nothing (the default is "primary")' : '"primary"'
        }`,
      });
    }
    if (typeof athena.outputLocation === 'string') {
      issues.push({
        path: 'athena.outputLocation',
        message: `expected nothing when "createWorkgroup" is true (the created workgroup enforces its result location in the stack's results bucket), got ${describeValue(athena.outputLocation)}`,
      });
    }
    if (typeof athena.roleArn === 'string') {
      issues.push({
        path: 'athena.createWorkgroup',
        message:
          'expected false or nothing with "roleArn" (a cross-account role queries in a workgroup of the other account), got true',
      });
    }
  } else if (typeof athena.resultsExpireDays === 'number') {
    issues.push({
      path: 'athena.resultsExpireDays',
      message: `expected nothing unless "createWorkgroup" is true (only the stack's own results bucket expires results), got ${describeValue(athena.resultsExpireDays)}`,
    });
  }
  if (typeof athena.resultsKmsKeyArn === 'string' && typeof athena.roleArn === 'string') {
    issues.push({
      path: 'athena.resultsKmsKeyArn',
      message: `expected nothing with "roleArn" (the queries run as that role, which is the one to be allowed the key, in its own account), got ${describeValue(athena.resultsKmsKeyArn)}`,
    });
  }
  // The stack grants the tables and the data locations to this account's roles (the state
  // machine's); with a cross-account role it grants nothing in this account, so they would be
  // dropped without a word while the config seemed to narrow what the queries may read.
  if (Array.isArray(athena.tables) && typeof athena.roleArn === 'string') {
    issues.push({
      path: 'athena.tables',
      message: `expected nothing with "roleArn" (the queries read the Glue tables as that role, whose own policy in the other account names what it may read; the stack grants nothing in this account), got ${athena.tables.map((table: unknown) => describeValue(table)).join(', ')}`,
    });
  }
  if (Array.isArray(athena.dataLocations) && typeof athena.roleArn === 'string') {
    issues.push({
      path: 'athena.dataLocations',
      message: `expected nothing with "roleArn" (the queries read the data as that role, whose own policy in the other account names what it may read; the stack grants nothing in this account), got ${athena.dataLocations.map((location: unknown) => describeValue(location)).join(', ')}`,
    });
  }
  if (Array.isArray(athena.dataKmsKeyArns) && typeof athena.roleArn === 'string') {
    issues.push({
      path: 'athena.dataKmsKeyArns',
      message: `expected nothing with "roleArn" (the queries read the data as that role, which is the one to be allowed the keys, in its own account), got ${athena.dataKmsKeyArns.map((key: unknown) => describeValue(key)).join(', ')}`,
    });
  }
  return issues;
}

/** A pipeline that has no task at all is a mistake, not a no-op. */
function somethingToDo(config: Raw): ConfigIssue[] {
  const empty = (value: unknown): boolean =>
    value === undefined || (Array.isArray(value) && value.length === 0);
  if (empty(config.extract) && empty(config.transform) && empty(config.writeback)) {
    return [
      { path: '', message: 'expected at least one task in "extract", "transform" or "writeback", got none' },
    ];
  }
  return [];
}

/**
 * Every cross-field rule broken by a raw config (see docs/configuration.md, "Rules across
 * fields"). Returns nothing for a value that is not an object: the shape check reports that.
 */
export function crossFieldIssues(config: unknown): ConfigIssue[] {
  if (!isRecord(config)) return [];
  return [
    ...somethingToDo(config),
    ...requiredSections(config),
    ...uniqueTables(config),
    ...uniqueTaskNames(config),
    ...writebackKeys(config),
    ...athenaDuplicateKeys(config),
    ...athenaWorkgroup(config),
  ];
}
