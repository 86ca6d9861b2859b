import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { loadConfig, parseConfig } from '../../lambdas/config';
import {
  BUNDLED_CA_BUNDLE,
  BUNDLED_CONFIG_FILE,
  bundledConfig,
  copyCommands,
} from '../../lib/bundled-config';
import { PipelineStack } from '../../lib/pipeline-stack';
import { ASL_EXAMPLE_CONFIG } from '../../statemachine/asl';
import { STEP_KEYS } from '../../statemachine/definition';
import { LEAD_SCORE_SQL, newApp } from './support';

describe('bundledConfig', () => {
  it('rewrites the machine paths to numbered places inside the bundle', () => {
    const config = parseConfig({
      name: 'p',
      postgres: { secret: 'pg', ssl: { caBundle: '/etc/ssl/rds-global.pem' } },
      transform: ['/work/a/score.sql', '/work/b/score.sql'],
    });
    const bundled = bundledConfig(config);
    expect(bundled.config.transform).toEqual(['transform/01-score.sql', 'transform/02-score.sql']);
    expect(bundled.config.postgres.ssl.caBundle).toBe(BUNDLED_CA_BUNDLE);
    expect(bundled.transform).toEqual([
      { source: '/work/a/score.sql', target: 'transform/01-score.sql' },
      { source: '/work/b/score.sql', target: 'transform/02-score.sql' },
    ]);
    expect(bundled.common).toEqual([{ source: '/etc/ssl/rds-global.pem', target: BUNDLED_CA_BUNDLE }]);
    // What the functions read validates as a config again (they parse it at cold start).
    expect(parseConfig(JSON.parse(JSON.stringify(bundled.config)))).toEqual(bundled.config);
  });

  it('copies a CA bundle given by a relative path (a config not made by loadConfig) from the working directory', () => {
    // The bundling commands run in the project root, which need not be where cdk was started.
    const config = parseConfig({
      name: 'p',
      postgres: { secret: 'pg', ssl: { caBundle: 'certs/rds-global.pem' } },
      transform: ['/work/a/score.sql'],
    });
    expect(bundledConfig(config).common).toEqual([
      { source: path.resolve('certs/rds-global.pem'), target: BUNDLED_CA_BUNDLE },
    ]);
  });

  it('copies with quoted paths, so spaces and quotes in folder names survive the shell', () => {
    expect(
      copyCommands('/out', "/tmp/it's here/roundtrip.config.json", [
        { source: '/sql dir/a.sql', target: 'transform/01-a.sql' },
      ]),
    ).toEqual([
      `cp '/tmp/it'\\''s here/roundtrip.config.json' '/out/${BUNDLED_CONFIG_FILE}'`,
      "mkdir -p '/out/transform'",
      "cp '/sql dir/a.sql' '/out/transform/01-a.sql'",
    ]);
  });
});

describe('the bundled functions of the example', () => {
  let outdir: string;
  let assets: Map<string, string>;

  beforeAll(async () => {
    // One real bundling of every function (esbuild, locally, no Docker).
    const app = newApp({ bundle: true });
    outdir = mkdtempSync(path.join(os.tmpdir(), 'roundtrip-cdk-out-'));
    const config = await loadConfig(ASL_EXAMPLE_CONFIG);
    const stack = new PipelineStack(app, 'roundtrip-lead-scoring', { config });
    const assembly = app.synth({ force: true });
    outdir = assembly.directory;
    const template = Template.fromStack(stack);
    assets = new Map();
    for (const step of STEP_KEYS) {
      const fn = template.toJSON().Resources[
        stack.getLogicalId(stack.stepFunction(step).function.node.defaultChild as never)
      ] as { Properties: { Code: { S3Key: string } } };
      assets.set(step, path.join(outdir, `asset.${fn.Properties.Code.S3Key.replace(/\.zip$/, '')}`));
    }
  });

  it('holds a minified handler with its source map and the config in every bundle', () => {
    for (const [step, dir] of assets) {
      const files = readdirSync(dir).sort();
      expect({ step, files: files.filter((f) => f !== 'transform') }).toEqual({
        step,
        files: ['index.js', 'index.js.map', BUNDLED_CONFIG_FILE],
      });
      const code = readFileSync(path.join(dir, 'index.js'), 'utf8');
      // Minified: the doc comments of the sources are gone.
      expect(code).not.toContain('The step contracts: every input and output');
      expect(code).toContain('sourceMappingURL=index.js.map');
      // The stack's esbuild aliases took: the packages the shims replace are not in the bundle.
      const { sources } = JSON.parse(readFileSync(path.join(dir, 'index.js.map'), 'utf8')) as {
        sources: string[];
      };
      expect(sources.some((f) => f.includes('lambdas/handlers/'))).toBe(true);
      expect({
        step,
        replaced: sources.filter((f) => /node_modules\/(?:whatwg-url|tr46|mime-types|mime-db)\//.test(f)),
      }).toEqual({ step, replaced: [] });
      const config = parseConfig(JSON.parse(readFileSync(path.join(dir, BUNDLED_CONFIG_FILE), 'utf8')));
      expect(config.name).toBe('lead-scoring');
      expect(config.transform).toEqual(['transform/01-lead_score.sql']);
    }
  });

  it('gives the transform function the SQL files, and only it', () => {
    for (const [step, dir] of assets) {
      const sql = path.join(dir, 'transform', '01-lead_score.sql');
      expect({ step, sql: existsSync(sql) }).toEqual({ step, sql: step === 'transform' });
      if (step === 'transform') expect(readFileSync(sql, 'utf8')).toBe(readFileSync(LEAD_SCORE_SQL, 'utf8'));
    }
  });
});
