/**
 * fsck: check everything in the store against its name and its references.
 *
 * - file objects: re-hashed exactly as the import named them (canonical
 *   header of mode, uid, gid, xattrs + the content, canonical.ts); a regular
 *   file is required. A host-added `security.selinux` label that the import
 *   did not set is tolerated.
 * - trees and commits: sha256 of the bytes equals the name; they parse; every
 *   object they name exists and is sound; trees reached from an image commit
 *   hold no layer-only entries; an image commit's layer commits are layer
 *   commits and its manifest and config blobs exist.
 * - layer records: name matches the blob digest; the commit exists, is a layer
 *   commit of that blob. blobs: the hash of the digest's algorithm (blobs/sha256
 *   or blobs/sha512) equals the name. image refs: parse,
 *   name an image commit, and their manifest, config and layer records exist.
 *
 * Checking holds the store lock (no publish happens meanwhile, so no false
 * "missing"); --repair runs under Store.withExclusive (no other process
 * using the store) and removes, top-down so a crash leaves a sound store,
 * every corrupt entry and everything that depends on one: refs, layer records,
 * commits, trees. A removed layer record makes the next pull fetch that
 * layer again; a removed ref must be pulled again.
 *
 * `users` (named commits, e.g. deployments) are checked against the corrupt
 * file objects: a checkout hardlinks its objects, so a corrupt object means a
 * corrupt checkout too; those are reported, never touched.
 */
import { closeSync, constants as fsc, createReadStream, lstatSync, openSync, promises as fsp, readFileSync, readSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join, resolve } from 'node:path'
import type { Digest } from '../oci/types'
import { fileObjectHeader, HEX64, sha256Hex } from './canonical'
import { fileObjectMeta } from './ownership'
import { digestRelPath, splitDigest } from './digest-path'
import { mapLimit, syncFilesystem } from './durable'
import { listStore, removeTreesTopDown } from './gc'
import type { ImageRecord, LayerRecord, Store } from './store'
import { Commit, decodeCommit, decodeTree, Tree } from './tree'
import { getXattrsUnder } from './xattr'

export type FsckProblemKind =
  | 'corrupt-object' // content does not match the name
  | 'malformed-object' // does not parse, or is not a regular file
  | 'missing-object' // something names an object, blob, record or commit that is not there
  | 'corrupt-blob'
  | 'bad-layer-record'
  | 'bad-ref'
  | 'unexpected-entry' // a file in objects/ that is no object name
  | 'corrupt-checkout' // a user (deployment) hardlinks a corrupt object

export interface FsckProblem {
  kind: FsckProblemKind
  /** Path relative to the store root (or the user's name for corrupt-checkout). */
  path: string
  what: string
  /** --repair removed the entry. */
  repaired?: boolean
}

export interface FsckUser {
  /** E.g. a deployment `etcd.0`. */
  name: string
  commit: string
}

export interface FsckOptions {
  repair?: boolean
  users?: FsckUser[]
  /** Progress: called with (checked, total) now and then. */
  onProgress?: (checked: number, total: number) => void
}

export interface FsckResult {
  /** Objects, layer records, blobs and refs checked. */
  objectsChecked: number
  problems: FsckProblem[]
  /** Paths (relative to the store root) that --repair removed, with why. */
  removed: { path: string; why: string }[]
  /** Users whose checkout shares a corrupt object. */
  affected: { name: string; commit: string; objects: string[]; example?: string }[]
  /** Problems not repaired (exit status). */
  remaining: number
}

const SELINUX = 'security.selinux'

/** One read buffer for every file object fsck hashes (synchronous loop, one at a time). */
let readBuf: Buffer | undefined

/**
 * sha256 of header(meta) + content for each candidate meta, one read of the
 * content: synchronous calls (open, read until EOF, close), as `sha256sum`
 * does, instead of a threadpool round trip per call.
 */
