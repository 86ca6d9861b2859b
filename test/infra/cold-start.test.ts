/**
 * What each Lambda evaluates at a cold start: the modules its bundle reaches from the handler
 * through static imports. jsforce (and the Salesforce connector that loads it) must be reached only
 * through the dynamic import that builds the connector on first use: statically imported, it adds
 * ~45 ms of CPU to every cold start (npm run bench -- bundles), as it did to the write-back's plan,
 * push and collect when a core module imported a constant from connector.ts. And the size of each
 * minified bundle: at most 1 MB (issue 6), without the packages that shims replace.
 */
import path from 'node:path';
import { build, type Metafile } from 'esbuild';
import { LAMBDA_ESBUILD_OPTIONS } from '../../lib/constructs/step-function';
import { PIPELINE_STEPS, STEP_KEYS } from '../../statemachine/definition';

const ROOT = path.resolve(__dirname, '../..');

/** The inputs reached from `entry` by static imports and requires (not by `import()`). */
function staticClosure(metafile: Metafile, entry: string): Set<string> {
  const seen = new Set<string>();
  const stack = [entry];
  while (stack.length > 0) {
    const file = stack.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const i of metafile.inputs[file]?.imports ?? []) {
      if (i.kind !== 'dynamic-import' && !i.external) stack.push(i.path);
    }
  }
  return seen;
}

/** The largest minified bundle a function may have: 1 MB (1,048,576 bytes). */
const BUNDLE_MAX_BYTES = 1024 * 1024;

describe('cold start of the bundled functions', () => {
  jest.setTimeout(120_000);

  it.each(STEP_KEYS.map((step) => [step, PIPELINE_STEPS[step].handler] as const))(
    '%s evaluates neither jsforce nor the Salesforce connector at init, and its bundle stays within 1 MB',
    async (_step, handler) => {
      const entry = `lambdas/handlers/${handler}.ts`;
      const { metafile } = await build({
        ...LAMBDA_ESBUILD_OPTIONS,
        entryPoints: [path.join(ROOT, entry)],
        absWorkingDir: ROOT,
        bundle: true,
        write: false,
        metafile: true,
        sourcemap: false,
        // Minified as deployed, for the bundle's size (the inputs it reaches are the same).
        minify: true,
        logLevel: 'silent',
        outdir: path.join(ROOT, '.roundtrip', 'cold-start'),
      });
      const closure = staticClosure(metafile, entry);
      expect(closure.size).toBeGreaterThan(10);
      const atInit = [...closure].filter(
        (f) => f.includes('node_modules/jsforce/') || f === 'lambdas/connectors/salesforce/connector.ts',
      );
      expect(atInit).toEqual([]);
      // The packages BUNDLE_ALIASES replaces are not bundled (whatwg-url and its tr46 table;
      // mime-types and its mime-db table): the shims are.
      const replaced = Object.keys(metafile.inputs).filter((f) =>
        /node_modules\/(?:whatwg-url|tr46|mime-types|mime-db)\//.test(f),
      );
      expect(replaced).toEqual([]);
      // Issue 6's target, BENCHMARKS.md "Lambda bundles" (undici, bundled for the proxy, once
      // took the Salesforce functions to 1.38 MB).
      const bytes = Object.entries(metafile.outputs)
        .filter(([file]) => file.endsWith('.js'))
        .reduce((sum, [, output]) => sum + output.bytes, 0);
      expect(bytes).toBeGreaterThan(100_000);
      expect(bytes).toBeLessThanOrEqual(BUNDLE_MAX_BYTES);
    },
  );
});
