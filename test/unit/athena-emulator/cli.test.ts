import path from 'node:path';
import { UsageError } from '../../../bin/cli-common';
import { DEFAULT_ATHENA_EMULATOR_PORT, parseAthenaEmulatorArgs } from '../../../emulators/athena/cli';

describe('parseAthenaEmulatorArgs', () => {
  it('parses every option, in both --flag value and --flag=value forms', () => {
    expect(
      parseAthenaEmulatorArgs([
        '--port=4600',
        '--data',
        'data',
        '--results',
        '/tmp/r',
        '--workgroup',
        'roundtrip=s3://results/athena/!',
        '--workgroup',
        'adhoc',
        '--workgroup',
        'retired=s3://results/old:prefix/!:DISABLED',
        '--workgroup=paused:disabled',
        '--queued-ms',
        '100',
        '--running-ms=200',
        '--host',
        '0.0.0.0',
      ]),
    ).toEqual({
      port: 4600,
      host: '0.0.0.0',
      dataDir: path.resolve('data'),
      resultsDir: '/tmp/r',
      workgroups: {
        roundtrip: { outputLocation: 's3://results/athena/', enforce: true },
        adhoc: { enforce: false },
        retired: { outputLocation: 's3://results/old:prefix/', enforce: true, state: 'DISABLED' },
        paused: { enforce: false, state: 'DISABLED' },
      },
      queuedMs: 100,
      runningMs: 200,
    });
  });

  it('defaults the port and requires --data', () => {
    expect(parseAthenaEmulatorArgs(['--data', 'd']).port).toBe(DEFAULT_ATHENA_EMULATOR_PORT);
    expect(() => parseAthenaEmulatorArgs([])).toThrow(UsageError);
    // The CLI says `roundtrip emulate:` before it: the message does not say `emulate athena:` again.
    expect(() => parseAthenaEmulatorArgs([])).toThrow(/^--data DIR is required/);
  });

  it('names the bad option', () => {
    expect(() => parseAthenaEmulatorArgs(['--data', 'd', '--port', 'x'])).toThrow(
      '--port: expected an integer from 0 to 65535, got "x"',
    );
    // Decimal digits only: Number() would read 0x10 as 16, 1e3 as 1000 and an empty --port= as 0.
    expect(() => parseAthenaEmulatorArgs(['--data', 'd', '--port', '0x10'])).toThrow(
      '--port: expected an integer from 0 to 65535, got "0x10"',
    );
    expect(() => parseAthenaEmulatorArgs(['--data', 'd', '--port=', '--queued-ms', '1e3'])).toThrow(
      '--port: expected an integer from 0 to 65535, got ""',
    );
    expect(() => parseAthenaEmulatorArgs(['--data', 'd', '--queued-ms', '1e3'])).toThrow(
      '--queued-ms: expected an integer from 0 to 3600000, got "1e3"',
    );
    expect(() => parseAthenaEmulatorArgs(['--data', 'd', '--nope'])).toThrow(/^unknown option "--nope"$/);
    expect(() => parseAthenaEmulatorArgs(['--data'])).toThrow('--data: expected a value');
    expect(() => parseAthenaEmulatorArgs(['--data', 'd', '--workgroup', 'retired:OFF'])).toThrow(
      '--workgroup: expected :DISABLED or :ENABLED after workgroup retired, got ":OFF" in "retired:OFF"',
    );
    expect(() => parseAthenaEmulatorArgs(['--data', 'd', '--workgroup', 'a b'])).toThrow(
      '--workgroup: expected NAME or NAME=s3://bucket/prefix/ (add ! to enforce, :DISABLED for one that runs no query), got "a b"',
    );
  });
});
