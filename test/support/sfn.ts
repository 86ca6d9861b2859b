/**
 * A stand-in for AWS Step Functions' `DescribeExecution`, enough for the real
 * `@aws-sdk/client-sfn` client over HTTP: the awsJson1_0 protocol (`X-Amz-Target:
 * AWSStepFunctions.DescribeExecution`), the status of each execution as the test sets it, and
 * `ExecutionDoesNotExist` for one it does not know. Every ARN asked after is kept.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** The running stand-in. */
export interface SfnStandIn {
  readonly endpoint: string;
  /** Status by execution ARN. */
  readonly statuses: Map<string, string>;
  readonly asked: string[];
  stop(): Promise<void>;
}

/** Starts it on a free loopback port. */
export async function startSfnStandIn(): Promise<SfnStandIn> {
  const statuses = new Map<string, string>();
  const asked: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const answer = (status: number, payload: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify(payload));
      };
      if (req.headers['x-amz-target'] !== 'AWSStepFunctions.DescribeExecution') {
        answer(400, {
          __type: 'UnknownOperationException',
          message: 'Only DescribeExecution is served here',
        });
        return;
      }
      const { executionArn } = JSON.parse(body || '{}') as { executionArn?: string };
      asked.push(String(executionArn));
      const status = executionArn ? statuses.get(executionArn) : undefined;
      if (!executionArn || !status) {
        answer(400, {
          __type: 'ExecutionDoesNotExist',
          message: `Execution Does Not Exist: '${executionArn}'`,
        });
        return;
      }
      answer(200, {
        executionArn,
        stateMachineArn: executionArn.replace(':execution:', ':stateMachine:').replace(/:[^:]+$/, ''),
        name: executionArn.split(':').pop(),
        status,
        startDate: Date.now() / 1000 - 3600,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    statuses,
    asked,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
