/**
 * sObject describes for the Salesforce emulator: the JSON that
 * `GET /services/data/vNN.N/sobjects/{Object}/describe` returns, kept as files in
 * `emulators/salesforce/describes/*.json` (one object a file). A user adds an object, or
 * fields to an existing one, by adding a describe file (see {@link loadDescribes}).
 *
 * Field properties follow the REST API's `DescribeSObjectResult` / `Field`
 * (https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Field types the emulator knows (the REST describe's `type`). */
export type FieldType =
  | 'id'
  | 'string'
  | 'textarea'
  | 'email'
  | 'phone'
  | 'url'
  | 'picklist'
  | 'multipicklist'
  | 'combobox'
  | 'boolean'
  | 'int'
  | 'double'
  | 'currency'
  | 'percent'
  | 'date'
  | 'datetime'
  | 'time'
  | 'reference'
  | 'address'
  | 'location'
  | 'base64';

/** All {@link FieldType}s, for validation of describe files. */
export const FIELD_TYPES: readonly FieldType[] = [
  'id',
  'string',
  'textarea',
  'email',
  'phone',
  'url',
  'picklist',
  'multipicklist',
  'combobox',
  'boolean',
  'int',
  'double',
  'currency',
  'percent',
  'date',
  'datetime',
  'time',
  'reference',
  'address',
  'location',
  'base64',
];

/** One value of a picklist field. */
export interface PicklistValue {
  value: string;
  label: string;
  active: boolean;
  defaultValue: boolean;
  validFor?: string | null;
}

/** One field of an sObject describe, as the REST API returns it. */
export interface FieldDescribe {
  name: string;
  label: string;
  type: FieldType;
  /** e.g. `tns:ID`, `xsd:string`, `xsd:double`, `xsd:dateTime`. */
  soapType: string;
  /** Maximum length in characters for text types; 0 otherwise. */
  length: number;
  /** Total digits for double/currency/percent; 0 otherwise. */
  precision: number;
  /** Digits right of the decimal point for double/currency/percent; 0 otherwise. */
  scale: number;
  /** Maximum digits for int; 0 otherwise. */
  digits: number;
  nillable: boolean;
  createable: boolean;
  updateable: boolean;
  defaultedOnCreate: boolean;
  externalId: boolean;
  idLookup: boolean;
  unique: boolean;
  /** Whether `unique` compares case-sensitively (Salesforce's "Treat ABC and abc as different"). */
  caseSensitive: boolean;
  calculated: boolean;
  autoNumber: boolean;
  custom: boolean;
  referenceTo: string[];
  relationshipName: string | null;
  picklistValues: PicklistValue[];
  restrictedPicklist: boolean;
  /** Default value (`null` when none); for picklists the default is in `picklistValues`. */
  defaultValue: string | number | boolean | null;
  filterable: boolean;
  sortable: boolean;
  groupable: boolean;
  nameField: boolean;
  byteLength: number;
  [extra: string]: unknown;
}

/** An sObject describe, as the REST API returns it (fields in describe order). */
export interface ObjectDescribe {
  name: string;
  label: string;
  labelPlural: string;
  /** The three-character prefix of the object's record ids (Lead `00Q`). */
  keyPrefix: string;
  createable: boolean;
  updateable: boolean;
  deletable: boolean;
  queryable: boolean;
  retrieveable: boolean;
  searchable: boolean;
  undeletable: boolean;
  custom: boolean;
  fields: FieldDescribe[];
  [extra: string]: unknown;
}

/** The folder of the describe files kept in the repo. */
export const DEFAULT_DESCRIBES_DIR = path.join(__dirname, 'describes');

/** A describe file that is not a usable describe: names the file and what is wrong. */
export class DescribeFileError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'DescribeFileError';
  }
}

/**
 * Field required on create: createable, not nillable and not defaulted on create
 * (salesforce-wire.md, "Describe").
 */
export function isRequiredOnCreate(field: FieldDescribe): boolean {
  return field.createable && !field.nillable && !field.defaultedOnCreate;
}

/**
 * Loads every `*.json` describe in the given folders (default: the repo's
 * `emulators/salesforce/describes/`), in folder order then file-name order. A file whose
 * `name` matches an object already loaded (case-insensitive) extends it: its fields are
 * added, and a field with an existing name replaces the earlier one; its object-level
 * properties other than `fields` override the earlier ones. So a user's folder can add a
 * custom field to `Lead` with a file holding `{ "name": "Lead", "fields": [ … ] }`.
 *
 * Missing field properties take the defaults of a plain nillable, createable, updateable
 * text field, so a hand-written file need only give `name`, `type` and what differs.
 *
 * @throws DescribeFileError when a file is not JSON or lacks `name`, `keyPrefix` (for a new
 *   object), or has a field without `name` or with an unknown `type`.
 */
export function loadDescribes(dirs: string[] = [DEFAULT_DESCRIBES_DIR]): ObjectDescribe[] {
  const byName = new Map<string, ObjectDescribe>();
  for (const dir of dirs) {
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort();
    for (const file of files) {
      const full = path.join(dir, file);
      let raw: unknown;
      try {
        raw = JSON.parse(readFileSync(full, 'utf8'));
      } catch (error: unknown) {
        throw new DescribeFileError(
          full,
          `not valid JSON (${error instanceof Error ? error.message : String(error)})`,
        );
      }
      mergeDescribe(byName, raw, full);
    }
  }
  return [...byName.values()];
}

