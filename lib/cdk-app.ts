/**
 * The CDK context every build of the stack uses: cdk.json's feature flags. `cdk synth` and
 * `cdk deploy` hand cdk.json's `context` to bin/app.ts; what builds the stack in-process instead
 * (the infra tests, the ASL generator, the local runs of the state machine) makes its App here,
 * with the same flags, so that it builds and checks the stack that deploys.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { App } from 'aws-cdk-lib';

/** The app's cdk.json, at the repository root (lib/ is one level down). */
export const CDK_JSON = path.resolve(__dirname, '..', 'cdk.json');

/** cdk.json context keys that are the app's own settings (`roundtrip:config`), not CDK's. */
const APP_CONTEXT_PREFIX = 'roundtrip:';

let featureFlags: Readonly<Record<string, unknown>> | undefined;

/**
 * CDK's feature flags as cdk.json sets them: its `context` without the app's own `roundtrip:`
 * keys. Read once per process.
 */
export function cdkFeatureFlags(): Readonly<Record<string, unknown>> {
  if (!featureFlags) {
    const cdkJson = JSON.parse(readFileSync(CDK_JSON, 'utf8')) as { context?: Record<string, unknown> };
    featureFlags = Object.fromEntries(
      Object.entries(cdkJson.context ?? {}).filter(([key]) => !key.startsWith(APP_CONTEXT_PREFIX)),
    );
  }
  return featureFlags;
}

/** Options of {@link inProcessApp}. */
export interface InProcessAppOptions {
  /**
   * Bundle the functions with esbuild. The definition, the IAM statements and the alarms do not
   * depend on the bundles. @default false
   */
  readonly bundle?: boolean;
  /** More context, over cdk.json's flags. @default none */
  readonly context?: Readonly<Record<string, unknown>>;
}

/**
 * An App to build the stack in-process: cdk.json's feature flags, no CloudFormation validation
 * of the template (it takes most of a synth's time; `cdk synth` runs it), and no bundling unless
 * asked (NodejsFunction then skips esbuild and the command hooks).
 */
export function inProcessApp(options: InProcessAppOptions = {}): App {
  return new App({
    builtinCloudFormationValidation: false,
    context: {
      ...cdkFeatureFlags(),
      ...(options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...options.context,
    },
  });
}
