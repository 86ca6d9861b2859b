/**
 * The seed scenario: score Salesforce leads with what the data lake knows about customers.
 *
 * 1. Extract Salesforce `Lead` into `sf_lead` (incremental, by SystemModstamp) and the
 *    Athena query over `marketing.customers` into `athena_customers` (full refresh).
 * 2. Transform: transforms/lead_score.sql fills `lead_reverse` ("Id", lead_score); the
 *    scoring rules are written out at the top of that file.
 * 3. Write back `lead_score` into `Lead.LeadScore__c`, updating leads by Id. Only leads whose
 *    score changed are sent.
 *
 * Reference of every option: docs/configuration.md.
 */
import { defineConfig } from '../../lambdas/config';

export default defineConfig({
  name: 'lead-scoring',
  // 02:00 Tokyo time, every day.
  schedule: { cron: '0 2 * * ? *', timezone: 'Asia/Tokyo' },
  salesforce: { secret: 'roundtrip/salesforce', apiVersion: '62.0' },
  athena: {
    database: 'marketing',
    outputLocation: 's3://roundtrip-athena-results/lead-scoring/',
  },
  postgres: { secret: 'roundtrip/postgres', schema: 'public' },
  extract: [
    {
      from: 'salesforce',
      object: 'Lead',
      fields: [
        'Id',
        'FirstName',
        'LastName',
        'Email',
        'Company',
        'Status',
        'LeadSource',
        'Industry',
        'AnnualRevenue',
        'NumberOfEmployees',
        'LeadScore__c',
        'SystemModstamp',
        'IsDeleted',
        'IsConverted',
      ],
      table: 'sf_lead',
      mode: 'incremental',
      deletes: 'flag',
    },
    {
      from: 'athena',
      query: 'SELECT email, lifetime_value, order_count, last_order_at, segment FROM customers',
      table: 'athena_customers',
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
      fields: { LeadScore__c: 'lead_score' },
      maxFailureRate: 0.05,
      maxRejectRate: 0.05,
      maxChanges: 100_000,
    },
  ],
  budget: { maxApiCallsPerRun: 5_000, reserveDailyApiPercent: 20 },
});
