/**
 * Validation of EventBridge Scheduler schedule expressions: `cron(...)` with six fields and
 * `rate(...)`. The rules follow the Scheduler user guide, "Schedule types on EventBridge
 * Scheduler" (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html):
 *
 * | field        | values                | wildcards          |
 * |--------------|-----------------------|--------------------|
 * | minutes      | 0-59                  | , - * /            |
 * | hours        | 0-23                  | , - * /            |
 * | day-of-month | 1-31                  | , - * ? / L W      |
 * | month        | 1-12 or JAN-DEC       | , - * /            |
 * | day-of-week  | 1-7 or SUN-SAT        | , - * ? L #        |
 * | year         | 1970-2199             | , - * /            |
 *
 * and "you can't specify the day-of-month and day-of-week fields in the same cron
 * expression: if you specify a value or a * in one of the fields, you must use a ? in the
 * other". Where the guide is silent this validator is strict rather than lenient, so that a
 * config it accepts is not refused at deploy time: `L`, `W` and `#` stand alone (not inside
 * a list or range), `L-n` and `LW` are refused, and a range must not wrap around
 * (`FRI-MON`). `*` followed by a step (`*\/5`) is accepted like `0/5`.
 */

/** The fields of a cron expression, in order. */
export const CRON_FIELD_NAMES = ['minutes', 'hours', 'day-of-month', 'month', 'day-of-week', 'year'] as const;

/** Names accepted for months (JAN = 1) and days of the week (SUN = 1), per the Scheduler guide. */
const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const WEEKDAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/** `#n` in day-of-week: the n-th such weekday of the month; a month has at most five of each. */
const MAX_WEEKDAY_OCCURRENCE = 5;

interface FieldRule {
  readonly name: (typeof CRON_FIELD_NAMES)[number];
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const FIELDS: readonly FieldRule[] = [
  { name: 'minutes', min: 0, max: 59 },
  { name: 'hours', min: 0, max: 23 },
  { name: 'day-of-month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: MONTH_NAMES },
  { name: 'day-of-week', min: 1, max: 7, names: WEEKDAY_NAMES },
  { name: 'year', min: 1970, max: 2199 },
];

function rangeText(rule: FieldRule): string {
  const names = rule.names ? ` or ${rule.names[0]}-${rule.names[rule.names.length - 1]}` : '';
  return `${rule.min}-${rule.max}${names}`;
}

/** A single value of a field: a number in range or (month, day-of-week) a name. */
function parseValue(text: string, rule: FieldRule): number | string {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n < rule.min || n > rule.max) return `${rule.name} value ${text} is outside ${rangeText(rule)}`;
    return n;
  }
  const index = rule.names?.indexOf(text.toUpperCase()) ?? -1;
  if (index >= 0) return index + 1;
  return `${rule.name} value "${text}" is not ${rangeText(rule)}`;
}

/** One element of a comma-separated list: `*`, `v`, `a-b`, each optionally followed by `/step`. */
function itemProblem(item: string, rule: FieldRule): string | undefined {
  if (item === '') return `${rule.name} has an empty list element`;
  const [base = '', step, ...extra] = item.split('/');
  if (extra.length > 0) return `${rule.name} element "${item}" has more than one "/"`;
  if (step !== undefined) {
    if (!/^\d+$/.test(step)) return `${rule.name} step "${step}" is not a whole number`;
    const n = Number(step);
    const span = rule.max - rule.min;
    if (n < 1 || n > span) return `${rule.name} step ${step} is outside 1-${span}`;
  }
  if (base === '*') return undefined;
  const bounds = base.split('-');
  if (bounds.length > 2) return `${rule.name} range "${base}" has more than one "-"`;
  const values: number[] = [];
  for (const bound of bounds) {
    const value = parseValue(bound, rule);
    if (typeof value === 'string') return value;
    values.push(value);
  }
  const [from, to] = values;
  if (from !== undefined && to !== undefined && from > to) {
    return `${rule.name} range "${base}" runs backwards (the start must not be after the end)`;
  }
  return undefined;
}

