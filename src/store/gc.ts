/**
 * Garbage collection: mark and sweep, under the store lock with no other
 * process's lease live (Store.withExclusive), so nothing a pull or checkout
 * is using can go.
 *
 * Mark: the roots are every image ref's commit plus the commits the caller
 * passes (deployments' image commits; the store knows nothing of
 * deployments). From an image commit: its tree graph and file objects, its
 * manifest and config blobs, and each layer's commit (with that layer's
 * trees and files) and layer record, so a later pull sharing the layer need
 * not fetch it again.
 *
 * Sweep, in this order, with a filesystem flush between steps: layer
 * records, image commits, layer commits, trees (parents before children),
 * file objects, blobs. Whatever a crash leaves is then still whole: nothing
 * left behind names something already removed (fsck stays clean), and the
 * next gc finishes the job.
 *
 * Blobs and layer records are keyed by digest (algorithm and hex): both
 * blobs/sha256 and blobs/sha512 (layers/ likewise) are listed and swept.
 *
 * A missing or unreadable object reachable from a root stops gc before any
 * sweep (ContentError 'store.gc-broken'): run fsck --repair first. A root
 * commit that is not in the store is skipped and reported.
 */
import { promises as fsp, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ContentError } from '../errors'
import type { Digest } from '../oci/types'
import { isDigest } from '../reference/digest'
import { HEX64 } from './canonical'
import { digestRelPath, listDigests } from './digest-path'
import { syncFilesystem } from './durable'
import type { LayerRecord, Store } from './store'
import { Commit, decodeCommit, decodeTree } from './tree'

export interface GcOptions {
  /** Extra root commits (hex): e.g. the image commits of deployments. */
  roots?: string[]
  /** Only report what would be removed. */
  dryRun?: boolean
}

export interface GcResult {
  /** Store entries removed: objects, layer records and blobs. */
  objectsRemoved: number
  /** Bytes of the removed entries whose last link went (a file object still hardlinked by a checkout frees nothing). */
  bytesFreed: number
  commitsRemoved: number
  treesRemoved: number
  filesRemoved: number
  layersRemoved: number
  blobsRemoved: number
  /** Removed file objects that a checkout still links (their space is freed when that checkout goes). */
  stillLinked: number
  /** Objects, records and blobs kept. */
  kept: number
  /** Root commits given that the store does not have. */
  missingRoots: string[]
}

type Ext = 'file' | 'tree' | 'commit'

interface Present {
  /** `<hex>.<ext>` -> relative dir (XX) */
  objects: Map<string, string>
  /** Layer records present, by blob digest (`sha256:…` or `sha512:…`). */
  layers: Digest[]
  /** Blobs present, by digest. */
  blobs: Digest[]
}

async function listDir(dir: string): Promise<string[]> {
  return fsp.readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[]
    throw err
  })
}

/** Every well-formed entry of objects/, layers/<alg>, blobs/<alg> (alg sha256, sha512). Anything else is left alone. */
export async function listStore(root: string): Promise<Present> {
  const objects = new Map<string, string>()
  for (const xx of (await listDir(join(root, 'objects'))).sort()) {
    if (!/^[0-9a-f]{2}$/.test(xx)) continue
    for (const name of await listDir(join(root, 'objects', xx))) objects.set(name, xx)
  }
  const layers = await listDigests(root, 'layers')
  const blobs = await listDigests(root, 'blobs')
  return { objects, layers, blobs }
}

function broken(what: string, cause?: unknown): never {
  throw new ContentError('store.gc-broken', `cannot prune: ${what}`, { hint: 'run sysctr fsck --repair, then prune again', cause })
}

