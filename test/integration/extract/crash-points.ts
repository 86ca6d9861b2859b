/**
 * Crash points for the extract crash sweep (crash-sweep.test.ts): wrappers around what a step is
 * given — the PostgreSQL pool, the Salesforce connector's fetch, the Athena and S3 clients — that
 * number every statement and call one step attempt makes and fail exactly one of them.
 *
 * A {@link CrashPlan} names the channel, the ordinal and how it fails:
 * - `error`: that statement or call fails, nothing of it happens, and the step's own error handling
 *   runs (a PostgreSQL client that failed is broken: its later statements fail too, so the pool
 *   destroys it and the server rolls its transaction back);
 * - `lost-answer`: it is carried out, then the connection resets before the answer arrives (a
 *   transient error: a COMMIT that committed, a Bulk job that was created, unbeknown to the step);
 * - `crash-before`: the process dies just before it: nothing further reaches PostgreSQL,
 *   Salesforce or Athena (every later statement or call fails);
 * - `crash-after`: it is carried out, then the process dies before reading the answer (a COMMIT
 *   that committed, a Bulk job created, a checkpoint written);
 * - `cut` / `cut-crash`: a response body stops half-way with a connection reset (Salesforce query
 *   and Bulk result pages, the S3 result file); with `cut-crash` the process dies there too;
 * - `connection-dies`: the PostgreSQL connection drops in the middle of a COPY (a failover, a
 *   network blip): the socket is destroyed once the first rows are on their way.
 *
 * An unarmed plan (ordinal 0) only counts: a first pass with it tells how many points there are.
 */
import { Transform, type Readable } from 'node:stream';
import type { Pool, PoolClient } from 'pg';

/** What is counted and failed. */
export type CrashChannel = 'pg' | 'salesforce' | 'athena';

/** How the chosen statement or call fails (see the module comment). */
export type CrashMode =
  'error' | 'lost-answer' | 'crash-before' | 'crash-after' | 'cut' | 'cut-crash' | 'connection-dies';

/** One statement or call a step attempt made, in order. */
export interface CrashPoint {
  readonly channel: CrashChannel;
  readonly n: number;
  /** The statement's first words, or the call's method and path. */
  readonly what: string;
  /** PostgreSQL: inside BEGIN … COMMIT on its client (a statement whose effect a crash undoes). */
  readonly inTransaction: boolean;
  /** A response whose body can be cut (a query page, a Bulk result page, the S3 result file). */
  readonly streamed: boolean;
}

/** The error of a process that died: no TransientError, nothing retries it in-process. */
export class InjectedCrash extends Error {
  constructor(what: string) {
    super(`crash injected by the sweep at ${what}`);
    this.name = 'InjectedCrash';
  }
}

/** Counts the statements and calls of one step attempt and fails the chosen one. */
export class CrashPlan {
  readonly points: CrashPoint[] = [];
  private readonly counts: Record<CrashChannel, number> = { pg: 0, salesforce: 0, athena: 0 };
  /** The chosen point was reached. */
  fired = false;
  /** The process is dead: every later statement and call fails. */
  dead = false;

  constructor(
    readonly channel: CrashChannel | undefined = undefined,
    /** The ordinal on `channel` (from 1), or the first statement or call whose description matches. */
    readonly at: number | RegExp = 0,
    readonly mode: CrashMode = 'error',
  ) {}

  /** Numbers a statement or call; true when it is the one to fail. */
  next(channel: CrashChannel, what: string, inTransaction: boolean, streamed: boolean): boolean {
    this.counts[channel] += 1;
    const n = this.counts[channel];
    this.points.push({ channel, n, what, inTransaction, streamed });
    const hit =
      !this.fired &&
      channel === this.channel &&
      (typeof this.at === 'number' ? n === this.at : this.at.test(what));
    if (hit) this.fired = true;
    return hit;
  }

  /** Statements or calls made on a channel so far. */
  count(channel: CrashChannel): number {
    return this.counts[channel];
  }

  describe(): string {
    return this.channel === undefined ? 'no fault' : `${this.mode} at ${this.channel} ${this.pointName()}`;
  }

  /** `#n`, or the pattern the point is chosen by. */
  pointName(): string {
    return typeof this.at === 'number' ? `#${this.at}` : String(this.at);
  }
}

/** What a connection reset looks like to the clients: transient for every classifier here. */
function connectionReset(what: string): Error {
  return Object.assign(new Error(`read ECONNRESET (injected by the sweep at ${what})`), {
    code: 'ECONNRESET',
  });
}

