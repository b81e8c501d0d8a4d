/**
 * The content-addressed store: an OSTree-like object store for OCI images.
 *
 * Layout under the root (e.g. /var/lib/sysctr/store):
 *   format                      "sysctr-store 1"; open() refuses any other version
 *   lock, lock.break            the writer lock (see lock.ts)
 *   tmp/                        staging dirs and temp files (same filesystem); a dead
 *                               process's leftovers are removed on open
 *   objects/XX/<hex>.file       regular-file content, "bare" mode: the object itself
 *                               carries mode (incl. setuid/setgid/sticky), uid, gid and
 *                               xattrs (incl. security.capability); mtime 0. File
 *                               timestamps are not kept. <hex> = sha256 of a canonical
 *                               metadata header + the content (canonical.ts)
 *   objects/XX/<hex>.tree       canonical JSON directory (tree.ts)
 *   objects/XX/<hex>.commit     canonical JSON commit: kind 'layer' | 'image' (tree.ts)
 *   blobs/<alg>/<hex>           manifest and config JSON, verified on put and get with
 *                               the digest's own algorithm; alg sha256 or sha512
 *                               (digest-path.ts; an absent blobs/sha512 is empty)
 *   layers/<alg>/<hex>          LayerRecord per layer BLOB digest (sha256 or sha512)
 *   refs/images/<escaped name>  ImageRecord
 *   leases/<pid>-<start>-<rand> symlink whose target is JSON {pid, start, what, since}:
 *                               a live process that reads or writes the store
 *                               (see "Leases" below)
 *
 * Leases (gc and checkout/pull safety): a process takes a lease, under the
 * lock, before its first read of a commit, tree, layer record, blob or ref,
 * and keeps it until close() or its exit (a dead process's lease is ignored
 * and removed). gc and fsck --repair (`withExclusive`) hold the lock AND wait
 * until no other process holds a live lease, releasing the lock between
 * polls; since leases are only created under the lock, none appears while
 * they work. So objects a pull has staged or published but not yet named by
 * a ref, and objects a checkout is linking, are never swept under it.
 * Leases of the calling process itself are not waited for: within one
 * process, do not run gc concurrently with a pull (the CLI never does).
 *
 * Invariants:
 * - Objects are immutable and named by their content; put is idempotent. One
 *   file object per distinct (content, metadata).
 * - Every write is temp-on-the-same-filesystem, flush, rename. An import
 *   stages objects in tmp/ without the lock, then under the lock flushes once
 *   (syncfs), links them into objects/ (link(2): never replaces an object published meanwhile), flushes, and only then writes the
 *   commit and the layer record (temp, fsync, rename, fsync dir). A crash
 *   leaves only tmp/ leftovers. Refs are replaced atomically the same way.
 * - Writers (publishing an import or image commit, refs, gc) hold the lock
 *   (lock.ts), briefly. Readers take no lock.
 * - A layer blob is imported once (layers/ record); its stream is verified
 *   against the descriptor's digest and size while read, and nothing is
 *   published unless the whole blob was read and matched.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { createHash } from 'node:crypto'
import { closeSync, openSync, promises as fsp, readFileSync, readSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { Readable } from 'node:stream'
import { ContentError, HostError, NotFoundError, UsageError } from '../errors'
import type { Descriptor, Digest } from '../oci/types'
import { checkout as checkoutTree, CheckoutOptions, CheckoutStats } from '../checkout/checkout'
import { entryPathComponents } from '../checkout/safe-path'
import { formatBytes } from '../util/format-bytes'
import { hostFault } from '../util/host-faults'
import { checkStoreOwner } from './ownership'
import { makeDirs } from '../util/make-dirs'
import { HEX64 } from './canonical'
import { digestRelPath, splitDigest, STORE_ALGORITHMS } from './digest-path'
import { ownerTag, randomId, writeFileDurable } from './durable'
import { mergeLayers } from './image-commit'
import { stageLayer } from './layer-import'
import { currentHolder, isAlive, LockHolder, StoreLock } from './lock'
import { objectRelPath, Transaction } from './transaction'
import { Commit, decodeCommit, decodeTree, encodeObject, ImageCommit, Tree, TreeEntry } from './tree'

export const STORE_FORMAT = 'sysctr-store 1'

export interface StoreOptions {
  /** Called while waiting for another process's lock ("waiting for store lock held by pid N (installing etcd)"). */
  onWait?: (message: string, holder: LockHolder) => void
  /** Give up waiting for the lock after this many ms (ConflictError 'store.locked'); default: wait. */
  lockTimeoutMs?: number
  /** What this process is doing, shown to a gc waiting for its lease (default: the command line). */
  purpose?: string
}

