/**
 * The executions reader of the handler deps (./deps.ts), in a module of its own so that only the
 * Prepare function bundles it, and loads the Step Functions client of the AWS SDK on first use.
 */
import type {
  DescribeExecutionCommand as DescribeExecutionCommandType,
  SFNClient as SFNClientType,
} from '@aws-sdk/client-sfn';
import type { ExecutionStatusReader } from '../core/deps';
import { AWS_API_TIMEOUTS, traced, type ExecutionsBuilder } from './deps';

/**
 * Asks Step Functions (DescribeExecution) where another run's execution stands. An execution
 * that does not exist (a run recorded by a laptop) is `undefined`. `AWS_ENDPOINT_URL_SFN` in the
 * environment points the client elsewhere.
 */
export const sfnExecutions: ExecutionsBuilder = ({ env }): ExecutionStatusReader => {
  const endpoint = env.AWS_ENDPOINT_URL_SFN;
  let sfn: Promise<{ client: SFNClientType; Describe: typeof DescribeExecutionCommandType }> | undefined;
  return {
    async statusOf(executionArn) {
      sfn ??= import('@aws-sdk/client-sfn').then(({ SFNClient, DescribeExecutionCommand }) => ({
        client: traced(
          new SFNClient({ ...(endpoint ? { endpoint } : {}), requestHandler: AWS_API_TIMEOUTS }),
        ),
        Describe: DescribeExecutionCommand,
      }));
      const { client, Describe } = await sfn;
      try {
        const out = await client.send(new Describe({ executionArn }));
        return out.status;
      } catch (err) {
        if (err instanceof Error && err.name === 'ExecutionDoesNotExist') return undefined;
        throw err;
      }
    },
  };
};
