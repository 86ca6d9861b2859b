/**
 * The pipeline config: its types, {@link defineConfig} for `roundtrip.config.ts`,
 * {@link parseConfig} to validate a value, {@link loadConfig} to load a file.
 * Reference: docs/configuration.md.
 */
export {
  athenaQueryTimeoutMinutes,
  defineConfig,
  parseConfig,
  postgresCredentialsSource,
  taskName,
} from './parse';
export { loadConfig, loadConfigReading, type LoadConfigOptions } from './load';
export { parseConfigReading, type ConfigRead, type ReadSection } from './reading';
export {
  CONFIG_DEFAULTS,
  MAX_ATHENA_QUERY_TIMEOUT_MINUTES,
  MIN_SALESFORCE_API_VERSION,
  POSTGRES_MAX_IDENTIFIER_BYTES,
  pipelineConfigSchema,
} from './schema';
export { scheduleExpression } from './schedule-expression';
export { configWarnings, type ConfigWarning } from './warnings';
export type * from './types';
