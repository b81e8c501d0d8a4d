/**
 * Writes OCI image layouts (image-spec "image layout": oci-layout, index.json,
 * blobs/sha256/…) from layers described in code. Used to build the demo images
 * and every test fixture, so fixtures are made by code, never checked in.
 *
 * Layers are tar streams written with tar-stream (gzip-compressed unless told
 * otherwise); blobs are written to a temp name and renamed once their digest
 * is known. Output is deterministic for the same input (fixed mtimes unless
 * given).
 */
import { createHash } from 'node:crypto'
import { createWriteStream, promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { PassThrough, Transform } from 'node:stream'
import { createGzip } from 'node:zlib'
import * as tar from 'tar-stream'
import { Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, MediaType, Platform } from '../src/oci/types'
import { hostArchitecture } from '../src/transports/registry/platform'

export type LayerEntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo'

export interface LayerEntry {
  /** Path inside the layer, as written in the tar header (e.g. `etc/hosts`, `usr/bin/`). */
  path: string
  type?: LayerEntryType
  content?: Buffer | string
  mode?: number
  uid?: number
  gid?: number
  uname?: string
  gname?: string
  /** Target of a symlink, or the path a hardlink (`link`) points to. */
  linkname?: string
  mtime?: Date
  devmajor?: number
  devminor?: number
  /** Extra PAX records, e.g. `SCHILY.xattr.security.capability`. */
  pax?: Record<string, string>
}

export interface ImageSpec {
  /** Tag for `org.opencontainers.image.ref.name` in index.json. */
  tag: string
  layers: LayerEntry[][]
  config?: ImageConfig['config']
  platform?: Platform
  compression?: 'gzip' | 'none'
  /** Manifest annotations. */
  annotations?: Record<string, string>
}

export interface WrittenImage {
  tag: string
  manifestDigest: Digest
  manifest: ImageManifest
  configDigest: Digest
  layers: Descriptor[]
  diffIDs: Digest[]
}

const FIXED_MTIME = new Date('2023-11-14T22:13:20Z')

function sha256(buf: Buffer): Digest {
  return `sha256:${createHash('sha256').update(buf).digest('hex')}` as Digest
}

async function writeBlobBytes(dir: string, bytes: Buffer): Promise<Digest> {
  const digest = sha256(bytes)
  const path = join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length))
  await fsp.writeFile(path, bytes)
  return digest
}

function headerFor(e: LayerEntry): tar.Header {
  const type = e.type ?? (e.path.endsWith('/') ? 'directory' : 'file')
  const content = e.content === undefined ? undefined : Buffer.from(e.content)
  return {
    name: e.path,
    type,
    mode: e.mode ?? (type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644),
    uid: e.uid ?? 0,
    gid: e.gid ?? 0,
    uname: e.uname ?? '',
    gname: e.gname ?? '',
    size: type === 'file' ? (content?.length ?? 0) : 0,
    mtime: e.mtime ?? FIXED_MTIME,
    ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
    ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
    ...(e.pax ? { pax: e.pax } : {}),
  } as tar.Header
}

/** Stream a layer tar (optionally gzip) into `blobs/`, returning its descriptor and diffID. */
export async function writeLayer(
  dir: string,
  entries: LayerEntry[],
  compression: 'gzip' | 'none' = 'gzip',
): Promise<{ descriptor: Descriptor; diffID: Digest }> {
  const pack = tar.pack()
  const diffHash = createHash('sha256')
  const blobHash = createHash('sha256')
  let size = 0
  const tmp = join(dir, 'blobs', 'sha256', `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`)
  const tapDiff = new Transform({
    transform(chunk, _enc, cb) {
      diffHash.update(chunk)
      cb(null, chunk)
    },
  })
  const tapBlob = new Transform({
    transform(chunk, _enc, cb) {
      blobHash.update(chunk)
      size += chunk.length
      cb(null, chunk)
    },
  })
  const done = pipeline(
    pack,
    tapDiff,
    compression === 'gzip' ? createGzip({ level: 6 }) : new PassThrough(),
    tapBlob,
    createWriteStream(tmp),
  )
  for (const e of entries) {
    const h = headerFor(e)
    await new Promise<void>((resolve, reject) => {
      const content = e.content === undefined ? undefined : Buffer.from(e.content)
      if (h.type === 'file') pack.entry(h, content ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()))
      else pack.entry(h, (err) => (err ? reject(err) : resolve()))
    })
  }
  pack.finalize()
  await done
  const digest = `sha256:${blobHash.digest('hex')}` as Digest
  await fsp.rename(tmp, join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)))
  return {
    descriptor: {
      mediaType: compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayer,
      digest,
      size,
    },
    diffID: `sha256:${diffHash.digest('hex')}` as Digest,
  }
}

/**
 * Write (or add to) an OCI image layout at `dir`. Existing images in index.json
 * with other tags are kept; an image with the same tag is replaced.
 */
export async function writeOciLayout(dir: string, images: ImageSpec[]): Promise<WrittenImage[]> {
  await fsp.mkdir(join(dir, 'blobs', 'sha256'), { recursive: true })
  await fsp.writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  let index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] }
  try {
    index = JSON.parse(await fsp.readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex
  } catch {
    /* new layout */
  }
  const written: WrittenImage[] = []
  for (const spec of images) {
    const layers: Descriptor[] = []
    const diffIDs: Digest[] = []
    for (const entries of spec.layers) {
      const { descriptor, diffID } = await writeLayer(dir, entries, spec.compression ?? 'gzip')
      layers.push(descriptor)
      diffIDs.push(diffID)
    }
    const platform = spec.platform ?? { os: 'linux', architecture: hostArchitecture() }
    const config: ImageConfig = {
      architecture: platform.architecture,
      os: platform.os,
      config: spec.config ?? {},
      rootfs: { type: 'layers', diff_ids: diffIDs },
      history: [],
    }
    const configBytes = Buffer.from(JSON.stringify(config))
    const configDigest = await writeBlobBytes(dir, configBytes)
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
      layers,
      ...(spec.annotations ? { annotations: spec.annotations } : {}),
    }
    const manifestBytes = Buffer.from(JSON.stringify(manifest))
    const manifestDigest = await writeBlobBytes(dir, manifestBytes)
    index.manifests = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] !== spec.tag)
    index.manifests.push({
      mediaType: MediaType.ociManifest,
      digest: manifestDigest,
      size: manifestBytes.length,
      annotations: { 'org.opencontainers.image.ref.name': spec.tag },
    })
    written.push({ tag: spec.tag, manifestDigest, manifest, configDigest, layers, diffIDs })
  }
  await fsp.writeFile(join(dir, 'index.json'), JSON.stringify(index))
  return written
}
