import { AssumeRoleCommand, type STSClient } from '@aws-sdk/client-sts';
import { TerminalError, TransientError } from '../../../../lambdas/shared/errors';
import { assumeRoleCredentials, athenaClientsForRole } from '../../../../lambdas/connectors/athena/role';

// There is no STS emulator: these tests check the provider's wiring with a mocked STS client.
const ROLE = 'arn:aws:iam::123456789012:role/roundtrip-athena-reader';

function stsReturning(send: jest.Mock): STSClient {
  return { send } as unknown as STSClient;
}

function credentials(n: number, expiresAtMs: number) {
  return {
    Credentials: {
      AccessKeyId: `AKIA${n}`,
      SecretAccessKey: `secret${n}`,
      SessionToken: `token${n}`,
      Expiration: new Date(expiresAtMs),
    },
  };
}

describe('assumeRoleCredentials', () => {
  it('assumes the role once and renews shortly before expiry', async () => {
    let now = 0;
    const send = jest
      .fn()
      .mockResolvedValueOnce(credentials(1, 3_600_000))
      .mockResolvedValueOnce(credentials(2, 7_200_000));
    const provider = assumeRoleCredentials(ROLE, {
      sts: stsReturning(send),
      externalId: 'ext-1',
      now: () => now,
    });
    const [a, b] = await Promise.all([provider(), provider()]);
    expect(a).toEqual(b);
    expect(a.accessKeyId).toBe('AKIA1');
    expect(send).toHaveBeenCalledTimes(1);
    const command = send.mock.calls[0][0] as AssumeRoleCommand;
    expect(command).toBeInstanceOf(AssumeRoleCommand);
    expect(command.input).toEqual({
      RoleArn: ROLE,
      RoleSessionName: 'roundtrip',
      DurationSeconds: 3600,
      ExternalId: 'ext-1',
    });
    now = 3_600_000 - 300_001;
    expect((await provider()).accessKeyId).toBe('AKIA1');
    now = 3_600_000 - 299_999;
    expect((await provider()).accessKeyId).toBe('AKIA2');
    expect(send).toHaveBeenCalledTimes(2);
  });

  it('rejects a malformed role ARN and maps STS errors', async () => {
    expect(() => assumeRoleCredentials('arn:aws:s3:::bucket', { sts: stsReturning(jest.fn()) })).toThrow(
      TerminalError,
    );
    const denied = Object.assign(new Error('not authorized to perform sts:AssumeRole'), {
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
    });
    const throttled = Object.assign(new Error('Rate exceeded'), {
      name: 'Throttling',
      $metadata: { httpStatusCode: 400 },
    });
    const send = jest
      .fn()
      .mockRejectedValueOnce(denied)
      .mockRejectedValueOnce(Object.assign(throttled, { name: 'ThrottlingException' }));
    const provider = assumeRoleCredentials(ROLE, { sts: stsReturning(send) });
    await expect(provider()).rejects.toThrow(/STS AssumeRole .* failed: AccessDenied/);
    await expect(provider()).rejects.toBeInstanceOf(TransientError);
  });

  it('gives both clients the assumed credentials', async () => {
    const send = jest.fn().mockResolvedValue(credentials(7, Date.now() + 3_600_000));
    const { athena, s3 } = athenaClientsForRole(ROLE, { sts: stsReturning(send), region: 'eu-west-1' });
    const a = await athena.config.credentials();
    const b = await s3.config.credentials();
    expect(a.accessKeyId).toBe('AKIA7');
    expect(b.sessionToken).toBe('token7');
    expect(await athena.config.region()).toBe('eu-west-1');
    expect(send).toHaveBeenCalledTimes(1);
  });
});
