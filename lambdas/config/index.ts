/**
 * The pipeline config: its types, {@link defineConfig} for `roundtrip.config.ts`,
 * {@link parseConfig} to validate a value, {@link loadConfig} to load a file.
 * Reference: docs/configuration.md.
 */
export { defineConfig, parseConfig, postgresCredentialsSource, taskName } from './parse';
export { loadConfig } from './load';
export {
  CONFIG_DEFAULTS,
  MIN_SALESFORCE_API_VERSION,
  POSTGRES_MAX_IDENTIFIER_BYTES,
  pipelineConfigSchema,
} from './schema';
export { scheduleExpression } from './schedule-expression';
export type * from './types';
