/**
 * containers list: every installed container, from its active deployment's
 * record, with the unit's state from systemd. When systemd cannot be reached
 * the listing still works: states read 'unknown'.
 */
import { Deployments, type Deployment } from '../deployment/deployments'
import { SysctrError } from '../errors'
import { RECORD_DAMAGED } from '../util/read-record'
import type { Systemd } from '../systemd/systemd'
import type { OpsContext } from './context'
import { mapLimit } from '../store/durable'

export interface ContainerListing {
  name: string
  /** The image reference the active deployment was built from. */
  image: string
  manifestDigest: string
  /** The active deployment, `NAME.N`. */
  deployment: string
  /** The other deployment kept for rollback, `NAME.N`, if any. */
  previousDeployment?: string
  unit: string
  /** systemd's ActiveState (active, inactive, failed, ...) or 'unknown'. */
  activeState: string
  /** systemd's SubState (running, dead, ...) or 'unknown'. */
  subState: string
  /** systemd's UnitFileState (enabled, disabled, ...) or 'unknown'. */
  unitFileState: string
  runtime: string
  /** When the active deployment was built (ISO 8601; the record's createdAt). */
  created: string
  /** manifest.json noContainerService: host files only; the unit states read 'none'. */
  noContainerService?: boolean
  /** Installed with --privileged (everything granted). */
  privileged?: boolean
  /** The --grant ITEMs granted, and what the active deployment's config.json asks beyond the default grant. */
  grants?: string[]
  asked?: string[]
  /** install --rootfs: the host directory the container runs on (remote: not a checkout of the image). */
  rootfs?: string
  /** Set when a record of this container cannot be read: which file and what is wrong (every other field is then empty or 'unknown'). */
  broken?: { path: string; error: string; code: string; hint?: string }
}

function brokenListing(name: string, slot: number, err: SysctrError): ContainerListing {
  const data = err.data as { path?: string; error?: string } | undefined
  return {
    name,
    image: '',
    manifestDigest: '',
    deployment: slot >= 0 ? `${name}.${slot}` : '',
    unit: '',
    activeState: 'unknown',
    subState: 'unknown',
    unitFileState: 'unknown',
    runtime: '',
    created: '',
    broken: { path: data?.path ?? '', error: data?.error ?? err.message, code: err.code, ...(err.hint ? { hint: err.hint } : {}) },
  }
}

export async function listContainers(ctx: OpsContext): Promise<ContainerListing[]> {
  const deployments = new Deployments(ctx.paths.containersDir)
  // One read of the containers directory for the whole listing; then, per
  // container, its active record (read once) and the other slots' markers,
  // several containers at a time (each is a few small reads), in name order.
  const scan = await deployments.scan()
  // systemd is asked only when there is a unit to ask about (an empty host costs no D-Bus connection).
  let systemd: Systemd | undefined
  if (scan.names.length > 0) {
    try {
      systemd = await ctx.systemd()
    } catch (err) {
      ctx.reporter.warn(`unit states unknown: ${(err as Error).message}`)
    }
  }
  const listed = await mapLimit(scan.names, 16, async (name): Promise<ContainerListing | undefined> => {
    let d: Deployment | undefined
    let other: number | undefined
    const activeSlot = scan.active.get(name)
    try {
      d = activeSlot === undefined ? undefined : await deployments.read(name, activeSlot)
      if (d) for (const s of scan.slots.get(name) ?? []) if (s !== d.slot && (await deployments.isActivated(name, s))) other = s
    } catch (err) {
      // A damaged record: still listed, marked broken (the other containers are listed as usual).
      if (!(err instanceof SysctrError) || err.code !== RECORD_DAMAGED) throw err
      ctx.reporter.warn(`${name}: ${err.message}`)
      return brokenListing(name, activeSlot ?? -1, err)
    }
    if (!d) return undefined
    const r = d.record
    let state = { activeState: 'unknown', subState: 'unknown', unitFileState: 'unknown' }
    if (r.noContainerService) {
      state = { activeState: 'none', subState: 'none', unitFileState: 'none' }
    } else if (systemd) {
      try {
        const s = await systemd.unitState(r.unit)
        state = { activeState: s.activeState, subState: s.subState, unitFileState: s.unitFileState || 'unknown' }
      } catch (err) {
        ctx.reporter.warn(`state of ${r.unit} unknown: ${(err as Error).message}`)
      }
    }
    return {
      name,
      image: r.image,
      manifestDigest: r.manifestDigest,
      deployment: `${name}.${d.slot}`,
      ...(other !== undefined ? { previousDeployment: `${name}.${other}` } : {}),
      unit: r.unit,
      ...state,
      runtime: r.runtime,
      created: r.createdAt,
      ...(r.noContainerService ? { noContainerService: true } : {}),
      ...(r.privileged ? { privileged: true } : {}),
      ...(r.grants ? { grants: r.grants } : {}),
      ...(r.asked ? { asked: r.asked } : {}),
      ...(r.rootfs ? { rootfs: r.rootfs } : {}),
    }
  })
  const out = listed.filter((l): l is ContainerListing => l !== undefined)
  return out
}
