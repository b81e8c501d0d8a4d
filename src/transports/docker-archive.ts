/**
 * `docker-archive:FILE[:REF]` (also `FILE:@N`): what `docker save`,
 * `podman save` and `skopeo copy … docker-archive:` write. A tar with
 * `manifest.json` = [{Config, RepoTags, Layers}], the config JSON and one
 * tar per layer (uncompressed as written by these tools; a gzip layer is
 * accepted too).
 *
 * There is no registry manifest in such an archive: resolve() builds an OCI
 * manifest from the entry (config digest = hash of the config file; an
 * uncompressed layer's digest is its diffID from the config, a gzip layer's
 * is hashed once from the archive) and hands over its bytes; openBlob()
 * streams the layer file from the archive through the digest check, so every
 * byte the store gets is verified as from any other source. The store takes
 * uncompressed layers (media type `…layer.v1.tar`).
 */
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { ContentError, NotFoundError, UsageError } from '../errors'
import { Descriptor, Digest, ImageManifest, MediaType, Platform, ResolvedImage } from '../oci/types'
import { digestOf, isDigest } from '../reference/digest'
import { formatPlatform, hostPlatform, platformMatches } from './registry/platform'
import type { ImageSource } from './image-source'
import { TarTree } from './file-tree'
import { LOCAL_MANIFEST_LIMIT, openVerified } from './local-blob'
import type { LocalSourceOptions } from './oci-layout'
import { CONFIG_SIZE_LIMIT, parseConfig } from './resolve'

interface ArchiveEntry {
  Config: string
  RepoTags?: string[] | null
  Layers: string[]
}

export class DockerArchiveSource implements ImageSource {
  readonly name: string
  private readonly paths = new Map<Digest, string>()

  constructor(
    private readonly tree: TarTree,
    /** A RepoTags entry (as written, or normalised), `@N`, or undefined for the only image. */
    private readonly selector: string | undefined,
    private readonly opts: LocalSourceOptions = {},
  ) {
    this.name = `docker-archive:${tree.where}${selector !== undefined ? `:${selector}` : ''}`
  }

