/**
 * Path safety for layer entries: a tar path becomes a list of components
 * under the image root, or is refused.
 *
 * - A leading `/` means the image root: it is stripped (containerd's
 *   archive package and node-tar do the same), so `/etc/passwd` is
 *   `etc/passwd` of the image, never the host's.
 * - A `..` component is refused, wherever it is and even when the path
 *   would stay inside the root (node-tar refuses these too): a layer writer
 *   has no reason to write one, and refusing keeps one reading of the path.
 * - Refused too: NUL bytes, names that are not valid UTF-8 (checked on the
 *   raw bytes by the importer, see `decodeName`), a component longer than
 *   NAME_MAX (255 bytes) or a path longer than PATH_MAX (4095 bytes once
 *   normalised): the checkout could not create it (ENAMETOOLONG).
 * - `a/./b//c` is normalised lexically. A checkout never resolves through
 *   symlinks: it only creates entries below directories it created itself.
 */
import { ContentError } from '../errors'

/** Linux NAME_MAX: the longest component a filesystem takes, in bytes. */
export const NAME_MAX = 255
/** Linux PATH_MAX less the terminating NUL: the longest normalised path under the root, in bytes. */
export const PATH_MAX = 4095

function unsafe(name: string, what: string, why: string): never {
  throw new ContentError('content.unsafe-path', `unsafe layer ${what} ${JSON.stringify(name)}: ${why}`, { data: { path: name } })
}

/** Components of `name` under the root ([] is the root itself). Throws ContentError 'content.unsafe-path'. */
export function entryPathComponents(name: string, what = 'entry'): string[] {
  const refuse = (why: string): never => unsafe(name, what, why)
  if (name.includes('\0')) refuse('NUL byte in path')
  const out: string[] = []
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') refuse('a ".." component')
    if (Buffer.byteLength(part) > NAME_MAX) refuse(`component too long (${Buffer.byteLength(part)} bytes, at most ${NAME_MAX})`)
    out.push(part)
  }
  const length = out.reduce((n, c) => n + Buffer.byteLength(c) + 1, 0)
  if (length > PATH_MAX) refuse(`path too long (${length} bytes, at most ${PATH_MAX})`)
  return out
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * A tar name from its raw bytes. Store trees are JSON and a checkout
 * creates names from JS strings, so bytes that are not UTF-8 could not come
 * out as they went in: they are refused (as ostree refuses non-UTF-8 file
 * names), never replaced by U+FFFD.
 */
export function decodeName(raw: Buffer, what = 'entry'): string {
  try {
    return utf8.decode(raw)
  } catch {
    return unsafe(raw.toString('latin1'), what, 'not valid UTF-8 (the store keeps UTF-8 names only)')
  }
}

/** How resolveInRoot reads a tree: nodes, their children, and which are dirs or symlinks. */
export interface RootWalker<N> {
  root: N
  child(dir: N, name: string): N | undefined | Promise<N | undefined>
  isDir(node: N): boolean
  /** The target of a symlink node; undefined for any other node. */
  symlinkTarget(node: N): string | undefined
}

/** Linux's MAXSYMLINKS: more expansions than this is a loop. */
export const MAX_SYMLINKS = 40

export type Resolved<N> =
  | { found: N; path: string[] }
  /** Nothing at `path`; `dir` is the directory that lacks `path`'s next component (undefined: a non-directory was in the way). */
  | { missing: string[]; dir: N | undefined }

/**
 * Resolve a hardlink target inside the image root, as containerd's
 * hardlinkRootPath (fs.RootPath) and umoci's securejoin do: symlinks in the
 * parent components are followed as if the root were `/` (an absolute
 * target starts at the image root, `..` stops at it), the last component
 * is not followed (a hardlink to a symlink is that symlink). Nothing here
 * can name a path outside the root; a target that only exists outside it
 * comes back `missing`.
 */
export async function resolveInRoot<N>(w: RootWalker<N>, comps: string[], name: string): Promise<Resolved<N>> {
  let pending = [...comps]
  let hops = 0
  restart: for (;;) {
    let node = w.root
    const path: string[] = []
    for (let i = 0; i < pending.length; i++) {
      if (!w.isDir(node)) return { missing: [...path, ...pending.slice(i)], dir: undefined }
      const next = await w.child(node, pending[i])
      if (next === undefined) return { missing: [...path, ...pending.slice(i)], dir: node }
      const target = i < pending.length - 1 ? w.symlinkTarget(next) : undefined
      if (target !== undefined) {
        if (++hops > MAX_SYMLINKS) unsafe(name, 'hardlink target', `more than ${MAX_SYMLINKS} symlinks to follow`)
        const out = target.startsWith('/') ? [] : [...path]
        for (const part of [...target.split('/'), ...pending.slice(i + 1)]) {
          if (part === '' || part === '.') continue
          if (part === '..') out.pop()
          else out.push(part)
        }
        pending = out
        continue restart
      }
      path.push(pending[i])
      node = next
    }
    return { found: node, path }
  }
}
