/**
 * The CDK app (cdk.json "app"). Reads the pipeline config path from the context key
 * `roundtrip:config` (default: the lead-scoring example), validates it and builds the stack.
 * An invalid config stops synth with every problem listed, and so do the settings only a local run
 * can use (lib/pipeline-stack.ts `laptopOnlyIssues`).
 *
 *   npx cdk synth                                   # the example
 *   npx cdk synth -c roundtrip:config=./roundtrip.config.ts
 */
import path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadConfig } from '../lambdas/config';
import { ConfigError } from '../lambdas/shared/errors';
import { cdkFeatureFlags } from '../lib/cdk-app';
import { deploymentIssues, laptopOnlyIssues, PipelineStack } from '../lib/pipeline-stack';

/** The context key naming the config file, and its default. */
export const CONFIG_CONTEXT_KEY = 'roundtrip:config';
export const DEFAULT_CONFIG = 'examples/lead-scoring/roundtrip.config.ts';

/**
 * Builds the app for a config file. Used by `cdk synth` and by the infra tests. The default App
 * has cdk.json's feature flags also when this file runs without the cdk CLI (which hands them
 * over itself, with any `-c` given on top).
 */
export async function buildApp(
  app: App = new App({ context: { ...cdkFeatureFlags() } }),
): Promise<{ app: App; stack: PipelineStack }> {
  const configPath = String(app.node.tryGetContext(CONFIG_CONTEXT_KEY) ?? DEFAULT_CONFIG);
  const configFile = path.resolve(configPath);
  const config = await loadConfig(configFile);
  // What only the laptop can use (an emulator's login URL, a database without TLS): refused for
  // AWS here, not in the stack, which the local runs also build.
  // With the stack's own checks, so that every problem is named at once.
  const issues = [...laptopOnlyIssues(config), ...deploymentIssues(config)];
  if (issues.length > 0) throw new ConfigError(issues, configFile);
  const stack = new PipelineStack(app, `roundtrip-${config.name}`, {
    config,
    configFile,
    description: `roundtrip reverse-ETL pipeline "${config.name}"`,
  });
  // cdk-nag's AwsSolutions pack over the whole app: unacknowledged findings fail synth.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, stack };
}

if (require.main === module) {
  buildApp()
    .then(({ app }) => app.synth())
    .catch((err: unknown) => {
      process.stderr.write(
        `${err instanceof ConfigError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    });
}
