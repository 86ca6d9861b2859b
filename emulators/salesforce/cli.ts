/**
 * `roundtrip emulate salesforce [--port N] [--host H] [--seed FILE] [--describes DIR]
 * [--daily-api-limit N] [--jwt-certificate FILE] [--faults JSON|FILE]`: runs the emulator until
 * Ctrl-C or SIGTERM, after printing its login URL and the credentials it accepts.
 */
import { readFileSync } from 'node:fs';
import { EXIT, UsageError, untilSignal } from '../../bin/cli-common';
import { DEFAULT_DESCRIBES_DIR } from './describe';
import { InvalidFaultError, type SalesforceFaults } from './faults';
import { SeedError } from './seed';
import { FAULTS_CONTROL_PATH, startSalesforceEmulator, type SalesforceEmulatorOptions } from './server';

/** What the command accepts, for the usage error. */
export const SALESFORCE_EMULATOR_USAGE =
  'emulate salesforce [--port N] [--host HOST] [--seed FILE|DIR] [--describes DIR] [--daily-api-limit N] [--jwt-certificate PEM_FILE] [--faults JSON|FILE]';

function parseArgs(argv: string[]): SalesforceEmulatorOptions {
  const options: SalesforceEmulatorOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] =
      arg.startsWith('--') && arg.includes('=')
        ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
        : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '')
        throw new UsageError(`${flag} needs a value (${SALESFORCE_EMULATOR_USAGE})`);
      return v;
    };
    const integer = (name: string, min: number): number => {
      const v = value();
      if (!/^\d+$/.test(v) || parseInt(v, 10) < min || !Number.isSafeInteger(parseInt(v, 10)))
        throw new UsageError(`${name} must be an integer ≥ ${min}, got "${v}"`);
      return parseInt(v, 10);
    };
    switch (flag) {
      case '--port':
        options.port = integer('--port', 0);
        if (options.port > 65535) throw new UsageError(`--port must be at most 65535, got ${options.port}`);
        break;
      case '--host':
        options.host = value();
        break;
      case '--seed':
        options.seed = value();
        break;
      case '--describes':
        // A user's folder extends the repo's describes (add objects, or fields to Lead).
        options.describesDir = [DEFAULT_DESCRIBES_DIR, value()];
        break;
      case '--daily-api-limit':
        options.dailyApiLimit = integer('--daily-api-limit', 1);
        break;
      case '--jwt-certificate': {
        const file = value();
        try {
          options.jwtCertificate = readFileSync(file, 'utf8');
        } catch {
          throw new UsageError(`--jwt-certificate: cannot read ${file}`);
        }
        break;
      }
      case '--faults':
        options.faults = faultsOption(value());
        break;
      case '--help':
      case '-h':
        throw new UsageError(SALESFORCE_EMULATOR_USAGE);
      default:
        throw new UsageError(`unknown option "${arg}"`);
    }
  }
  return options;
}

/**
 * `--faults`: a JSON object of faults (docs/salesforce-emulator.md, "Faults"), given inline
 * (`'{"lockRowKeys":["00Q…"]}'`) or as the path of a file holding it.
 */
function faultsOption(text: string): SalesforceFaults {
  let json = text;
  if (!text.trimStart().startsWith('{')) {
    try {
      json = readFileSync(text, 'utf8');
    } catch {
      throw new UsageError(
        `--faults: give a JSON object of faults (e.g. '{"lockRowKeys":["00Q…"]}') or a file holding one; cannot read a file ${text}`,
      );
    }
  }
  try {
    return JSON.parse(json) as SalesforceFaults;
  } catch (err) {
    throw new UsageError(
      `--faults: not JSON (${err instanceof Error ? err.message : String(err)}): give an object of faults, e.g. '{"lockRowKeys":["00Q…"]}'`,
    );
  }
}

/**
 * Runs the emulator from the command line. Resolves with the exit code once the process is
 * asked to stop (the emulator is then closed).
 */
export async function runSalesforceEmulatorCli(
  argv: string[],
  stop: () => Promise<unknown> = untilSignal,
): Promise<number> {
  const options = parseArgs(argv);
  options.port ??= 0;
  let emulator: Awaited<ReturnType<typeof startSalesforceEmulator>>;
  try {
    emulator = await startSalesforceEmulator(options);
  } catch (err) {
    // A seed that cannot be loaded (a missing file, a misspelt field, a bad value) is bad input:
    // exit 2, its message naming the file and the record, without the usage text.
    if (err instanceof SeedError) throw new UsageError(err.message, { showUsage: false });
    if (err instanceof InvalidFaultError)
      throw new UsageError(`--faults: ${err.message}`, { showUsage: false });
    throw err;
  }
  const c = emulator.credentials;
  const counts = Object.entries(
    Object.fromEntries(emulator.store.describes().map((d) => [d.name, emulator.store.count(d.name)])),
  )
    .map(([name, n]) => `${name}=${n}`)
    .join(', ');
  process.stdout.write(
    [
      `Salesforce emulator listening on ${emulator.url}`,
      `  login URL:      ${emulator.loginUrl}   (SOAP: ${emulator.loginUrl}/services/Soap/u/${emulator.apiVersion}, OAuth: ${emulator.loginUrl}/services/oauth2/token)`,
      `  API version:    ${emulator.apiVersion}`,
      `  username:       ${c.username}`,
      `  password:       ${c.password}`,
      `  security token: ${c.securityToken === '' ? '(empty)' : c.securityToken}`,
      `  client id:      ${c.clientId}`,
      `  client secret:  ${c.clientSecret}`,
      `  records:        ${counts}`,
      `  daily API limit: ${emulator.limits.max}`,
      `  faults:         ${JSON.stringify(emulator.faults.get())}   (change them while it runs: GET/PUT/DELETE ${emulator.url}${FAULTS_CONTROL_PATH})`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  const signal = await stop();
  process.stdout.write(
    `\n${typeof signal === 'string' ? `${signal}: ` : ''}stopping the Salesforce emulator …\n`,
  );
  await emulator.stop();
  process.stdout.write('Salesforce emulator stopped.\n');
  return EXIT.ok;
}
