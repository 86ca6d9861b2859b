/**
 * The options a command shares with others are the ones it uses: `--aws-endpoint` (Athena and S3
 * at another endpoint) is an option of the commands that call them (run, plan, validate, whose
 * usage names it), and refused by those of the pipeline's database, which call neither and
 * whose usage does not name it: accepted, it would be ignored.
 */
import { COMMAND_HELP, main } from '../../../bin/commands';

/** What `roundtrip <argv>` writes on stderr, and its exit code. */
async function outcomeOf(argv: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { code: await main(argv), stderr };
  } finally {
    err.mockRestore();
  }
}

describe('--aws-endpoint', () => {
  it.each(['status', 'errors', 'resolve', 'forget', 'rename-task'])(
    'is refused by %s, which calls neither Athena nor S3, before anything is read',
    async (command) => {
      expect(COMMAND_HELP[command]).not.toContain('--aws-endpoint');
      const { code, stderr } = await outcomeOf([command, '--aws-endpoint', 'http://127.0.0.1:4568']);
      expect(code).toBe(2);
      expect(stderr.split('\n')[0]).toBe(
        `roundtrip ${command}: Unknown option '--aws-endpoint': the options are below`,
      );
    },
  );

  it.each(['run', 'plan', 'validate'])('is named by the usage of %s, which uses it', (command) => {
    expect(COMMAND_HELP[command]?.split('\n')[0]).toContain('[--aws-endpoint URL]');
  });
});

describe('-v (--verbose)', () => {
  /** What each command needs beside, so that the missing config is what is refused. */
  const required: Record<string, string[]> = {
    status: [],
    errors: [],
    resolve: ['--task', 'Lead-insert', '--collect-jobs'],
    forget: ['--task', 'Lead-insert'],
    'rename-task': ['--from', 'Lead-insert', '--to', 'Lead-new'],
  };

  it.each(Object.keys(required))(
    'is accepted by %s and listed in its --help, usage and options',
    async (command) => {
      const help = COMMAND_HELP[command] ?? '';
      // Each form of the usage names it (resolve has two: keys, and --collect-jobs).
      const usage = help.split('\n\n')[0]!;
      expect(usage.match(/\[-v\]/g)).toHaveLength(command === 'resolve' ? 2 : 1);
      expect(help).toMatch(/^ {2}-v, --verbose {10}\S/m);
      // Accepted: what is refused is the missing config, not the option.
      const { code, stderr } = await outcomeOf([
        command,
        ...required[command]!,
        '-v',
        '--config',
        'no-such-dir/roundtrip.config.ts',
      ]);
      expect(code).toBe(2);
      expect(stderr).not.toContain('Unknown option');
      expect(stderr).toContain('no-such-dir/roundtrip.config.ts');
    },
  );
});
