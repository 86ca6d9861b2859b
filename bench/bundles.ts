/**
 * `npm run bench -- bundles [--runs N]`: bundles each step's handler with esbuild exactly as the
 * stack does (lib/constructs/step-function.ts: minified, source maps, node22, CommonJS, the AWS
 * SDK v3 left to the runtime, the same aliases), and reports per function
 * - the minified size of index.js (target: at most 1 MB) and its largest contributors,
 * - the module initialisation time: `require()` of the bundle in a fresh `node` process, timed
 *   with performance.now(), minus the same for an empty bundle (the reference), median of N runs
 *   (target: at most 150 ms on the development machine), and the fastest run minus the fastest
 *   reference, and the median CPU time (user + system) minus the reference's: on a shared
 *   machine the wall-clock median moves with the load, the minimum less, CPU time hardly at all,
 * - what the first invocation loads on top (the handlers build their deps then, and import the
 *   Secrets Manager client and their step's connector dynamically): each such module bundled on
 *   its own and required in a fresh process right after the function's bundle, median CPU time
 *   of N runs.
 *   It is an upper bound: the separate bundle evaluates again what it shares with the function
 *   (zod, for one).
 *
 * The bundles are written under .roundtrip/bench-bundles/ inside the project, so that the AWS
 * SDK they leave external resolves from node_modules as it does from /var/runtime/node_modules in
 * the Lambda Node.js 22 runtime: in both, the SDK's CommonJS files are read from disk, unbundled
 * and unminified, at the first `require` (the runtime's SDK version differs from ours). As a
 * reference the Secrets Manager client is also timed bundled and minified into the function.
 * Requiring a handler runs its module scope only: no client is built and nothing is called until
 * the first invocation (lambdas/handlers/deps.ts builds the deps on first use).
 * The last line is one JSON object with every figure.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build, type BuildOptions } from 'esbuild';
import { LAMBDA_ESBUILD_OPTIONS } from '../lib/constructs/step-function';
import { PIPELINE_STEPS, STEP_KEYS, type StepKey } from '../statemachine/definition';

/** Targets of issue 6. */
export const BUNDLE_SIZE_TARGET_BYTES = 1024 * 1024;
export const INIT_TARGET_MS = 150;

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, '.roundtrip', 'bench-bundles');

/** The esbuild options of the stack's bundling (from the project root, where the aliases' paths start). */
const BUNDLE_OPTIONS: BuildOptions = {
  ...LAMBDA_ESBUILD_OPTIONS,
  metafile: true,
  logLevel: 'silent',
};

/**
 * What the first invocation of a function loads dynamically (lambdas/handlers/*-deps.ts), as
 * entry points of their own. `secrets` is loaded by every function (unless local secrets are
 * used); `salesforce` by the steps that use Salesforce, `athena` by the Athena load.
 */
const FIRST_USE_MODULES = {
  secrets: ['lambdas/shared/secrets.ts', '@aws-sdk/client-secrets-manager'],
  salesforce: ['lambdas/connectors/salesforce/connector.ts'],
  athena: ['lambdas/connectors/athena/connector.ts', '@aws-sdk/client-athena', '@aws-sdk/client-s3'],
} as const;
type FirstUse = keyof typeof FIRST_USE_MODULES;

/**
 * The connectors a step's function builds on first use: Salesforce for the steps that talk to it
 * (statemachine/definition.ts `salesforce`, which also grants the secret; test/integration/handlers
 * checks the handlers agree), Athena for the Athena load.
 */
function stepConnectors(step: StepKey): FirstUse[] {
  return [
    ...(PIPELINE_STEPS[step].salesforce ? (['salesforce'] as const) : []),
    ...(PIPELINE_STEPS[step].handler === 'load-athena' ? (['athena'] as const) : []),
  ];
}

