/**
 * Store maintenance verbs: fsck and prune, and `deploymentUses`, the one
 * place that joins the store with deployments: the store knows nothing of
 * deployments, so their image commits are read here (containers/NAME.N/info.json)
 * and handed to gc as roots, to fsck as users, and to images list/delete
 * (ops/images.ts) as the deployments using an image.
 */
import { doing } from '../errors'
import { Deployments } from '../deployment/deployments'
import { fsck, FsckResult } from '../store/fsck'
import { gc, GcResult } from '../store/gc'
import { Store } from '../store/store'
import { mapLimit } from '../store/durable'
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

/** Every deployment slot (active or not) with its image commit. Temp dirs and slots without a record are skipped; a damaged record is an error (record.damaged). */
export async function deploymentUses(ctx: OpsContext): Promise<DeploymentUse[]> {
  const deps = new Deployments(ctx.paths.containersDir)
  // One read of the containers directory; each slot's info.json read once.
  const scan = await deps.scan()
  const all = [...scan.slots].flatMap(([name, slots]) => slots.map((slot) => ({ name, slot })))
  // A damaged record fails the listing (record.damaged): prune must not take its image for unused.
  const read = await mapLimit(all, 16, ({ name, slot }) => deps.read(name, slot))
  const out: DeploymentUse[] = []
  for (const [name, parkedSlots] of scan.parked) {
    for (const slot of parkedSlots) {
      // The previous deployment moved aside by an update in progress (or interrupted): it may come back.
      const r = await deps.readParked(name, slot)
      if (r) out.push({ deployment: `.${name}.${slot}.parked`, name, slot: r.slot, active: false, image: r.image, imageCommit: r.imageCommit })
    }
  }
  for (const d of read) {
    if (!d) continue
    out.push({
      deployment: `${d.name}.${d.slot}`,
      name: d.name,
      slot: d.slot,
      active: scan.active.get(d.name) === d.slot,
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
