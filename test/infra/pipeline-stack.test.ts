import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp, CONFIG_CONTEXT_KEY, DEFAULT_CONFIG } from '../../bin/app';

// Skipping CloudFormation's built-in template validation cuts synth time (DESIGN.md §6).
const newApp = (context: Record<string, string> = {}): App =>
  new App({ builtinCloudFormationValidation: false, context });

describe('PipelineStack', () => {
  it('builds the example pipeline from the config named in cdk.json context', async () => {
    const { stack } = await buildApp(newApp({ [CONFIG_CONTEXT_KEY]: DEFAULT_CONFIG }));
    expect(stack.stackName).toBe('roundtrip-lead-scoring');
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    // enforceSSL: a topic policy that denies publishing without TLS.
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('synthesizes with zero unacknowledged cdk-nag AwsSolutions findings', async () => {
    const { app } = await buildApp(newApp());
    expect(() => app.synth()).not.toThrow();
  });

  it('fails synth when cdk-nag finds something (the check is real)', () => {
    const app = newApp();
    const stack = new Stack(app, 'Insecure');
    new sns.Topic(stack, 'Plain'); // publishers not required to use TLS: AwsSolutions-SNS3
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
    expect(() => app.synth()).toThrow(/AwsSolutions-SNS3/);
  });

  it('refuses an invalid config with the path of the problem', async () => {
    await expect(buildApp(newApp({ [CONFIG_CONTEXT_KEY]: 'examples/does-not-exist.ts' }))).rejects.toThrow(
      /does-not-exist\.ts/,
    );
  });
});