// ----------------------------------------------------------------------------------- PostgreSQL

interface Submittable {
  submit: unknown;
  text?: string;
  destroy(err: Error): void;
  flushChunk?: (chunk: Buffer) => boolean;
}

function isSubmittable(value: unknown): value is Submittable {
  return typeof (value as { submit?: unknown } | null)?.submit === 'function';
}

/** A pool whose clients number their statements for `plan` (only `connect()` is offered). */
export function crashingPool(pool: Pool, plan: CrashPlan): Pool {
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'connect') return async () => crashingClient(await target.connect(), plan);
      if (prop === 'query') {
        return () => {
          throw new Error('crash sweep: pool.query bypasses the statement count; use a client');
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

function crashingClient(client: PoolClient, plan: CrashPlan): PoolClient {
  let inTransaction = false;
  let broken = false;
  const query = (...args: unknown[]): unknown => {
    const first = args[0];
    const text = typeof first === 'string' ? first : ((first as { text?: string } | null)?.text ?? '');
    const what = text.trim().replace(/\s+/g, ' ').slice(0, 60);
    const copy = isSubmittable(first) ? first : undefined;
    const hit = plan.next('pg', what, inTransaction, false);
    const refuse = (err: Error): unknown => {
      if (!copy) return Promise.reject(err);
      // A COPY fails on the server: it is sent, then aborted (CopyFail), as when its source fails.
      const submitted = client.query(first as never);
      process.nextTick(() => copy.destroy(err));
      return submitted;
    };
    if (plan.dead) return refuse(new InjectedCrash(`PostgreSQL after the crash: ${what}`));
    if (broken) return refuse(connectionReset(`PostgreSQL on a broken client: ${what}`));
    if (hit && plan.mode === 'connection-dies' && copy?.flushChunk) {
      broken = true;
      // The pool's client would otherwise emit an unhandled 'error' when its socket goes.
      client.on('error', () => undefined);
      const flush = copy.flushChunk.bind(copy);
      let dropped = false;
      copy.flushChunk = (chunk) => {
        const ok = flush(chunk);
        if (!dropped) {
          dropped = true;
          // The first bytes (the header) are on their way; the source is still reading.
          (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
        }
        return ok;
      };
      return client.query(first as never);
    }
    if (hit) {
      if ((plan.mode === 'crash-after' || plan.mode === 'lost-answer') && !copy) {
        const crash = plan.mode === 'crash-after';
        if (crash) plan.dead = true;
        else broken = true;
        return (client.query(...(args as [string])) as Promise<unknown>).then(() => {
          throw crash
            ? new InjectedCrash(`PostgreSQL ${plan.pointName()} (${what}), after it ran`)
            : connectionReset(`PostgreSQL ${plan.pointName()} (${what}), after it ran`);
        });
      }
      if (plan.mode === 'crash-before' || plan.mode === 'crash-after') {
        plan.dead = true;
        return refuse(new InjectedCrash(`PostgreSQL ${plan.pointName()} (${what})`));
      }
      broken = true;
      return refuse(connectionReset(`PostgreSQL ${plan.pointName()} (${what})`));
    }
    if (/^BEGIN\b/i.test(what)) inTransaction = true;
    if (/^(COMMIT|ROLLBACK)\b/i.test(what)) inTransaction = false;
    return client.query(...(args as [string]));
  };
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'query') return query;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

// ----------------------------------------------------------------------------------- Salesforce

/** A body of `bytes` that stops half-way with a reset, calling `onCut` then. */
function cutWebBody(bytes: Uint8Array, what: string, onCut: () => void): ReadableStream<Uint8Array> {
  const half = Math.floor(bytes.length / 2);
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent) {
        sent = true;
        controller.enqueue(bytes.subarray(0, half));
        return;
      }
      onCut();
      controller.error(new TypeError(`terminated: other side closed (injected by the sweep at ${what})`));
    },
  });
}

