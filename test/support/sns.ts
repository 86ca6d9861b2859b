/**
 * A stand-in for Amazon SNS's `Publish`, enough for the real `@aws-sdk/client-sns` client to talk
 * to over HTTP: the query protocol (a form-encoded POST with `Action=Publish`) answered with
 * SNS's XML, every message kept. `failNext` answers the next n publishes with SNS's 500
 * `InternalError` (the SDK retries it; set it above the SDK's attempts for a failure); `hang`
 * answers nothing at all (an endpoint that cannot be reached in time).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One message published. */
export interface Published {
  readonly topicArn: string;
  readonly subject: string | undefined;
  readonly message: string;
}

/** The running stand-in. */
export interface SnsStandIn {
  readonly endpoint: string;
  readonly published: Published[];
  failNext: number;
  hang: boolean;
  stop(): Promise<void>;
}

const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';

/** Starts it on a free loopback port. */
export async function startSnsStandIn(): Promise<SnsStandIn> {
  let count = 0;
  const standIn = { published: [] as Published[], failNext: 0, hang: false };
  const server = http.createServer((req, res) => {
    if (standIn.hang) return;
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const form = new URLSearchParams(body);
      count += 1;
      if (req.method !== 'POST' || form.get('Action') !== 'Publish' || !form.get('TopicArn')) {
        res.writeHead(400, { 'content-type': 'text/xml' });
        res.end(
          `<ErrorResponse xmlns="${XMLNS}"><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>Only Publish with a TopicArn is served here</Message></Error><RequestId>r-${count}</RequestId></ErrorResponse>`,
        );
        return;
      }
      if (standIn.failNext > 0) {
        standIn.failNext -= 1;
        res.writeHead(500, { 'content-type': 'text/xml' });
        res.end(
          `<ErrorResponse xmlns="${XMLNS}"><Error><Type>Receiver</Type><Code>InternalError</Code><Message>Internal error (injected)</Message></Error><RequestId>r-${count}</RequestId></ErrorResponse>`,
        );
        return;
      }
      standIn.published.push({
        topicArn: form.get('TopicArn') as string,
        subject: form.get('Subject') ?? undefined,
        message: form.get('Message') ?? '',
      });
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(
        `<PublishResponse xmlns="${XMLNS}"><PublishResult><MessageId>m-${count}</MessageId></PublishResult><ResponseMetadata><RequestId>r-${count}</RequestId></ResponseMetadata></PublishResponse>`,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(standIn, {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
