import { parseOptions, UsageError, wholeNumberOption } from '../../../bin/cli-common';

describe('parseOptions', () => {
  const options = { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } } as const;

  it('returns the options given', () => {
    expect(parseOptions(['--config', 'a.ts', '--json'], options).values).toEqual({
      config: 'a.ts',
      json: true,
    });
  });

  it('refuses a bare argument instead of ignoring it, and says to give a config file with --config', () => {
    const parse = (): unknown => parseOptions(['my-pipeline/roundtrip.config.ts', '--json'], options);
    expect(parse).toThrow(UsageError);
    expect(parse).toThrow(
      'unexpected argument "my-pipeline/roundtrip.config.ts" (this command takes options only); ' +
        'to use "my-pipeline/roundtrip.config.ts" as the pipeline config, pass --config my-pipeline/roundtrip.config.ts',
    );
  });

  it('names a bare argument without the --config hint when the command has no --config', () => {
    expect(() => parseOptions(['extra'], { json: { type: 'boolean' } })).toThrow(
      /^unexpected argument "extra" \(this command takes options only\)$/,
    );
  });

  it('keeps an unknown option a UsageError', () => {
    expect(() => parseOptions(['--bogus'], options)).toThrow(UsageError);
  });

  it("names a misspelt option with the one it most likely meant, without parseArgs's advice on positionals", () => {
    const failure = (argv: string[]): string => {
      try {
        parseOptions(argv, { ...options, limit: { type: 'string' } });
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    };
    expect(failure(['--limt', '3'])).toBe(
      "Unknown option '--limt' (did you mean --limit?): the options are below",
    );
    expect(failure(['--confg', 'a.ts'])).toBe(
      "Unknown option '--confg' (did you mean --config?): the options are below",
    );
    expect(failure(['--bogus'])).toBe("Unknown option '--bogus': the options are below");
    expect(failure(['-x'])).toBe("Unknown option '-x': the options are below");
  });

  it('names the value that starts with "-" given after an option, and how to give it as the value', () => {
    const failure = (argv: string[]): string => {
      try {
        parseOptions(argv, { ...options, port: { type: 'string' } });
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    };
    expect(failure(['--port', '-1'])).toBe(
      '--port expects a value, and "-1" after it reads as an option: to give it as the value, write --port=-1',
    );
    expect(failure(['-c', '-x.ts'])).toBe(
      '-c expects a value, and "-x.ts" after it reads as an option: to give it as the value, write --config=-x.ts',
    );
    expect(failure(['--port=-1'])).toBe('no error');
  });
});

describe('wholeNumberOption', () => {
  const failure = (value: string, min = 1, max?: number): string => {
    try {
      wholeNumberOption('limit', value, 50, min, max);
    } catch (err) {
      expect(err).toBeInstanceOf(UsageError);
      return (err as Error).message;
    }
    return 'no error';
  };

  it('takes a whole number from the minimum up to the largest safe integer, underscores allowed', () => {
    expect(wholeNumberOption('limit', undefined, 50, 1)).toBe(50);
    expect(wholeNumberOption('limit', '1_000', 50, 1)).toBe(1000);
    expect(wholeNumberOption('limit', String(Number.MAX_SAFE_INTEGER), 50, 1)).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('refuses a number too large to be the one typed, naming the flag: not handed on to fail as something else', () => {
    // 99999999999999999999 reads as 1e20: as a SQL LIMIT, PostgreSQL's "out of range for type bigint".
    expect(failure('99999999999999999999')).toBe(
      '--limit expects a whole number from 1 to 9007199254740991, got "99999999999999999999"',
    );
    expect(failure('9007199254740992')).toBe(
      '--limit expects a whole number from 1 to 9007199254740991, got "9007199254740992"',
    );
    expect(failure('1001', 0, 1000)).toBe('--limit expects a whole number from 0 to 1000, got "1001"');
  });

  it('refuses what is not a whole number, or below the minimum, as before', () => {
    expect(failure('many')).toBe('--limit expects a whole number ≥ 1, got "many"');
    expect(failure('0')).toBe('--limit expects a whole number ≥ 1, got "0"');
    expect(failure('1.5')).toBe('--limit expects a whole number ≥ 1, got "1.5"');
    expect(failure('Infinity')).toBe('--limit expects a whole number ≥ 1, got "Infinity"');
  });

  it('takes decimal digits only: not the hexadecimal, exponent or empty text Number() reads as a number', () => {
    // Number('0x10') is 16, Number('1e3') 1000, Number('') (`--port=`) 0: none of them is what was meant.
    for (const value of [
      '0x10',
      '0o7',
      '0b1',
      '1e3',
      '1e21',
      '',
      ' ',
      ' 7',
      '7 ',
      '+5',
      '-0',
      '1.0',
      '1_',
      '_1',
      '1__0',
    ]) {
      expect(failure(value, 0)).toBe(`--limit expects a whole number ≥ 0, got "${value}"`);
    }
    expect(wholeNumberOption('limit', '007', 50, 1)).toBe(7);
    expect(wholeNumberOption('port', '0', 50, 0)).toBe(0);
  });
});
