/**
 * The state machine definition as plain Amazon States Language: what the CDK stack synthesizes
 * (a `DefinitionString` of `Fn::Join`, `Ref` and `Fn::GetAtt`) with every CloudFormation
 * reference resolved to a string, so that `asl-validator`, `aws-local-stepfunctions`
 * (statemachine/local.ts) and a reader can use it as is.
 *
 * References resolve to placeholders of one made-up environment ({@link ASL_ENVIRONMENT}) unless
 * the stack has a concrete account and Region: a function's ARN becomes
 * `arn:aws:lambda:us-east-1:123456789012:function:roundtrip-<pipeline>-<step>`, whose last part
 * is the function name a local runner binds to a handler (statemachine/definition.ts).
 */
import path from 'node:path';
import { type Stack, Token } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { loadConfig, type PipelineConfig } from '../lambdas/config';
import { inProcessApp } from '../lib/cdk-app';
import { PipelineStack } from '../lib/pipeline-stack';

/** The made-up environment references resolve to in plain ASL. */
export const ASL_ENVIRONMENT = { partition: 'aws', region: 'us-east-1', account: '123456789012' } as const;

/** The config the committed statemachine/pipeline.asl.json is generated from. */
export const ASL_EXAMPLE_CONFIG = path.join(
  __dirname,
  '..',
  'examples',
  'lead-scoring',
  'roundtrip.config.ts',
);

/** The committed, generated definition of the example pipeline. */
export const ASL_FILE = path.join(__dirname, 'pipeline.asl.json');

/** A state machine definition in plain ASL. */
export interface AslDefinition {
  readonly StartAt: string;
  readonly States: Record<string, Record<string, unknown>>;
  readonly [key: string]: unknown;
}

function pseudo(name: string, stack: Stack): string {
  const concrete = (value: string, placeholder: string): string =>
    Token.isUnresolved(value) ? placeholder : value;
  switch (name) {
    case 'AWS::Partition':
      return ASL_ENVIRONMENT.partition;
    case 'AWS::Region':
      return concrete(stack.region, ASL_ENVIRONMENT.region);
    case 'AWS::AccountId':
      return concrete(stack.account, ASL_ENVIRONMENT.account);
    case 'AWS::URLSuffix':
      return 'amazonaws.com';
    default:
      throw new Error(`Cannot resolve the pseudo parameter ${name} in a state machine definition`);
  }
}

/**
 * The definition of `stateMachine` (default: the only state machine of `stack`) as plain ASL.
 * Lambda functions must have an explicit, token-free name (every step function has one).
 */
export function resolveDefinition(stack: Stack, stateMachine?: sfn.StateMachine): AslDefinition {
  const machines = stack.node.findAll().filter((c): c is sfn.StateMachine => c instanceof sfn.StateMachine);
  const machine = stateMachine ?? machines[0];
  if (!machine || (!stateMachine && machines.length !== 1)) {
    throw new Error(`Expected one state machine in stack ${stack.stackName}, found ${machines.length}`);
  }
  const cfn = machine.node.defaultChild as sfn.CfnStateMachine;
  const functionNames = new Map<string, string>();
  for (const c of stack.node.findAll()) {
    if (c instanceof lambda.CfnFunction && c.functionName && !Token.isUnresolved(c.functionName)) {
      functionNames.set(stack.getLogicalId(c), c.functionName);
    }
  }
  const render = (part: unknown): string => {
    if (typeof part === 'string') return part;
    if (typeof part === 'object' && part !== null) {
      const o = part as Record<string, unknown>;
      if (typeof o.Ref === 'string') return pseudo(o.Ref, stack);
      const getAtt = o['Fn::GetAtt'];
      if (Array.isArray(getAtt) && getAtt[1] === 'Arn' && typeof getAtt[0] === 'string') {
        const name = functionNames.get(getAtt[0]);
        if (name === undefined)
          throw new Error(`The definition references ${getAtt[0]}, which is not a named function`);
        return `arn:${pseudo('AWS::Partition', stack)}:lambda:${pseudo('AWS::Region', stack)}:${pseudo('AWS::AccountId', stack)}:function:${name}`;
      }
      const join = o['Fn::Join'];
      if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) {
        return (join[1] as unknown[]).map(render).join(join[0]);
      }
    }
    throw new Error(`Cannot resolve ${JSON.stringify(part)} in a state machine definition`);
  };
  return JSON.parse(render(stack.resolve(cfn.definitionString))) as AslDefinition;
}

/**
 * Builds the stack of a config as `cdk synth` does (cdk.json's feature flags), without bundling
 * the functions (the definition does not depend on the bundles), and returns its definition as
 * plain ASL.
 */
export function aslForConfig(config: PipelineConfig): AslDefinition {
  const stack = new PipelineStack(inProcessApp(), `roundtrip-${config.name}`, { config });
  return resolveDefinition(stack, stack.stateMachine);
}

/** Loads a config file and returns its definition as plain ASL. */
export async function aslForConfigFile(file: string = ASL_EXAMPLE_CONFIG): Promise<AslDefinition> {
  return aslForConfig(await loadConfig(file));
}

/** The text of the ASL file: two-space JSON and a final newline (prettier leaves it alone). */
export function aslText(definition: AslDefinition): string {
  return `${JSON.stringify(definition, null, 2)}\n`;
}
