/**
 * Reading a JSON record sysctr wrote (a deployment's info.json, a mount
 * record): missing is `undefined`, anything else that keeps it from being
 * read (torn, not JSON, a field missing, unreadable) is HostError
 * `record.damaged` (exit 7) naming the file, what is wrong and how to
 * repair. Never a bare parser message, never silently skipped.
 */
import { readFileSync } from 'node:fs'
import { HostError } from '../errors'

export const RECORD_DAMAGED = 'record.damaged'

export function damagedRecord(path: string, problem: string, hint: string, cause?: unknown): HostError {
  return new HostError(RECORD_DAMAGED, `the record ${path} is damaged: ${problem}`, { hint, cause, data: { path, error: problem } })
}

/**
 * The parsed record at `path`, or undefined if there is none. `check` returns
 * what is wrong with a parsed value (e.g. `field "unit" is missing`), or
 * undefined when it is sound.
 */
export async function readRecord<T>(path: string, check: (v: unknown) => string | undefined, hint: string): Promise<T | undefined> {
  let text: string
  try {
    // A record is a few KiB: one synchronous read is cheaper than the promise API's open/fstat/read/close (listings read hundreds).
    text = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw damagedRecord(path, `cannot read it: ${(err as Error).message}`, hint, err)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    const why = text.length === 0 ? 'it is empty' : `not valid JSON (${(err as Error).message}; ${text.length} bytes)`
    throw damagedRecord(path, why, hint, err)
  }
  const problem = check(value)
  if (problem) throw damagedRecord(path, problem, hint)
  return value as T
}

/** A `check` for readRecord: an object whose `fields` have the given typeof ('array' for arrays). */
export function fieldsCheck(fields: Record<string, 'string' | 'number' | 'object' | 'array'>): (v: unknown) => string | undefined {
  return (v) => {
    if (!v || typeof v !== 'object' || Array.isArray(v)) return `not a JSON object`
    for (const [k, t] of Object.entries(fields)) {
      const f = (v as Record<string, unknown>)[k]
      if (f === undefined) return `field "${k}" is missing`
      const got = Array.isArray(f) ? 'array' : f === null ? 'null' : typeof f
      if (got !== t) return `field "${k}" is ${got}, not ${t}`
    }
    return undefined
  }
}
