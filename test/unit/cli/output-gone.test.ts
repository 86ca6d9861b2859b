/**
 * ignoreOutputGone, the 'error' listener of the CLI's stdout and stderr (bin/roundtrip.ts): a
 * write whose reader is gone (EPIPE: a pipe's reader that stopped early; EIO: a terminal closed,
 * SIGHUP) is dropped, so that the command, or a stop signal's cleanup, goes on to its end; any
 * other error is thrown.
 */
import { Writable } from 'node:stream';
import { ignoreOutputGone } from '../../../bin/cli-common';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`write ${code}`), { code, errno: -5, syscall: 'write' });
}

describe('ignoreOutputGone', () => {
  it.each(['EPIPE', 'EIO'])('drops %s: the reader is gone, and there is no one to tell', (code) => {
    expect(() => ignoreOutputGone(errno(code))).not.toThrow();
  });

  it('throws any other error', () => {
    const full = errno('ENOSPC');
    expect(() => ignoreOutputGone(full)).toThrow(full);
    const plain = new Error('not a system error');
    expect(() => ignoreOutputGone(plain)).toThrow(plain);
  });

  it("as a stream's 'error' listener, lets the writes after a terminal closed (EIO) go on to the end", async () => {
    // A tty closed under the process: every write fails with EIO, as the stop message's does.
    const tty = new Writable({
      write(_chunk, _encoding, callback) {
        callback(errno('EIO'));
      },
    });
    tty.on('error', ignoreOutputGone);
    const ended = new Promise<void>((resolve) => tty.on('close', resolve));
    tty.write('\nSIGHUP: stopping what this command started …\n');
    await ended;
    expect(tty.destroyed).toBe(true);
  });
});
