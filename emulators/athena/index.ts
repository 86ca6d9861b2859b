/**
 * The local Athena + S3 emulator (issue 8): Athena's JSON protocol, an S3 GET for result files and
 * STS AssumeRole (a cross-account `athena.roleArn`) on one port, SQL executed by DuckDB over CSV/Parquet files. See docs/athena-emulator.md.
 */
import type { AthenaClientConfig } from '@aws-sdk/client-athena';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type { AthenaEmulator } from './server';

export { startAthenaEmulator, EMULATOR_CREDENTIALS, DEFAULT_REGION, PRIMARY_WORKGROUP } from './server';
export type { AthenaEmulator, AthenaEmulatorCall, AthenaEmulatorOptions } from './server';
export type { AssumedRole } from './sts';
export { ATHENA_MAX_RESULTS_PER_PAGE, NO_FAULTS } from './engine';
export type { AthenaEmulatorFaults, WorkgroupConfig } from './engine';
export { ATHENA_CATALOG, DEFAULT_DATABASE } from './catalog';

/** What the client configs need from an emulator (a running one, or its printed settings). */
export type EmulatorEndpoint = Pick<AthenaEmulator, 'endpoint' | 'region' | 'credentials'>;

/** An `AthenaClient` config that points at the emulator. */
export function athenaClientConfig(emulator: EmulatorEndpoint): AthenaClientConfig {
  return {
    endpoint: emulator.endpoint,
    region: emulator.region,
    credentials: { ...emulator.credentials },
  };
}

/** An `S3Client` config that points at the emulator (path-style, as the emulator serves). */
export function s3ClientConfig(emulator: EmulatorEndpoint): S3ClientConfig {
  return {
    endpoint: emulator.endpoint,
    region: emulator.region,
    credentials: { ...emulator.credentials },
    forcePathStyle: true,
  };
}
