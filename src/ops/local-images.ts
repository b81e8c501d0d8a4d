/**
 * Local names first, as podman resolves them: what the user typed is looked
 * up among the store's image refs before anything is parsed as a registry
 * name, so every reference `images list` prints (and its ID) names the image.
 *
 * Tried in order, the first rule that matches wins:
 *   1. the ref name itself (`127.0.0.1:5000/demo/etcd:latest`, `oci:/srv/l:etcd`)
 *   2. the input's canonical store name (`docker://…`, a relative `oci:` path),
 *      or the transport form it was pulled from (the ref's recorded `source`,
 *      `docker-archive:/srv/etcd.tar`)
 *   3. an image ID: the manifest or config digest, with or without `sha256:`,
 *      or a prefix of its hex of at least 4 digits (`images list` prints 12)
 *   4. a short name: `etcd`, `etcd:3.4`, `demo/etcd` matches refs whose
 *      repository ends with that path and whose tag is the one given
 *      (default `latest`); a local transport's ref by its default name.
 * Several refs of one image (tags) are one match; refs of different images
 * are ambiguous (exit 2, naming them). Nothing found: undefined.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { isShortName } from '../config/registries'
import { ContentError, NotFoundError, UsageError } from '../errors'
import type { Descriptor, ImageManifest, ResolvedImage } from '../oci/types'
import { digestOf } from '../reference/digest'
import { type ImageRecord, Store } from '../store/store'
import type { ImageSource } from '../transports/image-source'
import { describeInput, isLocalInput } from '../transports/open'
import { parseConfig } from '../transports/resolve'
import { localImageName } from './source-options'

export interface LocalImage {
  /** The ref name, as `images list` prints it. */
  name: string
  record: ImageRecord
  /** Every ref of the same image that matched (tags). */
  names: string[]
  /** Which rule matched. */
  by: 'name' | 'source' | 'id' | 'short-name'
}

const ID = /^(?:sha256:)?([0-9a-f]{4,64})$/

