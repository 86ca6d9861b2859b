/**
 * How a record's errors become one writeback_errors row: the parse of a Bulk failedResults
 * `sf__Error` into code, message and fields (BULK_ERROR_SQL), run by PostgreSQL on the shapes
 * Salesforce writes (an empty field list with or without a space before `--`, messages holding
 * colons and ` -- `, several errors for one record, odd text), and a Collections result with
 * several errors.
 */
import { Client, type PoolClient } from 'pg';
import { BULK_ERROR_SQL } from '../../../lambdas/core/writeback/bulk-results';
import {
  createResultsTable,
  insertCollectionResults,
  RESULTS_TABLE,
} from '../../../lambdas/core/writeback/results';
import { createTestDatabase, type TestDatabase } from '../../support/database';

describe('record errors', () => {
  let db: TestDatabase;
  let client: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    client = new Client({ connectionString: db.url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await db?.drop();
  });

  const parse = async (text: string | null) =>
    (
      await client.query(
        `SELECT e.code, e.message, e.fields FROM (VALUES ($1::text)) AS r(sf_extra) CROSS JOIN LATERAL (${BULK_ERROR_SQL}) e`,
        [text],
      )
    ).rows[0];

  it.each([
    [
      'fields, as the reference writes them',
      'REQUIRED_FIELD_MISSING:Required fields are missing: [Company]:Company --',
      {
        code: 'REQUIRED_FIELD_MISSING',
        message: 'Required fields are missing: [Company]',
        fields: ['Company'],
      },
    ],
    [
      'fields joined by a comma and a space',
      'REQUIRED_FIELD_MISSING:Required fields are missing: [LastName, Company]:LastName, Company --',
      {
        code: 'REQUIRED_FIELD_MISSING',
        message: 'Required fields are missing: [LastName, Company]',
        fields: ['LastName', 'Company'],
      },
    ],
    [
      'a message whose last part after a colon is words, no fields',
      'FIELD_CUSTOM_VALIDATION_EXCEPTION:Score: too high:--',
      { code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION', message: 'Score: too high', fields: [] },
    ],
    [
      'no fields, a space before --',
      'ENTITY_IS_DELETED:entity is deleted: --',
      { code: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] },
    ],
    [
      'no fields, no space before --',
      'ENTITY_IS_DELETED:entity is deleted:--',
      { code: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] },
    ],
    [
      'a message holding " -- " and colons',
      'DUPLICATE_VALUE:Duplicate external id specified: K -- 1:External_Id__c --',
      {
        code: 'DUPLICATE_VALUE',
        message: 'Duplicate external id specified: K -- 1',
        fields: ['External_Id__c'],
      },
    ],
    [
      'several errors of one record',
      'STRING_TOO_LONG:Last Name: data value too large: x:LastName,FirstName -- REQUIRED_FIELD_MISSING:Required fields are missing: [Company]:Company --',
      {
        code: 'STRING_TOO_LONG',
        message:
          'Last Name: data value too large: x (and REQUIRED_FIELD_MISSING:Required fields are missing: [Company]:Company)',
        fields: ['LastName', 'FirstName'],
      },
    ],
    [
      'text of another shape',
      'something odd',
      { code: 'UNKNOWN_EXCEPTION', message: 'something odd', fields: [] },
    ],
    ['nothing at all', '', { code: 'UNKNOWN_EXCEPTION', message: 'Salesforce gave no reason', fields: [] }],
    ['a NULL', null, { code: 'UNKNOWN_EXCEPTION', message: 'Salesforce gave no reason', fields: [] }],
  ])('reads %s', async (_what, text, expected) => {
    expect(await parse(text)).toEqual(expected);
  });

  it('keeps every error of a Collections result: the first gives code and fields, the others join the message', async () => {
    await client.query('BEGIN');
    try {
      await createResultsTable(client as unknown as PoolClient);
      await insertCollectionResults(
        client as unknown as PoolClient,
        [7],
        [
          {
            id: null,
            success: false,
            errors: [
              {
                statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
                message: 'Score too high',
                fields: ['LeadScore__c'],
              },
              {
                statusCode: 'REQUIRED_FIELD_MISSING',
                message: 'Required fields are missing: [Company]',
                fields: ['Company'],
              },
            ],
          },
        ],
      );
      const { rows } = await client.query(`SELECT seq::int, code, message, fields FROM ${RESULTS_TABLE}`);
      expect(rows).toEqual([
        {
          seq: 7,
          code: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
          message: 'Score too high (and REQUIRED_FIELD_MISSING: Required fields are missing: [Company])',
          fields: ['LeadScore__c'],
        },
      ]);
    } finally {
      await client.query('ROLLBACK');
    }
  });
});
