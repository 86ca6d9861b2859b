/**
 * Where credentials come from. Core code asks a {@link SecretsProvider} for a secret by the name
 * the pipeline config gives (`roundtrip/salesforce`) or by its ARN; in AWS that is Secrets Manager
 * ({@link createSecretsManagerProvider}), on a laptop a JSON file or environment variables
 * ({@link createLocalSecretsProvider}).
 *
 * No function here logs or puts a secret's value into an error message: errors name the secret
 * and what is wrong with it (missing, not JSON), never its content.
 */
import { readFile } from 'node:fs/promises';
import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { jsonErrorPlace, TerminalError, TransientError } from './errors';

/** Resolves a secret by name or ARN to its parsed JSON value. */
export interface SecretsProvider {
  /**
   * The secret's JSON value (an object for every secret roundtrip uses). `fresh`: read it now,
   * not from a cache (a credential refused, perhaps rotated since it was read).
   */
  getSecret(nameOrArn: string, options?: { readonly fresh?: boolean }): Promise<unknown>;
}

/** Prefix of the environment variables the local provider reads. */
export const SECRET_ENV_PREFIX = 'ROUNDTRIP_SECRET_';

/**
 * The name part of a Secrets Manager ARN (`arn:aws:secretsmanager:…:secret:roundtrip/salesforce-AbCdEf`
 * → `roundtrip/salesforce`), or the input when it is not an ARN. Secrets Manager appends a hyphen and
 * six random characters to the name in an ARN
 * (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_iam-permissions.html#iam-resources).
 */
export function secretNameOf(nameOrArn: string): string {
  const m = /^arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:(.+)$/.exec(nameOrArn);
  if (!m?.[1]) return nameOrArn;
  return m[1].replace(/-[A-Za-z0-9]{6}$/, '');
}

/**
 * The environment variable that holds a secret locally: `ROUNDTRIP_SECRET_` + the secret's name
 * upper-cased with every run of other characters than letters and digits turned into `_`
 * (`roundtrip/salesforce` → `ROUNDTRIP_SECRET_ROUNDTRIP_SALESFORCE`).
 */
export function secretEnvName(nameOrArn: string): string {
  const normalised = secretNameOf(nameOrArn)
    .toUpperCase()
    .replace(/[^A-Z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return `${SECRET_ENV_PREFIX}${normalised}`;
}

/**
 * Parses a secret's JSON; `what` names it in the error (`Secret "x" (Secrets Manager)`). The error
 * says where the text stops being JSON when JSON.parse tells (`at position N`), so that a trailing
 * comma in a secrets file is found by its line and column.
 */
function parseSecretJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    // JSON.parse's message may quote the text it choked on: never pass it on, only the place.
    const place = jsonErrorPlace(err instanceof Error ? err.message : '', text);
    throw new TerminalError(`${what} is not valid JSON${place ? `: ${place}` : ''}`);
  }
}

/** Options of {@link createLocalSecretsProvider}. */
export interface LocalSecretsOptions {
  /** A JSON file `{ "<secret name>": { …secret JSON… }, … }`. @default none */
  readonly file?: string;
  /** Where `ROUNDTRIP_SECRET_<NAME>` variables are read. @default process.env */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Reads the file (tests inject one). @default fs.promises.readFile as UTF-8 */
  readonly readText?: (path: string) => Promise<string>;
}

/**
 * A provider for laptops and tests: a secret is the environment variable {@link secretEnvName}
 * (JSON text) when set, else the entry of the same name in the JSON file. The file is read once.
 */
