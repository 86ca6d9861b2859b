/**
 * Crash injection for the write-back's crash-point sweep (crash-sweep.test.ts): a PostgreSQL pool
 * and a Salesforce connector, given to the core steps in place of the real ones (Prepare, plan,
 * push, collect, Report), that number every statement and every Salesforce call of the steps they
 * serve and make the chosen one fail, once.
 *
 * Two ways to fail:
 * - the Lambda dies (`pg-dies-before`, `pg-dies-after-commit`, `step-output-lost`): from that point
 *   on nothing of the invocation reaches PostgreSQL or Salesforce any more (every later statement
 *   and call throws, so `finally` blocks do nothing either; a connection they release broken is
 *   closed, which ends its transaction and its advisory lock, as a dead Lambda's would be);
 * - one operation fails and the step goes on handling the error as its code says (`pg-fails`: a
 *   dropped connection; `pg-fails-run-ends`: the same, and if the step fails of it, its retries
 *   are spent and the run fails; `sf-fails-before`: a call that never reached Salesforce;
 *   `sf-answer-lost`: a call Salesforce applied whose answer never came back).
 */
import type { Pool, PoolClient } from 'pg';
import type { SalesforceEmulator } from '../../../emulators/salesforce';
import type { SalesforceConnector } from '../../../lambdas/connectors/salesforce';
import { classifyPostgresError } from '../../../lambdas/connectors/postgres/errors';
import { TransientError } from '../../../lambdas/shared/errors';

/** Where and how the one crash of a scenario happens. */
export type CrashKind =
  /** The Nth statement is never sent: the Lambda dies just before it. */
  | 'pg-dies-before'
  /** The Nth COMMIT is applied, then the Lambda dies before it hears so. */
  | 'pg-dies-after-commit'
  /**
   * The Nth statement sent outside a transaction fails as on a dropped connection; the step
   * handles the error. (Inside a transaction, a statement that fails rolls back all of it and
   * withClient reports a TransientError, which the state machine retries: for what is stored and
   * what is retried, that is `pg-dies-before` at the same statement, which the sweep goes through.)
   */
  | 'pg-fails'
  /**
   * The Nth statement sent outside a transaction fails as `pg-fails` does, and so does every retry
   * of the step: when the step fails of it, its retries are spent, and the run fails (the state
   * machine's Catch), is reported, and the next run goes on from what it left.
   */
  | 'pg-fails-run-ends'
  /** The Nth Salesforce call fails before it reaches Salesforce. */
  | 'sf-fails-before'
  /**
   * The Nth Salesforce call that writes (a REST write, a Bulk job's creation, upload, close or
   * abort) is applied by Salesforce and its answer lost. A read's answer lost is not a point of its
   * own: the read changed nothing, so the step sees what it sees when the read fails before
   * reaching Salesforce (`sf-fails-before`, at every call); that the lost answer of a call still
   * counts in the org's API use is gone through by the writes'. (Every call before the
   * twenty-seventh session: a tenth of the sweep's scenarios were reads' answers lost.)
   */
  | 'sf-answer-lost'
  /** The Nth step invocation does all its work, and the Lambda dies before its output is returned. */
  | 'step-output-lost';

/** Every kind of crash, in the order the sweep runs them. */
export const CRASH_KINDS: readonly CrashKind[] = [
  'pg-dies-before',
  'pg-dies-after-commit',
  'pg-fails',
  'pg-fails-run-ends',
  'sf-fails-before',
  'sf-answer-lost',
  'step-output-lost',
];

/**
 * The emulator's lost-answer switch (`resetWriteAnswerAfterBytes`) applies to the next REST write
 * whoever sends it: scenarios that run side by side send their REST writes one at a time.
 */
let restWrites: Promise<unknown> = Promise.resolve();

function oneRestWriteAtATime<T>(send: () => Promise<T>): Promise<T> {
  const mine = restWrites.then(send, send);
  restWrites = mine.catch(() => undefined);
  return mine;
}

