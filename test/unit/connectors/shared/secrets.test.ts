import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { TerminalError, TransientError } from '../../../../lambdas/shared/errors';
import {
  createLocalSecretsProvider,
  createSecretsManagerProvider,
  secretEnvName,
  secretNameOf,
} from '../../../../lambdas/shared/secrets';

describe('secret names', () => {
  it('normalises a name into its environment variable', () => {
    expect(secretEnvName('roundtrip/salesforce')).toBe('ROUNDTRIP_SECRET_ROUNDTRIP_SALESFORCE');
    expect(secretEnvName('my-app.prod/sf key')).toBe('ROUNDTRIP_SECRET_MY_APP_PROD_SF_KEY');
  });

  it('takes the name out of an ARN', () => {
    expect(
      secretNameOf('arn:aws:secretsmanager:eu-west-1:123456789012:secret:roundtrip/salesforce-AbC123'),
    ).toBe('roundtrip/salesforce');
    expect(secretNameOf('roundtrip/salesforce')).toBe('roundtrip/salesforce');
  });
});

describe('createLocalSecretsProvider', () => {
  it('reads the environment variable first, then the file', async () => {
    const provider = createLocalSecretsProvider({
      env: { ROUNDTRIP_SECRET_ROUNDTRIP_SALESFORCE: '{"username":"env"}' },
      file: '/secrets.json',
      readText: async () => JSON.stringify({ 'roundtrip/salesforce': { username: 'file' }, other: { a: 1 } }),
    });
    await expect(provider.getSecret('roundtrip/salesforce')).resolves.toEqual({ username: 'env' });
    await expect(provider.getSecret('other')).resolves.toEqual({ a: 1 });
  });

  it('reads the file again for a fresh value, once otherwise', async () => {
    let password = 'before';
    let reads = 0;
    const provider = createLocalSecretsProvider({
      env: {},
      file: '/secrets.json',
      readText: async () => {
        reads += 1;
        return JSON.stringify({ pg: { password } });
      },
    });
    await expect(provider.getSecret('pg')).resolves.toEqual({ password: 'before' });
    password = 'after';
    await expect(provider.getSecret('pg')).resolves.toEqual({ password: 'before' });
    await expect(provider.getSecret('pg', { fresh: true })).resolves.toEqual({ password: 'after' });
    expect(reads).toBe(2);
  });

  it('names the secret and where it looked when it is missing', async () => {
    const provider = createLocalSecretsProvider({ env: {} });
    await expect(provider.getSecret('roundtrip/pg')).rejects.toThrow(
      /Secret "roundtrip\/pg" not found: set the environment variable ROUNDTRIP_SECRET_ROUNDTRIP_PG to its JSON or name a local secrets file that has it \(the CLI: --secrets FILE; the handlers: ROUNDTRIP_LOCAL_SECRETS_FILE\)$/,
    );
  });

  it('never quotes a secret that is not JSON', async () => {
    const provider = createLocalSecretsProvider({ env: { ROUNDTRIP_SECRET_X: 'password=Canary123' } });
    const err = await provider.getSecret('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toBe(
      'Secret "x" (environment variable ROUNDTRIP_SECRET_X) is not valid JSON',
    );
  });

  it('says where a secrets file stops being JSON (a trailing comma), by line and column, without quoting it', async () => {
    const text = '{\n  "roundtrip/pg": { "password": "Canary123" },\n}\n';
    const provider = createLocalSecretsProvider({
      env: {},
      file: '/s.json',
      readText: () => Promise.resolve(text),
    });
    const err = await provider.getSecret('roundtrip/pg').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TerminalError);
    expect((err as Error).message).toBe('The local secrets file /s.json is not valid JSON: line 3, column 1');
  });

  it('reports an unreadable file with its error code only', async () => {
    const provider = createLocalSecretsProvider({
      env: {},
      file: '/nope.json',
      readText: () => Promise.reject(Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' })),
    });
    await expect(provider.getSecret('x')).rejects.toThrow(
      'Cannot read the local secrets file /nope.json (ENOENT)',
    );
  });
});

describe('createSecretsManagerProvider', () => {
  const clientReturning = (send: jest.Mock): SecretsManagerClient =>
    ({ send }) as unknown as SecretsManagerClient;

  it('parses SecretString and caches it for the TTL', async () => {
    const send = jest.fn().mockResolvedValue({ SecretString: '{"password":"x"}' });
    let now = 0;
    const provider = createSecretsManagerProvider({
      client: clientReturning(send),
      cacheTtlMs: 1000,
      now: () => now,
    });
    await expect(provider.getSecret('s')).resolves.toEqual({ password: 'x' });
    await provider.getSecret('s');
    expect(send).toHaveBeenCalledTimes(1);
    expect(send.mock.calls[0][0]).toBeInstanceOf(GetSecretValueCommand);
    expect((send.mock.calls[0][0] as GetSecretValueCommand).input).toEqual({ SecretId: 's' });
    now = 1001;
    await provider.getSecret('s');
    expect(send).toHaveBeenCalledTimes(2);
  });

  it('reads a secret again, past its cache, when asked for a fresh value (a rotated password)', async () => {
    const send = jest
      .fn()
      .mockResolvedValueOnce({ SecretString: '{"password":"before"}' })
      .mockResolvedValueOnce({ SecretString: '{"password":"after"}' });
    const provider = createSecretsManagerProvider({ client: clientReturning(send), cacheTtlMs: 60_000 });
    await expect(provider.getSecret('s')).resolves.toEqual({ password: 'before' });
    await expect(provider.getSecret('s', { fresh: true })).resolves.toEqual({ password: 'after' });
    // The fresh value is the cached one from then on.
    await expect(provider.getSecret('s')).resolves.toEqual({ password: 'after' });
    expect(send).toHaveBeenCalledTimes(2);
  });

  it('decodes SecretBinary', async () => {
    const send = jest.fn().mockResolvedValue({ SecretBinary: new TextEncoder().encode('{"a":1}') });
    await expect(
      createSecretsManagerProvider({ client: clientReturning(send) }).getSecret('b'),
    ).resolves.toEqual({ a: 1 });
  });

  it('maps a missing secret to terminal and throttling to transient, without caching failures', async () => {
    const notFound = Object.assign(new Error("Secrets Manager can't find the specified secret."), {
      name: 'ResourceNotFoundException',
      $metadata: { httpStatusCode: 400 },
    });
    const throttled = Object.assign(new Error('Rate exceeded'), {
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 400 },
    });
    const send = jest
      .fn()
      .mockRejectedValueOnce(notFound)
      .mockRejectedValueOnce(throttled)
      .mockResolvedValue({
        SecretString: '{}',
      });
    const provider = createSecretsManagerProvider({ client: clientReturning(send) });
    const first = await provider.getSecret('s').catch((e: unknown) => e);
    expect(first).toBeInstanceOf(TerminalError);
    expect((first as Error).message).toMatch(/GetSecretValue for "s" failed: ResourceNotFoundException/);
    await expect(provider.getSecret('s')).rejects.toBeInstanceOf(TransientError);
    await expect(provider.getSecret('s')).resolves.toEqual({});
  });
});