/** The special forms that stand alone in day-of-month and day-of-week. */
function specialProblem(field: string, rule: FieldRule): string | undefined | null {
  const upper = field.toUpperCase();
  if (rule.name === 'day-of-month') {
    if (upper === 'L') return undefined;
    const weekday = /^(\d+)W$/.exec(upper);
    if (weekday) {
      const value = parseValue(weekday[1] ?? '', rule);
      return typeof value === 'string' ? value : undefined;
    }
    if (upper.includes('L') || upper.includes('W')) {
      return `day-of-month "${field}" uses L or W in a form Scheduler does not accept (use "L" or "<day>W")`;
    }
    if (upper.includes('#')) return `day-of-month "${field}" uses "#", which only day-of-week accepts`;
    return null;
  }
  if (rule.name === 'day-of-week') {
    if (upper === 'L') return undefined;
    const last = /^(\w+)L$/.exec(upper);
    if (last) {
      const value = parseValue(last[1] ?? '', rule);
      return typeof value === 'string' ? value : undefined;
    }
    const nth = /^(\w+)#(\d+)$/.exec(upper);
    if (nth) {
      const value = parseValue(nth[1] ?? '', rule);
      if (typeof value === 'string') return value;
      const occurrence = Number(nth[2]);
      if (occurrence < 1 || occurrence > MAX_WEEKDAY_OCCURRENCE) {
        return `day-of-week "${field}": the occurrence after "#" must be 1-${MAX_WEEKDAY_OCCURRENCE}`;
      }
      return undefined;
    }
    if (upper.includes('#')) return `day-of-week "${field}" must have the form "<day>#<1-5>"`;
    if (upper.includes('W')) return `day-of-week "${field}" uses "W", which only day-of-month accepts`;
    if (/L/.test(upper) && !WEEKDAY_NAMES.some((n) => upper.includes(n))) {
      return `day-of-week "${field}" uses L in a form Scheduler does not accept (use "L" or "<day>L")`;
    }
    return null;
  }
  return null;
}

