/**
 * Image verbs: pull an image by reference, check an image out into a
 * directory, list the stored images (with the deployments using each) and
 * delete one (refused while a deployment or a mount uses it).
 */
import { ConflictError, doing, NotFoundError } from '../errors'
import type { Digest, ImageConfig, ImageManifest } from '../oci/types'
import type { GcResult } from '../store/gc'
import type { ImageRecord } from '../store/store'
import { deploymentUses, pruneStore } from './store-maintenance'
import { mountedCommits } from './mount'
import { parseReference } from '../reference/reference'
import { Store } from '../store/store'
import type { CheckoutStats } from '../checkout/checkout'
import type { ImageSource } from '../transports/image-source'
import { describeInput, openImageSource } from '../transports/open'
import { requireLocalImage } from './local-images'
import { wantedPlatform } from './pull-image'
import { sourceOptions, type SourceFlags } from './source-options'
import type { OpsContext } from './context'
import { pullImage, PullResult } from './pull-image'

export async function openStore(ctx: OpsContext): Promise<Store> {
  return Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
}

export async function pull(ctx: OpsContext, image: string, opts: SourceFlags & { source?: ImageSource } = {}): Promise<PullResult> {
  const opened = opts.source ? { refName: parseReference(image).toString(), source: opts.source } : await openImageSource(image, sourceOptions(ctx, opts))
  const name = opened.refName
  const source = opened.source
  const store = await openStore(ctx)
  try {
    return await doing(`pulling ${name}`, () => pullImage(store, source, name, { reporter: ctx.reporter, ...wantedPlatform(opts), mismatchNote: 'pulled anyway' }))
  } finally {
    await source.close()
  }
}

export async function checkoutImage(ctx: OpsContext, image: string, dir: string, opts: { copy?: boolean } = {}): Promise<CheckoutStats> {
  const store = await openStore(ctx)
  try {
    const { name, record } = await requireLocalImage(store, image)
    return await doing(`checking out ${name} into ${dir}`, () => store.checkout(record.commit, dir, { copy: opts.copy }))
  } finally {
    await store.close()
  }
}

export interface ImageListing {
  reference: string
  manifestDigest: Digest
  configDigest: Digest
  commit: string
  /** Sum of the layer blobs' sizes (compressed, as pulled). */
  size: number
  /** The config's `created`, if any. */
  created?: string
  /** Deployments (`NAME.N`) whose image commit this is. */
  usedBy: string[]
  /** The local file it was read from, when the reference is not that (a docker archive named by its RepoTags). */
  source?: string
}

export async function listImages(ctx: OpsContext): Promise<ImageListing[]> {
  const store = await openStore(ctx)
  const uses = await deploymentUses(ctx)
  const out: ImageListing[] = []
  for (const { name, record } of await store.listImageRefs()) {
    let size = 0
    let created: string | undefined
    try {
      const manifest = JSON.parse((await store.getBlob(record.manifestDigest))?.toString('utf8') ?? 'null') as ImageManifest | null
      for (const l of manifest?.layers ?? []) size += l.size
      const config = JSON.parse((await store.getBlob(record.configDigest))?.toString('utf8') ?? 'null') as (ImageConfig & { created?: unknown }) | null
      if (typeof config?.created === 'string') created = config.created
    } catch {
      /* a corrupt blob: listed without size; fsck reports it */
    }
    out.push({
      reference: name,
      manifestDigest: record.manifestDigest,
      configDigest: record.configDigest,
      commit: record.commit,
      size,
      created,
      usedBy: uses.filter((u) => u.imageCommit === record.commit || u.image === name).map((u) => u.deployment),
      ...(typeof record.source === 'string' ? { source: record.source } : {}),
    })
  }
  await store.close()
  return out
}

export interface DeleteResult {
  reference: string
  commit: string
  /** Present when --prune ran right away. */
  pruned?: GcResult
}

/**
 * Remove an image ref. Refused (ConflictError 'image.in-use', exit 4) while
 * any deployment, active or not, uses the image (by reference or commit).
 * Objects stay until the next prune, or go now with `prune`.
 */
export async function deleteImage(ctx: OpsContext, image: string, opts: { prune?: boolean } = {}): Promise<DeleteResult> {
  const store = await openStore(ctx)
  let rec: ImageRecord
  let name: string
  try {
    // Every name images list prints: the ref, its ID (or a prefix), a short name, the archive it came from.
    const found = await requireLocalImage(store, image)
    if (found.by === 'id' && found.names.length > 1) {
      throw new ConflictError('image.several-names', `image ID ${image} has ${found.names.length} names: ${found.names.join(', ')}`, {
        hint: 'delete each name (sysctr images delete NAME); the objects go when the last name does',
        data: { image, names: found.names },
      })
    }
    name = found.name
    // Checked and removed under the store lock: an install that publishes this ref meanwhile waits, or is seen.
    rec = await store.withLock(`deleting image ${name}`, () => deleteUnused(ctx, store, name))
  } finally {
    await store.close()
  }
  const result: DeleteResult = { reference: name, commit: rec.commit }
  if (opts.prune) result.pruned = await pruneStore(ctx)
  return result
}

async function deleteUnused(ctx: OpsContext, store: Store, name: string): Promise<ImageRecord> {
  const rec = (await store.listImageRefs()).find((r) => r.name === name)?.record
  if (!rec) throw new NotFoundError('image.not-in-store', `image ${name} is not in the store`, { hint: 'sysctr images list' })
  const users = (await deploymentUses(ctx)).filter((u) => u.imageCommit === rec.commit || u.image === name)
  if (users.length > 0) {
    const list = users.map((u) => u.deployment).join(', ')
    throw new ConflictError('image.in-use', `image ${name} is used by deployment ${list}`, {
      hint: `uninstall ${[...new Set(users.map((u) => u.name))].join(', ')} first`,
      data: { image: name, deployments: users.map((u) => u.deployment) },
    })
  }
  const mounts = (await mountedCommits(ctx)).filter((m) => m.imageCommit === rec.commit || m.target === name)
  if (mounts.length > 0) {
    throw new ConflictError('image.mounted', `image ${name} is mounted at ${mounts.map((m) => m.dir).join(', ')}`, {
      hint: `sysctr umount ${mounts[0].dir}`,
      data: { image: name, mounts: mounts.map((m) => m.dir) },
    })
  }
  await store.deleteImageRef(name)
  return rec
}

