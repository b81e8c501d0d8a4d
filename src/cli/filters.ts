/**
 * `--filter KEY=VALUE` of the list commands, as atomic's `containers list`
 * and `images list` took them: each filter keeps the rows whose KEY field
 * contains VALUE (case-insensitive); several filters all apply. An unknown
 * KEY is a usage error naming the known ones (atomic's images list let it
 * through silently, which hides a typo).
 */
import { UsageError } from '../errors'

export interface Filter {
  key: string
  value: string
}

export function parseFilters(raw: string[], keys: readonly string[], aliases: Record<string, string> = {}): Filter[] {
  return raw.map((f) => {
    const eq = f.indexOf('=')
    if (eq <= 0) throw new UsageError('usage.bad-filter', `bad filter "${f}": expected KEY=VALUE`, { hint: `keys: ${keys.join(', ')}` })
    const given = f.slice(0, eq).toLowerCase()
    const key = aliases[given] ?? given
    if (!keys.includes(key)) throw new UsageError('usage.bad-filter', `unknown filter key "${given}"`, { hint: `keys: ${keys.join(', ')}`, data: { key: given, keys } })
    return { key, value: f.slice(eq + 1) }
  })
}

/** Does the row pass every filter? `field(key)` gives the row's text (or texts) for a key. */
export function passes(filters: Filter[], field: (key: string) => string | string[]): boolean {
  return filters.every((f) => {
    const v = field(f.key)
    const texts = Array.isArray(v) ? v : [v]
    return texts.some((t) => t.toLowerCase().includes(f.value.toLowerCase()))
  })
}

/** Rows as columns padded to the widest cell (the last column unpadded). */
export function table(head: string[] | undefined, rows: string[][]): string[] {
  const all = head ? [head, ...rows] : rows
  if (all.length === 0) return []
  const widths = all[0].map((_h, c) => Math.max(...all.map((r) => r[c].length)))
  return all.map((r) => r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]))).join('  '))
}
