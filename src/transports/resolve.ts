/**
 * Manifest, index and config checks shared by every transport, and the one
 * resolve flow they all follow:
 *   top manifest (verified by the caller) -> when an index, pick the platform
 *   and fetch that manifest by its descriptor (verified against it) -> check
 *   the manifest's media types and descriptors -> read the config through
 *   `openBlob` (verified) and parse it.
 * A transport supplies only how bytes are found; nothing here trusts them.
 */
import type { Readable } from 'node:stream'
import { ContentError, NotFoundError } from '../errors'
import {
  CONFIG_MEDIA_TYPES,
  Descriptor,
  Digest,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  INDEX_MEDIA_TYPES,
  MANIFEST_MEDIA_TYPES,
  MediaType,
  Platform,
  ResolvedImage,
} from '../oci/types'
import { digestProblem, isDigest } from '../reference/digest'
import { choosePlatform, formatPlatform } from './registry/platform'

/** Configs bigger than this are refused. */
export const CONFIG_SIZE_LIMIT = 16 << 20

export const KNOWN_MANIFEST_TYPES: readonly string[] = [...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES]

export interface ParsedManifest {
  digest: Digest
  bytes: Buffer
  mediaType: string
  json: Record<string, unknown>
}

/**
 * Parse manifest or index bytes whose digest the caller has established.
 * `declared` is what the transport calls it (Content-Type, descriptor
 * mediaType); a body that says otherwise is refused.
 */
export function parseManifestBytes(bytes: Buffer, digest: Digest, declared = ''): ParsedManifest {
  let json: unknown
  try {
    json = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new ContentError('content.bad-manifest', `manifest ${digest} is not JSON`, { data: { digest } })
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ContentError('content.bad-manifest', `manifest ${digest} is not a JSON object`, { data: { digest } })
  }
  const obj = json as Record<string, unknown>
  const bodyType = typeof obj.mediaType === 'string' ? obj.mediaType : undefined
  if (obj.schemaVersion !== 2) {
    throw new ContentError('content.unsupported-media-type', `manifest ${digest}: schema version ${String(obj.schemaVersion)} is not supported (only OCI and Docker schema 2)`, {
      data: { schemaVersion: obj.schemaVersion, mediaType: bodyType ?? declared },
    })
  }
  if (bodyType && KNOWN_MANIFEST_TYPES.includes(declared) && declared !== bodyType) {
    throw new ContentError('content.media-type-mismatch', `manifest ${digest}: it is declared a ${declared} but says ${bodyType}`, {
      data: { expected: declared, found: bodyType },
    })
  }
  const mediaType = bodyType ?? (KNOWN_MANIFEST_TYPES.includes(declared) ? declared : guessMediaType(obj))
  if (!KNOWN_MANIFEST_TYPES.includes(mediaType)) {
    throw new ContentError('content.unsupported-media-type', `manifest ${digest}: media type ${mediaType || '(none)'} is not an image manifest or index`, {
      data: { mediaType, expected: KNOWN_MANIFEST_TYPES },
    })
  }
  return { digest, bytes, mediaType, json: obj }
}

function guessMediaType(obj: Record<string, unknown>): string {
  if (Array.isArray(obj.manifests)) return MediaType.ociIndex
  if (obj.config && Array.isArray(obj.layers)) return MediaType.ociManifest
  return ''
}

export function checkDescriptor(d: unknown, what: string): asserts d is Descriptor {
  const desc = d as Descriptor
  if (
    !desc ||
    typeof desc !== 'object' ||
    typeof desc.mediaType !== 'string' ||
    !isDigest(desc.digest) ||
    !Number.isSafeInteger(desc.size) ||
    desc.size < 0
  ) {
    const problem = desc && typeof desc.digest === 'string' ? digestProblem(desc.digest) : undefined
    throw new ContentError('content.bad-manifest', `${what}: not a valid descriptor${problem ? ` (${problem})` : ''}`)
  }
}

export function checkIndex(m: ParsedManifest): ImageIndex {
  const manifests = m.json.manifests
  if (!Array.isArray(manifests)) throw new ContentError('content.bad-manifest', `index ${m.digest} has no manifests list`)
  return m.json as unknown as ImageIndex
}

/** Layer media types sysctr unpacks (tar, gzip or zstd); anything else (encrypted, artifacts, …) is refused. */
export const LAYER_MEDIA_TYPES: readonly string[] = [
  MediaType.ociLayer,
  MediaType.ociLayerGzip,
  MediaType.ociLayerZstd,
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  MediaType.ociLayerNondistGzip,
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  'application/vnd.docker.image.rootfs.diff.tar',
  MediaType.dockerLayerGzip,
  MediaType.dockerForeignLayerGzip,
]

