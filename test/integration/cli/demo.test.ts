/**
 * `roundtrip demo` in-process on a small org, on a database of its own: it ends with what
 * changed in Salesforce, the summary, and where a newcomer goes next.
 */
import { demoNextSteps } from '../../../bin/commands/demo';
import { cli } from '../../support/cli';
import { createTestDatabase, type TestDatabase } from '../../support/database';

describe('roundtrip demo', () => {
  let db: TestDatabase;
  const saved = process.env.DATABASE_URL;

  beforeAll(async () => {
    db = await createTestDatabase('rt_demo');
    process.env.DATABASE_URL = db.url;
  });
  afterAll(async () => {
    process.env.DATABASE_URL = saved;
    await db?.drop();
  });

  it('ends a run that succeeded with the next steps, after what changed and the summary', async () => {
    const { code, stdout, stderr } = await cli(['demo', '--leads', '120', '--customers', '40']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^What changed in Salesforce \(run \S+\):$/m);
    expect(stdout).toMatch(/^run \S+: succeeded$/m);
    expect(stderr.trimEnd().endsWith(demoNextSteps(false))).toBe(true);
    expect(stderr).toContain('npm start -- --again');
    expect(stderr).toContain('docs/cli.md, "Your own pipeline on this laptop"');
  });

  it('does not suggest --again after a demo that ran with --again', async () => {
    const { code, stdout, stderr } = await cli(['demo', '--leads', '120', '--customers', '40', '--again']);
    expect(code).toBe(0);
    expect(stdout).toContain('Nothing needed sending');
    expect(stderr.trimEnd().endsWith(demoNextSteps(true))).toBe(true);
    expect(stderr).not.toContain('npm start -- --again');
    expect(stderr).toContain('docs/cli.md, "Your own pipeline on this laptop"');
  });
});