/**
 * Builds describes from in-memory objects with the same rules as {@link loadDescribes}
 * (defaults filled, same-named objects merged). Useful for tests and seeds.
 */
export function normalizeDescribes(objects: unknown[], source = '<memory>'): ObjectDescribe[] {
  const byName = new Map<string, ObjectDescribe>();
  objects.forEach((raw, i) => mergeDescribe(byName, raw, `${source}[${i}]`));
  return [...byName.values()];
}

function mergeDescribe(byName: Map<string, ObjectDescribe>, raw: unknown, file: string): void {
  if (!isObject(raw)) throw new DescribeFileError(file, 'expected a JSON object');
  const name = raw.name;
  if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) {
    throw new DescribeFileError(file, '"name" must be an sObject API name such as "Lead"');
  }
  const rawFields = raw.fields ?? [];
  if (!Array.isArray(rawFields)) throw new DescribeFileError(file, '"fields" must be an array');
  const fields = rawFields.map((f: unknown, i) => normalizeField(f, `${file} fields[${i}]`));
  const existing = byName.get(name.toLowerCase());
  if (existing) {
    const { fields: _ignored, ...rest } = raw;
    Object.assign(existing, rest, { name: existing.name });
    for (const field of fields) {
      const at = existing.fields.findIndex((f) => f.name.toLowerCase() === field.name.toLowerCase());
      if (at >= 0) existing.fields[at] = field;
      else existing.fields.push(field);
    }
    return;
  }
  const keyPrefix = raw.keyPrefix;
  if (typeof keyPrefix !== 'string' || !/^[A-Za-z0-9]{3}$/.test(keyPrefix)) {
    throw new DescribeFileError(file, '"keyPrefix" must be three letters or digits, e.g. "00Q"');
  }
  const custom = name.endsWith('__c');
  const describe: ObjectDescribe = {
    label: name,
    labelPlural: `${name}s`,
    createable: true,
    updateable: true,
    deletable: true,
    queryable: true,
    retrieveable: true,
    searchable: true,
    undeletable: true,
    custom,
    ...raw,
    name,
    keyPrefix,
    fields,
  };
  if (!fields.some((f) => f.name === 'Id')) {
    throw new DescribeFileError(file, 'an object needs an "Id" field');
  }
  byName.set(name.toLowerCase(), describe);
}

const SOAP_TYPES: Record<FieldType, string> = {
  id: 'tns:ID',
  string: 'xsd:string',
  textarea: 'xsd:string',
  email: 'xsd:string',
  phone: 'xsd:string',
  url: 'xsd:string',
  picklist: 'xsd:string',
  multipicklist: 'xsd:string',
  combobox: 'xsd:string',
  boolean: 'xsd:boolean',
  int: 'xsd:int',
  double: 'xsd:double',
  currency: 'xsd:double',
  percent: 'xsd:double',
  date: 'xsd:date',
  datetime: 'xsd:dateTime',
  time: 'xsd:time',
  reference: 'tns:ID',
  address: 'urn:address',
  location: 'urn:location',
  base64: 'xsd:base64Binary',
};

function normalizeField(raw: unknown, where: string): FieldDescribe {
  if (!isObject(raw)) throw new DescribeFileError(where, 'expected a JSON object');
  const { name, type } = raw;
  if (typeof name !== 'string' || !/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) {
    throw new DescribeFileError(where, '"name" must be a field API name such as "LeadScore__c"');
  }
  if (typeof type !== 'string' || !(FIELD_TYPES as readonly string[]).includes(type)) {
    throw new DescribeFileError(where, `field ${name}: "type" must be one of ${FIELD_TYPES.join(', ')}`);
  }
  const fieldType = type as FieldType;
  const textual = ['string', 'textarea', 'email', 'phone', 'url', 'picklist', 'multipicklist', 'combobox'];
  const length = fieldType === 'id' || fieldType === 'reference' ? 18 : textual.includes(fieldType) ? 255 : 0;
  const field: FieldDescribe = {
    name,
    label: name,
    type: fieldType,
    soapType: SOAP_TYPES[fieldType],
    length,
    precision: 0,
    scale: 0,
    digits: 0,
    nillable: true,
    createable: true,
    updateable: true,
    defaultedOnCreate: fieldType === 'boolean',
    externalId: false,
    idLookup: false,
    unique: false,
    caseSensitive: false,
    calculated: false,
    autoNumber: false,
    custom: name.endsWith('__c'),
    referenceTo: [],
    relationshipName: null,
    picklistValues: [],
    restrictedPicklist: false,
    defaultValue: fieldType === 'boolean' ? false : null,
    filterable: true,
    sortable: fieldType !== 'textarea' && fieldType !== 'multipicklist',
    groupable: fieldType !== 'textarea' && fieldType !== 'double' && fieldType !== 'currency',
    nameField: false,
    byteLength: length * 3,
    ...raw,
  };
  return field;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Finds a field by API name, case-insensitively (SOQL and REST field names are case-insensitive). */
export function findField(describe: ObjectDescribe, name: string): FieldDescribe | undefined {
  const lower = name.toLowerCase();
  return describe.fields.find((f) => f.name.toLowerCase() === lower);
}
