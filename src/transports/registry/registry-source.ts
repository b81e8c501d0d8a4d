/**
 * RegistrySource: an ImageSource for `docker://registry/repository[:tag][@digest]`.
 *
 * resolve():
 *   1. GET the manifest by digest (when the reference has one) or tag; check
 *      the bytes against the reference's digest, and against the registry's
 *      Docker-Content-Digest when sent. A registry is never trusted for a digest.
 *   2. An index (OCI or Docker list): pick os/architecture/variant (the
 *      `platform` argument, else the option, else linux/<host arch>); GET that
 *      manifest by digest and check it against the index entry (digest, size).
 *   3. Refuse media types that are not image manifests / configs (ContentError).
 *   4. GET the config blob through the digest check and parse it.
 * Nothing is returned unless every byte handed over was verified.
 */
import type { Readable } from 'node:stream'
import { ContentError, NotFoundError } from '../../errors'
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
} from '../../oci/types'
import { digestOf, digestProblem, isDigest, verifyBytes, digestAlgorithm } from '../../reference/digest'
import type { ImageReference } from '../../reference/reference'
import type { ImageSource } from '../image-source'
import { RegistryClient, RegistryClientOptions } from './client'
import { choosePlatform, formatPlatform, hostPlatform } from './platform'

export interface RegistrySourceOptions extends RegistryClientOptions {
  /** Platform to pick from an index when resolve() is given none. Default linux/<host arch>. */
  platform?: Platform
}

/** Configs bigger than this are refused. */
export const CONFIG_SIZE_LIMIT = 16 << 20

const KNOWN_TYPES = [...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES]

interface ParsedManifest {
  digest: Digest
  bytes: Buffer
  mediaType: string
  json: Record<string, unknown>
}

export class RegistrySource implements ImageSource {
  readonly name: string
  readonly ref: ImageReference
  private readonly client: RegistryClient
  private readonly platform?: Platform

  constructor(ref: ImageReference, opts: RegistrySourceOptions = {}) {
    this.ref = ref
    this.name = `docker://${ref.toString()}`
    this.platform = opts.platform
    this.client = new RegistryClient(ref.registry, opts)
  }

