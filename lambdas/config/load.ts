/**
 * Loading a config file: `roundtrip.config.ts` (the usual form) or a `.json` file.
 *
 * A TypeScript or JavaScript file is loaded with `require`, with tsx's CommonJS hook
 * (`tsx/cjs/api` `register()`) switched on for the duration of the load and off again
 * afterwards. That covers each place a config is loaded:
 * - the CLI (already running under tsx) and the CDK app (`cdk.json` runs it with tsx): the
 *   hook compiles the config and everything it imports;
 * - plain Node: the same, the hook is what makes `.ts` loadable at all;
 * - jest: jest's module system serves `require`, and its swc transform compiles the file.
 * Like any module, a config file is evaluated once per process (Node's module cache).
 * tsx is resolved only when a module config is loaded, so code that only parses configs
 * (the Lambdas) never loads it.
 */
import { access, readFile, realpath, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { caBundleFileProblem } from '../shared/ca-bundle';
import { ConfigError, jsonErrorPlace, type ConfigIssue } from '../shared/errors';
import { repeatedJsonKeys } from './json-keys';
import { inDocumentOrder, parseConfig } from './parse';
import { parseConfigReading, type ConfigRead, type ReadSection } from './reading';
import type { PipelineConfig } from './types';

/** Extensions loaded as modules (through tsx). */
const MODULE_EXTENSIONS = new Set(['.ts', '.cts', '.js', '.cjs']);

/** The subset of `tsx/cjs/api` used here. */
interface TsxApi {
  register(): () => void;
}

function fail(source: string, message: string, issuePath = ''): never {
  const issue: ConfigIssue = { path: issuePath, message };
  throw new ConfigError([issue], source);
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Why a config module failed to load. A config outside the checkout that copied the documented
 * `import { defineConfig } from '../lambdas/config'` (or guessed a `roundtrip/...` package, which
 * does not exist) gets the import path that reaches this checkout's `lambdas/config` from its
 * folder; Node's require stack, which names this loader rather than anything the user wrote, is
 * left out of that message.
 */
function loadFailure(error: unknown, file: string): string {
  const text = describeError(error);
  // Read structurally: jest's module registry throws from another realm, which fails instanceof.
  const raw = (error as { message?: unknown } | null)?.message;
  const missing = /^Cannot find module '([^']+)'/.exec(typeof raw === 'string' ? raw : text)?.[1];
  const wantsDefineConfig =
    missing !== undefined &&
    (/(^|\/)lambdas\/config(\/index(\.ts)?)?$/.test(missing) || /^roundtrip(\/|$)/.test(missing));
  if (!wantsDefineConfig) return `the file failed to load: ${text}`;
  let reach = path.relative(path.dirname(file), __dirname).split(path.sep).join('/');
  if (!reach.startsWith('.')) reach = `./${reach}`;
  return (
    `the file failed to load: Cannot find module '${missing}'. defineConfig comes from this checkout's ` +
    `lambdas/config (${__dirname}): from the config's folder, import { defineConfig } from '${reach}'; ` +
    `or leave the import out and export the object itself`
  );
}

/** Runs a `.ts`/`.js` config module and returns its exports. */
function requireModule(file: string): unknown {
  const moduleRequire = createRequire(__filename);
  const tsx = moduleRequire('tsx/cjs/api') as TsxApi;
  const unregister = tsx.register();
  try {
    // tsx resolves a `.js` path to a `.ts` file of the same name when there is one (TypeScript's
    // convention for imports): the file named would silently not be the one loaded.
    const resolved = moduleRequire.resolve(file);
    if (path.resolve(resolved) !== file) {
      throw new Error(
        `${path.basename(file)} would load as ${path.basename(resolved)}, which sits beside it (tsx resolves a .js path to its .ts twin): give the path of ${path.basename(resolved)}, or move one of them away`,
      );
    }
    return moduleRequire(file) as unknown;
  } finally {
    unregister();
  }
}

/** The config a module exports: its default export, a named `config`, or `module.exports` itself. */
function exportedConfig(exports: unknown, file: string): unknown {
  if (typeof exports === 'object' && exports !== null) {
    const module = exports as Record<string, unknown>;
    if (module.default !== undefined) return module.default;
    if (module.config !== undefined) return module.config;
    if (!('__esModule' in module) && Object.keys(module).length > 0) return module;
  }
  return fail(
    file,
    'the file exports no config: expected `export default defineConfig({ ... })` (or a named export `config`)',
  );
}

