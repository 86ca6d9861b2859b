/**
 * What a write-back task's `sync_state` is about (`roundtrip.sync_scope`, migration 8): the object
 * it writes and the key field its records are keyed by. The diff and the insert checks match the
 * source's keys with the keys `sync_state` holds; under another object or key field they are not
 * the same records. A task whose object or key changed while it has synced records would see every
 * record as new: an upsert by a key the records may not carry yet creates them again, an insert
 * inserts them again, and under an object of the same keys records would be taken as synced
 * without ever being written to it. So the plan refuses such a task before it reads or writes
 * anything, and says how to go on. Changing the fields or the mode (with the same key) is not a
 * change of scope: the diff sends what the new mapping changes.
 */
import type { Pool, PoolClient } from 'pg';
import { withClient } from '../../connectors/postgres';
import { TerminalError } from '../../shared/errors';
import type { WritebackMapping } from './plan';

/** The object and key field of a mapping, as the describe spells them. */
export interface SyncScope {
  readonly object: string;
  /** `Id` for update, the external ID for upsert and keyed inserts; undefined for an insert without a key. */
  readonly keyField: string | undefined;
}

/** The scope a mapping syncs by. */
export function syncScopeOf(mapping: WritebackMapping): SyncScope {
  return { object: mapping.object, keyField: mapping.keyField };
}

const describeScope = (s: SyncScope): string =>
  `${s.object} ${s.keyField ? `by ${s.keyField}` : 'without a key'}`;

/**
 * The same object and key field (Salesforce API names are case-insensitive). An insert without a
 * key keys its records by its `keyColumn`'s values, as a keyed insert does, so giving an insert a
 * key field or taking it away keeps the keys' meaning: no key field matches any.
 */
const sameScope = (a: SyncScope, b: SyncScope): boolean =>
  a.object.toLowerCase() === b.object.toLowerCase() &&
  (a.keyField === undefined ||
    b.keyField === undefined ||
    a.keyField.toLowerCase() === b.keyField.toLowerCase());

/** A write-back task whose object or key changed while it has synced records. */
export class SyncScopeChangedError extends TerminalError {}

/**
 * Refuses (SyncScopeChangedError) when the task's synced records were recorded under another
 * object or key field than `scope`. A task with no synced records, or synced before its scope was
 * recorded (migration 8), passes. `configPath` names the task in the message (`writeback[0]`).
 * A database whose schema predates migration 8 passes (nothing to compare with).
 */
export async function checkSyncScope(
  client: PoolClient,
  task: string,
  scope: SyncScope,
  configPath: string,
): Promise<void> {
  const { rows: exists } = await client.query<{ exists: boolean }>(
    `SELECT to_regclass('roundtrip.sync_scope') IS NOT NULL AS exists`,
  );
  if (!exists[0]?.exists) return;
  const { rows } = await client.query<{ object: string; key_field: string | null }>(
    `SELECT object, key_field FROM roundtrip.sync_scope WHERE task = $1`,
    [task],
  );
  const row = rows[0];
  if (!row) return;
  const recorded: SyncScope = { object: row.object, keyField: row.key_field ?? undefined };
  if (sameScope(recorded, scope)) return;
  const { rows: synced } = await client.query<{ n: string }>(
    `SELECT count(*) AS n FROM roundtrip.sync_state WHERE task = $1`,
    [task],
  );
  const n = Number(synced[0]?.n ?? 0);
  if (n === 0) return;
  const literal = `'${task.replace(/'/g, "''")}'`;
  const keyMoved =
    recorded.object.toLowerCase() === scope.object.toLowerCase() && recorded.keyField && scope.keyField;
  throw new SyncScopeChangedError(
    `Write-back ${task} (${configPath}): its ${n.toLocaleString('en-US')} synced record(s) in roundtrip.sync_state were written to ${describeScope(recorded)}, and the task now writes ${describeScope(scope)}. ` +
      `Matched by another key, every record would look new: sent again, and created again where an upsert's key is not on the record yet or the mode inserts. ` +
      `To start the task over, give it a new \`name\` (${configPath}.name: its sync state starts empty and every record is sent once), or delete its sync state (DELETE FROM roundtrip.sync_state WHERE task = ${literal}).` +
      (keyMoved
        ? ` To move the records to the new key without creating any again, first map ${scope.keyField} as a field while the key is still ${recorded.keyField} and run, then change the key and start the task over.`
        : ''),
  );
}

/** {@link checkSyncScope} on a connection of the pool. */
export async function checkSyncScopeIn(
  pool: Pool,
  task: string,
  scope: SyncScope,
  configPath: string,
): Promise<void> {
  await withClient(pool, (client) => checkSyncScope(client, task, scope, configPath));
}

/**
 * Records the scope the task syncs by (in the plan's transaction: a plan that will be pushed). An
 * insert without a key keeps the key field recorded before for the same object, so that a detour
 * through it does not hide a change of key from the next check.
 */
export async function recordSyncScope(
  client: PoolClient,
  task: string,
  scope: SyncScope,
  runId: string,
): Promise<void> {
  await client.query(
    `INSERT INTO roundtrip.sync_scope AS s (task, object, key_field, run_id) VALUES ($1, $2, $3, $4)
     ON CONFLICT (task) DO UPDATE SET object = EXCLUDED.object,
       key_field = CASE WHEN EXCLUDED.key_field IS NULL AND lower(s.object) = lower(EXCLUDED.object)
                        THEN s.key_field ELSE EXCLUDED.key_field END,
       run_id = EXCLUDED.run_id, recorded_at = now()
     WHERE (s.object, s.key_field) IS DISTINCT FROM (EXCLUDED.object, EXCLUDED.key_field)
       AND NOT (EXCLUDED.key_field IS NULL AND s.object = EXCLUDED.object)`,
    [task, scope.object, scope.keyField ?? null, runId],
  );
}
