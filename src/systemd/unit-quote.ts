/**
 * Values in systemd unit and tmpfiles files: quoting one Exec*= argument, and
 * the check that a template value stays on its line.
 *
 * Invariant: a value that lands in a unit or tmpfiles file cannot add a line,
 * a continuation or a NUL (checkUnitSafe): it cannot add directives or sections.
 */
import { UsageError } from '../errors'

/** Quote one argument for a systemd Exec*= line (spaces, quotes, `\`, `%` specifiers, `$` expansion). */
export function systemdQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_/.:@+=,-]+$/.test(arg)) return arg
  const escaped = arg.replace(/[\\"]/g, (c) => `\\${c}`).replace(/%/g, '%%').replace(/\$/g, '$$$$')
  return `"${escaped}"`
}

/** Why a value cannot go into a unit or tmpfiles line, or undefined when it can. */
export function unitUnsafeReason(value: string): string | undefined {
  if (value.includes('\n')) return 'contains a newline'
  if (value.includes('\r')) return 'contains a carriage return'
  if (value.includes('\0')) return 'contains a NUL byte'
  if (value.endsWith('\\')) return 'ends with a backslash (a line continuation)'
  return undefined
}

/**
 * Values that land in a unit or tmpfiles file must stay on their line:
 * no \n, \r, NUL, nor a trailing backslash. Every offending key is named.
 */
export function checkUnitSafe(values: Record<string, string>, keys: readonly string[], opts: { file?: string } = {}): void {
  const bad: string[] = []
  const reasons: Record<string, string> = {}
  for (const key of keys) {
    if (!Object.prototype.hasOwnProperty.call(values, key)) continue
    const reason = unitUnsafeReason(String(values[key]))
    if (reason && !bad.includes(key)) {
      bad.push(key)
      reasons[key] = reason
    }
  }
  if (bad.length === 0) return
  const where = opts.file ? ` (used in ${opts.file})` : ''
  throw new UsageError(
    'values.unsafe',
    `unsafe value${bad.length > 1 ? 's' : ''} for ${bad.map((k) => `${k} (${reasons[k]})`).join(', ')}${where}: it would add lines to a systemd file`,
    { hint: 'values used in service or tmpfiles templates must be a single line', data: { keys: bad, file: opts.file } },
  )
}
