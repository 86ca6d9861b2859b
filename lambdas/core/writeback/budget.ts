/**
 * The time of one invocation of Push or Collect, spent call by call.
 *
 * A push of many Collections calls (a large `bulkThreshold`), a Bulk push of several jobs, or a
 * long row-lock retry pass can outlast the Lambda's 900 s. Killed mid-call, the step would be
 * retried (a call of unknown outcome, an insert waiting 11 minutes to be looked up) and, after
 * two retries, the run would fail with records unsent. Instead each unit of work (a Collections
 * or Composite call, a Bulk job's upload, a job's results collected) starts only when the time
 * left could see it through to its longest answer and its recording; otherwise the step stops
 * between calls, with every result so far recorded, and answers that it has more to do. The
 * state machine calls it again at once, and the new invocation goes on from the ledger.
 */
import { GET_ATTEMPTS } from '../../connectors/salesforce/calls';
import type { SalesforceTimeouts } from '../../connectors/salesforce/connector';
import { UNBOUNDED_TIME, type TimeLeft } from '../../shared/clock';

/** Time kept after a call's longest answer to apply its results and record the step's figures. */
export const RECORD_ROOM_MS = 60_000;

/** What a unit of work does: a write waits up to the write limit once, a read is sent up to 3 times. */
export type CallKind = 'write' | 'read';

/** The time a unit of work of `kind` may take at most, its recording included. */
export function roomFor(kind: CallKind, timeouts: SalesforceTimeouts): number {
  return kind === 'write'
    ? timeouts.writeAnswerMs + RECORD_ROOM_MS
    : GET_ATTEMPTS * timeouts.getAnswerMs + timeouts.idleMs + RECORD_ROOM_MS;
}

/**
 * Says whether the invocation may start one more unit of work (see the module comment). The first
 * unit of an invocation is always started, whatever the time left: every invocation makes
 * progress, so a step that hands on cannot loop for ever.
 */
export class CallBudget {
  private units = 0;
  private stopped = false;

  constructor(
    private readonly timeLeft: TimeLeft = UNBOUNDED_TIME,
    private readonly timeouts: SalesforceTimeouts,
  ) {}

  /** Whether a unit of work of `kind` may start now; once it says no, it keeps saying no. */
  mayStart(kind: CallKind): boolean {
    if (this.stopped) return false;
    if (this.units > 0 && this.timeLeft() < roomFor(kind, this.timeouts)) {
      this.stopped = true;
      return false;
    }
    this.units += 1;
    return true;
  }

  /**
   * Takes back the unit of a call Salesforce refused before doing anything of it, to be sent
   * again in parts (a 413: push.ts splits it): it made no progress. When it was the invocation's
   * first unit, the first part is started whatever the time left, as the first unit is: without
   * this, an invocation with time for one call made that same refused call each time, and handed
   * on for ever.
   */
  refund(): void {
    if (this.units > 0) this.units -= 1;
  }

  /** Whether {@link mayStart} said no: the step hands the rest on. */
  get handedOn(): boolean {
    return this.stopped;
  }
}
