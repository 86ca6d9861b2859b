// Four jest projects, so that each kind of test can run alone (npm run test:unit, …).
// @swc/jest compiles TypeScript; `tsc --noEmit` is the type check (npm run typecheck).
const swc = [
  '@swc/jest',
  {
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  },
];

/** @param {string} name @param {object} extra */
const project = (name, extra = {}) => ({
  displayName: name,
  testEnvironment: 'node',
  transform: { '^.+\\.(t|j)s$': swc },
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  setupFiles: ['<rootDir>/test/support/setup-env.ts'],
  ...extra,
});

/** @type {import('jest').Config} */
module.exports = {
  // Three test files at once, whatever the core count (jest's default, one fewer than the cores, is
  // one worker on a 2-core machine). Each file has its own database and emulators, and much of a
  // test's time is spent waiting on PostgreSQL, HTTP and child processes: on 2 cores two workers
  // took the whole run from 5.6 min to 3.4 (fifteenth session), and a third from 543 s to 491
  // (twenty-second session; two kept the cores 82 % busy). The one embedded server takes 200
  // connections, which every worker's files' pools share.
  maxWorkers: 3,
  // One embedded PostgreSQL server for the whole run (unless DATABASE_URL is set).
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
  projects: [
    project('unit'),
    // `testTimeout` is a global option only: each project sets its own in a setup file.
    project('integration', { setupFilesAfterEnv: ['<rootDir>/test/support/timeout-integration.ts'] }),
    project('infra', { setupFilesAfterEnv: ['<rootDir>/test/support/timeout-infra.ts'] }),
    project('e2e', { setupFilesAfterEnv: ['<rootDir>/test/support/timeout-e2e.ts'] }),
  ],
};
