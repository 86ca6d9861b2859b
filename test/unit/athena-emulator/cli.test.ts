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
      },
      queuedMs: 100,
      runningMs: 200,
    });
  });

  it('defaults the port and requires --data', () => {
    expect(parseAthenaEmulatorArgs(['--data', 'd']).port).toBe(DEFAULT_ATHENA_EMULATOR_PORT);
    expect(() => parseAthenaEmulatorArgs([])).toThrow(UsageError);
    expect(() => parseAthenaEmulatorArgs([])).toThrow('--data DIR is required');
  });

  it('names the bad option', () => {
    expect(() => parseAthenaEmulatorArgs(['--data', 'd', '--port', 'x'])).toThrow(
      '--port: expected an integer from 0 to 65535, got "x"',
    );
    expect(() => parseAthenaEmulatorArgs(['--data', 'd', '--nope'])).toThrow('unknown option "--nope"');
    expect(() => parseAthenaEmulatorArgs(['--data'])).toThrow('--data: expected a value');
  });
});
