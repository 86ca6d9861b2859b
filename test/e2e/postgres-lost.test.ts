/**
 * PostgreSQL lost in the middle of a local run (killed, or the network to it gone) after steps
 * had reported: the run fails, and its summary cannot be read back from the database. The summary
 * says that, and why, and which steps had ended as the runner saw them, rather than that the run
 * failed before any step reported its figures.
 */
import { formatSummaryTable } from '../../bin/local/summary';
import { RUN_STATES } from '../../statemachine/definition';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy';
import { exampleConfig, startWorld, type E2eWorld } from './support/harness';

describe('a local run whose PostgreSQL goes away after the transform', () => {
  let world: E2eWorld;
  let proxy: TcpProxy | undefined;
  beforeAll(async () => {
    world = await startWorld({
      leads: 60,
      customers: 30,
      config: await exampleConfig(),
      connectBy: async (url) => {
        proxy = await startTcpProxy(url);
        return proxy.url;
      },
    });
  });
  afterAll(async () => {
    await proxy?.close();
    await world?.close();
  });

  it('says its figures could not be read, and which steps had ended, not that none had reported', async () => {
    const ended: string[] = [];
    const result = await world.run(
      {},
      {
        onEvent: (event) => {
          if (event.type === 'exited' && event.stateType === 'Task') ended.push(event.state);
          // Killed once the transform has reported: the write-back and the reports cannot reach it.
          if (event.type === 'exited' && event.state === RUN_STATES.transform) proxy?.cut();
        },
      },
    );

    expect(result.execution.status).toBe('failed');
    expect(result.stored).toBeUndefined();
    expect(ended).toEqual(expect.arrayContaining([RUN_STATES.prepare, RUN_STATES.transform]));
    expect(result.summary).toMatchObject({
      runId: expect.any(String),
      status: 'failed',
      tasks: [],
      unread: {
        why: expect.stringContaining('ECONNREFUSED'),
        stepsEnded: ended.filter((s, i) => ended.indexOf(s) === i),
      },
    });
    const table = formatSummaryTable(result.summary);
    expect(table).not.toContain('before any step reported');
    expect(table.split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^run ${result.summary.runId}: failed; its figures could not be read back: PostgreSQL \\(\\S+\\): network error \\(ECONNREFUSED\\): `,
        ),
      ),
      `steps that ended before, as this run saw them: ${result.summary.unread?.stepsEnded.join(', ')}; roundtrip status shows the figures they recorded once PostgreSQL can be reached again`,
    ]);
    expect(result.summary.unread?.stepsEnded.slice(-1)).toEqual([RUN_STATES.transform]);
  });
});
