/**
 * A Salesforce extract whose sign-in Salesforce refuses stops the run, as any extract error does
 * (statemachine/definition.ts: an extract's error fails the Extract state, then Report failure):
 * the example pipeline, run through the real state machine definition locally, with the user's
 * password changed in Salesforce (the secret keeps the old one) once Prepare signed in.
 */
import { taskName } from '../../lambdas/config';
import { ERROR_NAMES } from '../../lambdas/shared/errors';
import { RUN_STATES, taskStateNames } from '../../statemachine/definition';
import {
  exampleConfig,
  refusedSignInMessage,
  refuseSignIns,
  signInsSince,
  startWorld,
  type E2eWorld,
} from './support/harness';

describe('a Salesforce extract whose sign-in is refused', () => {
  let world: E2eWorld;
  beforeAll(async () => {
    world = await startWorld({ leads: 30, customers: 10, config: await exampleConfig() });
  }, 120_000);
  afterAll(async () => {
    await world?.close();
  });

  it('stops the run at the extract after one refused sign-in: no transform, no write-back', async () => {
    const sf = world.env.salesforce;
    const salesforceExtract = world.config.extract.find((t) => t.from === 'salesforce');
    const extract = taskStateNames(taskName(salesforceExtract!));
    const writeback = taskStateNames(taskName(world.config.writeback[0]!));
    const entered: string[] = [];
    let loginsBefore = -1;
    const result = await world.run(
      {},
      {
        onEvent: (event) => {
          if (event.type !== 'entered') return;
          entered.push(event.state);
          if (event.state === extract.extract) {
            loginsBefore = refuseSignIns(sf);
          }
        },
      },
    );

    expect(loginsBefore).toBeGreaterThanOrEqual(1);
    expect(signInsSince(sf, loginsBefore)).toEqual([500]);
    expect(entered).toContain(RUN_STATES.reportFailure);
    expect(entered).not.toContain(RUN_STATES.transform);
    expect(entered).not.toContain(writeback.plan);

    const signIn = refusedSignInMessage(sf);
    expect(result.execution).toMatchObject({ status: 'failed', error: ERROR_NAMES.signInRefused });
    const cause = result.execution.status === 'failed' ? result.execution.cause : '';
    expect(cause).toContain(signIn);
    const { rows } = await world.local.pool.query<{ status: string; error: string }>(
      `SELECT status, error FROM roundtrip.runs WHERE run_id = $1`,
      [result.summary.runId],
    );
    expect(rows).toEqual([{ status: 'failed', error: `${ERROR_NAMES.signInRefused}: ${signIn}` }]);
  }, 300_000);
});
