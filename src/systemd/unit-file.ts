/**
 * systemd unit files as an ordered list of lines: section headers, entries
 * (section, key, value), comments and blank lines. Keys repeat (ExecStartPre=,
 * Environment=, WantedBy=, ...), so this is not an INI map - don't use the
 * `ini` package for unit files, it keeps only the last of repeated keys.
 *
 * Parsing follows systemd.syntax(7):
 * - `[Section]` headers; `Key=Value` entries, whitespace around key and value
 *   dropped; lines starting with `#` or `;` are comments.
 * - A line ending in a backslash continues on the next line; the backslash
 *   becomes a space. Comment lines inside a continuation are skipped.
 * - An entry before any section header is an error (systemd ignores it with a
 *   warning; for files we write or check, it is a bug).
 *
 * Serialising writes each entry on one line. Invariant: a value that would
 * add a line (contains \n or \r) is refused, so nothing that lands in a value
 * can add directives of its own.
 */
import { ContentError } from '../errors'

export interface UnitFileEntry {
  section: string
  key: string
  value: string
}

export type UnitFileLine =
  | { kind: 'section'; section: string }
  | ({ kind: 'entry' } & UnitFileEntry)
  | { kind: 'comment'; text: string }
  | { kind: 'blank' }

export interface GetAllOptions {
  /**
   * Apply systemd's list-reset rule: an empty assignment (`ExecStartPre=`)
   * clears the values before it. Off by default (raw values, empties included).
   */
  emptyResets?: boolean
}

export class UnitFile {
  readonly lines: UnitFileLine[]

  constructor(lines: UnitFileLine[] = []) {
    this.lines = lines
  }

  /** Parse unit-file text; `name` (a file name or path) only appears in errors. */
  static parse(text: string, name?: string): UnitFile {
    const out: UnitFileLine[] = []
    const raw = text.split(/\r?\n/)
    if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop()
    let section: string | undefined
    for (let i = 0; i < raw.length; i++) {
      const lineNo = i + 1
      let line = raw[i]!.trim()
      if (line === '') {
        out.push({ kind: 'blank' })
        continue
      }
      if (line.startsWith('#') || line.startsWith(';')) {
        out.push({ kind: 'comment', text: line })
        continue
      }
      // Continuations: join following lines, skipping comment lines between them.
      while (line.endsWith('\\')) {
        line = line.slice(0, -1)
        let next: string | undefined
        while (++i < raw.length) {
          const t = raw[i]!.trim()
          if (t.startsWith('#') || t.startsWith(';')) continue
          next = t
          break
        }
        if (next === undefined) break
        line = `${line} ${next}`
      }
      line = line.trim()
      if (line.startsWith('[')) {
        if (!line.endsWith(']') || line.length < 3) throw syntaxError(name, lineNo, `bad section header '${line}'`)
        section = line.slice(1, -1)
        out.push({ kind: 'section', section })
        continue
      }
      const eq = line.indexOf('=')
      if (eq <= 0) throw syntaxError(name, lineNo, `expected Key=Value, found '${line}'`)
      if (section === undefined) throw syntaxError(name, lineNo, `assignment outside of a section: '${line}'`)
      out.push({ kind: 'entry', section, key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() })
    }
    return new UnitFile(out)
  }

  /** All entries in file order. */
  get entries(): UnitFileEntry[] {
    return this.lines.filter((l): l is { kind: 'entry' } & UnitFileEntry => l.kind === 'entry').map(({ section, key, value }) => ({ section, key, value }))
  }

  /** Section names in order of first appearance. */
  sections(): string[] {
    const seen = new Set<string>()
    for (const l of this.lines) if (l.kind === 'section') seen.add(l.section)
    return [...seen]
  }

  /** The last value of `key` in `section` (systemd: the last assignment wins); undefined if absent. */
  get(section: string, key: string): string | undefined {
    let found: string | undefined
    for (const l of this.lines) if (l.kind === 'entry' && l.section === section && l.key === key) found = l.value
    return found
  }

