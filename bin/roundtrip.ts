/**
 * The roundtrip CLI (installed as the `roundtrip` bin through bin/roundtrip.cjs). The commands
 * and their dispatch are in bin/commands/index.ts; docs/cli.md describes them.
 */
// The AWS SDK warns on Node 20, once per process and eight lines long, that its releases after
// January 2027 will need Node 22. The versions package-lock.json pins run on Node 20 (the CLI's
// supported floor: docs/node-versions.md), so on the CLI's stderr the notice only buries the
// command's own lines. Set before any SDK client is made; a value the user set is kept.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

import { EXIT, ignoreOutputGone } from './cli-common';
import { main } from './commands';

export { main };

if (require.main === module || process.argv[1]?.endsWith('roundtrip.cjs')) {
  // A reader that stops early (`roundtrip status | head -3`) closes the pipe, a closed terminal
  // (SIGHUP) its tty: what is left to print has no one to read it, and the command ends as it
  // would have (its exit code, a stop's cleanup done), not with an unhandled EPIPE or EIO.
  process.stdout.on('error', ignoreOutputGone);
  process.stderr.on('error', ignoreOutputGone);
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`roundtrip: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT.failed;
    },
  );
}
