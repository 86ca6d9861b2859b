export default async function globalTeardown(): Promise<void> {
  await globalThis.__ROUNDTRIP_PG__?.stop();
}
