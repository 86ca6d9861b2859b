/**
 * Bundled in place of the `mime-types` package (esbuild alias, lib/constructs/step-function.ts).
 *
 * jsforce requires form-data at load (for multipart record uploads, jsforce lib/connection.js, and
 * an `instanceof` check of every request body, lib/request-helper.js), and form-data requires
 * mime-types, whose mime-db is a 134 KB JSON table parsed at load: the largest package in every
 * Salesforce function. form-data looks a type up only when a file is appended to a form
 * (form-data 4.0.6 lib/form_data.js, `_getContentType`: by the value's name or path), and
 * roundtrip builds no form: it sends no multipart request. `lookup` answers false, as mime-types
 * does for a name it does not know; form-data would then fall back to its default type.
 */
export function lookup(_path: string): false {
  return false;
}
