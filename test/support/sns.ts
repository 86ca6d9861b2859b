/**
 * A stand-in for Amazon SNS's `Publish`, enough for the real `@aws-sdk/client-sns` client to talk
 * to over HTTP: the query protocol (a form-encoded POST with `Action=Publish`) answered with
 * SNS's XML, every message kept. `failNext` answers the next n publishes with SNS's 500
 * `InternalError` (the SDK retries it; set it above the SDK's attempts for a failure); `refuse`
 * answers every publish with an error the SDK does not retry ({@link SNS_REFUSALS}: the topic's key
 * refusing, the topic deleted, the caller not allowed); `hang` answers nothing at all (an endpoint
 * that cannot be reached in time).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One message published. */
export interface Published {
  readonly topicArn: string;
  readonly subject: string | undefined;
  readonly message: string;
}

/** An error answer of SNS's `Publish` (SNS API reference, Publish, "Errors"). */
export interface SnsRefusal {
  readonly status: number;
  readonly type: 'Sender' | 'Receiver';
  readonly code: string;
  readonly message: string;
}

/** How SNS refuses a publish that no retry would change. */
export const SNS_REFUSALS = {
  /** The topic's KMS key policy does not let the publisher use the key. */
  kmsAccessDenied: {
    status: 400,
    type: 'Sender',
    code: 'KMSAccessDenied',
    message:
      'User: arn:aws:sts::123456789012:assumed-role/report/fn is not authorized to perform: kms:GenerateDataKey on this resource because the resource does not exist in this Region, no resource-based policies allow access, or a resource-based policy explicitly denies access (Service: AWSKMS; Status Code: 400; Error Code: AccessDeniedException)',
  },
  /** The topic was deleted. */
  notFound: { status: 404, type: 'Sender', code: 'NotFound', message: 'Topic does not exist' },
  /** The publisher's role (or the topic's policy) does not allow `sns:Publish`. */
  authorizationError: {
    status: 403,
    type: 'Sender',
    code: 'AuthorizationError',
    message:
      'User: arn:aws:sts::123456789012:assumed-role/report/fn is not authorized to perform: SNS:Publish on resource: arn:aws:sns:eu-west-1:123456789012:topic',
  },
} as const satisfies Record<string, SnsRefusal>;

/** The running stand-in. */
export interface SnsStandIn {
  readonly endpoint: string;
  readonly published: Published[];
  failNext: number;
  refuse: SnsRefusal | undefined;
  /** Publish requests answered, refused or failed ones included. */
  readonly requests: number;
  hang: boolean;
  stop(): Promise<void>;
}

const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';

/** Starts it on a free loopback port. */
export async function startSnsStandIn(): Promise<SnsStandIn> {
  let count = 0;
  const standIn = {
    published: [] as Published[],
    failNext: 0,
    refuse: undefined as SnsRefusal | undefined,
    hang: false,
    get requests(): number {
      return count;
    },
  };
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
      if (standIn.refuse) {
        const { status, type, code, message } = standIn.refuse;
        res.writeHead(status, { 'content-type': 'text/xml' });
        res.end(
          `<ErrorResponse xmlns="${XMLNS}"><Error><Type>${type}</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>r-${count}</RequestId></ErrorResponse>`,
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
