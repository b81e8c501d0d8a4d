/**
 * Legacy Atomic templates: Python `string.Template` syntax, rendered STRICTLY
 * (as Atomic did with `Template.substitute`).
 *
 *   $$            -> a literal `$`
 *   $identifier   -> the value of identifier ([_a-zA-Z][_a-zA-Z0-9]*, longest match)
 *   ${identifier} -> the same, so it can be followed by identifier characters
 *   $ followed by anything else (a digit, `{` without a valid `identifier}`,
 *   the end of the text, ...) is an invalid placeholder: ContentError
 *   'template.invalid-placeholder' naming the file, line and column of the `$`.
 *
 * Invariants:
 * - A variable without a value is an error (UsageError 'template.missing-value'),
 *   never an empty string; every missing name is reported at once, with the
 *   `--set` that supplies it.
 * - Values are inserted verbatim; whether a value is safe where it lands (a unit
 *   file line, a JSON string) is the caller's check (systemd/unit-quote.ts checkUnitSafe,
 *   runtime/config-check.ts).
 */
import { ContentError, UsageError } from '../errors'

export type LegacyPart = { kind: 'text'; text: string } | { kind: 'var'; name: string; line: number; column: number }

const IDENT = /[_a-zA-Z][_a-zA-Z0-9]*/y
const BRACED = /\{([_a-zA-Z][_a-zA-Z0-9]*)\}/y

/** 1-based line and column of `offset` in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++
      lineStart = i + 1
    }
  }
  return { line, column: offset - lineStart + 1 }
}

/** Split a legacy template into literal text and variable references. */
export function parseLegacy(text: string, opts: { file?: string } = {}): LegacyPart[] {
  const parts: LegacyPart[] = []
  let literal = ''
  let i = 0
  while (i < text.length) {
    const dollar = text.indexOf('$', i)
    if (dollar < 0) {
      literal += text.slice(i)
      break
    }
    literal += text.slice(i, dollar)
    const next = dollar + 1
    if (text[next] === '$') {
      literal += '$'
      i = next + 1
      continue
    }
    IDENT.lastIndex = next
    BRACED.lastIndex = next
    let name: string | undefined
    let end = next
    const named = IDENT.exec(text)
    if (named) {
      name = named[0]
      end = next + name.length
    } else {
      const braced = BRACED.exec(text)
      if (braced) {
        name = braced[1]
        end = next + braced[0].length
      }
    }
    const { line, column } = lineColumn(text, dollar)
    if (name === undefined) {
      const where = opts.file ? `${opts.file}: ` : ''
      throw new ContentError(
        'template.invalid-placeholder',
        `${where}invalid placeholder at line ${line}, column ${column}: \`$\` must be followed by \`$\`, a name or \`{name}\``,
        { hint: 'write `$$` for a literal `$`', data: { file: opts.file, line, column } },
      )
    }
    if (literal) parts.push({ kind: 'text', text: literal })
    literal = ''
    parts.push({ kind: 'var', name, line, column })
    i = end
  }
  if (literal) parts.push({ kind: 'text', text: literal })
  return parts
}

/** The variables a legacy template uses, each once, in order of first use. */
export function legacyVariables(text: string, opts: { file?: string } = {}): string[] {
  const seen = new Set<string>()
  for (const p of parseLegacy(text, opts)) if (p.kind === 'var') seen.add(p.name)
  return [...seen]
}

/** Render a legacy template; every variable it uses must have a value. */
export function renderLegacy(text: string, values: Record<string, string>, opts: { file: string }): string {
  const parts = parseLegacy(text, opts)
  const missing: string[] = []
  for (const p of parts) {
    if (p.kind === 'var' && !hasValue(values, p.name) && !missing.includes(p.name)) missing.push(p.name)
  }
  if (missing.length > 0) throw missingValuesError(missing, opts.file)
  return parts.map((p) => (p.kind === 'text' ? p.text : String(values[p.name]))).join('')
}

/** The error for template variables without a value (shared with handlebars.ts). */
export function missingValuesError(names: string[], file: string): UsageError {
  const plural = names.length > 1
  return new UsageError(
    'template.missing-value',
    `template ${file} needs ${plural ? 'values' : 'a value'} for ${names.join(', ')}`,
    {
      hint: `supply ${plural ? 'them' : 'it'} with ${names.map((n) => `--set ${n}=VALUE`).join(' ')}`,
      data: { file, missing: names },
    },
  )
}

export function hasValue(values: Record<string, unknown>, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(values, name) && values[name] !== undefined && values[name] !== null
}
