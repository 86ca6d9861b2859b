// `npm test`'s static checks, side by side: the type check on one core, ESLint then Prettier on
// the other (each is single-threaded: one after the other they took 53 s on 2 cores, side by side
// about 30). Each check's output is printed whole when it ends, under its name; the exit code is
// 1 when any check failed, after all of them have ended.
import { spawn } from 'node:child_process';

/** Lanes run side by side; the checks of a lane one after the other. */
const LANES = [
  [{ name: 'typecheck', command: 'tsc', args: ['-p', 'tsconfig.json', '--noEmit'] }],
  [
    { name: 'eslint', command: 'eslint', args: ['.'] },
    { name: 'prettier', command: 'prettier', args: ['--check', '.'] },
  ],
];

function run({ name, command, args }) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn('npx', ['--no-install', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const output = [];
    child.stdout.on('data', (chunk) => output.push(chunk));
    child.stderr.on('data', (chunk) => output.push(chunk));
    const done = (code, why) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const text = Buffer.concat(output).toString().trimEnd();
      const verdict = code === 0 ? 'passed' : `FAILED (${why})`;
      process.stdout.write(`> ${name}: ${command} ${args.join(' ')} — ${verdict} in ${seconds} s\n`);
      if (text) process.stdout.write(`${text}\n`);
      resolve(code === 0);
    };
    child.on('error', (err) => done(1, err.message));
    child.on('close', (code, signal) => done(code ?? 1, signal ? `signal ${signal}` : `exit ${code}`));
  });
}

const results = await Promise.all(
  LANES.map(async (lane) => {
    const passed = [];
    for (const check of lane) passed.push(await run(check));
    return passed;
  }),
);
process.exit(results.flat().every(Boolean) ? 0 : 1);
