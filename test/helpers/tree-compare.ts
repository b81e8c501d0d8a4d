/**
 * Compare two directory trees on disk and report the FIRST difference:
 * type, mode (incl. setuid/setgid/sticky), uid, gid, content, symlink target,
 * device numbers, xattrs, hardlink groups. Timestamps are not compared
 * (sysctr does not keep them).
 *
 * Hardlinks: `expected`'s groups must hold in `actual` (files hardlinked in
 * `expected` are hardlinked in `actual`); `actual` may link more (sysctr
 * shares one inode per identical object).
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { getXattrs } from '../../src/store/xattr'

export interface TreeDifference {
  path: string
  what: 'missing' | 'extra' | 'type' | 'mode' | 'uid' | 'gid' | 'content' | 'symlink' | 'device' | 'xattrs' | 'hardlink-group'
  expected?: unknown
  actual?: unknown
}

export interface CompareOptions {
  /** Paths (relative, `/`-separated) to skip, with everything below. */
  ignore?: string[]
  /** Compare xattrs (default true). */
  xattrs?: boolean
  /** Skip the root's own metadata (default false). */
  ignoreRoot?: boolean
}

function kind(mode: number): string {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file'
    case 0o040000:
      return 'dir'
    case 0o120000:
      return 'symlink'
    case 0o020000:
      return 'char'
    case 0o060000:
      return 'block'
    case 0o010000:
      return 'fifo'
    default:
      return 'other'
  }
}

async function fileHash(p: string): Promise<string> {
  const h = createHash('sha256')
  const fh = await fsp.open(p, 'r')
  try {
    for await (const chunk of fh.createReadStream()) h.update(chunk as Buffer)
  } finally {
    await fh.close().catch(() => undefined)
  }
  return h.digest('hex')
}

export async function compareTrees(expectedRoot: string, actualRoot: string, opts: CompareOptions = {}): Promise<TreeDifference | undefined> {
  const ignore = new Set(opts.ignore ?? [])
  const expInodes = new Map<string, string>() // "dev:ino" -> first path
  const actInodes = new Map<string, bigint>() // path -> ino (actual)
  const groups: [string, string][] = [] // pairs that must share an inode in actual
  const xattrPaths: string[] = []

  const visit = async (rel: string): Promise<TreeDifference | undefined> => {
    const ep = join(expectedRoot, rel)
    const ap = join(actualRoot, rel)
    const es = await fsp.lstat(ep, { bigint: true })
    let as
    try {
      as = await fsp.lstat(ap, { bigint: true })
    } catch {
      return { path: rel || '/', what: 'missing' }
    }
    const ek = kind(Number(es.mode))
    const ak = kind(Number(as.mode))
    if (ek !== ak) return { path: rel || '/', what: 'type', expected: ek, actual: ak }
    const isRoot = rel === ''
    if (!(isRoot && opts.ignoreRoot)) {
      if (ek !== 'symlink' && (es.mode & 0o7777n) !== (as.mode & 0o7777n))
        return { path: rel || '/', what: 'mode', expected: (es.mode & 0o7777n).toString(8), actual: (as.mode & 0o7777n).toString(8) }
      if (es.uid !== as.uid) return { path: rel || '/', what: 'uid', expected: es.uid, actual: as.uid }
      if (es.gid !== as.gid) return { path: rel || '/', what: 'gid', expected: es.gid, actual: as.gid }
      if (ek !== 'symlink') xattrPaths.push(rel)
    }
    if (ek === 'symlink') {
      const [et, at] = [await fsp.readlink(ep), await fsp.readlink(ap)]
      if (et !== at) return { path: rel, what: 'symlink', expected: et, actual: at }
    } else if (ek === 'char' || ek === 'block') {
      if (es.rdev !== as.rdev) return { path: rel, what: 'device', expected: es.rdev, actual: as.rdev }
    } else if (ek === 'file') {
      if (es.size !== as.size || (await fileHash(ep)) !== (await fileHash(ap))) return { path: rel, what: 'content' }
      const key = `${es.dev}:${es.ino}`
      const first = expInodes.get(key)
      if (first !== undefined) groups.push([first, rel])
      else expInodes.set(key, rel)
      actInodes.set(rel, as.ino)
    } else if (ek === 'dir') {
      const en = (await fsp.readdir(ep)).sort()
      const an = (await fsp.readdir(ap)).sort()
      const eset = new Set(en)
      for (const n of an) {
        const r = rel ? `${rel}/${n}` : n
        if (!eset.has(n) && !ignore.has(r)) return { path: r, what: 'extra' }
      }
      for (const n of en) {
        const r = rel ? `${rel}/${n}` : n
        if (ignore.has(r)) continue
        const d = await visit(r)
        if (d) return d
      }
    }
    return undefined
  }

  const d = await visit('')
  if (d) return d
  for (const [a, b] of groups) {
    if (actInodes.get(a) !== actInodes.get(b)) return { path: b, what: 'hardlink-group', expected: `same inode as ${a}` }
  }
  if (opts.xattrs !== false && xattrPaths.length) {
    const ex = await getXattrs(xattrPaths.map((p) => join(expectedRoot, p)))
    const ax = await getXattrs(xattrPaths.map((p) => join(actualRoot, p)))
    for (const p of xattrPaths) {
      const e = ex.get(join(expectedRoot, p)) ?? {}
      const a = ax.get(join(actualRoot, p)) ?? {}
      const norm = (x: Record<string, string>): string => JSON.stringify(Object.keys(x).sort().map((k) => [k, x[k]]))
      if (norm(e) !== norm(a)) return { path: p || '/', what: 'xattrs', expected: e, actual: a }
    }
  }
  return undefined
}