  /** Every value of `key` in `section`, in order. */
  getAll(section: string, key: string, opts: GetAllOptions = {}): string[] {
    const values: string[] = []
    for (const l of this.lines) {
      if (l.kind !== 'entry' || l.section !== section || l.key !== key) continue
      if (opts.emptyResets && l.value === '') values.length = 0
      else values.push(l.value)
    }
    return values
  }

  /** Append an entry at the end of `section` (its last occurrence), creating the section if needed. */
  add(section: string, key: string, value: string): this {
    checkValue(section, key, value)
    const entry: UnitFileLine = { kind: 'entry', section, key, value }
    let at = -1
    for (let i = 0; i < this.lines.length; i++) {
      const l = this.lines[i]!
      if ((l.kind === 'section' || l.kind === 'entry') && l.section === section) at = i
    }
    if (at === -1) {
      if (this.lines.length > 0 && this.lines[this.lines.length - 1]!.kind !== 'blank') this.lines.push({ kind: 'blank' })
      this.lines.push({ kind: 'section', section }, entry)
    } else {
      this.lines.splice(at + 1, 0, entry)
    }
    return this
  }

  /** Replace every `key` in `section` by one entry (where the first one was, else appended). */
  set(section: string, key: string, value: string): this {
    checkValue(section, key, value)
    const first = this.lines.findIndex((l) => l.kind === 'entry' && l.section === section && l.key === key)
    if (first === -1) return this.add(section, key, value)
    this.remove(section, key)
    this.lines.splice(first, 0, { kind: 'entry', section, key, value })
    return this
  }

  /** Remove every `key` in `section`. */
  remove(section: string, key: string): this {
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const l = this.lines[i]!
      if (l.kind === 'entry' && l.section === section && l.key === key) this.lines.splice(i, 1)
    }
    return this
  }

  toString(): string {
    const out: string[] = []
    for (const l of this.lines) {
      switch (l.kind) {
        case 'section':
          out.push(`[${l.section}]`)
          break
        case 'entry':
          // Only the line-adding check here: parsed files may hold keys add() would refuse.
          if (/[\r\n]/.test(l.value) || /[\r\n]/.test(l.key)) checkValue(l.section, l.key, l.value)
          out.push(`${l.key}=${l.value}`)
          break
        case 'comment':
          out.push(l.text)
          break
        case 'blank':
          out.push('')
          break
      }
    }
    return out.length === 0 ? '' : `${out.join('\n')}\n`
  }
}

export function parseUnitFile(text: string, name?: string): UnitFile {
  return UnitFile.parse(text, name)
}

export function serialiseUnitFile(file: UnitFile): string {
  return file.toString()
}

/**
 * Split a space-separated list value (WantedBy=, Requires=, After=) into
 * words, honouring double and single quotes as systemd does.
 */
export function splitUnitList(value: string): string[] {
  const words: string[] = []
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g
  for (const m of value.matchAll(re)) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]!))
  return words
}

function checkValue(section: string, key: string, value: string): void {
  if (/[\r\n]/.test(value)) {
    throw new ContentError('unit-file.multiline-value', `value of ${key}= in [${section}] would add a line to the unit file`, {
      data: { section, key, value },
    })
  }
  if (!/^[A-Za-z0-9_.-]+$/.test(key)) {
    throw new ContentError('unit-file.bad-key', `'${key}' is not a valid unit file key`, { data: { section, key } })
  }
  if (/[[\]\r\n]/.test(section)) {
    throw new ContentError('unit-file.bad-section', `'${section}' is not a valid unit file section name`, { data: { section } })
  }
}

function syntaxError(name: string | undefined, line: number, what: string): ContentError {
  const where = name ? `${name}:${line}` : `line ${line}`
  return new ContentError('unit-file.syntax', `${where}: ${what}`, { data: { ...(name ? { file: name } : {}), line } })
}
