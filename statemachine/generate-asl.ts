/**
 * Writes statemachine/pipeline.asl.json: the example pipeline's state machine definition, as
 * the CDK code synthesizes it, in plain ASL (statemachine/asl.ts). `npm run asl` after a change
 * to statemachine/definition.ts or the example config; test/infra/definition.test.ts fails while the
 * committed file differs from what the code generates.
 *
 *   npm run asl                  # the example config
 *   npm run asl -- path/to/roundtrip.config.ts out.asl.json
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ASL_EXAMPLE_CONFIG, ASL_FILE, aslForConfigFile, aslText } from './asl';

async function main(): Promise<void> {
  const [configArg, outArg] = process.argv.slice(2);
  const config = configArg ? path.resolve(configArg) : ASL_EXAMPLE_CONFIG;
  const out = outArg ? path.resolve(outArg) : ASL_FILE;
  const definition = await aslForConfigFile(config);
  writeFileSync(out, aslText(definition));
  process.stdout.write(
    `${path.relative(process.cwd(), out)}: ${Object.keys(definition.States).length} top-level states\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