function parseRuns(argv: readonly string[]): number {
  const i = argv.indexOf('--runs');
  if (i < 0) return 5;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--runs expects a whole number ≥ 1, got ${argv[i + 1]}`);
  return n;
}

/** Wall-clock and CPU (user + system) milliseconds of one `require`. */
interface RequireTime {
  readonly wallMs: number;
  readonly cpuMs: number;
}

/**
 * What `require(file)` takes in a fresh node process, after `require(after)` when given
 * (untimed). CPU time barely moves with the load of a shared machine; wall-clock time does.
 */
function requireTime(file: string, after?: string): RequireTime {
  const first = after ? `require(${JSON.stringify(after)}); ` : '';
  const script =
    `const { performance } = require('node:perf_hooks'); ${first}` +
    `const c = process.cpuUsage(); const t = performance.now(); require(${JSON.stringify(file)}); ` +
    `const w = performance.now() - t; const u = process.cpuUsage(c); ` +
    `process.stdout.write(JSON.stringify({ wallMs: w, cpuMs: (u.user + u.system) / 1000 }));`;
  const out = execFileSync(process.execPath, ['-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, AWS_REGION: 'us-east-1' },
  });
  return JSON.parse(out) as RequireTime;
}

/** `runs` timings of `require(file)`. */
function requireTimes(runs: number, file: string, after?: string): RequireTime[] {
  return Array.from({ length: runs }, () => requireTime(file, after));
}

const wall = (times: readonly RequireTime[]): number[] => times.map((t) => t.wallMs);
const cpu = (times: readonly RequireTime[]): number[] => times.map((t) => t.cpuMs);

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Bytes of the output per package (node_modules/<pkg>) or `app` for our own code. */
function contributors(inputs: Record<string, { bytesInOutput: number }>): [string, number][] {
  const sizes = new Map<string, number>();
  for (const [file, { bytesInOutput }] of Object.entries(inputs)) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file)?.[1] ?? 'app';
    sizes.set(pkg, (sizes.get(pkg) ?? 0) + bytesInOutput);
  }
  return [...sizes].sort((a, b) => b[1] - a[1]);
}

interface BundleFigures {
  readonly handler: string;
  readonly bytes: number;
  readonly initMs: number;
  /** The fastest of the runs, minus the fastest reference: what is left when the machine is busy. */
  readonly initMinMs: number;
  /** CPU milliseconds of the initialisation (median), minus the reference's. */
  readonly initCpuMs: number;
  /** CPU milliseconds of module loading the first invocation adds (upper bound, see the module comment). */
  readonly firstUseMs: number;
  readonly top: Record<string, number>;
}

const round1 = (ms: number): number => Math.round(ms * 10) / 10;

/** Bundles `imports` (project files or packages) into one entry's index.js, as the functions are. */
async function bundleImports(
  name: string,
  imports: readonly string[],
  options: BuildOptions = {},
): Promise<string> {
  const entry = path.join(OUT, `${name}.ts`);
  const specifier = (i: string): string =>
    i.startsWith('lambdas/') ? path.join(ROOT, i.replace(/\.ts$/, '')) : i;
  writeFileSync(entry, imports.map((i) => `export * from ${JSON.stringify(specifier(i))};\n`).join(''));
  const outfile = path.join(OUT, name, 'index.js');
  await build({ ...BUNDLE_OPTIONS, ...options, entryPoints: [entry], outfile });
  return outfile;
}

/** Runs the benchmark; see the module comment. */
export async function run(argv: string[]): Promise<void> {
  const runs = parseRuns(argv);
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });

  const empty = path.join(OUT, 'empty', 'index.js');
  mkdirSync(path.dirname(empty), { recursive: true });
  writeFileSync(path.join(OUT, 'empty.ts'), 'export const handler = async (): Promise<void> => undefined;\n');
  await build({ ...BUNDLE_OPTIONS, entryPoints: [path.join(OUT, 'empty.ts')], outfile: empty });
  const reference = requireTimes(runs, empty);
  const referenceMs = median(wall(reference));
  const referenceMinMs = Math.min(...wall(reference));
  const referenceCpuMs = median(cpu(reference));

  // The SDK as the functions load it (external: from node_modules) and bundled into them.
  const sdkExternal = await bundleImports('sdk-external', ['@aws-sdk/client-secrets-manager']);
  const sdkBundled = await bundleImports('sdk-bundled', ['@aws-sdk/client-secrets-manager'], {
    external: [],
  });
  const secretsManagerClient = {
    externalCpuMs: round1(median(cpu(requireTimes(runs, sdkExternal))) - referenceCpuMs),
    bundledCpuMs: round1(median(cpu(requireTimes(runs, sdkBundled))) - referenceCpuMs),
    bundledBytes: statSync(sdkBundled).size,
  };
  process.stderr.write(
    `Secrets Manager client: ${secretsManagerClient.externalCpuMs} ms CPU from node_modules, ${secretsManagerClient.bundledCpuMs} ms CPU bundled (${(secretsManagerClient.bundledBytes / 1024).toFixed(0)} KB)\n`,
  );
  const firstUseFiles = {} as Record<FirstUse, string>;
  for (const [name, imports] of Object.entries(FIRST_USE_MODULES) as [FirstUse, readonly string[]][]) {
    firstUseFiles[name] = await bundleImports(`first-use-${name}`, imports);
  }

  const figures: Record<string, BundleFigures> = {};
  for (const step of STEP_KEYS as StepKey[]) {
    const handler = PIPELINE_STEPS[step].handler;
    const outfile = path.join(OUT, handler, 'index.js');
    const result = await build({
      ...BUNDLE_OPTIONS,
      entryPoints: [path.join(ROOT, 'lambdas', 'handlers', `${handler}.ts`)],
      outfile,
    });
    const bytes = statSync(outfile).size;
    const output = Object.entries(result.metafile?.outputs ?? {}).find(([f]) => f.endsWith('index.js'))?.[1];
    const top = Object.fromEntries(contributors(output?.inputs ?? {}).slice(0, 5));
    const samples = requireTimes(runs, outfile);
    const initMs = median(wall(samples)) - referenceMs;
    const initMinMs = Math.min(...wall(samples)) - referenceMinMs;
    const initCpuMs = median(cpu(samples)) - referenceCpuMs;
    let firstUseMs = 0;
    for (const name of ['secrets', ...stepConnectors(step)] as FirstUse[]) {
      firstUseMs += median(cpu(requireTimes(runs, firstUseFiles[name], outfile)));
    }
    figures[step] = {
      handler,
      bytes,
      initMs: round1(initMs),
      initMinMs: round1(initMinMs),
      initCpuMs: round1(initCpuMs),
      firstUseMs: round1(firstUseMs),
      top,
    };
    process.stderr.write(
      `${handler.padEnd(26)} ${(bytes / 1024).toFixed(0).padStart(6)} KB  init ${initMs.toFixed(1).padStart(7)} ms (min ${initMinMs.toFixed(1).padStart(6)}, CPU ${initCpuMs.toFixed(1).padStart(6)})  ` +
        `first use +${firstUseMs.toFixed(1).padStart(6)} ms CPU  ` +
        `${Object.entries(top)
          .map(([k, v]) => `${k} ${(v / 1024).toFixed(0)}K`)
          .join(', ')}\n`,
    );
  }
  const all = Object.values(figures);
  const summary = {
    benchmark: 'bundles',
    node: process.version,
    runs,
    referenceInitMs: round1(referenceMs),
    referenceInitCpuMs: round1(referenceCpuMs),
    secretsManagerClient,
    maxBytes: Math.max(...all.map((f) => f.bytes)),
    maxInitMs: Math.max(...all.map((f) => f.initMs)),
    bytesTarget: BUNDLE_SIZE_TARGET_BYTES,
    initTargetMs: INIT_TARGET_MS,
    withinBytesTarget: all.every((f) => f.bytes <= BUNDLE_SIZE_TARGET_BYTES),
    withinInitTarget: all.every((f) => f.initMs <= INIT_TARGET_MS),
    functions: Object.fromEntries(
      Object.entries(figures).map(([k, f]) => [
        k,
        {
          handler: f.handler,
          bytes: f.bytes,
          initMs: f.initMs,
          initMinMs: f.initMinMs,
          initCpuMs: f.initCpuMs,
          firstUseMs: f.firstUseMs,
        },
      ]),
    ),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}
