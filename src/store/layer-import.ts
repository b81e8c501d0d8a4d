/**
 * Layer import, staging half: stream one layer blob into a Transaction.
 *
 * blob bytes -> [blob digest + size check] -> gunzip (by magic bytes) ->
 * [diffID hash + raw PAX xattr scan] -> tar-stream -> one staged object per
 * distinct regular file not already in the store (small files hashed in memory
 * first, big ones streamed to a scratch file while hashed: memory stays
 * flat), then the layer's trees and its commit object, all in the
 * transaction. Nothing is published here: the caller publishes under the lock
 * only after the whole blob was read and verified.
 *
 * Entries: files, dirs, symlinks, hardlinks (to an earlier entry of this layer
 * -> the same object; to a lower layer's path -> a {type:'hardlink'} entry
 * resolved at merge), char/block devices, fifos, PAX xattrs, GNU/PAX long
 * names, OCI whiteouts `.wh.NAME` and opaque markers `.wh..wh..opq`.
 * A leading `/` means the image root and is stripped. Refused with
 * ContentError naming the entry: any `..` component, NUL bytes, names and
 * link targets that are not valid UTF-8, overlong names (checkout/safe-path.ts),
 * char/block devices and fifos outside /dev ('content.special-file'),
 * unknown entry types, a root that is not a directory. A hardlink target is
 * resolved inside the root: symlinks on its way are followed as if the image
 * root were `/` (checkout/safe-path.ts resolveInRoot). A layer whose uncompressed tar
 * grows past the limit (maxLayerSize) is refused with 'content.too-large'
 * as soon as it does (a gzip bomb is never inflated further); truncated gzip
 * ('content.bad-compression') and a tar with garbage after its last entry
 * ('content.bad-tar') are refused too. Refused means nothing is published.
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ZlibOptions } from 'node:zlib'
import type * as tar from 'tar-stream'
import { ContentError, UsageError } from '../errors'
import { Descriptor, Digest, MediaType } from '../oci/types'
import { decodeName, entryPathComponents, resolveInRoot, RootWalker } from '../checkout/safe-path'
import type { DigestAlgorithm } from '../reference/digest'
import { fileObjectHeader, sha256Hex } from './canonical'
import { splitDigest } from './digest-path'
import { RawXattrScanner } from './tar-xattrs'
import { Transaction } from './transaction'
import { DEFAULT_DIR_META, DirMeta, encodeObject, LayerCommit, Tree, TreeEntry } from './tree'
import { setXattrs, Xattrs } from './xattr'
import { verifiedAs } from '../util/digest-stream'
import { fileObjectOnDisk } from './ownership'
import type * as Fzstd from 'fzstd'

// Loaded on first use, so commands that import no layer (list, info, prune) do not pay at start-up.
/* eslint-disable @typescript-eslint/no-require-imports */
const tarStream = (): typeof tar => require('tar-stream') as typeof tar
const createGunzip = (o: ZlibOptions): Transform => (require('node:zlib') as typeof import('node:zlib')).createGunzip(o)
const fzstd = (): typeof Fzstd => require('fzstd') as typeof Fzstd
/* eslint-enable @typescript-eslint/no-require-imports */

export interface StagedLayer {
  commit: LayerCommit
  commitHex: string
  diffID: Digest
  compressedSize: number
  uncompressedSize: number
  entries: number
}

type Leaf = Exclude<TreeEntry, { type: 'dir' }>
interface MDir {
  kind: 'dir'
  meta: DirMeta
  implicit: boolean
  opaque: boolean
  children: Map<string, MNode>
}
type MNode = MDir | { kind: 'leaf'; entry: Leaf }

function newDir(meta?: DirMeta, opaque = false): MDir {
  return { kind: 'dir', meta: meta ?? DEFAULT_DIR_META, implicit: meta === undefined, opaque, children: new Map() }
}

/** The in-memory tree of one layer, in tar order (later entries win, as when extracting). */
class LayerBuilder {
  readonly root = newDir()