function hashFileSync(path: string, headers: Buffer[]): string[] {
  const hashes = headers.map((h) => createHash('sha256').update(h))
  readBuf ??= Buffer.allocUnsafe(1 << 20)
  const fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW)
  try {
    for (;;) {
      const n = readSync(fd, readBuf, 0, readBuf.length, null)
      if (n === 0) break
      const chunk = readBuf.subarray(0, n)
      for (const h of hashes) h.update(chunk)
    }
  } finally {
    closeSync(fd)
  }
  return hashes.map((h) => h.digest('hex'))
}

type Node =
  | { kind: 'file' }
  | { kind: 'tree'; tree: Tree }
  | { kind: 'commit'; commit: Commit }

/** Check the store; with `repair`, remove what is corrupt and what depends on it. */
export async function fsck(store: Store, opts: FsckOptions = {}): Promise<FsckResult> {
  const run = () => check(store, opts)
  return opts.repair ? store.withExclusive('repairing the store (fsck --repair)', run) : store.withLock('checking the store (fsck)', run)
}

async function check(store: Store, opts: FsckOptions): Promise<FsckResult> {
  const root = store.root
  const present = await listStore(root)
  const problems: FsckProblem[] = []
  const problem = (kind: FsckProblemKind, path: string, what: string): void => {
    problems.push({ kind, path, what })
  }
  const relObj = (name: string) => join('objects', name.slice(0, 2), name)
  const refFiles = (await fsp.readdir(join(root, 'refs', 'images')).catch(() => [] as string[])).sort()
  const total = present.objects.size + present.layers.length + present.blobs.length + refFiles.length
  let checked = 0
  const tick = () => {
    checked++
    if (checked % 1000 === 0) opts.onProgress?.(checked, total)
  }

  // ---- 1. every object against its name -----------------------------------
  /** Sound objects, by `<hex>.<ext>`. */
  const good = new Map<string, Node>()
  /** Corrupt or malformed objects (names). */
  const bad = new Set<string>()
  const files: string[] = []
  for (const [name, xx] of present.objects) {
    const m = /^([0-9a-f]{64})\.(file|tree|commit)$/.exec(name)
    if (!m || m[1].slice(0, 2) !== xx) {
      problem('unexpected-entry', join('objects', xx, name), 'not an object name (or in the wrong directory)')
      bad.add(`${xx}/${name}`)
      continue
    }
    if (m[2] === 'file') files.push(m[1])
  }
  // Trees and commits: small, read whole, one synchronous call each.
  for (const name of present.objects.keys()) {
    if (!/^[0-9a-f]{64}\.(tree|commit)$/.test(name)) continue
    const [hex, ext] = name.split('.')
    const bytes = readFileSync(join(root, relObj(name)))
    tick()
    if (sha256Hex(bytes) !== hex) {
      problem('corrupt-object', relObj(name), `${ext} content does not match its name (sha256 ${sha256Hex(bytes).slice(0, 12)}…)`)
      bad.add(name)
      continue
    }
    try {
      good.set(name, ext === 'tree' ? { kind: 'tree', tree: decodeTree(hex, bytes, true) } : { kind: 'commit', commit: decodeCommit(hex, bytes) })
    } catch (err) {
      problem('malformed-object', relObj(name), (err as Error).message)
      bad.add(name)
    }
  }
  // File objects: metadata + xattrs + content, hashed as the import did.
  // Xattrs: one getfattr walk of objects/ for the whole store (it prints only
  // the files that have any), not a process per batch of paths.
  const xattrs = await getXattrsUnder(store.objectsDir)
  for (const hex of files) {
    const name = `${hex}.file`
    const path = store.objectPath(hex, 'file')
    const st = lstatSync(path)
    tick()
    if (!st.isFile()) {
      problem('malformed-object', relObj(name), 'file object is not a regular file')
      bad.add(name)
      continue
    }
    let meta: ReturnType<typeof fileObjectMeta>
    try {
      meta = fileObjectMeta(st, (xattrs.size > 0 ? xattrs.get(resolve(path)) : undefined) ?? {}, name)
    } catch (err) {
      problem('corrupt-object', relObj(name), (err as Error).message)
      bad.add(name)
      continue
    }
    const x = meta.xattrs ?? {}
    const headers = [fileObjectHeader(meta)]
    if (x[SELINUX] !== undefined) {
      const { [SELINUX]: _label, ...rest } = x
      headers.push(fileObjectHeader({ ...meta, xattrs: rest }))
    }
    const got = hashFileSync(path, headers)
    if (got.includes(hex)) {
      good.set(name, { kind: 'file' })
      continue
    }
    problem('corrupt-object', relObj(name), `file content or metadata does not match its name (mode ${(meta.mode & 0o7777).toString(8)}, uid ${meta.uid}, gid ${meta.gid}, ${st.size} bytes)`)
    bad.add(name)
  }

  // ---- 2. blobs ---------------------------------------------------------------
  const goodBlobs = new Set<string>()
  await mapLimit(present.blobs, 8, async (d) => {
    const { algorithm, hex } = splitDigest(d)
    const rel = digestRelPath('blobs', d)
    const h = createHash(algorithm)
    for await (const chunk of createReadStream(join(root, rel))) h.update(chunk as Buffer)
    tick()
    if (h.digest('hex') === hex) goodBlobs.add(d)
    else problem('corrupt-blob', rel, 'blob content does not match its digest')
  })
  const blobPresent = new Set<string>(present.blobs)
  const layerPresent = new Set<string>(present.layers)

  // ---- 3. references ------------------------------------------------------------
  /** Objects that are missing or unsound, or name such an object (memoised). */
  const brokenMemo = new Map<string, boolean>()
  const reported = new Set<string>()
  const missing = (referrer: string, what: string): void => {
    const key = `${referrer}|${what}`
    if (reported.has(key)) return
    reported.add(key)
    problem('missing-object', referrer, what)
  }
  const isBroken = (name: string, image = false): boolean => {
    const memoKey = image ? `${name}|image` : name
    const memo = brokenMemo.get(memoKey)
    if (memo !== undefined) return memo
    brokenMemo.set(memoKey, false) // DAG: no cycles, but be safe
    const node = good.get(name)
    let broken = false
    if (!node) broken = true
    else if (node.kind === 'tree') {
      const hex = name.slice(0, 64)
      for (const [entryName, e] of Object.entries(node.tree.entries)) {
        if (image && (e.type === 'whiteout' || e.type === 'hardlink' || (e.type === 'dir' && (e.opaque || e.implicit)))) {
          if (!reported.has(`layer-only|${hex}`)) {
            reported.add(`layer-only|${hex}`)
            problem('malformed-object', relObj(name), `image tree holds a layer-only entry ${JSON.stringify(entryName)}`)
          }
          broken = true
        }
        const dep = e.type === 'file' ? `${e.object}.file` : e.type === 'dir' ? `${e.tree}.tree` : undefined
        if (!dep) continue
        if (!present.objects.has(dep)) missing(relObj(name), `tree names ${dep.endsWith('file') ? 'file object' : 'tree'} ${dep.slice(0, 64)} (${entryName}), which is missing`)
        if (isBroken(dep, image)) broken = true
      }
    } else if (node.kind === 'commit') {
      const c = node.commit
      const rootTree = `${c.root.tree}.tree`
      if (!present.objects.has(rootTree)) missing(relObj(name), `commit names root tree ${c.root.tree}, which is missing`)
      if (isBroken(rootTree, c.kind === 'image')) broken = true
      if (c.kind === 'image') {
        for (const l of c.layers ?? []) {
          const lc = `${l.commit}.commit`
          if (!present.objects.has(lc)) missing(relObj(name), `image commit names layer commit ${l.commit}, which is missing`)
          if (isBroken(lc)) broken = true
          else if ((good.get(lc) as { commit: Commit }).commit.kind !== 'layer') {
            problem('malformed-object', relObj(name), `image commit names ${l.commit} as a layer, but it is an image commit`)
            broken = true
          }
        }
        for (const d of [c.manifestDigest, c.configDigest]) {
          if (!goodBlobs.has(String(d))) {
            if (!blobPresent.has(String(d))) missing(relObj(name), `image commit names blob ${d}, which is missing`)
            broken = true
          }
        }
      }
    }
    brokenMemo.set(memoKey, broken)
    return broken
  }
  for (const name of good.keys()) if (!name.endsWith('.file')) isBroken(name)

  // Layer records
  /** Layer records (by blob digest) that are unsound or name something unsound. */
  const brokenLayers = new Set<Digest>()
  for (const d of present.layers) {
    tick()
    const path = digestRelPath('layers', d)
    let rec: LayerRecord
    try {
      rec = JSON.parse(await fsp.readFile(join(root, path), 'utf8')) as LayerRecord
    } catch (err) {
      problem('bad-layer-record', path, `unreadable: ${(err as Error).message}`)
      brokenLayers.add(d)
      continue
    }
    const commitName = `${rec.commit}.commit`
    if (rec.blobDigest !== d) {
      problem('bad-layer-record', path, `record is for ${String(rec.blobDigest)}, not ${d}`)
      brokenLayers.add(d)
    } else if (typeof rec.commit !== 'string' || !HEX64.test(rec.commit)) {
      problem('bad-layer-record', path, 'record names no commit')
      brokenLayers.add(d)
    } else if (!present.objects.has(commitName)) {
      missing(path, `layer record names commit ${rec.commit}, which is missing`)
      brokenLayers.add(d)
    } else if (isBroken(commitName)) brokenLayers.add(d)
    else {
      const c = (good.get(commitName) as { commit: Commit }).commit
      if (c.kind !== 'layer' || c.blobDigest !== rec.blobDigest) {
        problem('bad-layer-record', path, `commit ${rec.commit} is not the layer commit of ${rec.blobDigest}`)
        brokenLayers.add(d)
      }
    }
  }

  // Refs
  const refsDir = join(root, 'refs', 'images')
  const brokenRefs: string[] = []
  for (const f of refFiles) {
    checked++
    const path = join('refs', 'images', f)
    let rec: ImageRecord
    try {
      rec = JSON.parse(await fsp.readFile(join(refsDir, f), 'utf8')) as ImageRecord
    } catch (err) {
      problem('bad-ref', path, `unreadable: ${(err as Error).message}`)
      brokenRefs.push(f)
      continue
    }
    const commitName = `${rec.commit}.commit`
    let broken = false
    if (typeof rec.commit !== 'string' || !HEX64.test(rec.commit)) {
      problem('bad-ref', path, 'ref names no commit')
      broken = true
    } else if (!present.objects.has(commitName)) {
      missing(path, `image ${rec.reference} names commit ${rec.commit}, which is missing`)
      broken = true
    } else if (isBroken(commitName)) broken = true
    else if ((good.get(commitName) as { commit: Commit }).commit.kind !== 'image') {
      problem('bad-ref', path, `commit ${rec.commit} is not an image commit`)
      broken = true
    }
    for (const d of [rec.manifestDigest, rec.configDigest]) {
      if (goodBlobs.has(String(d))) continue
      if (!blobPresent.has(String(d))) missing(path, `image ${rec.reference} names blob ${d}, which is missing`)
      broken = true
    }
    for (const l of rec.layers ?? []) {
      if (!layerPresent.has(String(l))) {
        missing(path, `image ${rec.reference} names layer ${l}, which has no layer record`)
        broken = true
      } else if (brokenLayers.has(l)) broken = true
    }
    if (broken) brokenRefs.push(f)
  }

  // ---- 4. users sharing corrupt objects ---------------------------------------
  const corruptFiles = new Set([...bad].filter((n) => n.endsWith('.file')).map((n) => n.slice(0, 64)))
  const affected: FsckResult['affected'] = []
  for (const u of opts.users ?? []) {
    const c = good.get(`${u.commit}.commit`)
    if (!c || c.kind !== 'commit' || corruptFiles.size === 0) continue
    const hits = new Set<string>()
    let example: string | undefined
    const seen = new Set<string>()
    const walk = (treeHex: string, prefix: string): void => {
      if (seen.has(treeHex)) return
      seen.add(treeHex)
      const t = good.get(`${treeHex}.tree`)
      if (!t || t.kind !== 'tree') return
      for (const [n, e] of Object.entries(t.tree.entries)) {
        if (e.type === 'file' && corruptFiles.has(e.object)) {
          hits.add(e.object)
          example ??= `${prefix}${n}`
        } else if (e.type === 'dir') walk(e.tree, `${prefix}${n}/`)
      }
    }
    walk(c.commit.root.tree, '/')
    if (hits.size > 0) {
      affected.push({ name: u.name, commit: u.commit, objects: [...hits], example })
      problem('corrupt-checkout', u.name, `${u.name} hardlinks ${hits.size} corrupt object${hits.size === 1 ? '' : 's'} (e.g. ${example}): its files are corrupt too`)
    }
  }

  const result: FsckResult = { objectsChecked: checked, problems, removed: [], affected, remaining: 0 }
  if (opts.repair) await repair(store, { present, good, bad, brokenMemo, brokenLayers, brokenRefs, problems, removed: result.removed })
  result.remaining = problems.filter((p) => !p.repaired).length
  opts.onProgress?.(checked, total)
  return result
}