/** The mark phase: everything reachable from the refs and `extraRoots`. */
async function mark(store: Store, extraRoots: string[]): Promise<{ objects: Set<string>; blobs: Set<string>; layers: Set<string>; missingRoots: string[] }> {
  const objects = new Set<string>()
  const blobs = new Set<string>()
  const layers = new Set<string>()
  const missingRoots: string[] = []
  const roots: { commit: string; required: boolean }[] = []
  for (const { name, record } of await store.listImageRefs()) {
    if (!HEX64.test(String(record.commit))) broken(`image ref ${name} names no commit`)
    roots.push({ commit: record.commit, required: true })
    for (const d of [record.manifestDigest, record.configDigest]) if (isDigest(d)) blobs.add(d)
    for (const l of record.layers ?? []) if (isDigest(l)) layers.add(l)
  }
  for (const c of extraRoots) roots.push({ commit: c, required: false })

  // Trees and commits are small: one synchronous read each (gc holds the
  // store exclusively, nothing else waits on this thread).
  const readObject = (hex: string, ext: Ext): Buffer | undefined => {
    try {
      return readFileSync(store.objectPath(hex, ext as 'tree'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }
  const markTree = async (hex: string): Promise<void> => {
    const stack = [hex]
    while (stack.length) {
      const t = stack.pop()!
      const name = `${t}.tree`
      if (objects.has(name)) continue
      const bytes = readObject(t, 'tree')
      if (!bytes) broken(`tree ${t} is missing`)
      let tree
      try {
        tree = decodeTree(t, bytes, true)
      } catch (err) {
        broken(`tree ${t} is corrupt`, err)
      }
      objects.add(name)
      for (const e of Object.values(tree.entries)) {
        if (e.type === 'file') objects.add(`${e.object}.file`)
        else if (e.type === 'dir') stack.push(e.tree)
      }
    }
  }
  /** Commits marked so far, with their kind: each commit is read and walked once. */
  const marked = new Map<string, Commit['kind']>()
  const markCommit = async (hex: string, required: boolean, wantKind?: 'layer'): Promise<void> => {
    if (!HEX64.test(hex)) return broken(`${JSON.stringify(hex)} is not a commit id`)
    const kind = marked.get(hex)
    if (kind !== undefined) {
      if (wantKind && kind !== wantKind) broken(`commit ${hex} is not a layer commit`)
      return
    }
    const bytes = readObject(hex, 'commit')
    if (!bytes) {
      if (required) broken(`commit ${hex} is missing`)
      missingRoots.push(hex)
      return undefined
    }
    let c: Commit
    try {
      c = decodeCommit(hex, bytes)
    } catch (err) {
      return broken(`commit ${hex} is corrupt`, err)
    }
    if (wantKind && c.kind !== wantKind) broken(`commit ${hex} is not a layer commit`)
    marked.set(hex, c.kind)
    objects.add(`${hex}.commit`)
    await markTree(c.root.tree)
    if (c.kind === 'image') {
      blobs.add(c.manifestDigest)
      blobs.add(c.configDigest)
      for (const l of c.layers) {
        layers.add(l.blobDigest)
        await markCommit(l.commit, true, 'layer')
      }
    }
  }
  for (const r of roots) await markCommit(r.commit, r.required)
  // A kept layer record keeps its layer commit (a record never names a missing commit).
  for (const d of layers) {
    if (!isDigest(d)) continue
    let rec: LayerRecord | undefined
    try {
      rec = JSON.parse(readFileSync(join(store.root, digestRelPath('layers', d)), 'utf8')) as LayerRecord
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      broken(`layer record ${d} is unreadable`, err)
    }
    if (rec && HEX64.test(String(rec.commit))) await markCommit(rec.commit, true, 'layer')
  }
  return { objects, blobs, layers, missingRoots }
}

/** Mark and sweep (see the top of this file). Waits for other processes' leases. */
export async function gc(store: Store, opts: GcOptions = {}): Promise<GcResult> {
  return store.withExclusive('pruning unreachable objects', async () => {
    const present = await listStore(store.root)
    const live = await mark(store, opts.roots ?? [])
    const result: GcResult = {
      objectsRemoved: 0,
      bytesFreed: 0,
      commitsRemoved: 0,
      treesRemoved: 0,
      filesRemoved: 0,
      layersRemoved: 0,
      blobsRemoved: 0,
      stillLinked: 0,
      kept: 0,
      missingRoots: live.missingRoots,
    }
    const remove = async (path: string): Promise<boolean> => {
      let st
      try {
        st = await fsp.lstat(path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
        throw err
      }
      if (!opts.dryRun) await fsp.unlink(path)
      unflushed++
      result.objectsRemoved++
      if (st.nlink <= 1) result.bytesFreed += st.size
      else result.stillLinked++
      return true
    }
    // A flush orders one sweep step before the next: needed only when the step removed something.
    let unflushed = 0
    const flush = async (): Promise<void> => {
      if (!opts.dryRun && unflushed > 0) await syncFilesystem(store.root)
      unflushed = 0
    }

    // 1. layer records
    for (const d of present.layers) {
      if (live.layers.has(d)) result.kept++
      else if (await remove(join(store.root, digestRelPath('layers', d)))) result.layersRemoved++
    }
    await flush()
    // 2. commits: image commits first (they name layer commits)
    const deadCommits: { name: string; kind: string }[] = []
    const deadTrees: string[] = []
    const deadFiles: string[] = []
    for (const [name] of present.objects) {
      if (live.objects.has(name)) {
        result.kept++
        continue
      }
      const m = /^([0-9a-f]{64})\.(file|tree|commit)$/.exec(name)
      if (!m) continue
      if (m[2] === 'commit') {
        let kind = 'unknown'
        try {
          kind = decodeCommit(m[1], await fsp.readFile(store.objectPath(m[1], 'commit'))).kind
        } catch {
          /* unreadable: remove with the image commits */
        }
        deadCommits.push({ name: m[1], kind })
      } else if (m[2] === 'tree') deadTrees.push(m[1])
      else deadFiles.push(m[1])
    }
    for (const pass of [(k: string) => k !== 'layer', (k: string) => k === 'layer']) {
      for (const c of deadCommits) if (pass(c.kind) && (await remove(store.objectPath(c.name, 'commit')))) result.commitsRemoved++
      await flush()
    }
    // 3. trees, parents before children
    result.treesRemoved += await removeTreesTopDown(store, deadTrees, (t) => remove(store.objectPath(t, 'tree')))
    await flush()
    // 4. file objects
    for (const f of deadFiles) if (await remove(store.objectPath(f, 'file'))) result.filesRemoved++
    // 5. blobs
    for (const d of present.blobs) {
      if (live.blobs.has(d)) result.kept++
      else if (await remove(join(store.root, digestRelPath('blobs', d)))) result.blobsRemoved++
    }
    await flush()
    return result
  })
}

/**
 * Remove trees (hex) so that no tree is removed before another tree of the
 * set that names it (Kahn's order): a crash never leaves a remaining tree
 * naming a removed one. Returns how many `remove` reported removed.
 */
export async function removeTreesTopDown(store: Store, trees: string[], remove: (hex: string) => Promise<boolean>): Promise<number> {
  const children = new Map<string, string[]>()
  const parents = new Map<string, number>(trees.map((t) => [t, 0]))
  for (const t of trees) {
    let kids: string[] = []
    try {
      const tree = decodeTree(t, await fsp.readFile(store.objectPath(t, 'tree')), true)
      kids = Object.values(tree.entries).flatMap((e) => (e.type === 'dir' && parents.has(e.tree) ? [e.tree] : []))
    } catch {
      /* missing or corrupt: nothing to order below it */
    }
    children.set(t, [...new Set(kids)])
    for (const k of children.get(t)!) parents.set(k, (parents.get(k) ?? 0) + 1)
  }
  let removed = 0
  let ready = trees.filter((t) => parents.get(t) === 0)
  const done = new Set<string>()
  while (ready.length) {
    const next: string[] = []
    for (const t of ready) {
      done.add(t)
      if (await remove(t)) removed++
      for (const k of children.get(t) ?? []) {
        const n = (parents.get(k) ?? 1) - 1
        parents.set(k, n)
        if (n === 0) next.push(k)
      }
    }
    ready = next
  }
  // Cycles cannot happen with content addressing; remove anything left anyway.
  for (const t of trees) if (!done.has(t) && (await remove(t))) removed++
  return removed
}