  /** The dir at `comps`, creating implicit dirs; a leaf in the way is replaced (an opaque dir: it hid the lower entry). */
  dir(comps: string[]): MDir {
    let d = this.root
    for (const name of comps) {
      const cur = d.children.get(name)
      if (cur?.kind === 'dir') d = cur
      else {
        const nd = newDir(undefined, cur !== undefined)
        d.children.set(name, nd)
        d = nd
      }
    }
    return d
  }

  putDir(comps: string[], meta: DirMeta): void {
    if (comps.length === 0) {
      this.root.meta = meta
      this.root.implicit = false
      return
    }
    const parent = this.dir(comps.slice(0, -1))
    const name = comps[comps.length - 1]
    const cur = parent.children.get(name)
    if (cur?.kind === 'dir') {
      cur.meta = meta
      cur.implicit = false
    } else parent.children.set(name, newDir(meta, cur !== undefined))
  }

  putLeaf(comps: string[], entry: Leaf): void {
    const parent = this.dir(comps.slice(0, -1))
    const name = comps[comps.length - 1]
    const cur = parent.children.get(name)
    if (entry.type === 'whiteout') {
      // A whiteout hides only lower layers: an entry of this layer stays (a dir becomes opaque).
      if (cur?.kind === 'dir') cur.opaque = true
      else if (!cur) parent.children.set(name, { kind: 'leaf', entry })
      return
    }
    parent.children.set(name, { kind: 'leaf', entry })
  }

  opaque(comps: string[]): void {
    this.dir(comps).opaque = true
  }

  /** A walker over this layer's tree, for resolveInRoot. */
  readonly walker: RootWalker<MNode> = {
    root: this.root,
    child: (dir, name) => (dir.kind === 'dir' ? dir.children.get(name) : undefined),
    isDir: (n) => n.kind === 'dir',
    symlinkTarget: (n) => (n.kind === 'leaf' && n.entry.type === 'symlink' ? n.entry.target : undefined),
  }
}

function metaFromHeader(h: tar.Header, xattrs: Xattrs | undefined): DirMeta {
  const pax = (h.pax ?? {}) as Record<string, string>
  const uid = pax.uid !== undefined ? parseInt(pax.uid, 10) : h.uid
  const gid = pax.gid !== undefined ? parseInt(pax.gid, 10) : h.gid
  return { mode: h.mode & 0o7777, uid, gid, ...(xattrs && Object.keys(xattrs).length ? { xattrs } : {}) }
}

export function compressionOf(desc: Descriptor, head: Buffer): 'gzip' | 'zstd' | 'none' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip'
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd'
  if (desc.mediaType === MediaType.ociLayerZstd || desc.mediaType.endsWith('+zstd')) return 'zstd'
  return 'none'
}

/** Default bound on a layer's uncompressed size: 64 GiB. */
export const DEFAULT_MAX_LAYER_SIZE = 64 * 1024 ** 3

/** The uncompressed-size limit: `opts.maxLayerSize`, else env SYSCTR_MAX_LAYER_SIZE (bytes), else the default. */
export function maxLayerSize(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SYSCTR_MAX_LAYER_SIZE
  if (raw === undefined || raw === '') return DEFAULT_MAX_LAYER_SIZE
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError('usage.bad-limit', `SYSCTR_MAX_LAYER_SIZE must be a positive number of bytes (found ${JSON.stringify(raw)})`)
  return n
}

export interface StageLayerOptions {
  /** Refuse the layer once its uncompressed tar exceeds this many bytes (default: maxLayerSize()). */
  maxLayerSize?: number
}

