/**
 * What a real POSIX shell makes of a command line: the words `sh` reads, after quoting,
 * expansions and the end of the command (`;`, a newline) are applied. For the tests of the commands
 * that messages quote (lambdas/shared/shell.ts).
 */
import { execFileSync } from 'node:child_process';

/**
 * The words `sh` reads from `line`, as `printf '%s\0'` prints them: a command that the shell would
 * split, expand or end early gives other words than were meant. `sh` runs with an empty
 * environment but for PATH and a HOME that no word should expand to.
 */
export function shellWords(line: string): string[] {
  const out = execFileSync('sh', ['-c', `printf '%s\\0' ${line}`], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/home-expanded' },
    encoding: 'utf8',
  });
  return out.split('\0').slice(0, -1);
}

/** Values a key or a task name may hold that a shell would split, expand, glob or end the command at. */
export const AWKWARD = [
  'a b',
  "O'Brien",
  'say "hi"',
  '$HOME',
  '${HOME}',
  '`id`',
  '$(id)',
  'a;b',
  'a&b',
  'a|b',
  'a>b',
  '~',
  '*',
  'a#b',
  '#a',
  'back\\slash',
  'tab\there',
  'new\nline',
  "''",
  '',
  ' lead and trail ',
  'é',
  '!x',
];