  async resolve(platform?: Platform): Promise<ResolvedImage> {
    const want = platform ?? this.platform ?? hostPlatform()
    const top = await this.fetchManifest(this.ref.digest ?? (this.ref.tag as string), this.ref.digest ? { digest: this.ref.digest } : undefined)
    let chosen = top
    if (INDEX_MEDIA_TYPES.includes(top.mediaType)) {
      const index = checkIndex(top)
      const entry = choosePlatform(index.manifests, want)
      if (!entry) {
        const available = index.manifests.filter((d) => MANIFEST_MEDIA_TYPES.includes(d.mediaType)).map((d) => formatPlatform(d.platform))
        throw new NotFoundError('image.platform-not-found', `image ${this.ref.toString()} has no manifest for ${formatPlatform(want)} (available: ${available.length ? [...new Set(available)].join(', ') : 'none'})`, {
          data: { reference: this.ref.toString(), wanted: formatPlatform(want), available },
          hint: 'choose one of the available platforms',
        })
      }
      checkDescriptor(entry, `index ${top.digest} entry`)
      chosen = await this.fetchManifest(entry.digest, { digest: entry.digest, size: entry.size })
      if (!MANIFEST_MEDIA_TYPES.includes(chosen.mediaType)) {
        throw new ContentError('content.unsupported-media-type', `manifest ${entry.digest} for ${formatPlatform(want)} is a ${chosen.mediaType}, not an image manifest`, {
          data: { mediaType: chosen.mediaType },
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
    const configBytes = await collect(await this.openBlob(manifest.config))
    let config: ImageConfig
    try {
      config = JSON.parse(configBytes.toString('utf8')) as ImageConfig
    } catch {
      throw new ContentError('content.bad-config', `config ${manifest.config.digest} is not JSON`)
    }
    if (config === null || typeof config !== 'object' || Array.isArray(config)) {
      throw new ContentError('content.bad-config', `config ${manifest.config.digest} is not a JSON object`)
    }
    return { manifestDigest: chosen.digest, topDigest: top.digest, manifest, manifestBytes: chosen.bytes, config, configBytes }
  }

  openBlob(desc: Descriptor): Promise<Readable> {
    return this.client.getBlob(this.ref.repository, desc)
  }

  async close(): Promise<void> {
    this.client.close()
  }

  private async fetchManifest(reference: string, expect?: { digest: Digest; size?: number }): Promise<ParsedManifest> {
    const display = expect && reference === expect.digest && this.ref.digest !== expect.digest
      ? `${this.ref.registry}/${this.ref.repository}@${reference}`
      : this.ref.toString()
    const fetched = await this.client.getManifest(this.ref.repository, reference, display)
    const bytes = fetched.bytes
    let digest: Digest
    if (expect) {
      verifyBytes(bytes, expect.digest, expect.size, `manifest ${expect.digest}`)
      digest = expect.digest
    } else {
      digest = digestOf(bytes, 'sha256')
    }
    const claimed = fetched.dockerContentDigest
    if (claimed !== undefined) {
      if (digestProblem(claimed) === undefined) {
        const found = digestOf(bytes, digestAlgorithm(claimed as Digest))
        if (found !== claimed) {
          throw new ContentError('content.digest-mismatch', `manifest ${reference} of ${this.ref.repository}: registry says ${claimed}, bytes hash to ${found}`, {
            data: { expected: claimed, found },
          })
        }
        if (!expect && digestAlgorithm(claimed as Digest) !== 'sha256') digest = claimed as Digest
      }
    }

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
    const header = fetched.contentType
    if (obj.schemaVersion !== 2) {
      throw new ContentError('content.unsupported-media-type', `manifest ${digest}: schema version ${String(obj.schemaVersion)} is not supported (only OCI and Docker schema 2)`, {
        data: { schemaVersion: obj.schemaVersion, mediaType: bodyType ?? header },
      })
    }
    if (bodyType && KNOWN_TYPES.includes(header) && header !== bodyType) {
      throw new ContentError('content.media-type-mismatch', `manifest ${digest}: registry calls it ${header} but it says ${bodyType}`, {
        data: { expected: header, found: bodyType },
      })
    }
    const mediaType = bodyType ?? (KNOWN_TYPES.includes(header) ? header : guessMediaType(obj))
    if (!KNOWN_TYPES.includes(mediaType)) {
      throw new ContentError('content.unsupported-media-type', `manifest ${digest}: media type ${mediaType || '(none)'} is not an image manifest or index`, {
        data: { mediaType, expected: KNOWN_TYPES },
      })
    }
    return { digest, bytes, mediaType, json: obj }
  }
}

function guessMediaType(obj: Record<string, unknown>): string {
  if (Array.isArray(obj.manifests)) return MediaType.ociIndex
  if (obj.config && Array.isArray(obj.layers)) return MediaType.ociManifest
  return ''
}

function checkDescriptor(d: unknown, what: string): asserts d is Descriptor {
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

function checkIndex(m: ParsedManifest): ImageIndex {
  const manifests = m.json.manifests
  if (!Array.isArray(manifests)) throw new ContentError('content.bad-manifest', `index ${m.digest} has no manifests list`)
  return m.json as unknown as ImageIndex
}

function checkManifest(m: ParsedManifest): ImageManifest {
  const j = m.json as unknown as ImageManifest
  checkDescriptor(j.config, `manifest ${m.digest} config`)
  if (!Array.isArray(j.layers)) throw new ContentError('content.bad-manifest', `manifest ${m.digest} has no layers list`)
  j.layers.forEach((l, i) => checkDescriptor(l, `manifest ${m.digest} layer ${i}`))
  return j
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

/** Open a source for a registry reference. Nothing is fetched until resolve()/openBlob(). */
export function openRegistrySource(ref: ImageReference, opts: RegistrySourceOptions = {}): RegistrySource {
  return new RegistrySource(ref, opts)
}
