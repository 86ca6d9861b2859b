/**
 * Values quoted for a POSIX shell in the commands that messages name (`roundtrip resolve --task T
 * --key K …`, `roundtrip forget --task T --yes`), so that a command copied from a message and pasted
 * into a shell gives the command the exact value: a key with a space, a quote, `$` or `;` would
 * otherwise be split, expanded or end the command. A value of only the characters no POSIX shell
 * treats specially stays as it is (the messages of ordinary keys and task names do not change);
 * any other is put in single quotes, inside which a shell takes every character as it is but the
 * single quote, written `'\''` (POSIX, "Shell Command Language", 2.2.2 Single-Quotes:
 * https://pubs.opengroup.org/onlinepubs/9799919799/utilities/V3_chap02.html#tag_19_02_02).
 *
 * The rule is here once for TypeScript ({@link shellWord}) and once for PostgreSQL
 * ({@link shellWordSql}: the messages a plan writes for many keys at once are built in SQL), from
 * the same pattern.
 */

/**
 * The characters a POSIX shell takes as they are in an unquoted word, wherever they stand (no `~`,
 * which expands at the start of a word, no `*?[`, no `#`, which starts a comment there). The same
 * text is a JavaScript and a PostgreSQL regular expression.
 */
const PLAIN_WORD = '^[A-Za-z0-9_.,:/@%+=-]+$';

/** `word` as a POSIX shell must be given it to read it back exactly: as it is, or in single quotes. */
export function shellWord(word: string): string {
  return new RegExp(PLAIN_WORD).test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * `--option value` as a command line gives it: the value quoted by {@link shellWord}, and joined to
 * the option by `=` when it starts with `-`, which the CLI's parser (node:util `parseArgs`) would
 * otherwise refuse as an option where a value belongs ("argument is ambiguous").
 */
export function shellOption(option: string, value: string): string {
  return `${option}${value.startsWith('-') ? '=' : ' '}${shellWord(value)}`;
}

/**
 * The SQL expression of {@link shellWord} applied to the text that the SQL expression `text`
 * gives: the same rule, for messages built in PostgreSQL.
 */
export function shellWordSql(text: string): string {
  // The replacement text of each quote, '\'', as a SQL literal: every quote in it doubled.
  return `(CASE WHEN (${text}) ~ '${PLAIN_WORD}' THEN (${text}) ELSE '''' || replace((${text}), '''', '''\\''''') || '''' END)`;
}

/** The SQL expression of {@link shellOption}: `option` (a plain word) with the value of `text`. */
export function shellOptionSql(option: string, text: string): string {
  if (!new RegExp(PLAIN_WORD).test(option)) throw new Error(`not an option: ${option}`);
  return `('${option}' || CASE WHEN left((${text}), 1) = '-' THEN '=' ELSE ' ' END || ${shellWordSql(text)})`;
}
