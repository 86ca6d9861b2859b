/**
 * An S3 location the config names as a folder (`athena.outputLocation`, `athena.dataLocations`):
 * Athena writes a query's results under `<outputLocation>/<id>.csv` and reads a table's location
 * as a folder, so `s3://bucket/results` and `s3://bucket/results/` are the same place, and
 * neither covers `s3://bucket/results-of-another-team/`. One spelling for the stack's grants
 * (lib/pipeline-stack.ts) and `validate`'s comparison of result locations.
 */
export function s3FolderUrl(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}
