/**
 * A staging transaction, as ostree's: new objects are written under
 * `tmp/staging-<pid>-<start>-<random>/` (same filesystem as objects/), then
 * `publish` (called under the store lock) flushes the filesystem once,
 * renames each staged object into `objects/XX/` (an object already there is
 * kept and the staged copy dropped: objects are immutable), and flushes
 * again so the objects are durable before any commit record or ref names
 * them. A crash leaves only the staging dir, removed by the next open once
 * its process is gone.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { mapLimit, ownerTag, randomId, syncFilesystem } from './durable'

export function objectRelPath(name: string): string {
  return join(name.slice(0, 2), name)
}

export class Transaction {
  /** name (`<hex>.file|tree|commit`) -> size in bytes */
  private readonly staged = new Map<string, number>()
  private counter = 0

  private constructor(readonly dir: string) {}

  static async begin(tmpRoot: string): Promise<Transaction> {
    const dir = join(tmpRoot, `staging-${ownerTag()}-${randomId()}`)
    await fsp.mkdir(dir, { mode: 0o700 })
    return new Transaction(dir)
  }

  /** A fresh scratch path inside the staging dir (for streaming a file before its name is known). */
  scratchPath(): string {
    return join(this.dir, `w${this.counter++}`)
  }

  has(name: string): boolean {
    return this.staged.has(name)
  }

  path(name: string): string {
    return join(this.dir, name)
  }

  names(): string[] {
    return [...this.staged.keys()]
  }

  async putBytes(name: string, bytes: Buffer): Promise<void> {
    if (this.staged.has(name)) return
    await fsp.writeFile(join(this.dir, name), bytes, { flag: 'wx', mode: 0o644 })
    this.staged.set(name, bytes.length)
  }

  /** Move a finished scratch file to its object name (dropped if that object is staged already). Returns true if kept. */
  async adopt(scratch: string, name: string, size: number): Promise<boolean> {
    if (this.staged.has(name)) {
      await fsp.rm(scratch, { force: true })
      return false
    }
    await fsp.rename(scratch, join(this.dir, name))
    this.staged.set(name, size)
    return true
  }

  /** Move every staged object into `objectsDir`. Call under the store lock. */
  async publish(objectsDir: string): Promise<{ objectsAdded: number; filesAdded: number; bytesAdded: number }> {
    const names = this.names()
    let objectsAdded = 0
    let filesAdded = 0
    let bytesAdded = 0
    if (names.length === 0) return { objectsAdded, filesAdded, bytesAdded }
    await syncFilesystem(this.dir)
    const prefixes = new Set(names.map((n) => n.slice(0, 2)))
    await mapLimit([...prefixes], 8, (p) => fsp.mkdir(join(objectsDir, p), { recursive: true }))
    await mapLimit(names, 16, async (name) => {
      const dest = join(objectsDir, objectRelPath(name))
      try {
        await fsp.lstat(dest)
        await fsp.rm(join(this.dir, name), { force: true })
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      }
      await fsp.rename(join(this.dir, name), dest)
      objectsAdded++
      if (name.endsWith('.file')) {
        filesAdded++
        bytesAdded += this.staged.get(name) ?? 0
      }
    })
    await syncFilesystem(objectsDir)
    return { objectsAdded, filesAdded, bytesAdded }
  }

  async abort(): Promise<void> {
    await fsp.rm(this.dir, { recursive: true, force: true })
  }
}