  async resolve(platform?: Platform): Promise<ResolvedImage> {
    const entry = await this.chooseEntry()
    const configBytes = await this.tree.read(entry.Config, CONFIG_SIZE_LIMIT)
    const configDigest = digestOf(configBytes, 'sha256')
    const config = parseConfig(configBytes, configDigest)
    const want = platform ?? this.opts.platform
    if (want && config.os && config.architecture && !platformMatches(want, { os: config.os, architecture: config.architecture })) {
      throw new NotFoundError('image.platform-not-found', `${this.name} is for ${formatPlatform({ os: config.os, architecture: config.architecture })}, not ${formatPlatform(want)}`, {
        data: { wanted: formatPlatform(want) },
      })
    }
    const diffIDs = config.rootfs?.diff_ids ?? []
    if (!Array.isArray(entry.Layers) || diffIDs.length !== entry.Layers.length) {
      throw new ContentError('content.diffid-count', `${this.name}: config lists ${diffIDs.length} diff_ids but manifest.json has ${entry.Layers?.length ?? 0} layers`)
    }
    this.paths.set(configDigest, entry.Config)
    const layers: Descriptor[] = []
    for (const [i, path] of entry.Layers.entries()) {
      const size = await this.tree.size(path)
      if (size === undefined) throw new NotFoundError('blob.not-found', `${this.name}: layer file ${path} is missing`)
      let digest: Digest
      let mediaType: string
      if (await this.isGzip(path)) {
        digest = await this.hash(path)
        mediaType = MediaType.ociLayerGzip
      } else {
        if (!isDigest(diffIDs[i])) throw new ContentError('content.bad-config', `${this.name}: diff_id ${i} is not a valid digest`)
        digest = diffIDs[i]
        mediaType = MediaType.ociLayer
      }
      this.paths.set(digest, path)
      layers.push({ mediaType, digest, size })
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: configBytes.length },
      layers,
    }
    const manifestBytes = Buffer.from(JSON.stringify(manifest))
    const manifestDigest = digestOf(manifestBytes, 'sha256')
    return { manifestDigest, topDigest: manifestDigest, manifest, manifestBytes, config, configBytes }
  }

  /**
   * The name the image is stored under, as skopeo, podman and atomic name it:
   * the RepoTags entry asked for, else the chosen entry's first RepoTags
   * entry, normalised as docker does (`busybox` -> `docker.io/library/busybox:latest`).
   * Undefined for an archive without RepoTags (then the file's path names it).
   */
  async imageName(): Promise<string | undefined> {
    const entry = await this.chooseEntry()
    const sel = this.selector
    if (sel !== undefined && !/^@\d+$/.test(sel)) return normaliseTag(sel)
    const first = (entry.RepoTags ?? []).find((t) => typeof t === 'string' && t !== '' && !t.startsWith('<none>'))
    return first === undefined ? undefined : normaliseTag(first)
  }

  openBlob(desc: Descriptor): Promise<Readable> {
    const path = this.paths.get(desc.digest)
    if (path === undefined) {
      return Promise.reject(new NotFoundError('blob.not-found', `blob ${desc.digest} is not in ${this.name} (resolve it first)`))
    }
    return openVerified(this.tree, path, desc)
  }

  async close(): Promise<void> {
    await this.tree.close()
  }

  private async isGzip(path: string): Promise<boolean> {
    const s = await this.tree.open(path)
    for await (const chunk of s) {
      s.destroy()
      const b = chunk as Buffer
      return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b
    }
    return false
  }

  private async hash(path: string): Promise<Digest> {
    const h = createHash('sha256')
    for await (const chunk of await this.tree.open(path)) h.update(chunk as Buffer)
    return `sha256:${h.digest('hex')}` as Digest
  }

  private async chooseEntry(): Promise<ArchiveEntry> {
    let entries: ArchiveEntry[]
    try {
      entries = JSON.parse((await this.tree.read('manifest.json', LOCAL_MANIFEST_LIMIT)).toString('utf8')) as ArchiveEntry[]
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new NotFoundError('image.not-found', `${this.tree.where} is not a docker archive (no manifest.json)`, { data: { where: this.tree.where } })
      }
      if (err instanceof SyntaxError) throw new ContentError('content.bad-manifest', `${this.tree.where}: manifest.json is not JSON`)
      throw err
    }
    if (!Array.isArray(entries) || entries.some((e) => !e || typeof e.Config !== 'string' || !Array.isArray(e.Layers))) {
      throw new ContentError('content.bad-manifest', `${this.tree.where}: manifest.json is not a list of {Config, Layers}`)
    }
    const tags = entries.flatMap((e) => e.RepoTags ?? [])
    const sel = this.selector
    if (sel === undefined) {
      if (entries.length === 1) return entries[0]
      throw new UsageError('image.ambiguous', `${this.tree.where} holds ${entries.length} images: name one with :REF or :@N`, {
        hint: tags.length ? `tags: ${tags.join(', ')}` : undefined,
        data: { tags },
      })
    }
    if (/^@\d+$/.test(sel)) {
      const n = Number(sel.slice(1))
      if (n >= entries.length) throw new NotFoundError('image.not-found', `${this.tree.where} holds ${entries.length} images, no @${n}`)
      return entries[n]
    }
    const norm = (t: string) => normaliseTag(t)
    const found = entries.find((e) => (e.RepoTags ?? []).some((t) => t === sel || norm(t) === norm(sel)))
    if (!found) {
      throw new NotFoundError('image.not-found', `${this.tree.where} has no image tagged ${sel} (tags: ${tags.length ? tags.join(', ') : 'none'})`, {
        data: { where: this.tree.where, tag: sel, tags },
      })
    }
    return found
  }
}

/** `busybox` -> `docker.io/library/busybox:latest`, as docker writes RepoTags in familiar form. */
export function normaliseTag(t: string): string {
  let s = t
  const slash = s.indexOf('/')
  const first = slash < 0 ? '' : s.slice(0, slash)
  if (slash < 0 || !(first.includes('.') || first.includes(':') || first === 'localhost')) s = `docker.io/${s}`
  const parts = s.split('/')
  if (parts[0] === 'docker.io' && parts.length === 2) s = `docker.io/library/${parts[1]}`
  if (!/:[\w][\w.-]*$/.test(s.slice(s.lastIndexOf('/')))) s = `${s}:latest`
  return s
}

export async function openDockerArchive(file: string, selector: string | undefined, opts: LocalSourceOptions = {}): Promise<DockerArchiveSource> {
  return new DockerArchiveSource(await TarTree.open(file), selector, opts)
}

/** The store name of `docker-archive:FILE[:SEL]` (see DockerArchiveSource.imageName), or undefined. */
export async function archiveImageName(file: string, selector: string | undefined): Promise<string | undefined> {
  const src = await openDockerArchive(file, selector)
  try {
    return await src.imageName()
  } finally {
    await src.close()
  }
}