/** Stream `stream` (the layer blob described by `desc`) into `tx`. */
export async function stageLayer(tx: Transaction, desc: Descriptor, stream: Readable, opts: StageLayerOptions = {}): Promise<StagedLayer> {
  const limit = opts.maxLayerSize ?? maxLayerSize()
  let alg: DigestAlgorithm
  try {
    alg = splitDigest(desc.digest).algorithm
  } catch (err) {
    stream.destroy()
    throw err
  }
  // Failures reach us through the iterator; once it is returned early (our own
  // digest check failed first) a late 'error' from the source must not go unheard.
  stream.on('error', () => {})
  const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  const headChunks: Buffer[] = []
  let headLen = 0
  let sourceDone = false
  while (headLen < 4) {
    const r = await it.next()
    if (r.done) {
      sourceDone = true
      break
    }
    headChunks.push(r.value)
    headLen += r.value.length
  }
  const head = Buffer.concat(headChunks)
  const compression = compressionOf(desc, head)
  async function* source(): AsyncGenerator<Buffer> {
    try {
      if (head.length) yield head
      while (!sourceDone) {
        const r = await it.next()
        if (r.done) return
        yield r.value
      }
    } finally {
      if (!sourceDone) await it.return?.()
    }
  }

  // Each blob is hashed once: when the source stream already verifies exactly
  // this digest and size (a transport's DigestStream: it fails, never ends, on
  // other bytes), its verdict is the one; otherwise the store hashes here.
  // Either way nothing is published before the whole blob matched.
  const v = verifiedAs(stream)
  const sourceVerifies = v !== undefined && v.digest === desc.digest && desc.size >= 0 && v.size === desc.size
  const blobHash = sourceVerifies ? undefined : createHash(alg)
  let compressedSize = 0
  const blobTap = new Transform({
    transform(chunk: Buffer, _e, cb) {
      blobHash?.update(chunk)
      compressedSize += chunk.length
      cb(null, chunk)
    },
    flush(cb) {
      const got = blobHash ? `${alg}:${blobHash.digest('hex')}` : desc.digest
      if (got !== desc.digest) cb(new ContentError('content.digest-mismatch', `layer digest mismatch (expected ${desc.digest}, got ${got})`, { data: { expected: desc.digest, found: got } }))
      else if (desc.size >= 0 && compressedSize !== desc.size)
        cb(new ContentError('content.size-mismatch', `layer ${desc.digest} size mismatch (expected ${desc.size}, got ${compressedSize})`, { data: { expected: desc.size, found: compressedSize } }))
      else cb()
    },
  })
  const diffHash = createHash('sha256')
  let uncompressedSize = 0
  const scanner = new RawXattrScanner()
  const diffTap = new Transform({
    readableHighWaterMark: READ_AHEAD,
    transform(chunk: Buffer, _e, cb) {
      uncompressedSize += chunk.length
      if (uncompressedSize > limit) {
        cb(
          new ContentError('content.too-large', `layer ${desc.digest} decompresses to more than ${limit} bytes (compressed: ${desc.size})`, {
            hint: 'raise the limit with SYSCTR_MAX_LAYER_SIZE (bytes) if the image is trusted',
            data: { limit, compressedSize: desc.size },
          }),
        )
        return
      }
      diffHash.update(chunk)
      scanner.push(chunk)
      cb(null, chunk)
    },
    flush(cb) {
      // Complete a tar that ends right after its last file's data (no padding, no end
      // blocks), as umoci 0.4 writes them; not part of the diffID. A tar cut inside
      // data is left short, and tar-stream fails on it.
      const pad = scanner.missingPadding()
      cb(null, pad > 0 ? Buffer.alloc(pad) : undefined)
    },
  })
  // latin1: header names come through as their raw bytes, checked as UTF-8 per entry (decodeName).
  const extract = tarStream().extract({ filenameEncoding: 'latin1' } as Parameters<typeof tar.extract>[0])
  const decompress =
    compression === 'gzip'
      ? [createGunzip({ chunkSize: 128 * 1024, readableHighWaterMark: READ_AHEAD } as ZlibOptions)]
      : compression === 'zstd'
        ? [createZstdDecompress(desc)]
        : []
  const stages: NodeJS.ReadWriteStream[] = [blobTap, ...decompress, diffTap]
  const done = (pipeline as unknown as (...s: unknown[]) => Promise<void>)(Readable.from(source(), { objectMode: false }), ...stages, extract)
  let pipelineError: unknown
  done.catch((e) => (pipelineError = e))

  const builder = new LayerBuilder()
  const xattrFiles: { path: string; xattrs: Xattrs }[] = []
  let entries = 0
  try {
    for await (const entry of extract as unknown as AsyncIterable<Readable & { header: tar.Header }>) {
      entries++
      const h = entry.header
      const raw = scanner.queue.shift()
      let xattrs: Xattrs | undefined
      if (raw && raw.xattrs.size) {
        xattrs = {}
        for (const [k, v] of raw.xattrs) xattrs[k] = v.toString('base64')
      }
      const pax = (h.pax ?? {}) as Record<string, string>
      // A PAX path/linkpath replaced the header's (tar-stream decoded it as UTF-8): check its raw bytes.
      if (raw?.path?.length) h.name = decodeName(raw.path)
      else if (!pax.path) h.name = decodeName(Buffer.from(h.name, 'latin1'))
      if (raw?.linkpath?.length) h.linkname = decodeName(raw.linkpath, 'link target')
      else if (!pax.linkpath && h.linkname) h.linkname = decodeName(Buffer.from(h.linkname, 'latin1'), 'link target')
      await addEntry(tx, builder, h, entry, xattrs, xattrFiles)
    }
    await done
  } catch (err) {
    stream.destroy()
    await done.catch(() => undefined)
    // Prefer the stream's own failure (digest mismatch, corrupt gzip) over what it caused downstream.
    // A write that failed (ENOSPC, EIO: a system error) is the cause of the "Premature close" the pipeline then reports.
    if (err instanceof ContentError) throw err
    if (isSystemError(err) && !(pipelineError instanceof ContentError)) throw err
    throw wrapStreamError(pipelineError ?? err, desc)
  }
  await setXattrs(xattrFiles)

  const rootHex = await writeTrees(tx, builder.root)
  const commit: LayerCommit = {
    kind: 'layer',
    root: { tree: rootHex, ...builder.root.meta, ...(builder.root.implicit ? { implicit: true } : {}) },
    blobDigest: desc.digest,
    diffID: `sha256:${diffHash.digest('hex')}` as Digest,
  }
  const { hex: commitHex, bytes } = encodeObject(commit)
  await tx.putBytes(`${commitHex}.commit`, bytes)
  return { commit, commitHex, diffID: commit.diffID, compressedSize, uncompressedSize, entries }
}

