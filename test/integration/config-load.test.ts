/**
 * loadConfig reads real files: .ts inside jest (jest's require and swc transform), in plain
 * Node and under tsx (child processes), and .json; every error names the file.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, realpath, rm, symlink, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { promisify } from 'node:util';
import { loadConfig, loadConfigReading } from '../../lambdas/config';
import { ConfigError } from '../../lambdas/shared/errors';

const CONFIG_MODULE = path.resolve(__dirname, '../../lambdas/config');
const execFileAsync = promisify(execFile);
const REPO = path.resolve(__dirname, '../..');
const LOAD_MODULE = path.join(REPO, 'lambdas/config/load.ts');
const EXAMPLE = path.resolve(__dirname, '../../examples/lead-scoring/roundtrip.config.ts');

/** The ConfigError a promise rejects with (fails the test when it resolves or throws something else). */
async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the config loaded');
}

describe('loadConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'roundtrip-config-'));
    await mkdir(path.join(dir, 'sql'));
    await writeFile(path.join(dir, 'sql', 'first.sql'), 'SELECT 1;\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const minimal = {
    name: 'minimal',
    postgres: { secret: 'roundtrip/postgres' },
    transform: ['sql/first.sql'],
  };

  it('loads the example roundtrip.config.ts with defaults applied and transform paths made absolute', async () => {
    const config = await loadConfig(EXAMPLE);
    expect(config.name).toBe('lead-scoring');
    expect(config.transform).toEqual([path.resolve(path.dirname(EXAMPLE), 'transforms/lead_score.sql')]);
    expect(config.writeback[0]).toMatchObject({
      mode: 'update',
      key: 'Id',
      keyColumn: 'Id',
      name: 'Lead-update',
    });
    expect(config.budget).toEqual({ maxApiCallsPerRun: 5000, reserveDailyApiPercent: 20 });
  });

  it('loads a .ts file that imports defineConfig and uses TypeScript syntax', async () => {
    const file = path.join(dir, 'roundtrip.config.ts');
    await writeFile(
      file,
      [
        `import { defineConfig, type PipelineConfigInput } from ${JSON.stringify(CONFIG_MODULE)};`,
        `const secret: string = 'roundtrip/postgres';`,
        `const config: PipelineConfigInput = { name: 'from-ts', postgres: { secret }, transform: ['sql/first.sql'] };`,
        `export default defineConfig(config);`,
      ].join('\n'),
    );
    const config = await loadConfig(file);
    expect(config).toMatchObject({ name: 'from-ts', transform: [path.join(dir, 'sql', 'first.sql')] });
    expect(config.postgres).toEqual({
      secret: 'roundtrip/postgres',
      schema: 'public',
      ssl: { mode: 'verify-full' },
      keepRunDetailsDays: 30,
    });
  });

  it('loads a .ts file from plain Node and from a process that already runs under tsx (as the CLI does)', async () => {
    const file = path.join(dir, 'child.config.ts');
    await writeFile(
      file,
      [
        `import { defineConfig } from ${JSON.stringify(CONFIG_MODULE)};`,
        `const rows: number = 250;`,
        `export default defineConfig({ name: 'child', postgres: { secret: 'roundtrip/postgres' }, transform: ['sql/first.sql'], budget: { maxApiCallsPerRun: rows } });`,
      ].join('\n'),
    );
    const print = `.loadConfig(${JSON.stringify(file)}).then((c) => console.log(JSON.stringify([c.name, c.budget.maxApiCallsPerRun])), (e) => { console.error(e); process.exit(1); })`;
    // Plain Node: load.ts itself is loaded through tsx's scoped require; the config then needs the hook loadConfig installs.
    const plain = `require('tsx/cjs/api').require(${JSON.stringify(LOAD_MODULE)}, __filename)${print}`;
    // The CLI: bin/roundtrip.cjs registers tsx globally first; loadConfig registers it once more.
    const cli = `require('tsx/cjs'); require(${JSON.stringify(LOAD_MODULE)})${print}`;
    for (const script of [plain, cli]) {
      const { stdout } = await execFileAsync(process.execPath, ['-e', script], { cwd: REPO });
      expect(JSON.parse(stdout)).toEqual(['child', 250]);
    }
  });

  it('loads .ts, .js and .json configs in a folder whose package.json says "type": "module", from plain Node and under tsx', async () => {
    // An ESM project's folder: tsx compiles what loadConfig requires to CommonJS whatever the
    // package type, so the ESM syntax loads; a config that needs ESM (top-level await) is a
    // ConfigError naming the file, never a promise left pending and a silent exit 0.
    const esm = path.join(dir, 'esm-project');
    await mkdir(path.join(esm, 'sql'), { recursive: true });
    await writeFile(path.join(esm, 'package.json'), JSON.stringify({ type: 'module' }));
    await writeFile(path.join(esm, 'sql', 'first.sql'), 'SELECT 1;\n');
    await writeFile(path.join(esm, 'secret.ts'), `export const secret: string = 'roundtrip/postgres';\n`);
    const configs: [string, string[]][] = [
      [
        'roundtrip.config.ts',
        [
          `import { defineConfig } from ${JSON.stringify(CONFIG_MODULE)};`,
          `import { secret } from './secret.js';`,
          `export default defineConfig({ name: 'esm-ts', postgres: { secret }, transform: ['sql/first.sql'] });`,
        ],
      ],
      ['plain.config.js', [`export default ${JSON.stringify({ ...minimal, name: 'esm-js' })};`]],
      ['data.config.json', [JSON.stringify({ ...minimal, name: 'esm-json' })]],
      [
        'await.config.ts',
        [
          `const secret = await Promise.resolve('pg');`,
          `export default { ...${JSON.stringify(minimal)}, postgres: { secret } };`,
        ],
      ],
    ];
    const files = configs.map(([name]) => path.join(esm, name));
    for (const [name, lines] of configs) await writeFile(path.join(esm, name), lines.join('\n'));
    // Each outcome in order, and a line once every load settled: a pending one would leave it out.
    const loadAll = `(async () => { const out = []; for (const f of ${JSON.stringify(files)}) {
      out.push(await load.loadConfig(f).then((c) => c.name, (e) => e.constructor.name + ': ' + e.message)); }
      console.log(JSON.stringify(out)); })()`;
    const plain = `const load = require('tsx/cjs/api').require(${JSON.stringify(LOAD_MODULE)}, __filename); ${loadAll}`;
    const cli = `require('tsx/cjs'); const load = require(${JSON.stringify(LOAD_MODULE)}); ${loadAll}`;
    for (const script of [plain, cli]) {
      const { stdout } = await execFileAsync(process.execPath, ['-e', script], { cwd: REPO });
      // Nothing printed: a load never settled and Node exited 0 with the promise pending.
      expect(stdout).toMatch(/^\[/);
      const outcomes = JSON.parse(stdout) as string[];
      expect(outcomes.slice(0, 3)).toEqual(['esm-ts', 'esm-js', 'esm-json']);
      expect(outcomes[3]).toMatch(
        new RegExp(
          `^ConfigError: Invalid pipeline config ${files[3]}.*\\n  the file failed to load: .*Top-level await`,
          's',
        ),
      );
    }
  });

  it('refuses a .js config with a .ts twin beside it where tsx would load the twin instead (the CLI)', async () => {
    const twins = path.join(dir, 'twins');
    await mkdir(twins);
    await mkdir(path.join(twins, 'sql'));
    await writeFile(path.join(twins, 'sql', 'first.sql'), 'SELECT 1;\n');
    const js = path.join(twins, 'x.config.js');
    await writeFile(js, `module.exports = ${JSON.stringify({ ...minimal, name: 'from-js' })};\n`);
    await writeFile(
      path.join(twins, 'x.config.ts'),
      `export default ${JSON.stringify({ ...minimal, name: 'from-ts' })};\n`,
    );
    const expected =
      'x.config.js would load as x.config.ts, which sits beside it (tsx resolves a .js path to its .ts twin): give the path of x.config.ts, or move one of them away';
    // The CLI's process (tsx registered), where the twin was loaded silently.
    const script = `require('tsx/cjs'); require(${JSON.stringify(LOAD_MODULE)}).loadConfig(${JSON.stringify(js)}).then((c) => console.log(c.name), (e) => console.log(e.message))`;
    const { stdout } = await execFileAsync(process.execPath, ['-e', script], { cwd: REPO });
    expect(stdout).toContain(expected);
    expect(stdout).not.toContain('from-ts');
    // jest's require resolves the path as named: the .js loads.
    expect((await loadConfig(js)).name).toBe('from-js');
    // The .ts, named, loads.
    expect((await loadConfig(path.join(twins, 'x.config.ts'))).name).toBe('from-ts');
  });

  it('loads a CommonJS file whose module.exports is the config', async () => {
    const file = path.join(dir, 'roundtrip.config.cjs');
    await writeFile(file, `module.exports = ${JSON.stringify({ ...minimal, name: 'from-cjs' })};\n`);
    expect((await loadConfig(file)).name).toBe('from-cjs');
  });

  it('loads a .json file', async () => {
    const file = path.join(dir, 'roundtrip.config.json');
    await writeFile(file, JSON.stringify(minimal));
    const config = await loadConfig(file);
    expect(config.name).toBe('minimal');
    expect(config.transform).toEqual([path.join(dir, 'sql', 'first.sql')]);
  });

  it('names a missing file', async () => {
    const file = path.join(dir, 'nowhere.config.ts');
    const error = await configError(loadConfig(file));
    expect(error.source).toBe(file);
    expect(error.issues).toEqual([{ path: '', message: 'the file does not exist' }]);
    expect(error.message).toContain(file);
  });

  it('names a file with an unsupported extension', async () => {
    const file = path.join(dir, 'roundtrip.config.yaml');
    await writeFile(file, 'name: x\n');
    const error = await configError(loadConfig(file));
    expect(error.issues).toEqual([
      { path: '', message: 'expected a .ts, .cts, .js, .cjs or .json file, got ".yaml"' },
    ]);
  });

  it('names a module that exports no config', async () => {
    const file = path.join(dir, 'empty.config.ts');
    await writeFile(file, 'export const unrelated = 1;\n');
    const error = await configError(loadConfig(file));
    expect(error.source).toBe(file);
    expect(error.issues).toEqual([
      {
        path: '',
        message:
          'the file exports no config: expected `export default defineConfig({ ... })` (or a named export `config`)',
      },
    ]);
  });

  it('names a module that throws while loading', async () => {
    const file = path.join(dir, 'throws.config.ts');
    await writeFile(file, "throw new Error('boom');\nexport default {};\n");
    const error = await configError(loadConfig(file));
    expect(error.issues).toEqual([{ path: '', message: 'the file failed to load: boom' }]);
  });

  it('answers an import of defineConfig that does not resolve with the path that reaches this checkout, which then loads', async () => {
    // The documented import, copied into a folder outside the checkout (a scratch folder in /tmp).
    const file = path.join(dir, 'copied.config.ts');
    const body = `export default defineConfig(${JSON.stringify({ ...minimal, name: 'copied' })});`;
    await writeFile(file, [`import { defineConfig } from '../lambdas/config';`, body].join('\n'));
    const error = await configError(loadConfig(file));
    const reach = path.relative(dir, CONFIG_MODULE).split(path.sep).join('/');
    expect(error.issues).toEqual([
      {
        path: '',
        message:
          `the file failed to load: Cannot find module '../lambdas/config'. defineConfig comes from this checkout's ` +
          `lambdas/config (${CONFIG_MODULE}): from the config's folder, import { defineConfig } from '${reach}'; ` +
          `or leave the import out and export the object itself`,
      },
    ]);
    const fixed = path.join(dir, 'fixed.config.ts');
    await writeFile(
      fixed,
      [`import { defineConfig } from '${reach}';`, body.replace('copied', 'fixed')].join('\n'),
    );
    expect((await loadConfig(fixed)).name).toBe('fixed');
    // Any other module that is missing is named as Node names it, without the hint.
    const other = path.join(dir, 'other.config.ts');
    await writeFile(
      other,
      [`import { helper } from './no-such-helper';`, `export default helper;`].join('\n'),
    );
    const otherError = await configError(loadConfig(other));
    expect(otherError.issues[0]?.message).toMatch(
      /^the file failed to load: (Error: )?Cannot find module '\.\/no-such-helper'/,
    );
    expect(otherError.issues[0]?.message).not.toContain('defineConfig');
  });

  it('names invalid JSON', async () => {
    const file = path.join(dir, 'broken.json');
    await writeFile(file, '{ "name": ');
    const error = await configError(loadConfig(file));
    expect(error.source).toBe(file);
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]?.message).toMatch(/^the file is not valid JSON: /);
  });

  it('names the line and column of a JSON mistake, not only its offset', async () => {
    const file = path.join(dir, 'trailing-comma.json');
    await writeFile(file, '{\n  "name": "my-score",\n  "postgres": { "secret": "pg" },\n}\n');
    const error = await configError(loadConfig(file));
    // Node 20 says "at position 58"; Node 22 adds "(line 4 column 1)" itself.
    expect(error.issues[0]?.message).toMatch(
      /^the file is not valid JSON: .*at position 58 \(line 4,? column 1\)$/,
    );
  });

  it('refuses a JSON config that writes a key twice in one object (a field mapped from two columns), with its other problems', async () => {
    const file = path.join(dir, 'repeated-key.json');
    await writeFile(
      file,
      [
        '{',
        '  "name": "Not Valid", "salesforce": { "secret": "sf" }, "postgres": { "secret": "pg" },',
        '  "writeback": [{ "to": "salesforce", "object": "Lead", "from": "scores", "mode": "update",',
        '    "fields": { "LeadScore__c": "score_a",',
        '                "LeadScore__c": "score_b" } }]',
        '}',
      ].join('\n'),
    );
    const error = await configError(loadConfig(file));
    expect(error.source).toBe(file);
    expect(error.issues).toEqual([
      {
        path: 'name',
        message: expect.stringMatching(/^expected a pipeline name: .*, got "Not Valid"$/),
      },
      {
        path: 'writeback[0].fields.LeadScore__c',
        message:
          'expected each key once in an object, got "LeadScore__c" again on line 5 (also on line 4): JSON keeps only the last one\'s value and silently drops the other; keep one',
      },
    ]);
  });

  it('reports validation problems with the file as the source', async () => {
    const file = path.join(dir, 'invalid.json');
    await writeFile(file, JSON.stringify({ ...minimal, name: 'Not Valid' }));
    const error = await configError(loadConfig(file));
    expect(error.source).toBe(file);
    expect(error.message).toBe(
      `Invalid pipeline config ${file} (1 problem):\n  name: expected a pipeline name: lowercase letters, digits and single dashes, starting with a letter, at most 32 characters, got "Not Valid"`,
    );
  });

  it('names a missing transform file together with the other problems', async () => {
    const file = path.join(dir, 'missing-sql-and-more.json');
    await writeFile(
      file,
      JSON.stringify({
        ...minimal,
        name: 'Not Valid',
        transform: ['sql/gone.sql', 'b.py'],
        budget: { maxApiCallsPerRun: 0 },
      }),
    );
    const error = await configError(loadConfig(file));
    expect(error.issues.map((i) => i.path)).toEqual([
      'name',
      'transform[0]',
      'transform[1]',
      'budget.maxApiCallsPerRun',
    ]);
    expect(error.issues[1]?.message).toBe(
      `expected an existing SQL file, got "sql/gone.sql" (${path.join(dir, 'sql', 'gone.sql')} does not exist)`,
    );
    // b.py is refused for its extension, not also for being missing.
    expect(error.issues[2]?.message).toMatch(/^expected the path of a \.sql file/);
  });

  it('loads a config whose transform files are gone when asked not to look for them (status, errors), and still names every other problem', async () => {
    const file = path.join(dir, 'gone-sql.json');
    await writeFile(file, JSON.stringify({ ...minimal, transform: ['sql/renamed.sql', 'sql/moved.sql'] }));
    await expect(loadConfig(file)).rejects.toThrow(/transform\[0\]: expected an existing SQL file/);
    const config = await loadConfig(file, { transformFiles: 'unchecked' });
    expect(config.transform[0]).toBe(path.join(dir, 'sql', 'renamed.sql'));
    // The config's own mistakes are still refused: only the look on disk is left out.
    const broken = path.join(dir, 'gone-sql-broken.json');
    await writeFile(
      broken,
      JSON.stringify({ ...minimal, name: 'Not Valid', transform: ['sql/renamed.sql'] }),
    );
    const error = await configError(loadConfig(broken, { transformFiles: 'unchecked' }));
    expect(error.issues.map((i) => i.path)).toEqual(['name']);
  });

  describe('for a command that reads only part of it (status, errors, forget, rename-task, resolve)', () => {
    const tasks = {
      salesforce: { secret: 'roundtrip/salesforce', apiVersion: '62' },
      extract: [
        { from: 'salesforce', object: 'Lead', fields: ['Id', 'Email'], table: 'sf_lead', overlapSeconds: -5 },
        { from: 'athena', table: 'usage', query: 'DROP TABLE usage' },
      ],
      writeback: [
        {
          to: 'salesforce',
          object: 'Lead',
          from: 'lead_scores',
          mode: 'insert',
          keyColumn: 'lead_key',
          fields: { 'Lead Score': 'score' },
          maxChanges: 0,
        },
        {
          to: 'salesforce',
          object: 'Contact',
          from: 'contact_scores',
          mode: 'update',
          feilds: { Score__c: 's' },
        },
      ],
      athena: { database: 'analytics', workgroup: 'not a workgroup' },
      budget: { maxApiCallsPerRun: 'many' },
      schedul: { rate: '1 hour' },
    };

    it('loads a config despite mistakes in what it does not read, each task in its place with its name, and answers them', async () => {
      const file = path.join(dir, 'reading-tolerated.json');
      await writeFile(file, JSON.stringify({ ...minimal, ...tasks, transform: ['sql/renamed.sql'] }));
      const refused = await configError(loadConfig(file));
      const { config, tolerated } = await loadConfigReading(file, []);
      // Every problem the full load names, and those alone, but the transform file it does not look for.
      expect(tolerated.map((i) => i.path)).toEqual(
        refused.issues.map((i) => i.path).filter((p) => p !== 'transform[0]'),
      );
      expect(tolerated.map((i) => i.path)).toEqual([
        'salesforce.apiVersion',
        'athena.workgroup',
        'extract[0].overlapSeconds',
        'extract[1].query',
        'writeback[0].fields["Lead Score"]',
        'writeback[0].maxChanges',
        'writeback[1].fields',
        'writeback[1].feilds',
        'budget.maxApiCallsPerRun',
        'schedul',
      ]);
      expect(config.name).toBe('minimal');
      expect(config.postgres).toMatchObject({ secret: 'roundtrip/postgres', schema: 'public' });
      expect(config.extract.map((t) => t.name)).toEqual(['Lead', 'usage']);
      expect(config.writeback.map((t) => [t.name, t.mode, t.key, t.keyColumn])).toEqual([
        ['Lead-insert', 'insert', undefined, 'lead_key'],
        ['Contact-update', 'update', 'Id', 'Id'],
      ]);
      // The sections with a mistake are left out; the transform files are not looked for.
      expect(config.salesforce).toBeUndefined();
      expect(config.athena).toBeUndefined();
      expect(config.budget).toEqual({ maxApiCallsPerRun: 5000, reserveDailyApiPercent: 20 });
      expect(config.transform).toEqual([path.join(dir, 'sql', 'renamed.sql')]);
      // A config without a mistake is the config loadConfig answers, nothing tolerated.
      const clean = path.join(dir, 'reading-clean.json');
      await writeFile(
        clean,
        JSON.stringify({
          ...minimal,
          transform: [],
          extract: [{ from: 'salesforce', object: 'Lead', fields: ['Id', 'Email'], table: 'sf_lead' }],
          salesforce: { secret: 'roundtrip/salesforce' },
        }),
      );
      expect(await loadConfigReading(clean, ['salesforce'])).toEqual({
        config: await loadConfig(clean),
        tolerated: [],
      });
    });

    it('refuses a mistake in what it reads, naming every problem of the config', async () => {
      const refusedPaths = async (
        change: Record<string, unknown>,
        sections: ('salesforce' | 'athena')[] = [],
      ) => {
        const file = path.join(dir, 'reading-refused.json');
        await writeFile(file, JSON.stringify({ ...minimal, ...tasks, ...change }));
        return (await configError(loadConfigReading(file, sections))).issues.map((i) => i.path);
      };
      const named = (extra: string[]) =>
        expect.arrayContaining([...extra, 'writeback[0].maxChanges', 'budget.maxApiCallsPerRun']);
      expect(await refusedPaths({ name: 'Not Valid' })).toEqual(named(['name']));
      expect(
        await refusedPaths({ postgres: { secret: 'roundtrip/postgres', ssl: { mode: 'strict' } } }),
      ).toEqual(named(['postgres.ssl.mode']));
      // What says which task an entry is: its name, and what its default name comes of.
      const writeback = (first: Record<string, unknown>) => ({
        writeback: [{ ...tasks.writeback[0], ...first }, tasks.writeback[1]],
      });
      expect(await refusedPaths(writeback({ mode: 'merge' }))).toEqual(named(['writeback[0].mode']));
      expect(await refusedPaths(writeback({ name: 'not a name' }))).toEqual(named(['writeback[0].name']));
      // A key misspelt for one of those: the task would go by another name.
      expect(await refusedPaths(writeback({ nmae: 'scores' }))).toEqual(named(['writeback[0].nmae']));
      expect(await refusedPaths({ writeback: 'none' })).toContain('writeback');
      expect(await refusedPaths({ extract: [{ ...tasks.extract[0], object: 'Lead Object' }] })).toContain(
        'extract[0].object',
      );
      expect(await refusedPaths({ postgress: {} })).toContain('postgress');
      // A section is read when the command says so: resolve reads salesforce, status --end-run athena.
      expect(await refusedPaths({}, ['salesforce'])).toEqual(named(['salesforce.apiVersion']));
      expect(await refusedPaths({}, ['athena'])).toEqual(named(['athena.workgroup']));
    });
  });

  it('names every transform file that does not exist', async () => {
    const file = path.join(dir, 'missing-sql.json');
    await writeFile(
      file,
      JSON.stringify({ ...minimal, transform: ['sql/first.sql', 'sql/gone.sql', 'nope.sql'] }),
    );
    const error = await configError(loadConfig(file));
    expect(error.issues).toEqual([
      {
        path: 'transform[1]',
        message: `expected an existing SQL file, got "sql/gone.sql" (${path.join(dir, 'sql', 'gone.sql')} does not exist)`,
      },
      {
        path: 'transform[2]',
        message: `expected an existing SQL file, got "nope.sql" (${path.join(dir, 'nope.sql')} does not exist)`,
      },
    ]);
  });

  it('names a transform file named again by another path: absolute, or through a symbolic link', async () => {
    // Each would run the file twice: a statement that is not idempotent (an INSERT) twice.
    await symlink(path.join(dir, 'sql', 'first.sql'), path.join(dir, 'linked.sql'));
    const file = path.join(dir, 'twice.json');
    const absolute = path.join(dir, 'sql', 'first.sql');
    await writeFile(
      file,
      JSON.stringify({ ...minimal, transform: ['sql/first.sql', absolute, 'linked.sql', 'sql/gone.sql'] }),
    );
    const real = await realpath(absolute);
    expect((await configError(loadConfig(file))).issues).toEqual([
      {
        path: 'transform[1]',
        message: `expected each file once, got ${JSON.stringify(absolute)} again (also at transform[0]: both name ${real})`,
      },
      {
        path: 'transform[2]',
        message: `expected each file once, got "linked.sql" again (also at transform[0]: both name ${real})`,
      },
      {
        path: 'transform[3]',
        message: `expected an existing SQL file, got "sql/gone.sql" (${path.join(dir, 'sql', 'gone.sql')} does not exist)`,
      },
    ]);
  });

  it('names a transform file named again together with the other problems, once', async () => {
    const file = path.join(dir, 'twice-and-more.json');
    await writeFile(
      file,
      JSON.stringify({
        ...minimal,
        name: 'Not Valid',
        transform: ['sql/first.sql', './sql/first.sql', path.join(dir, 'sql', 'first.sql')],
      }),
    );
    const error = await configError(loadConfig(file));
    expect(error.issues.map((i) => [i.path, i.message])).toEqual([
      ['name', expect.stringMatching(/^expected a pipeline name/)],
      // The schema's, the two paths being one as text; not named again from the disk.
      ['transform[1]', 'expected each file once, got "./sql/first.sql" again (also at transform[0])'],
      [
        'transform[2]',
        expect.stringMatching(
          /^expected each file once, got ".*" again \(also at transform\[0\]: both name /,
        ),
      ],
    ]);
  });

  it('loads two transform files of one name in different folders', async () => {
    await mkdir(path.join(dir, 'other'), { recursive: true });
    await writeFile(path.join(dir, 'other', 'first.sql'), 'SELECT 2;\n');
    const file = path.join(dir, 'namesakes.json');
    await writeFile(file, JSON.stringify({ ...minimal, transform: ['sql/first.sql', 'other/first.sql'] }));
    expect((await loadConfig(file)).transform).toEqual([
      path.join(dir, 'sql', 'first.sql'),
      path.join(dir, 'other', 'first.sql'),
    ]);
  });

  it('reads a relative CA bundle beside the config, as the transform files, and names one that does not exist', async () => {
    await mkdir(path.join(dir, 'certs'), { recursive: true });
    await writeFile(path.join(dir, 'certs', 'rds.pem'), `${rootCertificates[0]}\n`);
    const ssl = (caBundle: string) => ({ ...minimal.postgres, ssl: { mode: 'verify-full', caBundle } });
    const found = path.join(dir, 'ca-found.json');
    await writeFile(found, JSON.stringify({ ...minimal, postgres: ssl('certs/rds.pem') }));
    const gone = path.join(dir, 'ca-gone.json');
    await writeFile(
      gone,
      JSON.stringify({ ...minimal, postgres: ssl('certs/gone.pem'), transform: ['nope.sql'] }),
    );

    expect((await loadConfig(found)).postgres.ssl.caBundle).toBe(path.join(dir, 'certs', 'rds.pem'));
    // Named with the transform files that do not exist, in the config's order.
    expect((await configError(loadConfig(gone))).issues).toEqual([
      {
        path: 'postgres.ssl.caBundle',
        message: `expected an existing PEM file of CA certificates (a relative path is read from the config's folder), got "certs/gone.pem" (${path.join(dir, 'certs', 'gone.pem')} does not exist)`,
      },
      {
        path: 'transform[0]',
        message: `expected an existing SQL file, got "nope.sql" (${path.join(dir, 'nope.sql')} does not exist)`,
      },
    ]);
  });

  it('names a CA bundle that exists but holds no PEM certificate: a DER file, a key, an empty file', async () => {
    await mkdir(path.join(dir, 'certs'), { recursive: true });
    const files = {
      'rds.der': new X509Certificate(rootCertificates[0] as string).raw,
      'client.key':
        '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n',
      'empty.pem': '',
    };
    const expected =
      'expected a PEM file of CA certificates ("-----BEGIN CERTIFICATE-----" blocks, such as the RDS global bundle)';
    const holds = {
      'rds.der':
        'holds binary data, likely a DER certificate, not PEM text (convert it: openssl x509 -inform der -in FILE -out FILE.pem)',
      'client.key': 'holds a PEM PRIVATE KEY block and no certificate',
      'empty.pem': 'is empty',
    };
    for (const [name, content] of Object.entries(files)) {
      const bundle = path.join(dir, 'certs', name);
      await writeFile(bundle, content);
      const file = path.join(dir, `ca-${name}.json`);
      await writeFile(
        file,
        JSON.stringify({ ...minimal, postgres: { ...minimal.postgres, ssl: { caBundle: `certs/${name}` } } }),
      );
      expect((await configError(loadConfig(file))).issues).toEqual([
        {
          path: 'postgres.ssl.caBundle',
          message: `${expected}, got "certs/${name}" (${bundle}), which ${holds[name as keyof typeof holds]}`,
        },
      ]);
    }
  });
});
