/**
 * Path safety for layer entries: a tar path becomes a list of components
 * under the image root, or is refused. Refused: NUL bytes, absolute paths
 * (except the root itself, `/`, which umoci writes),
 * `..` that would leave the root, a component longer than NAME_MAX (255
 * bytes) or a path longer than PATH_MAX (4095 bytes once normalised): the
 * checkout could not create it (ENAMETOOLONG), so it is refused as content. `a/./b//c` and `a/x/../b` are normalised
 * lexically (the in-memory layer tree has no symlinks to follow, and a
 * checkout never resolves through symlinks: it only creates entries below
 * directories it created itself).
 */
import { ContentError } from '../errors'

/** Linux NAME_MAX: the longest component a filesystem takes, in bytes. */
export const NAME_MAX = 255
/** Linux PATH_MAX less the terminating NUL: the longest normalised path under the root, in bytes. */
export const PATH_MAX = 4095

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
    if (Buffer.byteLength(part) > NAME_MAX) refuse(`component too long (${Buffer.byteLength(part)} bytes, at most ${NAME_MAX})`)
    out.push(part)
  }
  const length = out.reduce((n, c) => n + Buffer.byteLength(c) + 1, 0)
  if (length > PATH_MAX) refuse(`path too long (${length} bytes, at most ${PATH_MAX})`)
  return out
}
