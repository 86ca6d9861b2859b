/**
 * Bundled in place of the `whatwg-url` package (esbuild alias, lib/constructs/step-function.ts).
 *
 * jsforce fetches through node-fetch 2, which requires `whatwg-url` at load but uses it only
 * where Node has no URL class (node-fetch 2.7.0 lib/index.js: `const URL = Url.URL ||
 * whatwgUrl.URL`); Node ≥ 10 has one, so the package's ~280 KB (its tr46 Unicode table, parsed at
 * load) were dead weight in every Salesforce function. This module gives node-fetch the same
 * classes it uses anyway: Node's own.
 */
export const URL = globalThis.URL;
export const URLSearchParams = globalThis.URLSearchParams;
