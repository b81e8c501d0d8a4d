/**
 * Read-only access to the files of an image kept on disk: a directory
 * (`oci:`, `dir:`) or a tar archive (`oci-archive:`, `docker-archive:`).
 *
 * Archives are never extracted: the tar headers are read once (headers only,
 * the data is skipped by seeking) into an index of regular files with their
 * byte ranges, and each file is then streamed straight from the archive with
 * a ranged read. Symlinks and hardlinks (docker save links repeated layers)
 * are followed inside the archive, never outside it.
 *
 * Paths are relative and `/`-separated; `..` and absolute paths are refused,
 * so a name taken from a manifest cannot reach outside the tree.
 */
import { createReadStream, promises as fsp } from 'node:fs'
import { join, posix } from 'node:path'
import { Readable } from 'node:stream'
import { ContentError, NotFoundError } from '../errors'

export interface FileTree {
  /** What the user named, for messages (`/srv/etcd.tar`). */
  readonly where: string
  /** Size of a regular file, or undefined when there is none at `path`. */
  size(path: string): Promise<number | undefined>
  /** A file whole (manifests, configs); at most `limit` bytes. */
  read(path: string, limit: number): Promise<Buffer>
  /** A file as a stream. */
  open(path: string): Promise<Readable>
  close(): Promise<void>
}

