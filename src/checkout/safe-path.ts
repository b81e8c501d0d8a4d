/**
 * Path safety for layer entries: a tar path becomes a list of components
 * under the image root, or is refused. Refused: NUL bytes, absolute paths
 * (except the root itself, `/`, which umoci writes),
 * `..` that would leave the root. `a/./b//c` and `a/x/../b` are normalised
 * lexically (the in-memory layer tree has no symlinks to follow, and a
 * checkout never resolves through symlinks: it only creates entries below
 * directories it created itself).
 */
import { ContentError } from '../errors'

/** Components of `name` under the root ([] is the root itself). Throws ContentError 'content.unsafe-path'. */
export function entryPathComponents(name: string, what = 'entry'): string[] {
  const refuse = (why: string): never => {
    throw new ContentError('content.unsafe-path', `unsafe layer ${what} ${JSON.stringify(name)}: ${why}`, { data: { path: name } })
  }
  if (name.includes('\0')) refuse('NUL byte in path')
  // umoci writes the root as "/": the root alone is accepted in any spelling.
  if (name.startsWith('/') && !/^\/+\.?\/*$/.test(name)) refuse('absolute path')
  const out: string[] = []
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (out.length === 0) refuse('".." escapes the root')
      out.pop()
      continue
    }
    out.push(part)
  }
  return out
}