/**
 * The identity of the file a path names, following symbolic links: its device and inode (a hard
 * link, or a path differing in case on a case-insensitive disk, names the same file by another real
 * path), else, where the file system gives no inode, its real path.
 */
async function fileIdentity(real: string): Promise<string> {
  const { dev, ino } = await stat(real, { bigint: true });
  return ino === 0n ? real : `${dev}:${ino}`;
}

/**
 * An issue for each `transform` entry (a string) naming a file that does not exist, and for each
 * naming a file an earlier entry names already by another path (`transforms/score.sql` and
 * `/…/transforms/score.sql`, or a symbolic link to it): the transform would run it twice, and a
 * statement that is not idempotent (an INSERT) would do its work twice. The schema refuses paths
 * that are the same once normalised; these it cannot see without the config's folder and the disk.
 * In the config's order.
 */
async function transformFileIssues(transform: readonly unknown[], file: string): Promise<ConfigIssue[]> {
  const dir = path.dirname(file);
  const issues: ConfigIssue[] = [];
  const found = await Promise.all(
    transform.map(async (entry, index) => {
      if (typeof entry !== 'string' || entry === '') return undefined;
      const absolute = path.resolve(dir, entry);
      try {
        const real = await realpath(absolute);
        return { entry, index, real, identity: await fileIdentity(real) };
      } catch {
        issues.push({
          path: `transform[${index}]`,
          message: `expected an existing SQL file, got ${JSON.stringify(entry)} (${absolute} does not exist)`,
        });
        return undefined;
      }
    }),
  );
  const first = new Map<string, { index: number; real: string }>();
  for (const f of found) {
    if (f === undefined) continue;
    const earlier = first.get(f.identity);
    if (earlier === undefined) {
      first.set(f.identity, f);
      continue;
    }
    issues.push({
      path: `transform[${f.index}]`,
      message: `expected each file once, got ${JSON.stringify(f.entry)} again (also at transform[${earlier.index}]: both name ${earlier.real})`,
    });
  }
  return issues.sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true }));
}

/**
 * Makes the paths of files the config names absolute, relative to the config file's folder (the
 * `transform` SQL files and `postgres.ssl.caBundle`), and checks that each file exists, naming
 * every missing one, that no transform file is named twice, and that the CA bundle holds PEM
 * certificates.
 */
async function resolveConfigFiles(
  config: PipelineConfig,
  file: string,
  options: LoadConfigOptions,
): Promise<PipelineConfig> {
  const missing =
    options.transformFiles === 'unchecked' ? [] : await transformFileIssues(config.transform, file);
  const dir = path.dirname(file);
  const caBundle = config.postgres.ssl.caBundle;
  const caBundlePath = caBundle === undefined ? undefined : path.resolve(dir, caBundle);
  if (caBundle !== undefined && caBundlePath !== undefined) {
    let exists = true;
    try {
      await access(caBundlePath);
    } catch {
      exists = false;
      missing.push({
        path: 'postgres.ssl.caBundle',
        message: `expected an existing PEM file of CA certificates (a relative path is read from the config's folder), got ${JSON.stringify(caBundle)} (${caBundlePath} does not exist)`,
      });
    }
    // One that exists must hold what the pool will give TLS as its CAs: named here, with the
    // config's other problems, rather than when a run first connects.
    const problem = exists ? caBundleFileProblem(caBundle, caBundlePath) : undefined;
    if (problem !== undefined) missing.push({ path: 'postgres.ssl.caBundle', message: problem });
  }
  if (missing.length > 0) throw new ConfigError(inDocumentOrder(missing), file);
  return {
    ...config,
    transform: config.transform.map((entry) => path.resolve(dir, entry)),
    postgres: {
      ...config.postgres,
      ssl: { ...config.postgres.ssl, ...(caBundlePath ? { caBundle: caBundlePath } : {}) },
    },
  };
}

/**
 * Validates the config, naming a missing transform file (or one an earlier entry names by another
 * path) together with the other problems (every problem at once), not only once the rest is fixed.
 * An entry that is already a problem (not a .sql path, a duplicate) is not named again.
 */
async function parseWithTransformFiles(
  value: unknown,
  file: string,
  options: LoadConfigOptions,
): Promise<PipelineConfig> {
  try {
    return parseConfig(value, file);
  } catch (error) {
    const transform = (value as { transform?: unknown } | null)?.transform;
    if (!(error instanceof ConfigError) || !Array.isArray(transform)) throw error;
    if (options.transformFiles === 'unchecked') throw error;
    const reported = new Set(
      error.issues.map((i) => /^transform\[\d+\]/.exec(i.path)?.[0]).filter((p) => p !== undefined),
    );
    const missing = (await transformFileIssues(transform, file)).filter((i) => !reported.has(i.path));
    if (missing.length === 0) throw error;
    throw new ConfigError(inDocumentOrder([...error.issues, ...missing]), file);
  }
}

