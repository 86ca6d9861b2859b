import { HANDLER_ENV } from '../../../lambdas/handlers/deps';
import { SNS_MESSAGE_MAX_BYTES, snsNotifier, withinSnsLimit } from '../../../lambdas/handlers/sns-deps';
import { silentLogger } from '../../../lambdas/shared/logging';
import { parseConfig } from '../../../lambdas/config';
import { snsSubject } from '../../../lambdas/core/writeback/notify';

describe('the SNS notifier', () => {
  const context = (env: Record<string, string>) => ({
    config: parseConfig({ name: 'p', postgres: { secret: 's' }, transform: ['x.sql'] }),
    env,
    secrets: { getSecret: () => Promise.reject(new Error('none')) },
    logger: silentLogger,
  });

  it('is there only when the environment names a topic (not on a laptop)', () => {
    expect(snsNotifier(context({}))).toBeUndefined();
    expect(
      snsNotifier(context({ [HANDLER_ENV.notificationTopicArn]: 'arn:aws:sns:us-east-1:123456789012:t' })),
    ).toBeDefined();
  });

  it('keeps a message within what SNS takes, cutting whole characters', () => {
    expect(withinSnsLimit('short')).toBe('short');
    const long = 'é'.repeat(SNS_MESSAGE_MAX_BYTES); // two bytes each
    const cut = withinSnsLimit(long);
    expect(cut.endsWith('\n…')).toBe(true);
    expect(Buffer.byteLength(cut.slice(0, -2), 'utf8')).toBeLessThanOrEqual(SNS_MESSAGE_MAX_BYTES);
    expect(cut.slice(0, -2)).toMatch(/^é+$/);
  });

  it('makes subjects SNS takes: printable ASCII, fewer than 100 characters', () => {
    expect(snsSubject('roundtrip p: run r-1 failed')).toBe('roundtrip p: run r-1 failed');
    const long = snsSubject(`roundtrip ${'x'.repeat(60)}: run ${'r'.repeat(80)} failed`);
    expect(long).toHaveLength(99);
    expect(long.endsWith('...')).toBe(true);
    expect(snsSubject('roundtrip é\nü: run 1 failed')).toBe('roundtrip  : run 1 failed');
  });
});
