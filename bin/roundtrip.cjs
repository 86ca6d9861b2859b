#!/usr/bin/env node
// The installed `roundtrip` command. The CLI is TypeScript and loads its sub-commands lazily
// with `import()`, so it runs under tsx's loader (both the CommonJS and the ESM hooks, which
// only `node --import tsx` installs together). Exit code and signals pass through.
const { spawn } = require('node:child_process');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

const loader = pathToFileURL(require.resolve('tsx')).href;
const child = spawn(
  process.execPath,
  ['--import', loader, path.join(__dirname, 'roundtrip.ts'), ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else process.exit(code ?? 1);
});
