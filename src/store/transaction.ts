/**
 * A staging transaction, as ostree's: new objects are written under
 * `tmp/staging-<pid>-<start>-<random>/` (same filesystem as objects/), then
 * `publish` (called under the store lock) flushes the filesystem once,
 * links each staged object into `objects/XX/` (link(2) never replaces: an
 * object already there is kept and the staged copy dropped, objects are
 * immutable), and flushes again so the objects are durable before any commit
 * record or ref names them. A crash leaves only the staging dir, removed by
 * the next open once its process is gone.
 *
 * An object already in objects/ when it is staged is not written at all
 * (`exists`): the caller's store lease keeps gc from removing it before the
 * commit that names it is published.
 *
 * Small objects are written with synchronous calls on the main thread: a few
 * microseconds each, against a threadpool round trip per call for the
 * promise API (the pull profile of issue 8: 7 round trips per file).
 */
import { closeSync, fchmodSync, fchownSync, futimesSync, linkSync, lstatSync, mkdirSync, openSync, promises as fsp, readdirSync, unlinkSync, writevSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ownerTag, randomId, syncFilesystem } from './durable'

export function objectRelPath(name: string): string {
  return join(name.slice(0, 2), name)
}

/** Fan-out dirs with more entries than this are not listed in memory (see Transaction.exists). */
export const LISTING_LIMIT = 512

function listFanout(dir: string): Set<string> | null {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set()
    throw err
  }
  return names.length > LISTING_LIMIT ? null : new Set(names)
}

export interface ObjectMeta {
  mode: number
  uid: number
  gid: number
}

/** Write all of `chunks` to `fd` (writev may write less than asked). */
export function writeAllSync(fd: number, chunks: Buffer[]): void {
  let bufs = chunks.filter((c) => c.length > 0)
  while (bufs.length) {
    let n = writevSync(fd, bufs.slice(0, 1024))
    while (n > 0 && bufs.length) {
      if (n >= bufs[0].length) {
        n -= bufs[0].length
        bufs.shift()
      } else {
        bufs[0] = bufs[0].subarray(n)
        n = 0
      }
    }
  }
}

export class Transaction {
  /** name (`<hex>.file|tree|commit`) -> size in bytes */
  private readonly staged = new Map<string, number>()
  /** names found in objects/ (not staged) */
  private readonly existing = new Set<string>()
  /** fan-out dir (`ab`) -> its object names when listed, null when it is too big to keep */
  private readonly listings = new Map<string, Set<string> | null>()
  private counter = 0

  private constructor(
    readonly dir: string,
    readonly objectsDir: string,
  ) {}

  /** `objectsDir` defaults to `objects/` beside `tmpRoot` in the store root. */
  static async begin(tmpRoot: string, objectsDir = join(dirname(tmpRoot), 'objects')): Promise<Transaction> {
    const dir = join(tmpRoot, `staging-${ownerTag()}-${randomId()}`)
    await fsp.mkdir(dir, { mode: 0o700 })
    return new Transaction(dir, objectsDir)
  }

  /** A fresh scratch path inside the staging dir (for streaming a file before its name is known). */
  scratchPath(): string {
    return join(this.dir, `w${this.counter++}`)
  }

  has(name: string): boolean {
    return this.staged.has(name)
  }

  /**
   * True if `name` is staged here or already published in objects/ (then it
   * need not be written). A fan-out dir is listed once (one readdir instead of
   * a failing lstat per new object); a dir over LISTING_LIMIT entries is asked
   * per name, so memory stays bounded on a big store. An object published by
   * another process after the listing is staged again and dropped by
   * `publish` (link(2) finds it): a wasted write, never a wrong result.
   */
  exists(name: string): boolean {
    if (this.staged.has(name) || this.existing.has(name)) return true
    const prefix = name.slice(0, 2)
    let listing = this.listings.get(prefix)
    if (listing === undefined) {
      listing = listFanout(join(this.objectsDir, prefix))
      this.listings.set(prefix, listing)
    }
    const found = listing ? listing.has(name) : lstatSync(join(this.objectsDir, objectRelPath(name)), { throwIfNoEntry: false }) !== undefined
    if (found) this.existing.add(name)
    return found
  }

  path(name: string): string {
    return join(this.dir, name)
  }

  names(): string[] {
    return [...this.staged.keys()]
  }

  async putBytes(name: string, bytes: Buffer): Promise<void> {
    this.putBytesSync(name, bytes, { mode: 0o644 })
  }

  /**
   * Stage `name` with content `chunks` and the given owner and mode (mtime 0
   * for files), unless it exists already. Returns true if written.
   */
  putBytesSync(name: string, chunks: Buffer | Buffer[], meta: ObjectMeta | { mode: number }, opts: { files?: boolean } = {}): boolean {
    if (this.exists(name)) return false
    const list = Array.isArray(chunks) ? chunks : [chunks]
    const fd = openSync(join(this.dir, name), 'wx', 0o600)
    let size = 0
    try {
      writeAllSync(fd, list)
      for (const c of list) size += c.length
      // chown before chmod: chown clears setuid/setgid.
      if ('uid' in meta) fchownSync(fd, meta.uid, meta.gid)
      fchmodSync(fd, meta.mode)
      if (opts.files) futimesSync(fd, 0, 0)
    } finally {
      closeSync(fd)
    }
    this.staged.set(name, size)
    return true
  }

  /** Move a finished scratch file to its object name (dropped if that object is staged or published already). Returns true if kept. */
  async adopt(scratch: string, name: string, size: number): Promise<boolean> {
    if (this.exists(name)) {
      await fsp.rm(scratch, { force: true })
      return false
    }
    await fsp.rename(scratch, join(this.dir, name))
    this.staged.set(name, size)
    return true
  }

  /** Link every staged object into `objectsDir`. Call under the store lock. */
  async publish(objectsDir: string): Promise<{ objectsAdded: number; filesAdded: number; bytesAdded: number }> {
    const names = this.names()
    let objectsAdded = 0
    let filesAdded = 0
    let bytesAdded = 0
    if (names.length === 0) return { objectsAdded, filesAdded, bytesAdded }
    await syncFilesystem(this.dir)
    for (const p of new Set(names.map((n) => n.slice(0, 2)))) mkdirSync(join(objectsDir, p), { recursive: true })
    // link(2), not rename: one call that never replaces an object published meanwhile.
    // The staged names go with the staging dir (abort).
    for (const name of names) {
      try {
        linkSync(join(this.dir, name), join(objectsDir, objectRelPath(name)))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue
        throw err
      }
      objectsAdded++
      if (name.endsWith('.file')) {
        filesAdded++
        bytesAdded += this.staged.get(name) ?? 0
      }
    }
    await syncFilesystem(objectsDir)
    return { objectsAdded, filesAdded, bytesAdded }
  }

  /** Remove the staging dir (after publish, or on failure). The staged names are known: unlinked without the stat per entry a recursive rm does. */
  async abort(): Promise<void> {
    for (const name of this.staged.keys()) {
      try {
        unlinkSync(join(this.dir, name))
      } catch {
        /* the rm below reports what is really wrong */
      }
    }
    await fsp.rm(this.dir, { recursive: true, force: true })
  }
}