/** The fetch a Salesforce connector is given: numbers every call for `plan`. */
export function crashingFetch(plan: CrashPlan): typeof fetch {
  return async (input, init) => {
    const url = new URL(String(input instanceof Request ? input.url : input));
    const method = (init?.method ?? 'GET').toUpperCase();
    const path = url.pathname.replace(/^\/services\/data\/v[\d.]+/, '');
    const streamed = method === 'GET' && /\/query(All)?(\/|$)|\/jobs\/query\/\w+\/results/.test(path);
    const count = /\/query(All)?$/.test(path) && /count\(\)/i.test(url.searchParams.get('q') ?? '');
    const what = `${method} ${path}${count ? ' (COUNT)' : ''}`;
    const hit = plan.next('salesforce', what, false, streamed && !count);
    if (plan.dead) throw new InjectedCrash(`Salesforce after the crash: ${what}`);
    if (!hit) return fetch(input, init);
    switch (plan.mode) {
      case 'error':
      case 'connection-dies': // a PostgreSQL mode; here as a refused call
        throw new TypeError('fetch failed', {
          cause: connectionReset(`Salesforce ${plan.pointName()} (${what})`),
        });
      case 'crash-before':
        plan.dead = true;
        throw new InjectedCrash(`Salesforce ${plan.pointName()} (${what})`);
      case 'lost-answer':
      case 'crash-after': {
        const res = await fetch(input, init);
        await res.arrayBuffer();
        if (plan.mode === 'lost-answer') {
          throw new TypeError('fetch failed', {
            cause: connectionReset(`Salesforce ${plan.pointName()} (${what}), after it was answered`),
          });
        }
        plan.dead = true;
        throw new InjectedCrash(`Salesforce ${plan.pointName()} (${what}), after it was answered`);
      }
      case 'cut':
      case 'cut-crash': {
        const res = await fetch(input, init);
        const bytes = new Uint8Array(await res.arrayBuffer());
        const body = cutWebBody(bytes, `Salesforce ${plan.pointName()} (${what})`, () => {
          if (plan.mode === 'cut-crash') plan.dead = true;
        });
        return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
      }
    }
  };
}

// ------------------------------------------------------------------------------------ Athena, S3

/** The part of an AWS SDK v3 client the sweep hooks into. */
interface MiddlewareClient {
  middlewareStack: {
    add(
      middleware: (
        next: (args: unknown) => Promise<{ output: Record<string, unknown> }>,
        context: { commandName?: string },
      ) => (args: unknown) => Promise<{ output: Record<string, unknown> }>,
      options: { step: 'initialize'; name: string },
    ): void;
  };
}

/** Cuts a Node body half-way (`size` bytes in all) with a reset, calling `onCut` then. */
function cutNodeBody(body: Readable, size: number, what: string, onCut: () => void): Readable {
  const half = Math.max(1, Math.floor(size / 2));
  let passed = 0;
  const cut = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const room = half - passed;
      if (chunk.length < room) {
        passed += chunk.length;
        done(null, chunk);
        return;
      }
      this.push(chunk.subarray(0, room));
      passed = half;
      onCut();
      body.destroy();
      done(connectionReset(what));
    },
  });
  body.pipe(cut);
  return cut;
}

/**
 * Numbers every call of an Athena or S3 client for the plan `current()` returns at the time
 * (undefined: not counted). Installed once per client.
 */
export function crashAwsCalls(client: unknown, name: string, current: () => CrashPlan | undefined): void {
  (client as MiddlewareClient).middlewareStack.add(
    (next, context) => async (args) => {
      const plan = current();
      if (!plan) return next(args);
      const command = context.commandName ?? 'command';
      const streamed = command === 'GetObjectCommand';
      const what = `${name} ${command}`;
      const hit = plan.next('athena', what, false, streamed);
      if (plan.dead) throw new InjectedCrash(`Athena after the crash: ${what}`);
      if (!hit) return next(args);
      switch (plan.mode) {
        case 'error':
        case 'connection-dies': // a PostgreSQL mode; here as a refused call
          throw connectionReset(`Athena ${plan.pointName()} (${what})`);
        case 'crash-before':
          plan.dead = true;
          throw new InjectedCrash(`Athena ${plan.pointName()} (${what})`);
        case 'lost-answer':
        case 'crash-after': {
          const out = await next(args);
          const body = out.output.Body as Readable | undefined;
          body?.destroy();
          if (plan.mode === 'lost-answer')
            throw connectionReset(`Athena ${plan.pointName()} (${what}), after it was answered`);
          plan.dead = true;
          throw new InjectedCrash(`Athena ${plan.pointName()} (${what}), after it was answered`);
        }
        case 'cut':
        case 'cut-crash': {
          const out = await next(args);
          const body = out.output.Body as Readable | undefined;
          const size = Number(out.output.ContentLength ?? 0);
          if (!body || size < 2) return out;
          const cut = cutNodeBody(body, size, `Athena ${plan.pointName()} (${what})`, () => {
            if (plan.mode === 'cut-crash') plan.dead = true;
          });
          return { ...out, output: { ...out.output, Body: cut } };
        }
      }
    },
    { step: 'initialize', name: `crashSweep${name}` },
  );
}