/**
 * `JSON.parse`'s message with the line and column of its "at position N": Node 20 names only the
 * offset, which in a config of a hundred lines does not say where to look. A message that already
 * has them (Node 22: "… at position 17 (line 3 column 1)") is left as it is.
 */
function withLineAndColumn(message: string, text: string): string {
  const place = jsonErrorPlace(message, text);
  return !place || /\bline \d+/.test(message) ? message : `${message} (${place})`;
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /**
   * `unchecked`: the `transform` files are not looked for on disk (missing, or one named twice by
   * another path), for a caller that never runs the transform, as {@link loadConfigReading} for
   * the commands that read the runs' records (`status`, `errors`, …): a transform file renamed or
   * moved, as in an incident, does not keep them from answering. The paths are still made
   * absolute. @default 'checked'
   */
  readonly transformFiles?: 'checked' | 'unchecked';
}

/** The config a file holds, as written, and the keys a JSON file repeats (issues, if any). */
async function configValue(absolute: string): Promise<{ value: unknown; repeatedKeys: ConfigIssue[] }> {
  const extension = path.extname(absolute).toLowerCase();
  if (extension !== '.json' && !MODULE_EXTENSIONS.has(extension)) {
    fail(absolute, `expected a .ts, .cts, .js, .cjs or .json file, got "${extension || 'no extension'}"`);
  }
  try {
    await access(absolute);
  } catch {
    fail(absolute, 'the file does not exist');
  }
  if (extension === '.json') {
    let text: string;
    try {
      text = await readFile(absolute, 'utf8');
    } catch (error) {
      return fail(absolute, `cannot read the file: ${describeError(error)}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return fail(absolute, `the file is not valid JSON: ${withLineAndColumn(describeError(error), text)}`);
    }
    return { value, repeatedKeys: repeatedJsonKeys(text) };
  }
  let exports: unknown;
  try {
    exports = requireModule(absolute);
  } catch (error) {
    return fail(absolute, loadFailure(error, absolute));
  }
  return { value: exportedConfig(exports, absolute), repeatedKeys: [] };
}

/**
 * Loads, validates and completes a pipeline config file.
 *
 * @param file path of a `.ts`, `.cts`, `.js`, `.cjs` or `.json` file; a module exports the
 *   config as its default export (`export default defineConfig({...})`).
 * @returns the validated config with defaults applied and `transform` paths made absolute.
 * @throws ConfigError naming the file when it is missing, cannot be read or run, exports no
 *   config, does not validate (every problem at once), or names a transform file that does
 *   not exist.
 */
export async function loadConfig(file: string, options: LoadConfigOptions = {}): Promise<PipelineConfig> {
  const absolute = path.resolve(file);
  const { value, repeatedKeys } = await configValue(absolute);
  if (repeatedKeys.length > 0) {
    // Named with every other problem of the file, at once.
    const others = await parseWithTransformFiles(value, absolute, options).then(
      () => [],
      (error: unknown) => {
        if (error instanceof ConfigError) return error.issues;
        throw error;
      },
    );
    throw new ConfigError(inDocumentOrder([...repeatedKeys, ...others]), absolute);
  }
  return resolveConfigFiles(await parseWithTransformFiles(value, absolute, options), absolute, options);
}

/**
 * Loads a config file for a command that reads only `name`, `postgres`, which task each entry of
 * `extract` and `writeback` is, and `sections` (reading.ts, {@link parseConfigReading}): a mistake
 * elsewhere is tolerated, left out of the config and answered in `tolerated`. The transform files
 * are not looked for (such a command never runs them); the CA bundle is checked, as by
 * {@link loadConfig}.
 *
 * @throws ConfigError as {@link loadConfig} does, when a mistake is in a part the command reads.
 */
export async function loadConfigReading(file: string, sections: readonly ReadSection[]): Promise<ConfigRead> {
  const absolute = path.resolve(file);
  const { value, repeatedKeys } = await configValue(absolute);
  const { config, tolerated } = parseConfigReading(value, absolute, sections, repeatedKeys);
  return {
    config: await resolveConfigFiles(config, absolute, { transformFiles: 'unchecked' }),
    tolerated,
  };
}