function isSystemError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException
  return !!e && typeof e === 'object' && typeof e.code === 'string' && typeof e.syscall === 'string'
}

function wrapStreamError(err: unknown, desc: Descriptor): unknown {
  if (err instanceof ContentError) return err
  const e = err as NodeJS.ErrnoException
  if (e && typeof e.code === 'string' && e.code.startsWith('Z_'))
    return new ContentError('content.bad-compression', `layer ${desc.digest} is not valid gzip: ${e.message}`, { cause: err })
  // tar-stream's errors are plain Errors without a code ("Invalid tar header", "Unexpected end of data").
  if (e instanceof Error && !e.code)
    return new ContentError('content.bad-tar', `layer ${desc.digest} is not a valid tar: ${e.message}`, { cause: err })
  return err
}

async function addEntry(
  tx: Transaction,
  b: LayerBuilder,
  h: tar.Header,
  data: Readable,
  xattrs: Xattrs | undefined,
  xattrFiles: { path: string; xattrs: Xattrs }[],
): Promise<void> {
  const comps = entryPathComponents(h.name)
  const name = comps[comps.length - 1]
  const bad = (why: string): never => {
    throw new ContentError('content.bad-entry', `layer entry ${JSON.stringify(h.name)}: ${why}`, { data: { path: h.name } })
  }
  if (comps.length === 0 && h.type !== 'directory') bad(`the root must be a directory, not ${h.type}`)
  if (name?.startsWith('.wh.')) {
    data.resume()
    const parent = comps.slice(0, -1)
    if (name === '.wh..wh..opq') b.opaque(parent)
    else if (name.startsWith('.wh..wh.')) {
      /* other aufs metadata (.wh..wh.plnk, ...): ignored, as containerd does */
    } else {
      const hidden = name.slice('.wh.'.length)
      if (hidden === '' || hidden === '.' || hidden === '..') bad('whiteout of nothing')
      b.putLeaf([...parent, hidden], { type: 'whiteout' })
    }
    return
  }
  const meta = metaFromHeader(h, xattrs)
  switch (h.type) {
    case 'directory':
      data.resume()
      b.putDir(comps, meta)
      return
    case 'file':
    case 'contiguous-file': {
      const object = await stageFile(tx, data, h.size ?? 0, meta, xattrFiles)
      b.putLeaf(comps, { type: 'file', object })
      return
    }
    case 'symlink':
      data.resume()
      if (!h.linkname) bad('symlink without a target')
      b.putLeaf(comps, { type: 'symlink', target: h.linkname, uid: meta.uid, gid: meta.gid })
      return
    case 'link': {
      data.resume()
      const target = entryPathComponents(h.linkname ?? '', 'hardlink target')
      if (target.length === 0) bad('hardlink to the root')
      const r = await resolveInRoot(b.walker, target, h.linkname ?? '')
      if ('found' in r) {
        const node = r.found
        if (node.kind === 'dir') return bad(`hardlink to a directory ${JSON.stringify(h.linkname)}`)
        if (node.entry.type === 'whiteout') bad(`hardlink to a removed path ${JSON.stringify(h.linkname)}`)
        b.putLeaf(comps, node.entry)
        return
      }
      // Not in this layer: a path of a lower layer (resolved at merge), unless this layer hides it.
      if (!r.dir || (r.dir.kind === 'dir' && r.dir.opaque)) bad(`hardlink to ${JSON.stringify(h.linkname)}: nothing there in this layer, which hides the lower ones`)
      b.putLeaf(comps, { type: 'hardlink', target: r.missing.join('/') })
      return
    }
    case 'character-device':
    case 'block-device':
    case 'fifo':
      data.resume()
      if (comps[0] !== 'dev' || comps.length < 2) {
        const kind = h.type === 'fifo' ? 'a fifo' : h.type === 'block-device' ? 'a block device' : 'a character device'
        throw new ContentError('content.special-file', `layer entry ${JSON.stringify(h.name)}: ${kind} outside /dev`, {
          hint: 'device nodes and fifos are accepted under /dev only',
          data: { path: h.name, type: h.type },
        })
      }
      if (h.type === 'fifo') {
        b.putLeaf(comps, { type: 'fifo', ...meta })
        return
      }
      b.putLeaf(comps, {
        type: h.type === 'character-device' ? 'char' : 'block',
        major: h.devmajor ?? 0,
        minor: h.devminor ?? 0,
        ...meta,
      })
      return
    default:
      data.resume()
      bad(`unsupported entry type ${String(h.type)}`)
  }
}

