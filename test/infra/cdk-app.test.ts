import { readFileSync } from 'node:fs';
import { FeatureFlags, Stack } from 'aws-cdk-lib';
import * as cxapi from 'aws-cdk-lib/cx-api';
import { CONFIG_CONTEXT_KEY } from '../../bin/app';
import { CDK_JSON, cdkFeatureFlags, inProcessApp } from '../../lib/cdk-app';

describe('cdk-app', () => {
  it('sets in cdk.json every feature flag the installed aws-cdk-lib recommends for new projects, as recommended', () => {
    // What `cdk init` writes into a new app's cdk.json. When an upgrade of aws-cdk-lib adds a
    // flag this fails: synthesize with and without it, judge each change of the template, and
    // add it (or its legacy value, saying why in docs/deploy.md "Feature flags").
    expect(cdkFeatureFlags()).toEqual(cxapi.CURRENTLY_RECOMMENDED_FLAGS);
  });

  it("leaves the app's own cdk.json settings out of the flags", () => {
    const context = (JSON.parse(readFileSync(CDK_JSON, 'utf8')) as { context: Record<string, unknown> })
      .context;
    expect(context[CONFIG_CONTEXT_KEY]).toBeDefined();
    expect(cdkFeatureFlags()).not.toHaveProperty([CONFIG_CONTEXT_KEY]);
  });

  it('builds in-process apps with the flags cdk synth has, bundling nothing unless asked', () => {
    const app = inProcessApp({ context: { [CONFIG_CONTEXT_KEY]: 'x.ts' } });
    const stack = new Stack(app, 'Flags');
    for (const [flag, value] of Object.entries(cdkFeatureFlags())) {
      expect({ flag, value: app.node.tryGetContext(flag) as unknown }).toEqual({ flag, value });
    }
    expect(FeatureFlags.of(stack).isEnabled(cxapi.IAM_MINIMIZE_POLICIES)).toBe(true);
    expect(app.node.tryGetContext(CONFIG_CONTEXT_KEY)).toBe('x.ts');
    expect(app.node.tryGetContext('aws:cdk:bundling-stacks')).toEqual([]);
    expect(inProcessApp({ bundle: true }).node.tryGetContext('aws:cdk:bundling-stacks')).toBeUndefined();
  });
});