export function checkManifest(m: ParsedManifest): ImageManifest {
  const j = m.json as unknown as ImageManifest
  checkDescriptor(j.config, `manifest ${m.digest} config`)
  if (!Array.isArray(j.layers)) throw new ContentError('content.bad-manifest', `manifest ${m.digest} has no layers list`)
  j.layers.forEach((l, i) => {
    checkDescriptor(l, `manifest ${m.digest} layer ${i}`)
    if (!LAYER_MEDIA_TYPES.includes(l.mediaType)) {
      throw new ContentError('content.unsupported-media-type', `manifest ${m.digest} layer ${i} (${l.digest}): media type ${l.mediaType || '(none)'} is not an image layer sysctr can unpack`, {
        data: { mediaType: l.mediaType, expected: LAYER_MEDIA_TYPES },
      })
    }
  })
  return j
}

export function parseConfig(bytes: Buffer, digest: Digest): ImageConfig {
  let config: ImageConfig
  try {
    config = JSON.parse(bytes.toString('utf8')) as ImageConfig
  } catch {
    throw new ContentError('content.bad-config', `config ${digest} is not JSON`)
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ContentError('content.bad-config', `config ${digest} is not a JSON object`)
  }
  return config
}

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

export interface ResolveInput {
  /** The manifest or index the name pointed at, already verified. */
  top: ParsedManifest
  /** For messages: the image as the user named it. */
  display: string
  want: Platform
  /** Fetch a manifest an index names; must verify it against `desc` (digest and size). */
  fetchManifest(desc: Descriptor): Promise<ParsedManifest>
  /** A verifying blob stream (the ImageSource's openBlob). */
  openBlob(desc: Descriptor): Promise<Readable>
}

/** The common resolve flow (see the top of this file). */
export async function resolveImage(input: ResolveInput): Promise<ResolvedImage> {
  const { top, want } = input
  let chosen = top
  if (INDEX_MEDIA_TYPES.includes(top.mediaType)) {
    const index = checkIndex(top)
    const entry = choosePlatform(index.manifests, want)
    if (!entry) {
      const available = index.manifests.filter((d) => MANIFEST_MEDIA_TYPES.includes(d.mediaType)).map((d) => formatPlatform(d.platform))
      throw new NotFoundError('image.platform-not-found', `image ${input.display} has no manifest for ${formatPlatform(want)} (available: ${available.length ? [...new Set(available)].join(', ') : 'none'})`, {
        data: { reference: input.display, wanted: formatPlatform(want), available },
        hint: 'choose one of the available platforms (--platform os/arch[/variant])',
      })
    }
    checkDescriptor(entry, `index ${top.digest} entry`)
    chosen = await input.fetchManifest(entry)
    if (!MANIFEST_MEDIA_TYPES.includes(chosen.mediaType)) {
      throw new ContentError('content.unsupported-media-type', `manifest ${entry.digest} for ${formatPlatform(want)} is a ${chosen.mediaType}, not an image manifest`, {
        data: { mediaType: chosen.mediaType },
      })
    }
    if (entry.mediaType !== chosen.mediaType) {
      throw new ContentError('content.media-type-mismatch', `index ${top.digest} entry ${entry.digest} is declared a ${entry.mediaType} but is a ${chosen.mediaType}`, {
        data: { expected: entry.mediaType, found: chosen.mediaType },
      })
    }
  }
  const manifest = checkManifest(chosen)
  if (!CONFIG_MEDIA_TYPES.includes(manifest.config.mediaType)) {
    throw new ContentError('content.unsupported-media-type', `manifest ${chosen.digest}: config media type ${manifest.config.mediaType} is not an image config`, {
      data: { mediaType: manifest.config.mediaType, expected: CONFIG_MEDIA_TYPES },
    })
  }
  if (manifest.config.size > CONFIG_SIZE_LIMIT) {
    throw new ContentError('content.too-large', `config ${manifest.config.digest}: ${manifest.config.size} bytes is more than ${CONFIG_SIZE_LIMIT}`)
  }
  const configBytes = await collect(await input.openBlob(manifest.config))
  const config = parseConfig(configBytes, manifest.config.digest)
  return { manifestDigest: chosen.digest, topDigest: top.digest, manifest, manifestBytes: chosen.bytes, config, configBytes }
}