export function createLocalSecretsProvider(options: LocalSecretsOptions = {}): SecretsProvider {
  const env = options.env ?? process.env;
  const readText = options.readText ?? ((p: string) => readFile(p, 'utf8'));
  let fileSecrets: Promise<Record<string, unknown>> | undefined;
  const loadFile = (file: string): Promise<Record<string, unknown>> => {
    fileSecrets ??= (async () => {
      let text: string;
      try {
        text = await readText(file);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        throw new TerminalError(
          `Cannot read the local secrets file ${file}${typeof code === 'string' ? ` (${code})` : ''}`,
        );
      }
      const parsed = parseSecretJson(text, `The local secrets file ${file}`);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new TerminalError(
          `The local secrets file ${file} must hold a JSON object keyed by secret name`,
        );
      }
      return parsed as Record<string, unknown>;
    })();
    return fileSecrets;
  };

  return {
    async getSecret(nameOrArn, readOptions) {
      // The file is read once; a fresh read reads it again (an edited secrets file).
      if (readOptions?.fresh) fileSecrets = undefined;
      const name = secretNameOf(nameOrArn);
      const envName = secretEnvName(name);
      const fromEnv = env[envName];
      if (fromEnv !== undefined && fromEnv !== '')
        return parseSecretJson(fromEnv, `Secret "${name}" (environment variable ${envName})`);
      if (options.file) {
        const all = await loadFile(options.file);
        if (Object.hasOwn(all, name)) return all[name];
        if (Object.hasOwn(all, nameOrArn)) return all[nameOrArn];
      }
      throw new TerminalError(
        `Secret "${name}" not found: set the environment variable ${envName} to its JSON` +
          (options.file
            ? ` or add a "${name}" entry to ${options.file}`
            : ' or name a local secrets file that has it (the CLI: --secrets FILE; the handlers: ROUNDTRIP_LOCAL_SECRETS_FILE)'),
      );
    },
  };
}

/** Options of {@link createSecretsManagerProvider}. */
export interface SecretsManagerProviderOptions {
  /** The client (built once per cold start by the handler). */
  readonly client: SecretsManagerClient;
  /**
   * How long a value is reused, in milliseconds. A rotated secret is picked up after this.
   * @default 300000 (5 minutes)
   */
  readonly cacheTtlMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

/** Secrets Manager error names that a retry may fix (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html#API_GetSecretValue_Errors). */
const TRANSIENT_SECRETS_MANAGER_ERRORS = new Set([
  'InternalServiceError',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestTimeout',
  'TimeoutError',
]);

/**
 * A provider backed by AWS Secrets Manager `GetSecretValue`, caching each value for
 * `cacheTtlMs`. A missing secret or a denied read is terminal; throttling and 5xx are transient.
 */
export function createSecretsManagerProvider(options: SecretsManagerProviderOptions): SecretsProvider {
  const ttl = options.cacheTtlMs ?? 300_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { at: number; value: Promise<unknown> }>();

  const fetchSecret = async (nameOrArn: string): Promise<unknown> => {
    let out;
    try {
      out = await options.client.send(new GetSecretValueCommand({ SecretId: nameOrArn }));
    } catch (err) {
      const name = err instanceof Error ? err.name : 'Error';
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      const what = `Secrets Manager GetSecretValue for "${nameOrArn}" failed: ${name}`;
      // The SDK's message for these errors names the secret and the reason, not its value.
      const detail = err instanceof Error && err.message ? ` (${err.message})` : '';
      if (TRANSIENT_SECRETS_MANAGER_ERRORS.has(name) || (status !== undefined && status >= 500)) {
        throw new TransientError(what + detail);
      }
      throw new TerminalError(what + detail);
    }
    if (typeof out.SecretString === 'string')
      return parseSecretJson(out.SecretString, `Secret "${nameOrArn}" (Secrets Manager)`);
    if (out.SecretBinary) {
      return parseSecretJson(
        Buffer.from(out.SecretBinary).toString('utf8'),
        `Secret "${nameOrArn}" (Secrets Manager)`,
      );
    }
    throw new TerminalError(`Secret "${nameOrArn}" in Secrets Manager has no value`);
  };

  return {
    getSecret(nameOrArn, readOptions) {
      const hit = cache.get(nameOrArn);
      if (hit && now() - hit.at < ttl && !readOptions?.fresh) return hit.value;
      const value = fetchSecret(nameOrArn);
      cache.set(nameOrArn, { at: now(), value });
      // A failed read is not cached: the next call tries again.
      value.catch(() => cache.delete(nameOrArn));
      return value;
    },
  };
}
