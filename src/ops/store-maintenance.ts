/**
 * Store maintenance verbs: fsck, prune, images list, images delete. The only
 * place that joins the store with deployments: the store knows nothing of
 * deployments, so their image commits are read here (containers/NAME.N/info.json)
 * and handed to gc as roots and to fsck as users.
 */
import { promises as fsp } from 'node:fs'
import { ConflictError, doing, NotFoundError } from '../errors'
import type { Digest, ImageConfig, ImageManifest } from '../oci/types'
import { parseReference } from '../reference/reference'
import { Deployments } from '../deployment/deployments'
import { fsck, FsckResult } from '../store/fsck'
import { gc, GcResult } from '../store/gc'
import { Store, type ImageRecord } from '../store/store'
import type { OpsContext } from './context'
import { mountedCommits } from './mount'

export interface DeploymentUse {
  /** `NAME.N` */
  deployment: string
  name: string
  slot: number
  /** The deployment is the active one of NAME. */
  active: boolean
  image: string
  imageCommit: string
}

function open(ctx: OpsContext): Promise<Store> {
  return Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
}

/** Every deployment slot (active or not) with its image commit. Temp dirs and unreadable records are skipped. */
export async function deploymentUses(ctx: OpsContext): Promise<DeploymentUse[]> {
  const deps = new Deployments(ctx.paths.containersDir)
  const entries = await fsp.readdir(ctx.paths.containersDir, { withFileTypes: true }).catch(() => [])
  const out: DeploymentUse[] = []
  for (const e of entries) {
    const m = /^([^.].*)\.(\d+)$/.exec(e.name)
    if (!m || !e.isDirectory()) continue
    const [, name, slotText] = m
    const d = await deps.read(name, Number(slotText)).catch(() => undefined)
    if (!d || typeof d.record.imageCommit !== 'string') continue
    const active = await deps.active(name).catch(() => undefined)
    out.push({
      deployment: e.name,
      name,
      slot: d.slot,
      active: active?.slot === d.slot,
      image: d.record.image,
      imageCommit: d.record.imageCommit,
    })
  }
  return out.sort((a, b) => (a.deployment < b.deployment ? -1 : 1))
}

export async function fsckStore(ctx: OpsContext, opts: { repair?: boolean } = {}): Promise<FsckResult> {
  const store = await open(ctx)
  const uses = await deploymentUses(ctx)
  ctx.reporter.info(opts.repair ? 'checking and repairing the store' : 'checking the store')
  return doing(opts.repair ? 'repairing the store' : 'checking the store', () =>
    fsck(store, {
      repair: opts.repair,
      users: uses.map((u) => ({ name: u.deployment, commit: u.imageCommit })),
      onProgress: (n, total) => ctx.reporter.info(`checked ${n}/${total}`),
    }),
  )
}

export async function pruneStore(ctx: OpsContext): Promise<GcResult> {
  const store = await open(ctx)
  const uses = await deploymentUses(ctx)
  const mounted = await mountedCommits(ctx)
  return doing('pruning the store', () => gc(store, { roots: [...uses.map((u) => u.imageCommit), ...mounted.map((m) => m.imageCommit)] }))
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
}

export async function listImages(ctx: OpsContext): Promise<ImageListing[]> {
  const store = await open(ctx)
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
  const name = parseReference(image).toString()
  const store = await open(ctx)
  let rec: ImageRecord
  try {
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