export function safeRelative(path: string, where: string): string {
  const norm = posix.normalize(path.replace(/^\.\//, ''))
  if (path === '' || posix.isAbsolute(path) || norm === '..' || norm.startsWith('../') || norm.includes('\0')) {
    throw new ContentError('content.unsafe-path', `${where}: refusing path ${JSON.stringify(path)} (absolute or outside the image)`)
  }
  return norm
}

function missing(where: string, path: string): NotFoundError {
  return new NotFoundError('image.file-not-found', `${where}: no file ${path}`, { data: { where, path } })
}

function tooLarge(where: string, path: string, limit: number): ContentError {
  return new ContentError('content.too-large', `${where}: ${path} is larger than ${limit} bytes`)
}

/** A directory on disk. Symlinks inside are followed (the directory is the user's own). */
export class DirTree implements FileTree {
  constructor(readonly where: string) {}

  async size(path: string): Promise<number | undefined> {
    try {
      const st = await fsp.stat(join(this.where, safeRelative(path, this.where)))
      return st.isFile() ? st.size : undefined
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
      throw err
    }
  }

  async read(path: string, limit: number): Promise<Buffer> {
    const size = await this.size(path)
    if (size === undefined) throw missing(this.where, path)
    if (size > limit) throw tooLarge(this.where, path, limit)
    return fsp.readFile(join(this.where, safeRelative(path, this.where)))
  }

  async open(path: string): Promise<Readable> {
    if ((await this.size(path)) === undefined) throw missing(this.where, path)
    return createReadStream(join(this.where, safeRelative(path, this.where)))
  }

  async close(): Promise<void> {}
}

interface TarEntry {
  type: 'file' | 'symlink' | 'link' | 'other'
  offset: number
  size: number
  linkname?: string
}

const BLOCK = 512

function cstring(buf: Buffer, start: number, len: number): string {
  const slice = buf.subarray(start, start + len)
  const nul = slice.indexOf(0)
  return slice.subarray(0, nul < 0 ? slice.length : nul).toString('utf8')
}

function numeric(buf: Buffer, start: number, len: number): number {
  const f = buf.subarray(start, start + len)
  if (f[0] & 0x80) {
    // base-256 (GNU) for sizes over 8 GiB
    let n = 0
    for (let i = 1; i < f.length; i++) n = n * 256 + f[i]
    return n
  }
  const s = cstring(buf, start, len).trim()
  return s === '' ? 0 : parseInt(s, 8)
}

function paxRecords(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {}
  let i = 0
  while (i < data.length) {
    const sp = data.indexOf(0x20, i)
    if (sp < 0) break
    const len = parseInt(data.subarray(i, sp).toString('utf8'), 10)
    if (!Number.isSafeInteger(len) || len <= 0) break
    const rec = data.subarray(sp + 1, i + len - 1).toString('utf8')
    const eq = rec.indexOf('=')
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1)
    i += len
  }
  return out
}

/** A tar archive (ustar, pax and GNU long names; uncompressed). */
export class TarTree implements FileTree {
  private constructor(
    readonly where: string,
    private readonly entries: Map<string, TarEntry>,
  ) {}

  static async open(file: string): Promise<TarTree> {
    const fh = await fsp.open(file, 'r')
    const entries = new Map<string, TarEntry>()
    try {
      const total = (await fh.stat()).size
      const header = Buffer.alloc(BLOCK)
      const head = Buffer.alloc(2)
      await fh.read(head, 0, 2, 0)
      if (head[0] === 0x1f && head[1] === 0x8b) {
        throw new ContentError('content.bad-archive', `${file} is gzip-compressed; give the uncompressed tar (gunzip it first)`)
      }
      if (total > 0 && total < BLOCK) throw new ContentError('content.bad-archive', `${file} is not a tar archive (${total} bytes)`)
      let offset = 0
      let longName: string | undefined
      let longLink: string | undefined
      let pax: Record<string, string> = {}
      const readData = async (at: number, size: number): Promise<Buffer> => {
        if (size > 1 << 20) throw new ContentError('content.bad-archive', `${file}: extended header of ${size} bytes`)
        const b = Buffer.alloc(size)
        await fh.read(b, 0, size, at)
        return b
      }
      for (;;) {
        if (offset + BLOCK > total) break
        const { bytesRead } = await fh.read(header, 0, BLOCK, offset)
        if (bytesRead < BLOCK) break
        if (header.every((b) => b === 0)) break
        const magic = cstring(header, 257, 6)
        if (magic !== 'ustar' && magic !== 'ustar ') {
          throw new ContentError('content.bad-archive', `${file} is not a tar archive (no ustar header at byte ${offset})`)
        }
        const size = numeric(header, 124, 12)
        const typeflag = String.fromCharCode(header[156] || 0x30)
        const dataAt = offset + BLOCK
        const next = dataAt + Math.ceil(size / BLOCK) * BLOCK
        if (dataAt + size > total) throw new ContentError('content.bad-archive', `${file} is truncated (entry at byte ${offset} runs past the end)`)
        if (typeflag === 'x') {
          pax = { ...pax, ...paxRecords(await readData(dataAt, size)) }
        } else if (typeflag === 'g') {
          // global pax header: nothing we need
        } else if (typeflag === 'L') {
          longName = cstring(await readData(dataAt, size), 0, size)
        } else if (typeflag === 'K') {
          longLink = cstring(await readData(dataAt, size), 0, size)
        } else {
          const prefix = magic === 'ustar' ? cstring(header, 345, 155) : ''
          let name = pax.path ?? longName ?? (prefix ? `${prefix}/${cstring(header, 0, 100)}` : cstring(header, 0, 100))
          const linkname = pax.linkpath ?? longLink ?? cstring(header, 157, 100)
          const realSize = pax.size !== undefined ? Number(pax.size) : size
          name = posix.normalize(name.replace(/^\.?\//, '')).replace(/\/$/, '')
          const type = typeflag === '0' || typeflag === '7' ? 'file' : typeflag === '2' ? 'symlink' : typeflag === '1' ? 'link' : 'other'
          entries.set(name, { type, offset: dataAt, size: realSize, ...(type === 'symlink' || type === 'link' ? { linkname } : {}) })
          pax = {}
          longName = undefined
          longLink = undefined
          if (realSize !== size) {
            // pax size overrides the header's; recompute the next header position
            offset = dataAt + Math.ceil(realSize / BLOCK) * BLOCK
            continue
          }
        }
        offset = next
      }
    } finally {
      await fh.close()
    }
    return new TarTree(file, entries)
  }

  private lookup(path: string): TarEntry | undefined {
    let name = safeRelative(path, this.where)
    for (let hops = 0; hops < 16; hops++) {
      const e = this.entries.get(name)
      if (!e || e.type === 'file' || e.type === 'other') return e?.type === 'file' ? e : undefined
      const target = e.type === 'link' ? e.linkname! : posix.join(posix.dirname(name), e.linkname!)
      name = safeRelative(target, this.where)
    }
    return undefined
  }

  async size(path: string): Promise<number | undefined> {
    return this.lookup(path)?.size
  }

  async read(path: string, limit: number): Promise<Buffer> {
    const e = this.lookup(path)
    if (!e) throw missing(this.where, path)
    if (e.size > limit) throw tooLarge(this.where, path, limit)
    const fh = await fsp.open(this.where, 'r')
    try {
      const b = Buffer.alloc(e.size)
      const { bytesRead } = await fh.read(b, 0, e.size, e.offset)
      if (bytesRead !== e.size) throw new ContentError('content.bad-archive', `${this.where}: ${path} is truncated`)
      return b
    } finally {
      await fh.close()
    }
  }

  async open(path: string): Promise<Readable> {
    const e = this.lookup(path)
    if (!e) throw missing(this.where, path)
    if (e.size === 0) return Readable.from([])
    return createReadStream(this.where, { start: e.offset, end: e.offset + e.size - 1 })
  }

  /** Every regular file's path (for messages). */
  files(): string[] {
    return [...this.entries].filter(([, e]) => e.type === 'file').map(([n]) => n)
  }

  async close(): Promise<void> {}
}