async function repair(
  store: Store,
  s: {
    present: Awaited<ReturnType<typeof listStore>>
    good: Map<string, Node>
    bad: Set<string>
    brokenMemo: Map<string, boolean>
    brokenLayers: Set<Digest>
    brokenRefs: string[]
    problems: FsckProblem[]
    removed: { path: string; why: string }[]
  },
): Promise<void> {
  const root = store.root
  const removedPaths = new Set<string>()
  const rm = async (rel: string, why: string): Promise<boolean> => {
    try {
      await fsp.unlink(join(root, rel))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      return false
    }
    removedPaths.add(rel)
    s.removed.push({ path: rel, why })
    return true
  }
  const relObj = (name: string) => join('objects', name.slice(0, 2), name)
  const dependsWhy = 'depends on a corrupt or missing object'
  const whyOf = (rel: string) => (s.problems.some((p) => p.path === rel) ? 'corrupt' : dependsWhy)
  const flush = () => syncFilesystem(root)

  for (const f of s.brokenRefs) await rm(join('refs', 'images', f), whyOf(join('refs', 'images', f)))
  for (const d of s.brokenLayers) await rm(digestRelPath('layers', d), whyOf(digestRelPath('layers', d)))
  await flush()
  const brokenNames = [...s.present.objects.keys()].filter((n) => s.bad.has(n) || s.brokenMemo.get(n) === true || s.brokenMemo.get(`${n}|image`) === true)
  const kindOf = (n: string) => {
    const node = s.good.get(n)
    return node?.kind === 'commit' ? node.commit.kind : undefined
  }
  for (const pass of [(n: string) => kindOf(n) !== 'layer', (n: string) => kindOf(n) === 'layer']) {
    for (const n of brokenNames) if (n.endsWith('.commit') && pass(n)) await rm(relObj(n), whyOf(relObj(n)))
    await flush()
  }
  await removeTreesTopDown(
    store,
    brokenNames.filter((n) => n.endsWith('.tree')).map((n) => n.slice(0, 64)),
    (hex) => rm(relObj(`${hex}.tree`), whyOf(relObj(`${hex}.tree`))),
  )
  await flush()
  for (const n of brokenNames) if (n.endsWith('.file')) await rm(relObj(n), 'corrupt')
  for (const p of s.problems) if (p.kind === 'unexpected-entry' && (await rm(p.path, 'not an object'))) p.repaired = true
  for (const p of s.problems) if (p.kind === 'corrupt-blob') await rm(p.path, 'corrupt')
  await flush()
  for (const p of s.problems) if (removedPaths.has(p.path)) p.repaired = true
}
