/**
 * A unified line diff (`diff -u` style) of two small texts, for the dry runs.
 * Longest common subsequence by dynamic programming: the rendered files it is
 * used on are a few hundred lines at most; above LIMIT cells the whole file is
 * shown as replaced rather than spending quadratic memory.
 */

const LIMIT = 4_000_000

type Op = { kind: ' ' | '-' | '+'; line: string }

function splitLines(s: string): string[] {
  if (s === '') return []
  const lines = s.split('\n')
  if (lines[lines.length - 1] === '') lines.pop()
  return lines
}

function ops(a: string[], b: string[]): Op[] {
  const n = a.length
  const m = b.length
  if (n * m > LIMIT) return [...a.map((line) => ({ kind: '-' as const, line })), ...b.map((line) => ({ kind: '+' as const, line }))]
  // lcs[i][j]: LCS length of a[i..] and b[j..], rows of m+1.
  const lcs = new Uint32Array((n + 1) * (m + 1))
  const at = (i: number, j: number) => i * (m + 1) + j
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[at(i, j)] = a[i] === b[j] ? lcs[at(i + 1, j + 1)] + 1 : Math.max(lcs[at(i + 1, j)], lcs[at(i, j + 1)])
    }
  }
  const out: Op[] = []
  let i = 0
  let j = 0
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ kind: ' ', line: a[i] })
      i++
      j++
    } else if (lcs[at(i + 1, j)] >= lcs[at(i, j + 1)]) out.push({ kind: '-', line: a[i++] })
    else out.push({ kind: '+', line: b[j++] })
  }
  while (i < n) out.push({ kind: '-', line: a[i++] })
  while (j < m) out.push({ kind: '+', line: b[j++] })
  return out
}

/**
 * The unified diff of `before` and `after` with `context` lines around each
 * change, headed `--- fromName` / `+++ toName`; '' when they are equal.
 */
export function unifiedDiff(before: string, after: string, fromName: string, toName: string, context = 3): string {
  if (before === after) return ''
  const list = ops(splitLines(before), splitLines(after))
  const changed = list.map((o, k) => (o.kind !== ' ' ? k : -1)).filter((k) => k >= 0)
  if (changed.length === 0) return '' // differ only in a trailing newline
  const hunks: [number, number][] = []
  for (const k of changed) {
    const start = Math.max(0, k - context)
    const end = Math.min(list.length, k + context + 1)
    const last = hunks[hunks.length - 1]
    if (last && start <= last[1]) last[1] = Math.max(last[1], end)
    else hunks.push([start, end])
  }
  const out = [`--- ${fromName}`, `+++ ${toName}`]
  for (const [s, e] of hunks) {
    // 1-based line numbers in each file where the hunk starts.
    let oldLine = 1
    let newLine = 1
    for (let k = 0; k < s; k++) {
      if (list[k].kind !== '+') oldLine++
      if (list[k].kind !== '-') newLine++
    }
    const body = list.slice(s, e)
    const oldCount = body.filter((o) => o.kind !== '+').length
    const newCount = body.filter((o) => o.kind !== '-').length
    out.push(`@@ -${oldCount === 0 ? oldLine - 1 : oldLine},${oldCount} +${newCount === 0 ? newLine - 1 : newLine},${newCount} @@`)
    for (const o of body) out.push(`${o.kind}${o.line}`)
  }
  return out.join('\n') + '\n'
}
