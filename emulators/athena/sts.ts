/**
 * STS `AssumeRole` beside Athena and S3, so that a pipeline whose Athena data lives in another
 * account (`athena.roleArn`) runs on a laptop as it runs deployed: the role assumed first, Athena
 * and S3 called with its temporary credentials. STS speaks the AWS query protocol: a form-encoded
 * `POST /` with `Action=AssumeRole&Version=2011-06-15&RoleArn=…&RoleSessionName=…`, answered in
 * XML (STS API reference, AssumeRole). Any role of a well-formed ARN is assumed (the emulator
 * checks no trust policy, as it checks no signature); each grant is kept, so that a test can tell
 * which role signed a later request (its access key id).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/';

/** An IAM role ARN, as STS accepts it in `RoleArn`. */
const ROLE_ARN = /^arn:aws[a-z-]*:iam::(\d{12}):role\/([\w+=,.@/-]+)$/;

/** AssumeRole's `RoleSessionName`: 2 to 64 of `[\w+=,.@-]` (STS API reference). */
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;

/** One role assumed. */
export interface AssumedRole {
  readonly roleArn: string;
  readonly sessionName: string;
  /** The temporary access key id handed out: the requests signed with it act as the role. */
  readonly accessKeyId: string;
  readonly expiration: Date;
}

/** Whether a request without `x-amz-target` is STS's: a form-encoded POST to `/`. */
export function isStsRequest(req: IncomingMessage): boolean {
  return (
    req.method === 'POST' &&
    (req.url ?? '/').split('?')[0] === '/' &&
    (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')
  );
}

function xml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'text/xml' });
  res.end(
    `<ErrorResponse xmlns="${XMLNS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xml(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
  );
}

/** The access key id of a SigV4 `Authorization` header (`Credential=<id>/<date>/…`). */
export function signingKeyId(req: IncomingMessage): string | undefined {
  return /Credential=([^/,\s]+)\//.exec(req.headers.authorization ?? '')?.[1];
}

/** Answers an STS request ({@link isStsRequest}) with `body` read; records a role assumed. */
export function handleStsRequest(
  body: string,
  res: ServerResponse,
  options: { readonly now: () => Date; readonly assumed: AssumedRole[] },
): string {
  const form = new URLSearchParams(body);
  const action = form.get('Action') ?? '';
  if (action !== 'AssumeRole') {
    sendError(
      res,
      400,
      'InvalidAction',
      `The emulator's STS implements AssumeRole only, not ${action || '(no Action)'}`,
    );
    return `STS.${action || 'unknown'}`;
  }
  const roleArn = form.get('RoleArn') ?? '';
  const role = ROLE_ARN.exec(roleArn);
  if (!role) {
    sendError(res, 400, 'ValidationError', `${roleArn || '(no RoleArn)'} is invalid`);
    return 'AssumeRole';
  }
  const sessionName = form.get('RoleSessionName') ?? '';
  if (!SESSION_NAME.test(sessionName)) {
    sendError(
      res,
      400,
      'ValidationError',
      `1 validation error detected: Value '${sessionName}' at 'roleSessionName' failed to satisfy constraint`,
    );
    return 'AssumeRole';
  }
  const seconds = Number(form.get('DurationSeconds') ?? 3600);
  if (!Number.isInteger(seconds) || seconds < 900 || seconds > 43_200) {
    sendError(
      res,
      400,
      'ValidationError',
      `DurationSeconds ${form.get('DurationSeconds')} is out of range (900 to 43200)`,
    );
    return 'AssumeRole';
  }
  const accessKeyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
  const expiration = new Date(options.now().getTime() + seconds * 1000);
  options.assumed.push({ roleArn, sessionName, accessKeyId, expiration });
  const [, account, name] = role;
  res.writeHead(200, { 'content-type': 'text/xml' });
  res.end(
    `<AssumeRoleResponse xmlns="${XMLNS}"><AssumeRoleResult>` +
      `<Credentials><AccessKeyId>${accessKeyId}</AccessKeyId><SecretAccessKey>${randomBytes(20).toString('base64')}</SecretAccessKey>` +
      `<SessionToken>${randomBytes(48).toString('base64')}</SessionToken><Expiration>${expiration.toISOString()}</Expiration></Credentials>` +
      `<AssumedRoleUser><AssumedRoleId>AROA${randomBytes(8).toString('hex').toUpperCase()}:${xml(sessionName)}</AssumedRoleId>` +
      `<Arn>arn:aws:sts::${account}:assumed-role/${xml(name ?? '')}/${xml(sessionName)}</Arn></AssumedRoleUser>` +
      `</AssumeRoleResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></AssumeRoleResponse>`,
  );
  return 'AssumeRole';
}