/** Decompressed bytes gunzip may run ahead of the tar parse (it works on the threadpool meanwhile). */
const READ_AHEAD = 4 << 20
/** Files up to this size are read into memory, hashed, and written only if their object is new. */
const SMALL_FILE = 1 << 20
/** Big files are written to their scratch file in batches of about this size. */
const WRITE_BATCH = 1 << 20

/**
 * Stage one regular file; returns its object name. A small file is hashed
 * (header + content) from memory first and written, straight to its object
 * name, only if that object is neither staged nor published. A big one is
 * streamed to a scratch file while hashed (memory stays flat), then adopted.
 */
async function stageFile(tx: Transaction, data: Readable, size: number, meta: DirMeta, xattrFiles: { path: string; xattrs: Xattrs }[]): Promise<string> {
  const hash = createHash('sha256').update(fileObjectHeader(meta))
  if (size <= SMALL_FILE) {
    const chunks: Buffer[] = []
    for await (const chunk of data as AsyncIterable<Buffer>) {
      hash.update(chunk)
      chunks.push(chunk)
    }
    const hex = hash.digest('hex')
    const name = `${hex}.file`
    // Xattrs are set after chown (which clears security.capability) and after the last write.
    const disk = fileObjectOnDisk(meta)
    if (tx.putBytesSync(name, chunks, disk.owner ? { ...disk.owner, mode: disk.mode } : { mode: disk.mode }, { files: true }) && disk.xattrs) xattrFiles.push({ path: tx.path(name), xattrs: disk.xattrs })
    return hex
  }
  const scratch = tx.scratchPath()
  let written = 0
  const fh = await fsp.open(scratch, 'wx', 0o600)
  try {
    let batch: Buffer[] = []
    let batchLen = 0
    const flush = async (): Promise<void> => {
      let bufs = batch
      batch = []
      batchLen = 0
      while (bufs.length) {
        let n = (await fh.writev(bufs)).bytesWritten
        while (n > 0 && bufs.length) {
          if (n >= bufs[0].length) {
            n -= bufs[0].length
            bufs = bufs.slice(1)
          } else {
            bufs[0] = bufs[0].subarray(n)
            n = 0
          }
        }
      }
    }
    for await (const chunk of data as AsyncIterable<Buffer>) {
      hash.update(chunk)
      written += chunk.length
      batch.push(chunk)
      batchLen += chunk.length
      if (batchLen >= WRITE_BATCH) await flush()
    }
    await flush()
    const disk = fileObjectOnDisk(meta)
    if (disk.owner) await fh.chown(disk.owner.uid, disk.owner.gid)
    await fh.chmod(disk.mode)
    await fh.utimes(0, 0)
  } finally {
    await fh.close()
  }
  const hex = hash.digest('hex')
  const name = `${hex}.file`
  if (await tx.adopt(scratch, name, written)) {
    const x = fileObjectOnDisk(meta).xattrs
    if (x) xattrFiles.push({ path: tx.path(name), xattrs: x })
  }
  return hex
}

