/**
 * The AWS SDK clients of the handlers take their region and credentials from the environment, as
 * in Lambda. `useLocalAwsEnv()` sets a region and dummy credentials for the tests of the
 * describe block it is called in (the stand-ins accept any), and puts the previous values back.
 */
const LOCAL_AWS_ENV = { AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' };

/** Registers the beforeAll/afterAll that set and restore the variables. */
export function useLocalAwsEnv(): void {
  const saved: Record<string, string | undefined> = {};
  beforeAll(() => {
    for (const [k, v] of Object.entries(LOCAL_AWS_ENV)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
  });
  afterAll(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}
