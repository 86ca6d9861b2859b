import { loggerFrom } from '../../../bin/commands/run';

describe('loggerFrom without --verbose', () => {
  it('shows the notice sentences of warnings and errors as `  ! …` lines, and nothing else', () => {
    const lines: string[] = [];
    const logger = loggerFrom({}, (line) => lines.push(line)).child({ runId: 'r1' });
    logger.info('Transform file done', { notice: 'an info is never shown' });
    logger.warn('Transform statement waiting for a lock', { file: 'a.sql', heldBy: 'session 7' });
    logger.warn('Transform statement waiting for a lock', {
      notice: 'Transform a.sql, line 3 has waited 10 s for a lock held by session 7',
    });
    logger.error('Something failed', { notice: 'the error in a sentence' });
    logger.warn('An empty notice', { notice: '' });
    expect(lines).toEqual([
      '  ! Transform a.sql, line 3 has waited 10 s for a lock held by session 7',
      '  ! the error in a sentence',
    ]);
  });
});
