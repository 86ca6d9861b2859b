/**
 * Values quoted for a POSIX shell in the commands messages name: a real `sh` reads back the exact
 * value, and a value no shell treats specially is left as it is.
 */
import { shellOption, shellWord } from '../../../lambdas/shared/shell';
import { AWKWARD, shellWords } from '../../support/shell-words';

describe('shellWord', () => {
  it('leaves a value of plain characters as it is', () => {
    for (const plain of ['kl-1', 'Lead-update', '00Q000000000001AAA', 'a.b,c:d/e@f%g+h=i_j', '-5'])
      expect(shellWord(plain)).toBe(plain);
  });

  it('quotes any other value so that sh reads it back exactly, as one word', () => {
    for (const value of AWKWARD) {
      expect(shellWord(value)).not.toBe(value);
      expect(shellWords(shellWord(value))).toEqual([value]);
    }
    expect(shellWord("O'Brien")).toBe(`'O'\\''Brien'`);
  });
});

describe('shellOption', () => {
  it('gives "--option value", and "--option=value" for a value that starts with a dash', () => {
    expect(shellOption('--key', 'kl-1')).toBe('--key kl-1');
    expect(shellOption('--key', 'a b')).toBe("--key 'a b'");
    expect(shellOption('--key', '-5')).toBe('--key=-5');
    expect(shellOption('--key', '- x')).toBe("--key='- x'");
    for (const value of [...AWKWARD, '-5', '--yes', '- x'])
      expect(shellWords(`cmd ${shellOption('--key', value)}`)).toEqual(
        value.startsWith('-') ? ['cmd', `--key=${value}`] : ['cmd', '--key', value],
      );
  });
});
