/**
 * `npm run bench -- <name> [options]`: runs bench/<name>.ts. Each benchmark measures a ratio
 * against a reference run in the same process or script (e.g. `psql \copy` of the same CSV)
 * and prints, as its last line, one JSON object with its figures. Results go to BENCHMARKS.md.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  const available = readdirSync(__dirname)
    .filter((f) => f.endsWith('.ts') && f !== 'index.ts' && !f.startsWith('_'))
    .map((f) => path.basename(f, '.ts'));
  if (!name || !available.includes(name)) {
    process.stderr.write(`usage: npm run bench -- <${available.join('|')}> [options]\n`);
    process.exitCode = 2;
    return;
  }
  const mod = (await import(path.join(__dirname, `${name}.ts`))) as { run(argv: string[]): Promise<void> };
  await mod.run(rest);
}

void main();