/** Write the builder's dirs as tree objects, children first. Returns the root tree's hex. */
async function writeTrees(tx: Transaction, dir: MDir): Promise<string> {
  const entries: Record<string, TreeEntry> = {}
  for (const [name, node] of dir.children) {
    if (node.kind === 'leaf') entries[name] = node.entry
    else {
      const tree = await writeTrees(tx, node)
      entries[name] = {
        type: 'dir',
        tree,
        ...node.meta,
        ...(node.opaque ? { opaque: true } : {}),
        ...(node.implicit ? { implicit: true } : {}),
      }
    }
  }
  const t: Tree = { entries }
  const { hex, bytes } = encodeObject(t)
  await tx.putBytes(`${hex}.tree`, bytes)
  return hex
}

export { sha256Hex }

/**
 * zstd layers (`+zstd` media types): Node 20's zlib has no zstd, so the
 * decompression is fzstd's streaming decoder (pure JS, no dependencies) in a
 * Transform. A truncated or corrupt frame fails the import like bad gzip does.
 */
function createZstdDecompress(desc: Descriptor): Transform {
  let out: Transform
  const dec = new (fzstd().Decompress)((chunk: Uint8Array) => {
    out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
  })
  const fail = (err: unknown) =>
    new ContentError('content.bad-compression', `layer ${desc.digest}: bad zstd data: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  out = new Transform({
    transform(chunk: Buffer, _e, cb) {
      try {
        dec.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
        cb()
      } catch (err) {
        cb(fail(err))
      }
    },
    flush(cb) {
      try {
        dec.push(new Uint8Array(0), true)
        cb()
      } catch (err) {
        cb(fail(err))
      }
    },
  })
  return out
}

