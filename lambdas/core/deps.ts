/**
 * What every core step receives. Core never reads `process.env` and never constructs a client
 * (DESIGN.md §2): the Lambda handlers build these once per cold start (lambdas/handlers/deps.ts),
 * the CLI and the tests build them for a laptop.
 */
import type { Pool } from 'pg';
import type { PipelineConfig } from '../config';
import type { AthenaConnector } from '../connectors/athena';
import type { SalesforceConnector } from '../connectors/salesforce';
import type { Clock } from '../shared/clock';
import { TerminalError } from '../shared/errors';
import type { Logger } from '../shared/logging';
import type { SecretsProvider } from '../shared/secrets';

/**
 * A signed-in Salesforce connector, or a function that signs in on first use (and returns the
 * same connector afterwards): steps that never touch Salesforce then never sign in.
 */
export type SalesforceSource = SalesforceConnector | (() => Promise<SalesforceConnector>);

/** A message to the people who look after the pipeline (the stack's SNS topic in AWS). */
export interface Notification {
  /** One line of fewer than 100 characters. */
  readonly subject: string;
  readonly text: string;
}

/** Sends notifications: the Report step tells of a failed run through it. */
export interface Notifier {
  publish(message: Notification): Promise<void>;
}

/**
 * Where a Step Functions execution stands (DescribeExecution `status`: `RUNNING`, `SUCCEEDED`,
 * `FAILED`, `TIMED_OUT`, `ABORTED`, `PENDING_REDRIVE`), or `undefined` when there is no such
 * execution (a run recorded by a laptop, say).
 */
export interface ExecutionStatusReader {
  statusOf(executionArn: string): Promise<string | undefined>;
}

/** A process of a machine, as a run records it (`roundtrip.runs` host, host_id, pid). */
export interface RunProcess {
  /** The machine's name, for people. */
  readonly host: string;
  /**
   * What must be equal for a process id to mean the same process: the machine's boot (and, on
   * Linux, its pid namespace), so that another machine of the same name, a later boot or another
   * container never matches.
   */
  readonly hostId: string;
  readonly pid: number;
}

/**
 * The process the steps run in, on a machine that can tell whether another process of it is gone
 * (the CLI: bin/local/process.ts).
 */
export interface RunProcesses {
  /** This process, recorded on the row of a run Prepare records. */
  readonly self: RunProcess;
  /** Whether process `pid` of this machine still runs (a zombie does not). */
  isRunning(pid: number): boolean;
}

/** The dependencies of the core steps. */
export interface CoreDeps {
  /** The validated pipeline config. */
  readonly config: PipelineConfig;
  /** The PostgreSQL pool (connectors/postgres `createPool`). */
  readonly pg: Pool;
  /** Required when a Salesforce task runs. */
  readonly salesforce?: SalesforceSource;
  /** Required when an Athena task runs. */
  readonly athena?: AthenaConnector;
  /** Not read by the extract steps (the connectors hold their credentials); later steps may. */
  readonly secrets?: SecretsProvider;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Where the Report step tells of a failed run. @default nobody (local runs) */
  readonly notifier?: Notifier;
  /**
   * How Prepare asks whether another run's execution still runs (in AWS). @default none: a run
   * counts as going while its steps start (local runs)
   */
  readonly executions?: ExecutionStatusReader;
  /**
   * The machine and process the run runs in (the CLI): Prepare records them on the run, and closes
   * the pipeline's runs recorded on this machine whose process is gone. @default none (in AWS, a
   * run's execution tells instead)
   */
  readonly processes?: RunProcesses;
  /**
   * The options that named the pipeline and its database on the command line that runs the steps
   * (` --config FILE --secrets FILE`, each quoted for a shell: bin/cli-common.ts
   * databaseOptionsGiven), which the commands a message names (`roundtrip forget --task T … --yes`)
   * repeat, so that they can be pasted as they are. @default none (in AWS: the message says to run
   * them with the pipeline's --config and --secrets)
   */
  readonly commandOptions?: string;
}

/** The Salesforce connector of the deps, signing in when it is a function. */
export async function salesforceOf(deps: CoreDeps, why: string): Promise<SalesforceConnector> {
  const source = deps.salesforce;
  if (!source) {
    throw new TerminalError(
      `${why} needs Salesforce, but no Salesforce connector was given (is "salesforce" set in the pipeline config?)`,
    );
  }
  return typeof source === 'function' ? source() : source;
}

/** The Athena connector of the deps. */
export function athenaOf(deps: CoreDeps, why: string): AthenaConnector {
  if (!deps.athena) {
    throw new TerminalError(
      `${why} needs Athena, but no Athena connector was given (is "athena" set in the pipeline config?)`,
    );
  }
  return deps.athena;
}

/** `schema.name` or `name` (in the config's default schema) as a pair. */
export function splitTableName(table: string, defaultSchema: string): { schema: string; table: string } {
  const dot = table.indexOf('.');
  return dot < 0
    ? { schema: defaultSchema, table }
    : { schema: table.slice(0, dot), table: table.slice(dot + 1) };
}