/** The error every operation of a dead invocation throws. */
export class SimulatedCrashError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulatedCrashError';
  }
}

/** Counts of the points a run went through while the injector was armed. */
export interface PointCounts {
  statements: number;
  /** Statements sent outside a transaction (by the pool, or by a client between transactions). */
  outside: number;
  commits: number;
  calls: number;
  /** Of `calls`, those that write (the points of `sf-answer-lost`). */
  writeCalls: number;
  invocations: number;
}

interface Submittable {
  submit: unknown;
  once(event: string, listener: () => void): unknown;
}

function isSubmittable(v: unknown): v is Submittable {
  return typeof v === 'object' && v !== null && typeof (v as { submit?: unknown }).submit === 'function';
}

function statementText(args: unknown[]): string {
  const first = args[0];
  if (typeof first === 'string') return first;
  if (isSubmittable(first)) return 'COPY (stream)';
  const text = (first as { text?: unknown } | undefined)?.text;
  return typeof text === 'string' ? text : String(first);
}

/** One short line naming a statement. */
function shortSql(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 90);
}

/**
 * Numbers the statements, COMMITs, Salesforce calls and step invocations of the steps it serves
 * while armed, and fails the one its crash names, once (see the module comment).
 */
export class CrashInjector {
  /** Whether points are counted (the first run's write-back steps). */
  armed = false;
  /** Whether the crash happened. */
  fired = false;
  /** The point the crash hit, for messages. */
  firedAt = '';
  /** Whether the current invocation is dead (the crash was a death). */
  private dead = false;
  /** The kind of crash that happened, once it did. */
  get firedKind(): CrashKind | undefined {
    return this.fired ? this.crash?.kind : undefined;
  }
  /** Whether the current invocation's Lambda died of the crash. */
  private diedNow = false;
  /** Whether a statement of the current invocation failed for good (`pg-fails-run-ends`). */
  private failsForGood = false;
  readonly counts: PointCounts = {
    statements: 0,
    outside: 0,
    commits: 0,
    calls: 0,
    writeCalls: 0,
    invocations: 0,
  };
  /** Salesforce calls that write (REST writes, Bulk job calls and uploads), armed or not. */
  writes = 0;

  constructor(
    readonly crash: { readonly kind: CrashKind; readonly at: number } | undefined,
    private readonly emulator: SalesforceEmulator,
  ) {}

  private hits(kind: CrashKind, count: number): boolean {
    return this.armed && !this.fired && this.crash?.kind === kind && this.crash.at === count;
  }

  private fire(point: string, dies: boolean): void {
    this.fired = true;
    this.firedAt = point;
    if (dies) {
      this.dead = true;
      this.diedNow = true;
    }
  }

  private crashError(what: string): SimulatedCrashError {
    return new SimulatedCrashError(`simulated crash: the Lambda died (${this.firedAt}); ${what} not sent`);
  }

  /** A new invocation of step `step` starts (a new Lambda: nothing dead). */
  startInvocation(): void {
    this.dead = false;
    this.diedNow = false;
    this.failsForGood = false;
    if (this.armed && !this.fired) this.counts.invocations += 1;
  }

  /**
   * The invocation's work is done: throws when its output is the one to lose, or when its Lambda
   * died on the way (code that went on after a statement failed in a `finally` did not return
   * anything to the state machine: a dead Lambda answers nothing).
   */
  endInvocation(step: string): void {
    if (this.dead) {
      this.dead = false;
      throw new SimulatedCrashError(`simulated crash: the Lambda died during ${step} (${this.firedAt})`);
    }
    if (this.hits('step-output-lost', this.counts.invocations)) {
      this.fire(`output of ${step} invocation ${this.counts.invocations}`, true);
      throw new SimulatedCrashError(
        `simulated crash: the Lambda died before returning the output of ${step}`,
      );
    }
  }

  /** Between steps (the report, a new run): nothing is dead. */
  settle(): void {
    this.dead = false;
    this.diedNow = false;
  }

