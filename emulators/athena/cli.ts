/**
 * `roundtrip emulate athena --data DIR [--port N] [--host H] [--results DIR] [--workgroup NAME[=s3://bucket/prefix/][!][:DISABLED]]…`
 * Starts the emulator, prints how to point the AWS CLI and SDK at it, runs until Ctrl-C / SIGTERM.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { EXIT, UsageError, untilSignal } from '../../bin/cli-common';
import type { WorkgroupConfig } from './engine';
import { startAthenaEmulator, type AthenaEmulatorOptions } from './server';

/** Default port of `roundtrip emulate athena` (the Salesforce emulator's neighbour). */
export const DEFAULT_ATHENA_EMULATOR_PORT = 4568;

/** The parsed command line. */
export interface AthenaEmulatorCliOptions {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly resultsDir: string | undefined;
  readonly workgroups: Record<string, WorkgroupConfig>;
  readonly queuedMs: number;
  readonly runningMs: number;
}

/** A whole number in [min, max], in decimal digits (not `0x10`, `1e3`, or an empty `--port=`). */
function integer(flag: string, value: string | undefined, min: number, max: number): number {
  const n = value !== undefined && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (value === undefined || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(
      `${flag}: expected an integer from ${min} to ${max}, got ${value === undefined ? 'nothing' : `"${value}"`}`,
    );
  }
  return n;
}

/** Parses `roundtrip emulate athena` arguments; throws UsageError naming the bad one. */
export function parseAthenaEmulatorArgs(argv: readonly string[]): AthenaEmulatorCliOptions {
  let port = DEFAULT_ATHENA_EMULATOR_PORT;
  let host = '127.0.0.1';
  let dataDir: string | undefined;
  let resultsDir: string | undefined;
  let queuedMs = 0;
  let runningMs = 0;
  const workgroups: Record<string, WorkgroupConfig> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag = '', inline] =
      arg.startsWith('--') && arg.includes('=')
        ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
        : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || (inline === undefined && v.startsWith('--')))
        throw new UsageError(`${flag}: expected a value`);
      return v;
    };
    switch (flag) {
      case '--port':
        port = integer('--port', value(), 0, 65535);
        break;
      case '--host':
        host = value();
        break;
      case '--data':
        dataDir = path.resolve(value());
        break;
      case '--results':
        resultsDir = path.resolve(value());
        break;
      case '--queued-ms':
        queuedMs = integer('--queued-ms', value(), 0, 3_600_000);
        break;
      case '--running-ms':
        runningMs = integer('--running-ms', value(), 0, 3_600_000);
        break;
      case '--workgroup': {
        const spec = value();
        // The state comes last, after `:` (which no workgroup name has), spelled as GetWorkGroup's State.
        const match = /^([A-Za-z0-9._-]{1,128})(?:=(s3:\/\/\S+?))?(!)?(?::([A-Za-z]+))?$/.exec(spec);
        if (!match?.[1]) {
          throw new UsageError(
            `--workgroup: expected NAME or NAME=s3://bucket/prefix/ (add ! to enforce, :DISABLED for one that runs no query), got "${spec}"`,
          );
        }
        const state = (['ENABLED', 'DISABLED'] as const).find((s) => s === match[4]?.toUpperCase());
        if (match[4] !== undefined && !state) {
          throw new UsageError(
            `--workgroup: expected :DISABLED or :ENABLED after workgroup ${match[1]}, got ":${match[4]}" in "${spec}"`,
          );
        }
        workgroups[match[1]] = {
          ...(match[2] ? { outputLocation: match[2] } : {}),
          enforce: match[3] === '!',
          ...(state ? { state } : {}),
        };
        break;
      }
      default:
        throw new UsageError(`unknown option "${arg}"`);
    }
  }
  if (!dataDir) throw new UsageError('--data DIR is required (a folder of database folders)');
  return { port, host, dataDir, resultsDir, workgroups, queuedMs, runningMs };
}

/** `roundtrip emulate athena …`: resolves to the exit code once stopped by a signal. */
export async function runAthenaEmulatorCli(argv: string[]): Promise<number> {
  const cli = parseAthenaEmulatorArgs(argv);
  // A mistyped --data is bad input named as such, not the emulator's scandir ENOENT. (The CLI
  // prefixes the message with `roundtrip emulate:`.)
  const data = statSync(cli.dataDir, { throwIfNoEntry: false });
  if (!data?.isDirectory()) {
    throw new UsageError(
      `--data ${cli.dataDir} ${data ? 'is a file, not a folder' : 'does not exist'} (expected a folder with a folder per database, e.g. ${path.join(cli.dataDir, 'marketing', 'customers.csv')})`,
      { showUsage: false },
    );
  }
  const options: AthenaEmulatorOptions = {
    port: cli.port,
    host: cli.host,
    dataDir: cli.dataDir,
    workgroups: cli.workgroups,
    queryDelaysMs: { queued: cli.queuedMs, running: cli.runningMs },
    ...(cli.resultsDir ? { resultsDir: cli.resultsDir } : {}),
  };
  const emulator = await startAthenaEmulator(options);
  const { endpoint, region, credentials } = emulator;
  const outputHint =
    Object.values(cli.workgroups).find((w) => w.outputLocation)?.outputLocation ?? 's3://results/';
  process.stdout.write(
    [
      `Athena + S3 emulator listening on ${endpoint}`,
      `  data:        ${cli.dataDir} (a folder per database, a .csv or .parquet file per table)`,
      `  results:     ${emulator.resultsDir}`,
      `  region:      ${region}`,
      `  credentials: AWS_ACCESS_KEY_ID=${credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${credentials.secretAccessKey} (any static pair works)`,
      '',
      'AWS CLI:',
      `  export AWS_ACCESS_KEY_ID=${credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${credentials.secretAccessKey} AWS_REGION=${region}`,
      `  aws athena start-query-execution --endpoint-url ${endpoint} --query-string 'SELECT 1' --result-configuration OutputLocation=${outputHint}`,
      `  aws s3api get-object --endpoint-url ${endpoint} --bucket <bucket> --key <prefix>/<QueryExecutionId>.csv out.csv`,
      'AWS SDK for JavaScript v3:',
      `  new AthenaClient({ endpoint: '${endpoint}', region: '${region}', credentials: { accessKeyId: '${credentials.accessKeyId}', secretAccessKey: '${credentials.secretAccessKey}' } })`,
      `  new S3Client({ endpoint: '${endpoint}', region: '${region}', forcePathStyle: true, credentials: { … } })`,
      '',
      'Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  const signal = await untilSignal();
  process.stdout.write(`\n${signal}: stopping the Athena emulator\n`);
  await emulator.stop();
  return EXIT.ok;
}