function fieldProblem(field: string, rule: FieldRule): string | undefined {
  if (field === '?') {
    return rule.name === 'day-of-month' || rule.name === 'day-of-week'
      ? undefined
      : `"?" is only allowed in day-of-month and day-of-week, not in ${rule.name}`;
  }
  const special = specialProblem(field, rule);
  if (special !== null) return special;
  if (/[LW#?]/i.test(field.replace(/[A-Z]{3}/gi, (m) => (rule.names?.includes(m.toUpperCase()) ? '' : m)))) {
    return `${rule.name} "${field}" uses a wildcard this field does not accept`;
  }
  for (const item of field.split(',')) {
    const problem = itemProblem(item, rule);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Checks the six fields of a cron expression (without the `cron(...)` wrapper).
 * @returns what is wrong, or undefined when EventBridge Scheduler accepts it.
 */
export function cronProblem(fields: string): string | undefined {
  const parts = fields.trim().split(/\s+/);
  if (parts.length !== CRON_FIELD_NAMES.length) {
    const count = `it has ${parts.length} field${parts.length === 1 ? '' : 's'}, not ${CRON_FIELD_NAMES.length}`;
    return parts.length === 5 ? `${count}${fiveFieldHint(parts)}` : count;
  }
  for (const [i, rule] of FIELDS.entries()) {
    const problem = fieldProblem(parts[i] ?? '', rule);
    if (problem) return problem;
  }
  const dayOfMonth = parts[2];
  const dayOfWeek = parts[4];
  if (dayOfMonth === '?' && dayOfWeek === '?') return 'day-of-month and day-of-week cannot both be "?"';
  if (dayOfMonth !== '?' && dayOfWeek !== '?') return 'one of day-of-month and day-of-week must be "?"';
  return undefined;
}

/** Unix day-of-week numbers (0 or 7 = Sunday) as Scheduler's (1 = SUN … 7 = SAT), for plain lists and ranges. */
function schedulerDayOfWeek(unix: string): string | undefined {
  if (unix === '*') return '?';
  if (/[A-Z]/i.test(unix)) return unix; // names mean the same in both
  if (!/^[0-7](-[0-7])?(,[0-7](-[0-7])?)*$/.test(unix)) return undefined;
  return unix.replace(/[0-7]/g, (d) => String((Number(d) % 7) + 1));
}

/**
 * What to write instead of a five-field expression, which is usually a Unix crontab line (no
 * year, "*" in both day fields, Sunday = 0) or one with the year forgotten: the six-field
 * expression that means the same, when there is one Scheduler accepts.
 */
function fiveFieldHint(parts: readonly string[]): string {
  const [minutes, hours, dayOfMonth, month, dayOfWeek] = parts as [string, string, string, string, string];
  const candidates = [[...parts, '*'].join(' ')];
  const converted = schedulerDayOfWeek(dayOfWeek);
  if (converted === '?') candidates.push(`${minutes} ${hours} ${dayOfMonth} ${month} ? *`);
  else if (converted !== undefined && dayOfMonth === '*') {
    candidates.push(`${minutes} ${hours} ? ${month} ${converted} *`);
  }
  const valid = candidates.find((candidate) => cronProblem(candidate) === undefined);
  const rules = 'a sixth field, the year, and "?" in one of day-of-month and day-of-week';
  return valid
    ? ` (Scheduler's cron has ${rules}, and counts days of the week from SUN = 1 where Unix cron counts from 0: did you mean "${valid}"?)`
    : ` (Scheduler's cron has ${rules})`;
}

const RATE_UNITS = ['minute', 'hour', 'day'] as const;

/**
 * Checks a rate expression body such as `5 minutes` (without the `rate(...)` wrapper). The
 * Scheduler guide: the value is a positive whole number; the unit is singular for 1
 * (`1 hour`) and plural otherwise (`5 minutes`).
 * @returns what is wrong, or undefined when EventBridge Scheduler accepts it.
 */
export function rateProblem(body: string): string | undefined {
  const match = /^\s*(\d+)\s+([a-z]+)\s*$/.exec(body);
  if (!match) return 'it must read "<value> <unit>", e.g. "5 minutes"';
  const value = Number(match[1]);
  const unit = match[2] ?? '';
  if (value < 1) return 'the value must be 1 or more';
  const singular = unit.endsWith('s') ? unit.slice(0, -1) : unit;
  if (!(RATE_UNITS as readonly string[]).includes(singular)) {
    return `the unit "${unit}" is not minute(s), hour(s) or day(s)`;
  }
  const expected = value === 1 ? singular : `${singular}s`;
  if (unit !== expected) return `the unit must be "${expected}" for the value ${value}`;
  return undefined;
}

/** Removes an optional `cron(...)` wrapper. */
function cronBody(expression: string): string {
  const wrapped = /^\s*cron\((.*)\)\s*$/.exec(expression);
  return wrapped ? (wrapped[1] ?? '') : expression;
}

/**
 * Checks `schedule.cron`: six fields, bare (`0 2 * * ? *`) or wrapped (`cron(0 2 * * ? *)`).
 * @returns what is wrong, or undefined when EventBridge Scheduler accepts it.
 */
export function cronExpressionProblem(expression: string): string | undefined {
  return cronProblem(cronBody(expression));
}

/**
 * Checks `schedule.rate`: bare (`5 minutes`) or wrapped (`rate(5 minutes)`).
 * @returns what is wrong, or undefined when EventBridge Scheduler accepts it.
 */
export function rateExpressionProblem(expression: string): string | undefined {
  const wrapped = /^\s*rate\((.*)\)\s*$/.exec(expression);
  return rateProblem(wrapped ? (wrapped[1] ?? '') : expression);
}

/**
 * The `ScheduleExpression` EventBridge Scheduler takes, from a validated `schedule`:
 * `cron(0 2 * * ? *)` or `rate(5 minutes)`.
 */
export function scheduleExpression(schedule: { readonly cron?: string; readonly rate?: string }): string {
  if (schedule.cron !== undefined) return `cron(${cronBody(schedule.cron).trim().split(/\s+/).join(' ')})`;
  if (schedule.rate !== undefined) {
    const wrapped = /^\s*rate\((.*)\)\s*$/.exec(schedule.rate);
    return `rate(${(wrapped ? (wrapped[1] ?? '') : schedule.rate).trim().split(/\s+/).join(' ')})`;
  }
  throw new Error('schedule has neither cron nor rate');
}