  /**
   * Whether a statement of the current invocation failed for good: a step that fails now has its
   * retries spent (`pg-fails-run-ends`).
   */
  get failedForGoodInThisInvocation(): boolean {
    return this.failsForGood;
  }

  /** Whether the current invocation's Lambda died (its error is the crash's, whatever it says). */
  get diedInThisInvocation(): boolean {
    return this.diedNow;
  }

  /**
   * A PostgreSQL statement (`client.query(...args)`, or the pool's) about to be sent with `send`;
   * `session` is the client's, whose transaction it follows (none for the pool's).
   */
  statement(
    args: unknown[],
    send: (...a: unknown[]) => unknown,
    session?: { inTransaction: boolean },
  ): unknown {
    const text = statementText(args);
    const submittable = isSubmittable(args[0]);
    const refuse = (err: Error): unknown => {
      if (submittable) throw err;
      return Promise.reject(err);
    };
    if (this.dead) return refuse(this.crashError(`statement "${shortSql(text)}"`));
    if (!this.armed || this.fired) return send(...args);
    this.counts.statements += 1;
    const n = this.counts.statements;
    const isCommit = /^\s*COMMIT\b/i.test(text);
    if (isCommit) this.counts.commits += 1;
    const outside = session?.inTransaction !== true;
    if (outside) this.counts.outside += 1;
    if (session && /^\s*BEGIN\b/i.test(text)) session.inTransaction = true;
    if (session && (isCommit || /^\s*ROLLBACK\s*$/i.test(text))) session.inTransaction = false;
    if (this.hits('pg-dies-before', n)) {
      this.fire(`before statement ${n}: ${shortSql(text)}`, true);
      return refuse(this.crashError(`statement ${n}`));
    }
    const forGood = outside && this.hits('pg-fails-run-ends', this.counts.outside);
    if (forGood || (outside && this.hits('pg-fails', this.counts.outside))) {
      this.fire(`statement ${n} failed${forGood ? ' for good' : ''}: ${shortSql(text)}`, false);
      this.failsForGood = forGood;
      // What pg says when the server or the network drops the connection mid-statement. The
      // pool's own query classifies its errors (classifyQueryErrors of pool.ts): one sent to the
      // pool reaches the step as the real pool would hand it over.
      const dropped = new Error('Connection terminated unexpectedly');
      return refuse(session ? dropped : classifyPostgresError(dropped));
    }
    if (isCommit && this.hits('pg-dies-after-commit', this.counts.commits)) {
      this.fire(`after COMMIT ${this.counts.commits} (statement ${n})`, true);
      return (send(...args) as Promise<unknown>).then(() => {
        throw this.crashError('the answer to COMMIT');
      });
    }
    return send(...args);
  }

  /**
   * A Salesforce call about to be made with `send`; `sendLosingAnswer` makes it so that Salesforce
   * applies it and its answer is lost (it throws what the caller would then see).
   */
  async call<T>(
    what: string,
    writes: boolean,
    send: () => Promise<T>,
    sendLosingAnswer: () => Promise<never>,
  ): Promise<T> {
    if (this.dead) throw this.crashError(`Salesforce call ${what}`);
    if (!this.armed || this.fired) return send();
    this.counts.calls += 1;
    if (writes) this.counts.writeCalls += 1;
    const n = this.counts.calls;
    if (this.hits('sf-fails-before', n)) {
      this.fire(`Salesforce call ${n} failed before reaching Salesforce: ${what}`, false);
      throw new TransientError(
        `${what}: the connection failed before the request reached Salesforce (simulated)`,
      );
    }
    if (writes && this.hits('sf-answer-lost', this.counts.writeCalls)) {
      this.fire(`Salesforce call ${n} applied, its answer lost: ${what}`, false);
      return sendLosingAnswer();
    }
    return send();
  }

