/**
 * How the Lambda functions get the pipeline config: the validated config, serialized to JSON, is
 * copied into every function's bundle as `roundtrip.config.json` (with the transform SQL files
 * and the PostgreSQL CA bundle, when there is one, next to it), and `ROUNDTRIP_CONFIG_FILE`
 * names it (read by lambdas/handlers/deps.ts). The config is validated once more at cold start.
 *
 * Paths inside the bundled config are relative to the bundle root, which is Lambda's working
 * directory (`LAMBDA_TASK_ROOT`, /var/task), so `readFile('transform/01-lead_score.sql')` works
 * there as it does for a local run of the unpacked bundle started from its folder.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PipelineConfig } from '../lambdas/config';

/**
 * Where Lambda unpacks the function code (Lambda developer guide, "Defined runtime environment
 * variables": `LAMBDA_TASK_ROOT`).
 */
export const LAMBDA_TASK_ROOT = '/var/task';

/** The config's file name inside each bundle. */
export const BUNDLED_CONFIG_FILE = 'roundtrip.config.json';

/** The folder of the transform SQL files inside the transform function's bundle. */
export const BUNDLED_TRANSFORM_DIR = 'transform';

/** The PostgreSQL CA bundle's file name inside each bundle. */
export const BUNDLED_CA_BUNDLE = 'postgres-ca-bundle.pem';

/** A file to copy into a bundle: from this machine, to a path relative to the bundle root. */
export interface BundledFile {
  readonly source: string;
  readonly target: string;
}

/** The config as the functions read it, and the files that go with it. */
export interface BundledConfig {
  /** The config with bundle-relative paths. */
  readonly config: PipelineConfig;
  /** Files every function needs (the CA bundle). */
  readonly common: readonly BundledFile[];
  /** The transform SQL files (only the transform function needs them). */
  readonly transform: readonly BundledFile[];
}

/**
 * Rewrites the machine paths of a loaded config (absolute transform paths, the CA bundle) to
 * their places inside the bundle. Transform files are numbered so that two files of one name in
 * different folders cannot collide and the order stays visible.
 */
export function bundledConfig(config: PipelineConfig): BundledConfig {
  const transform = config.transform.map((source, i) => ({
    source,
    target: `${BUNDLED_TRANSFORM_DIR}/${String(i + 1).padStart(2, '0')}-${path.basename(source)}`,
  }));
  const caBundle = config.postgres.ssl.caBundle;
  // Absolute, so that the copy does not depend on the folder the bundling runs in (the project
  // root). loadConfig made it absolute beside the config file; a relative path of a config built
  // otherwise means the working directory.
  const common = caBundle ? [{ source: path.resolve(caBundle), target: BUNDLED_CA_BUNDLE }] : [];
  return {
    config: {
      ...config,
      transform: transform.map((f) => f.target),
      postgres: {
        ...config.postgres,
        ssl: { ...config.postgres.ssl, ...(caBundle ? { caBundle: BUNDLED_CA_BUNDLE } : {}) },
      },
    },
    common,
    transform,
  };
}

/** Writes the bundled config's JSON into `dir` and returns the file's path. */
export function writeBundledConfig(bundled: BundledConfig, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, BUNDLED_CONFIG_FILE);
  writeFileSync(file, `${JSON.stringify(bundled.config, null, 2)}\n`);
  return file;
}

/** Shell-quotes a path for the bundling command hooks (run by `bash -c` for local bundling). */
function quote(p: string): string {
  return `'${p.replace(/'/g, `'\\''`)}'`;
}

/** The commands that copy `files` (and the config file) into a bundle's output folder. */
export function copyCommands(outputDir: string, configFile: string, files: readonly BundledFile[]): string[] {
  const dirs = [...new Set(files.map((f) => path.posix.dirname(f.target)).filter((d) => d !== '.'))];
  return [
    `cp ${quote(configFile)} ${quote(path.posix.join(outputDir, BUNDLED_CONFIG_FILE))}`,
    ...dirs.map((d) => `mkdir -p ${quote(path.posix.join(outputDir, d))}`),
    ...files.map((f) => `cp ${quote(f.source)} ${quote(path.posix.join(outputDir, f.target))}`),
  ];
}
