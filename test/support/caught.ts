/**
 * The error a promise rejected with, for assertions on its name, message or code; a promise that
 * resolves fails the test.
 */
export async function caught(
  promise: PromiseLike<unknown>,
): Promise<Error & { errorCode?: string; data?: unknown }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { errorCode?: string };
  }
  throw new Error('expected the call to fail, it succeeded');
}
