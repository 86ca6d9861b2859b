/**
 * `npm run bench -- bundles [--runs N]`: bundles each step's handler with esbuild exactly as the
 * stack does (lib/constructs/step-function.ts: minified, source maps, node22, CommonJS, the AWS
 * SDK v3 left to the runtime), and reports per function
 * - the minified size of index.js (target: at most 1 MB) and its largest contributors,
 * - the module initialisation time: `require()` of the bundle in a fresh `node` process, timed
 *   with performance.now(), minus the same for an empty bundle (the reference), median of N runs
 *   (target: at most 150 ms on the development machine).
 *
 * The bundles are written under .roundtrip/bench-bundles/ inside the project, so that the AWS
 * SDK they leave external resolves from node_modules as it does from the Lambda runtime.
 * Requiring a handler runs its module scope only: no client is built and nothing is called until
 * the first invocation (lambdas/handlers/deps.ts builds the deps on first use).
 * The last line is one JSON object with every figure.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build, type BuildOptions } from 'esbuild';
import { PIPELINE_STEPS, STEP_KEYS, type StepKey } from '../statemachine/definition';

/** Targets of issue 6. */
export const BUNDLE_SIZE_TARGET_BYTES = 1024 * 1024;
export const INIT_TARGET_MS = 150;

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, '.roundtrip', 'bench-bundles');

/** The esbuild options NodejsFunction uses for the stack's bundling props. */
const BUNDLE_OPTIONS: BuildOptions = {
  bundle: true,
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  external: ['@aws-sdk/*'],
  metafile: true,
  logLevel: 'silent',
};

function parseRuns(argv: readonly string[]): number {
  const i = argv.indexOf('--runs');
  if (i < 0) return 5;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--runs expects a whole number ≥ 1, got ${argv[i + 1]}`);
  return n;
}

/** Milliseconds `require(file)` takes in a fresh node process. */
function requireMs(file: string): number {
  const script = `const { performance } = require('node:perf_hooks'); const t = performance.now(); require(${JSON.stringify(
    file,
  )}); process.stdout.write(String(performance.now() - t));`;
  const out = execFileSync(process.execPath, ['-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, AWS_REGION: 'us-east-1' },
  });
  return Number(out);
}

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
  readonly top: Record<string, number>;
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
  const referenceMs = median(Array.from({ length: runs }, () => requireMs(empty)));

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
    const initMs = median(Array.from({ length: runs }, () => requireMs(outfile))) - referenceMs;
    figures[step] = { handler, bytes, initMs: Math.round(initMs * 10) / 10, top };
    process.stderr.write(
      `${handler.padEnd(26)} ${(bytes / 1024).toFixed(0).padStart(6)} KB  init ${initMs.toFixed(1).padStart(7)} ms  ` +
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
    referenceInitMs: Math.round(referenceMs * 10) / 10,
    maxBytes: Math.max(...all.map((f) => f.bytes)),
    maxInitMs: Math.max(...all.map((f) => f.initMs)),
    bytesTarget: BUNDLE_SIZE_TARGET_BYTES,
    initTargetMs: INIT_TARGET_MS,
    withinBytesTarget: all.every((f) => f.bytes <= BUNDLE_SIZE_TARGET_BYTES),
    withinInitTarget: all.every((f) => f.initMs <= INIT_TARGET_MS),
    functions: Object.fromEntries(
      Object.entries(figures).map(([k, f]) => [k, { handler: f.handler, bytes: f.bytes, initMs: f.initMs }]),
    ),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}
