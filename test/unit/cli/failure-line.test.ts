/**
 * The CLI's own failure line, `roundtrip <command>: <what went wrong>` (bin/commands/index.ts
 * main): a fault in the code (a TypeError, a RangeError) keeps its name, as a run's failure lines
 * keep a name that says more than the message (docs/cli.md); our own errors, and a plain Error,
 * show their message alone. The command is replaced by one that throws.
 */
import { main } from '../../../bin/commands';
import { TerminalError, thrownFailureText } from '../../../lambdas/shared/errors';

const thrown: { error: unknown } = { error: undefined };

jest.mock('../../../bin/commands/status', () => ({
  status: async (): Promise<number> => {
    throw thrown.error;
  },
}));

/** What `roundtrip status` writes on stderr, and its exit code, when the command throws `error`. */
async function failureOf(error: unknown, argv: string[] = []): Promise<{ code: number; stderr: string }> {
  thrown.error = error;
  let stderr = '';
  const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { code: await main(['status', ...argv]), stderr };
  } finally {
    spy.mockRestore();
  }
}

describe('the CLI failure line', () => {
  it('keeps the name of a built-in error other than Error: a fault to report', async () => {
    expect(await failureOf(new TypeError("Cannot read properties of undefined (reading 'runId')"))).toEqual({
      code: 1,
      stderr: "roundtrip status: TypeError: Cannot read properties of undefined (reading 'runId')\n",
    });
    expect((await failureOf(new RangeError('Invalid time value'))).stderr).toBe(
      'roundtrip status: RangeError: Invalid time value\n',
    );
  });

  it('shows our own errors and a plain Error by their message alone', async () => {
    expect(
      await failureOf(new TerminalError('PostgreSQL refused the password (the secret local/postgres)')),
    ).toEqual({
      code: 1,
      stderr: 'roundtrip status: PostgreSQL refused the password (the secret local/postgres)\n',
    });
    expect((await failureOf(new Error('something went wrong'))).stderr).toBe(
      'roundtrip status: something went wrong\n',
    );
    const own = new Error('seed file Lead.csv, line 3: no LastName');
    own.name = 'SeedError';
    expect((await failureOf(own)).stderr).toBe('roundtrip status: seed file Lead.csv, line 3: no LastName\n');
  });

  it('with -v, the stack, which starts with the name', async () => {
    const { stderr } = await failureOf(new RangeError('Invalid time value'), ['-v']);
    expect(stderr).toMatch(/^roundtrip status: RangeError: Invalid time value\n {4}at /);
  });
});

describe('thrownFailureText', () => {
  it.each(['TypeError', 'RangeError', 'ReferenceError', 'SyntaxError', 'EvalError', 'URIError'])(
    'keeps %s',
    (name) => {
      const err = new Error('boom');
      err.name = name;
      expect(thrownFailureText(err)).toBe(`${name}: boom`);
    },
  );

  it('keeps the name alone when there is no message, and shows a thrown value that is no Error', () => {
    expect(thrownFailureText(new TypeError(''))).toBe('TypeError');
    expect(thrownFailureText('a string')).toBe('a string');
  });

  it('leaves out the names of other libraries’ errors, whose messages say what is wrong', () => {
    const pg = new Error('relation "roundtrip.runs" does not exist');
    pg.name = 'error';
    expect(thrownFailureText(pg)).toBe('relation "roundtrip.runs" does not exist');
  });
});