/** What the store keeps per imported layer blob (layers/<alg>/<hex>). */
export interface LayerRecord {
  blobDigest: Digest
  diffID: Digest
  /** The layer commit (hex). */
  commit: string
  mediaType: string
  compressedSize: number
  uncompressedSize: number
  entries: number
}

export interface ImportResult {
  blobDigest: Digest
  diffID: Digest
  commit: string
  /** New objects of any kind (files, trees, commit) this import published. */
  objectsAdded: number
  /** New file objects and their bytes. */
  filesAdded: number
  bytesAdded: number
  entries: number
  /** The layer was in the store already; nothing was read. */
  existing: boolean
  record: LayerRecord
}

/** A named image (refs/images/<escaped name>). */
export interface ImageRecord {
  reference: string
  manifestDigest: Digest
  configDigest: Digest
  /** The image commit (hex). */
  commit: string
  /** Layer blob digests, bottom first. */
  layers: Digest[]
  [extra: string]: unknown
}

export interface CommitImageInput {
  manifestDigest: Digest
  configDigest: Digest
  /** Bottom layer first. */
  layers: LayerRecord[]
}

export interface WalkEntry {
  /** Path under the root, `/`-separated, no leading slash. */
  path: string
  entry: TreeEntry
}

/** File name for a ref: percent-encoding, dots too, so no name is `.`/`..` or holds `/`. */
export function escapeRefName(name: string): string {
  if (name === '') throw new UsageError('store.bad-ref-name', 'empty image name')
  const esc = encodeURIComponent(name).replace(/[.!'()*~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  if (esc.length > 250) throw new UsageError('store.bad-ref-name', `image name too long: ${name.slice(0, 40)}…`)
  return esc
}

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await fsp.readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/**
 * Tree objects are small (a directory listing): read with one synchronous
 * call on the main thread, not four threadpool round trips (open, fstat,
 * read, close). A checkout of 2,361 directories spent most of its time there.
 */
function readSmallIfExists(path: string): Buffer | undefined {
  try {
    return readFileSync(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Reused by readTreeBytes: tree objects are read one at a time, on the main thread. */
let treeBuf = Buffer.allocUnsafe(64 * 1024)

/**
 * A tree object's bytes (a view into a reused buffer, valid until the next
 * call: decodeTree copies out of it), or undefined if it does not exist.
 * open + read + close: no fstat and no buffer per tree as readFileSync has.
 */
function readTreeBytes(path: string): Buffer | undefined {
  let fd: number
  try {
    fd = openSync(path, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    let len = 0
    for (;;) {
      if (len === treeBuf.length) {
        const bigger = Buffer.allocUnsafe(treeBuf.length * 2)
        treeBuf.copy(bigger, 0, 0, len)
        treeBuf = bigger
      }
      const n = readSync(fd, treeBuf, len, treeBuf.length - len, null)
      if (n === 0) break
      len += n
    }
    return treeBuf.subarray(0, len)
  } finally {
    closeSync(fd)
  }
}

const TREE_CACHE_MAX = 20000

export class Store {
  readonly objectsDir: string
  readonly tmpDir: string
  private readonly treeCache = new Map<string, Tree>()
  private readonly lockScope = new AsyncLocalStorage<boolean>()
  private lockQueue: Promise<unknown> = Promise.resolve()
  private lease?: Promise<string>
  private exclusiveDepth = 0

  private constructor(
    readonly root: string,
    private readonly opts: StoreOptions,
  ) {
    this.objectsDir = join(root, 'objects')
    this.tmpDir = join(root, 'tmp')
  }

  /** Open (creating if new) the store at `root`; removes a dead process's tmp/ leftovers. */
  static async open(root: string, opts: StoreOptions = {}): Promise<Store> {
    const s = new Store(root, opts)
    await makeDirs(root).catch((err) => {
      throw hostFault(err, root)
    })
    await checkStoreOwner(root) // --user: store/ownership.ts
    const fmt = await readIfExists(join(root, 'format'))
    if (fmt === undefined) {
      const entries = (await fsp.readdir(root)).filter((e) => !['tmp', 'lock', 'lock.break'].includes(e))
      if (entries.length > 0)
        throw new HostError('store.not-a-store', `${root} is not empty and has no format file: not a sysctr store`, { data: { root } })
      await fsp.mkdir(s.tmpDir, { recursive: true, mode: 0o700 })
      await writeFileDurable(join(root, 'format'), `${STORE_FORMAT}\n`, s.tmpDir)
    } else if (fmt.toString('utf8').trim() !== STORE_FORMAT) {
      throw new HostError('store.unsupported-format', `store ${root} has format ${JSON.stringify(fmt.toString('utf8').trim())}; this sysctr reads only "${STORE_FORMAT}"`, {
        hint: 'a newer sysctr wrote this store: upgrade sysctr',
        data: { root, found: fmt.toString('utf8').trim(), expected: STORE_FORMAT },
      })
    }
    const digestDirs = STORE_ALGORITHMS.flatMap((alg) => [join(root, 'blobs', alg), join(root, 'layers', alg)])
    for (const d of [s.tmpDir, s.objectsDir, ...digestDirs, join(root, 'refs', 'images'), join(root, 'leases')])
      await fsp.mkdir(d, { recursive: true, mode: 0o700 })
    await s.cleanTmp()
    await s.liveLeases()
    return s
  }

  // ---- leases (see the top of this file) ------------------------------------

  private get leasesDir(): string {
    return join(this.root, 'leases')
  }

  /** Take this process's lease (once; under the lock). No-op inside withExclusive. */
  private async ensureLease(): Promise<void> {
    if (this.exclusiveDepth > 0) return
    if (!this.lease) {
      const what = this.opts.purpose ?? defaultPurpose()
      const p = this.withLock(`starting: ${what}`, async () => {
        const path = join(this.leasesDir, `${ownerTag()}-${randomId()}`)
        await fsp.symlink(JSON.stringify(currentHolder(what)), path)
        return path
      })
      this.lease = p
      p.catch(() => {
        if (this.lease === p) this.lease = undefined
      })
    }
    await this.lease
  }

  /** Drop this Store's lease (if any). Further reads take a new one. */
  async close(): Promise<void> {
    const p = this.lease
    this.lease = undefined
    if (!p) return
    const path = await p.catch(() => undefined)
    if (path) await fsp.rm(path, { force: true })
  }

  /** Live leases of other processes; dead ones are removed on the way. */
  async liveLeases(): Promise<LockHolder[]> {
    const out: LockHolder[] = []
    for (const name of await fsp.readdir(this.leasesDir).catch(() => [] as string[])) {
      const path = join(this.leasesDir, name)
      let holder: LockHolder | undefined
      try {
        holder = JSON.parse(await fsp.readlink(path)) as LockHolder
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
      }
      if (holder && typeof holder.pid === 'number' && isAlive(holder)) {
        if (holder.pid !== process.pid) out.push(holder)
        continue
      }
      await fsp.rm(path, { force: true })
    }
    return out
  }

  /**
   * Run `fn` holding the lock while no other process holds a lease (gc, fsck
   * --repair): drops this Store's own lease, then polls, releasing the lock
   * between polls, reporting through onWait what it waits for.
   */
  async withExclusive<T>(what: string, fn: () => Promise<T>, opts: { sleep?: (ms: number) => Promise<void> } = {}): Promise<T> {
    await this.close()
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
    let poll = 100
    const reported = new Set<string>()
    for (;;) {
      const r = await this.withLock(what, async () => {
        const others = await this.liveLeases()
        if (others.length > 0) return { others }
        this.exclusiveDepth++
        try {
          return { value: await fn() }
        } finally {
          this.exclusiveDepth--
        }
      })
      if ('value' in r) return r.value as T
      for (const h of r.others) {
        const key = `${h.pid}-${h.start}`
        if (reported.has(key)) continue
        reported.add(key)
        this.opts.onWait?.(`waiting for pid ${h.pid} (${h.what}) to finish using the store`, h)
      }
      await sleep(poll)
      poll = Math.min(poll * 2, 1000)
    }
  }

  private async cleanTmp(): Promise<void> {
    for (const name of await fsp.readdir(this.tmpDir)) {
      const m = /^(?:staging|durable)-(\d+)-(\d+)-/.exec(name)
      if (m && isAlive({ pid: Number(m[1]), start: Number(m[2]) })) continue
      await fsp.rm(join(this.tmpDir, name), { recursive: true, force: true })
    }
  }

  /**
   * Run `fn` holding the store's writer lock (`what` is shown to waiters).
   * Re-entrant within one call chain; concurrent callers in this process queue.
   */
  async withLock<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.lockScope.getStore()) return fn()
    const run = async (): Promise<T> => {
      const lock = await StoreLock.acquire(this.root, what, {
        onWait: this.opts.onWait ? (h, msg) => this.opts.onWait?.(msg, h) : undefined,
        timeoutMs: this.opts.lockTimeoutMs,
      })
      try {
        return await this.lockScope.run(true, fn)
      } finally {
        await lock.release()
      }
    }
    const p = this.lockQueue.then(run, run)
    this.lockQueue = p.catch(() => undefined)
    return p
  }

  /**
   * `objects/XX/<hex>.<ext>`. Plain concatenation, not path.join (a checkout
   * asks once per file: join's normalising showed in its profile); `hex` comes
   * from a validated tree or commit (64 hex digits), objectsDir is normalised.
   */
  objectPath(hex: string, ext: 'file' | 'tree' | 'commit'): string {
    return `${this.objectsDir}/${hex.slice(0, 2)}/${hex}.${ext}`
  }

  // ---- blobs ---------------------------------------------------------------

  /** Store manifest/config bytes under their digest (verified). Idempotent. */
  async putBlob(digest: Digest, bytes: Buffer): Promise<void> {
    await this.ensureLease()
    const { algorithm, hex } = splitDigest(digest)
    const got = createHash(algorithm).update(bytes).digest('hex')
    if (got !== hex) throw new ContentError('content.digest-mismatch', `blob digest mismatch (expected ${digest}, got ${algorithm}:${got})`, { data: { expected: digest, found: `${algorithm}:${got}` } })
    const path = join(this.root, digestRelPath('blobs', digest))
    if ((await readIfExists(path)) !== undefined) return
    await writeFileDurable(path, bytes, this.tmpDir)
  }

  /** The blob's bytes (verified), or undefined if not stored. */
  async getBlob(digest: Digest): Promise<Buffer | undefined> {
    await this.ensureLease()
    const { algorithm, hex } = splitDigest(digest)
    // Manifests and configs are small: one synchronous read (images list reads two per image).
    const bytes = readSmallIfExists(join(this.root, digestRelPath('blobs', digest)))
    if (bytes && createHash(algorithm).update(bytes).digest('hex') !== hex)
      throw new ContentError('store.corrupt-blob', `stored blob ${digest} does not match its digest`, { hint: 'remove it and pull again' })
    return bytes
  }

  // ---- layers --------------------------------------------------------------

  async getLayer(blobDigest: Digest): Promise<LayerRecord | undefined> {
    await this.ensureLease()
    const bytes = await readIfExists(join(this.root, digestRelPath('layers', blobDigest)))
    return bytes ? (JSON.parse(bytes.toString('utf8')) as LayerRecord) : undefined
  }

  /**
   * Import one layer blob from `stream` (see layer-import.ts). A blob already
   * imported is not read again (the stream is destroyed; `existing: true`).
   */
  async importLayer(desc: Descriptor, stream: Readable): Promise<ImportResult> {
    await this.ensureLease()
    // A short blob can fail verification (and emit 'error') before we start
    // reading it; the failure still reaches us through the read, not as a crash.
    stream.on('error', () => {})
    const known = await this.getLayer(desc.digest)
    if (known) {
      stream.destroy()
      return resultOf(known, true)
    }
    const tx = await Transaction.begin(this.tmpDir).catch((err) => {
      throw hostFault(err, this.root)
    })
    try {
      return await this.importInto(tx, desc, stream)
    } catch (err) {
      throw hostFault(err, this.root, desc.size >= 0 ? `layer ${desc.digest.slice(0, 19)}, ${formatBytes(desc.size)} compressed (more once unpacked)` : undefined)
    } finally {
      await tx.abort()
    }
  }

  private async importInto(tx: Transaction, desc: Descriptor, stream: Readable): Promise<ImportResult> {
    {
      const staged = await stageLayer(tx, desc, stream)
      return await this.withLock(`importing layer ${desc.digest.slice(0, 19)}`, async () => {
        const raced = await this.getLayer(desc.digest)
        if (raced) return resultOf(raced, true)
        const pub = await tx.publish(this.objectsDir)
        const record: LayerRecord = {
          blobDigest: desc.digest,
          diffID: staged.diffID,
          commit: staged.commitHex,
          mediaType: desc.mediaType,
          compressedSize: staged.compressedSize,
          uncompressedSize: staged.uncompressedSize,
          entries: staged.entries,
        }
        await writeFileDurable(join(this.root, digestRelPath('layers', desc.digest)), JSON.stringify(record), this.tmpDir)
        return { ...resultOf(record, false), ...pub }
      })
    }
  }

  // ---- objects -------------------------------------------------------------

  async readCommit(hex: string): Promise<Commit> {
    if (!HEX64.test(hex)) throw new UsageError('store.bad-commit', `not a commit id: ${JSON.stringify(hex)}`)
    await this.ensureLease()
    const bytes = await readIfExists(this.objectPath(hex, 'commit'))
    if (!bytes) throw new NotFoundError('store.commit-not-found', `commit ${hex} is not in the store`)
    return decodeCommit(hex, bytes)
  }

  async readTree(hex: string, layer: boolean, tx?: Transaction): Promise<Tree> {
    return this.readTreeSync(hex, layer, tx)
  }

  /**
   * `readTree` without a promise: a checkout reads every tree of an image
   * (2,365 for medium) in a tight loop, where a promise per tree (and the
   * async hooks the lock's AsyncLocalStorage turns on) showed in its profile.
   */
  readTreeSync(hex: string, layer: boolean, tx?: Transaction): Tree {
    const cached = this.treeCache.get(hex)
    if (cached) return cached
    const name = `${hex}.tree`
    const staged = tx?.has(name) ? readFileSync(tx.path(name)) : undefined
    const bytes = staged ?? readTreeBytes(this.objectPath(hex, 'tree'))
    if (!bytes) throw new ContentError('store.missing-object', `tree ${hex} is missing from the store`, { hint: 'run fsck; pull the image again' })
    // One parse: the image-tree check (layer false) is the layer check plus no layer-only entries.
    const tree = decodeTree(hex, bytes, layer)
    if (this.treeCache.size >= TREE_CACHE_MAX) this.treeCache.clear()
    // Cache only published trees validated as image trees.
    if (!layer && !staged) this.treeCache.set(hex, tree)
    return tree
  }

  /**
   * Merge the layers (bottom first) into an image commit: a whiteout-free tree.
   * Idempotent: the same layers and digests give the same commit id.
   */
  async commitImage(input: CommitImageInput): Promise<{ commit: string; objectsAdded: number }> {
    await this.ensureLease()
    const roots = []
    for (const l of input.layers) {
      const c = await this.readCommit(l.commit)
      if (c.kind !== 'layer') throw new ContentError('store.not-layer', `commit ${l.commit} is not a layer commit`)
      roots.push(c.root)
    }
    const tx = await Transaction.begin(this.tmpDir)
    try {
      const root = await mergeLayers(
        {
          readTree: (hex, layer) => this.readTree(hex, layer, tx),
          writeTree: async (tree) => {
            const { hex, bytes } = encodeObject(tree)
            if (!tx.has(`${hex}.tree`)) await tx.putBytes(`${hex}.tree`, bytes)
            return hex
          },
        },
        roots,
      )
      const commit: ImageCommit = {
        kind: 'image',
        root,
        manifestDigest: input.manifestDigest,
        configDigest: input.configDigest,
        layers: input.layers.map((l) => ({ blobDigest: l.blobDigest, diffID: l.diffID, commit: l.commit })),
      }
      const { hex, bytes } = encodeObject(commit)
      await tx.putBytes(`${hex}.commit`, bytes)
      const pub = await this.withLock(`committing image ${input.manifestDigest.slice(0, 19)}`, () => tx.publish(this.objectsDir))
      return { commit: hex, objectsAdded: pub.objectsAdded }
    } finally {
      await tx.abort()
    }
  }

  // ---- refs ----------------------------------------------------------------

  private refPath(name: string): string {
    return join(this.root, 'refs', 'images', escapeRefName(name))
  }

  /** Point `name` at `record`, replacing any previous record atomically. */
  async setImageRef(name: string, record: ImageRecord): Promise<void> {
    await this.withLock(`updating image ${name}`, () => writeFileDurable(this.refPath(name), JSON.stringify(record, null, 2), this.tmpDir))
  }

  async getImageRef(name: string): Promise<ImageRecord | undefined> {
    await this.ensureLease()
    const bytes = await readIfExists(this.refPath(name))
    return bytes ? (JSON.parse(bytes.toString('utf8')) as ImageRecord) : undefined
  }

  async listImageRefs(): Promise<{ name: string; record: ImageRecord }[]> {
    const dir = join(this.root, 'refs', 'images')
    const out: { name: string; record: ImageRecord }[] = []
    for (const f of (await fsp.readdir(dir)).sort()) {
      const bytes = readSmallIfExists(join(dir, f))
      if (bytes) out.push({ name: decodeURIComponent(f), record: JSON.parse(bytes.toString('utf8')) as ImageRecord })
    }
    return out
  }

  /** Remove a ref; returns false if there was none. Objects stay until gc. */
  async deleteImageRef(name: string): Promise<boolean> {
    return this.withLock(`removing image ${name}`, async () => {
      try {
        await fsp.unlink(this.refPath(name))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
        throw err
      }
      await fsp.open(join(this.root, 'refs', 'images'), 'r').then(async (fh) => {
        await fh.sync()
        await fh.close()
      })
      return true
    })
  }

  // ---- reading images ------------------------------------------------------

  /** Check out an image commit into `targetDir` (must not exist). See checkout/checkout.ts. */
  async checkout(commit: string, targetDir: string, opts?: CheckoutOptions): Promise<CheckoutStats> {
    await this.ensureLease()
    return checkoutTree(this, commit, targetDir, opts).catch((err) => {
      throw hostFault(err, dirname(targetDir))
    })
  }

  /** The entry at `path` of an image commit (no symlink is followed), or undefined. */
  async lookup(commit: string, path: string): Promise<TreeEntry | undefined> {
    const c = await this.readCommit(commit)
    const comps = entryPathComponents(path.replace(/^\/+/, ''), 'path')
    if (comps.length === 0) return { type: 'dir', tree: c.root.tree, mode: c.root.mode, uid: c.root.uid, gid: c.root.gid }
    let hex = c.root.tree
    for (let i = 0; i < comps.length; i++) {
      const e: TreeEntry | undefined = (await this.readTree(hex, c.kind === 'layer')).entries[comps[i]]
      if (!e || i === comps.length - 1) return e
      if (e.type !== 'dir') return undefined
      hex = e.tree
    }
    return undefined
  }

  /** One regular file of an image commit, without a checkout. Symlinks are not followed. */
  async readFile(commit: string, path: string): Promise<Buffer> {
    const e = await this.lookup(commit, path)
    if (!e) throw new NotFoundError('store.path-not-found', `${path} does not exist in commit ${commit.slice(0, 12)}`, { data: { path } })
    if (e.type !== 'file') throw new NotFoundError('store.not-a-file', `${path} in commit ${commit.slice(0, 12)} is a ${e.type}, not a regular file`, { data: { path, type: e.type } })
    return fsp.readFile(this.objectPath(e.object, 'file'))
  }

  /** Every entry of a commit, depth first, names sorted. */
  async *walk(commit: string): AsyncGenerator<WalkEntry> {
    const c = await this.readCommit(commit)
    const layer = c.kind === 'layer'
    const self = this
    async function* rec(hex: string, prefix: string): AsyncGenerator<WalkEntry> {
      const t = await self.readTree(hex, layer)
      for (const name of Object.keys(t.entries).sort()) {
        const e = t.entries[name]
        const path = prefix ? `${prefix}/${name}` : name
        yield { path, entry: e }
        if (e.type === 'dir') yield* rec(e.tree, path)
      }
    }
    yield* rec(c.root.tree, '')
  }
}

function defaultPurpose(): string {
  const args = process.argv.slice(2).join(' ')
  return `sysctr ${args}`.slice(0, 200)
}

function resultOf(r: LayerRecord, existing: boolean): ImportResult {
  return {
    blobDigest: r.blobDigest,
    diffID: r.diffID,
    commit: r.commit,
    objectsAdded: 0,
    filesAdded: 0,
    bytesAdded: 0,
    entries: r.entries,
    existing,
    record: r,
  }
}
