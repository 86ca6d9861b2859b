import { parseOptions, UsageError } from '../../../bin/cli-common';

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
});