  /** The pool the core steps get: its statements and those of its clients pass through here. */
  pool(pool: Pool): Pool {
    return new Proxy(pool, {
      get: (target, prop) => {
        if (prop === 'query') {
          return (...args: unknown[]) =>
            this.statement(args, (...a) => (target.query as (...q: unknown[]) => unknown)(...a));
        }
        if (prop === 'connect') {
          return async () => {
            if (this.dead) throw this.crashError('connection');
            return this.client(await target.connect());
          };
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  private client(client: PoolClient): PoolClient {
    const session = { inTransaction: false };
    return new Proxy(client, {
      get: (target, prop) => {
        if (prop === 'query') {
          return (...args: unknown[]) =>
            this.statement(args, (...a) => (target.query as (...q: unknown[]) => unknown)(...a), session);
        }
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** The connector the core steps get: its calls pass through here. */
  connector(sf: SalesforceConnector): SalesforceConnector {
    const emulator = this.emulator;
    const lost = (what: string): TransientError =>
      new TransientError(
        `${what}: the connection dropped after Salesforce applied the call and before its answer came (simulated); whether Salesforce applied the call is unknown`,
      );
    return Object.create(sf, {
      request: {
        value: <T>(
          operation: string,
          method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
          path: string,
          body?: unknown,
        ): Promise<T> => {
          if (method !== 'GET') this.writes += 1;
          const restWrite = method !== 'GET' && !path.startsWith('/jobs/');
          return this.call(
            `${method} ${path.split('?')[0]} (${operation})`,
            method !== 'GET',
            () =>
              restWrite
                ? oneRestWriteAtATime(() => sf.request<T>(operation, method, path, body))
                : sf.request<T>(operation, method, path, body),
            async () => {
              // A REST write: the emulator applies it and cuts its answer off, and the real client
              // reports what it makes of that. Others (reads, Bulk job calls): the answer is dropped here.
              if (restWrite) {
                await oneRestWriteAtATime(async () => {
                  emulator.faults.set({ resetWriteAnswerAfterBytes: 0 });
                  try {
                    await sf.request<T>(operation, method, path, body);
                  } finally {
                    emulator.faults.set({ resetWriteAnswerAfterBytes: undefined });
                  }
                });
                throw new Error(`${operation}: the emulator answered a write whose answer was to be cut off`);
              }
              await sf.request<T>(operation, method, path, body);
              throw lost(operation);
            },
          );
        },
      },
      describe: {
        value: (objectName: string) =>
          this.call(
            `describe ${objectName}`,
            false,
            () => sf.describe(objectName),
            async () => {
              await sf.describe(objectName);
              throw lost(`describe ${objectName}`);
            },
          ),
      },
      // Prepare's calls (lambdas/core/prepare.ts): the org's limits, and an extract's COUNT().
      limits: {
        value: () =>
          this.call(
            'GET /limits',
            false,
            () => sf.limits(),
            async () => {
              await sf.limits();
              throw lost('limits');
            },
          ),
      },
      count: {
        value: (soql: string, options?: { includeDeleted?: boolean }) =>
          this.call(
            `count (${soql})`,
            false,
            () => sf.count(soql, options),
            async () => {
              await sf.count(soql, options);
              throw lost('count');
            },
          ),
      },
      putStream: {
        value: (
          operation: string,
          path: string,
          body: NodeJS.ReadableStream,
          headers: Record<string, string>,
        ) => {
          this.writes += 1;
          return this.call(
            `PUT ${path} (${operation})`,
            true,
            () => sf.putStream(operation, path, body as never, headers),
            async () => {
              await sf.putStream(operation, path, body as never, headers);
              throw lost(operation);
            },
          );
        },
      },
      fetchWithSession: {
        value: (operation: string, path: string, init: RequestInit) =>
          this.call(
            `${init.method ?? 'GET'} ${path} (${operation})`,
            (init.method ?? 'GET') !== 'GET',
            () => sf.fetchWithSession(operation, path, init),
            async () => {
              const res = await sf.fetchWithSession(operation, path, init);
              await res.body?.cancel();
              throw lost(operation);
            },
          ),
      },
    }) as SalesforceConnector;
  }
}
