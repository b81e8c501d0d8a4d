/**
 * What the CLI says when the words typed do not name a command: the unknown
 * word in the user's own spelling (space-separated, never oclif's internal
 * `a:b` ids) and the nearest commands. The command list comes from oclif's
 * config (the manifest), so commands and aliases added later are suggested
 * without a hand-written list.
 */
import { UsageError } from '../errors'

/** Damerau-Levenshtein (optimal string alignment) distance: a swap of two neighbours counts once. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/** oclif id ("containers:list") -> what the user types ("containers list"). */
export const spaced = (id: string): string => id.replaceAll(':', ' ')

export interface Resolution {
  /** Words that named a topic or command, in order. */
  known: string[]
  /** The first word that names nothing (undefined: all words resolved). */
  unknown?: string
  /** A command id matched by the known words. */
  command?: string
}

/**
 * Walk the words (flags and what follows them are not words of a command
 * name) through the ids: the longest run that names a topic or a command.
 */
export function resolveWords(ids: string[], words: string[]): Resolution {
  const idSet = new Set(ids)
  const prefixes = new Set(ids.flatMap((id) => id.split(':').map((_, i, parts) => parts.slice(0, i + 1).join(':'))))
  const known: string[] = []
  let command: string | undefined
  for (const w of words) {
    if (w.startsWith('-')) break
    const next = [...known, w].join(':')
    if (!prefixes.has(next)) return { known, unknown: w, command }
    known.push(w)
    if (idSet.has(next)) {
      command = next
      break
    }
  }
  return { known, command }
}

/** The ids nearest to `known + unknown` (distance at most a third of the word, at least 1; a prefix of an id counts). */
export function suggestions(ids: string[], known: string[], unknown: string): string[] {
  const scope = known.join(':')
  const candidates = new Set<string>()
  for (const id of ids) {
    const parts = id.split(':')
    if (scope && !(id.startsWith(scope + ':'))) continue
    // The next word after the known ones (a subcommand or a topic).
    const next = parts[known.length]
    if (next !== undefined) candidates.add([...known, next].join(':'))
  }
  const limit = Math.max(1, Math.floor(unknown.length / 3))
  const scored = [...candidates]
    .map((c) => {
      const word = c.split(':').at(-1)!
      const dist = word.startsWith(unknown) && unknown.length >= 2 ? 0.5 : editDistance(unknown, word)
      return { c, dist }
    })
    .filter((s) => s.dist <= limit)
    .sort((a, b) => a.dist - b.dist || a.c.localeCompare(b.c))
  return scored.slice(0, 3).map((s) => s.c)
}

/** The usage error (exit 2) for words that name no command, with a "did you mean" when one is near. */
export function unknownCommandError(bin: string, ids: string[], words: string[], canonical: (id: string) => string = (id) => id): UsageError {
  const r = resolveWords(ids, words)
  const typed = [...r.known, r.unknown ?? ''].filter(Boolean).join(' ')
  const seen = new Set<string>()
  const near = (r.unknown === undefined ? [] : suggestions(ids, r.known, r.unknown)).filter((n) => !seen.has(canonical(n)) && !!seen.add(canonical(n)))
  const helpOf = r.known.length > 0 ? `${bin} ${r.known.join(' ')} --help` : `${bin} --help`
  const hint = near.length > 0
    ? `did you mean ${near.map((n) => `\`${bin} ${spaced(n)}\``).join(' or ')}? (${helpOf} lists the commands)`
    : `${helpOf} lists the commands`
  return new UsageError('usage.unknown-command', `unknown command \`${bin} ${typed}\``, {
    hint,
    data: { command: typed, suggestions: near.map(spaced) },
  })
}