/** `registry/repo:tag[@digest]` -> its path and tag (undefined for a transport form). */
function repoAndTag(ref: string): { path: string; tag?: string } | undefined {
  if (/^[a-z-]+:\//.test(ref) || ref.startsWith('docker-archive:') || ref.startsWith('oci:') || ref.startsWith('dir:')) return undefined
  const noDigest = ref.replace(/@.*$/, '')
  const slash = noDigest.lastIndexOf('/')
  const colon = noDigest.lastIndexOf(':')
  const tag = colon > slash ? noDigest.slice(colon + 1) : undefined
  return { path: colon > slash ? noDigest.slice(0, colon) : noDigest, tag }
}

function defaultNameOf(ref: string): string | undefined {
  try {
    return describeInput(ref).defaultName
  } catch {
    return undefined
  }
}

function canonical(input: string): string | undefined {
  try {
    return describeInput(input).refName
  } catch {
    return undefined
  }
}

function pick(matches: { name: string; record: ImageRecord }[], by: LocalImage['by'], input: string): LocalImage | undefined {
  if (matches.length === 0) return undefined
  const commits = [...new Set(matches.map((m) => m.record.manifestDigest))]
  if (commits.length > 1) {
    throw new UsageError('image.ambiguous', `${input} names ${commits.length} different images in the store: ${matches.map((m) => m.name).join(', ')}`, {
      hint: 'name one of them in full (sysctr images list)',
      data: { input, candidates: matches.map((m) => m.name) },
    })
  }
  return { name: matches[0].name, record: matches[0].record, names: matches.map((m) => m.name), by }
}

/** Resolve `input` among `refs` (store.listImageRefs()): see the top of this file. */
export function matchLocalImage(refs: { name: string; record: ImageRecord }[], input: string): LocalImage | undefined {
  const exact = refs.filter((r) => r.name === input)
  if (exact.length > 0) return pick(exact, 'name', input)
  const canon = canonical(input)
  if (canon !== undefined) {
    const byName = refs.filter((r) => r.name === canon)
    if (byName.length > 0) return pick(byName, 'name', input)
    const bySource = refs.filter((r) => r.record.source === canon || r.record.source === input)
    if (bySource.length > 0) return pick(bySource, 'source', input)
  }
  const id = ID.exec(input)
  if (id) {
    const hex = id[1]
    const byId = refs.filter((r) => [r.record.manifestDigest, r.record.configDigest].some((d) => d.replace(/^sha256:/, '').startsWith(hex)))
    if (byId.length > 0) {
      const digests = new Set(byId.map((r) => r.record.manifestDigest))
      if (digests.size > 1) {
        throw new UsageError('image.ambiguous', `image ID ${input} matches ${digests.size} different images: ${byId.map((r) => r.name).join(', ')}`, {
          hint: 'give more digits of the ID',
          data: { input, candidates: byId.map((r) => r.name) },
        })
      }
      return pick(byId, 'id', input)
    }
  }
  // A short name: no transport, no registry-looking first component required.
  if (/^[a-z0-9][a-z0-9._/-]*(?::[\w][\w.-]*)?$/.test(input) && !input.includes('//')) {
    const { path, tag } = repoAndTag(input)!
    const want = tag ?? 'latest'
    const byShort = refs.filter((r) => {
      const rt = repoAndTag(r.name)
      if (rt) return (rt.path === path || rt.path.endsWith(`/${path}`)) && (rt.tag ?? 'latest') === want
      // a local transport's ref: by the name a container installed from it gets
      return tag === undefined && defaultNameOf(r.name) === path
    })
    if (byShort.length > 0) return pick(byShort, 'short-name', input)
  }
  return undefined
}

export async function findLocalImage(store: Store, input: string): Promise<LocalImage | undefined> {
  const refs = await store.listImageRefs()
  const found = matchLocalImage(refs, input)
  if (found || !input.startsWith('docker-archive:')) return found
  // The same archive under another file name: by the RepoTags it holds.
  let named: string | undefined
  try {
    named = await localImageName(input)
  } catch {
    named = undefined
  }
  return named === undefined ? undefined : matchLocalImage(refs, named)
}

/** findLocalImage, or NotFoundError (exit 3) `no image named X in the store`. */
export async function requireLocalImage(store: Store, input: string, hint?: string): Promise<LocalImage> {
  const found = await findLocalImage(store, input)
  if (found) return found
  throw new NotFoundError('image.not-in-store', `no image named ${input} in the store`, {
    hint: hint ?? `sysctr images list shows what is stored; sysctr images pull ${input}`,
    data: { image: input },
  })
}

/** Does `input` look like something only the store can answer (an ID), not a registry? */
export function looksLikeImageId(input: string): boolean {
  return ID.test(input) && /[0-9]/.test(input)
}

/**
 * An ImageSource that reads a stored image back from the store: manifest and
 * config from their blobs (checked against their digests again), no layer
 * (every layer of a stored image is in the store, so a pull reuses them all).
 * Used when a short name or an ID names a stored image: nothing is fetched.
 */
export function storeSource(storeDir: string, local: LocalImage): ImageSource {
  const r = local.record
  return {
    name: `store:${local.name}`,
    async resolve(): Promise<ResolvedImage> {
      const store = await Store.open(storeDir)
      try {
        const manifestBytes = await store.getBlob(r.manifestDigest)
        const configBytes = await store.getBlob(r.configDigest)
        if (!manifestBytes || !configBytes || digestOf(manifestBytes, 'sha256') !== r.manifestDigest || digestOf(configBytes, 'sha256') !== r.configDigest) {
          throw new ContentError('store.damaged', `the store's manifest or config of ${local.name} is missing or damaged`, { hint: 'sysctr fsck --repair, or pull the image again' })
        }
        const manifest = JSON.parse(manifestBytes.toString('utf8')) as ImageManifest
        return { manifestDigest: r.manifestDigest, topDigest: r.manifestDigest, manifest, manifestBytes, config: parseConfig(configBytes, r.configDigest), configBytes }
      } finally {
        await store.close()
      }
    },
    openBlob(desc: Descriptor): Promise<Readable> {
      return Promise.reject(new NotFoundError('blob.not-found', `layer ${desc.digest} of ${local.name} is not in the store`, { hint: 'sysctr fsck --repair, or pull the image again' }))
    },
    close: () => Promise.resolve(),
  }
}

/**
 * What install and dry runs take from the store before any registry: a short
 * name or an ID (never a qualified registry name, which is pulled again to see
 * whether it changed, nor a local transport) that names a stored image.
 */
export async function storedImageFor(storeDir: string, input: string): Promise<LocalImage | undefined> {
  if (isLocalInput(input) || input.startsWith('docker://')) return undefined
  let short: boolean
  try {
    short = isShortName(input)
  } catch {
    short = looksLikeImageId(input)
  }
  if (!short && !looksLikeImageId(input)) return undefined
  // No store yet: nothing stored, and nothing is created by asking.
  if (!(await fsp.stat(join(storeDir, 'refs', 'images')).then(() => true, () => false))) return undefined
  const store = await Store.open(storeDir)
  try {
    return await findLocalImage(store, input)
  } finally {
    await store.close()
  }
}
