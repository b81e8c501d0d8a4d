/**
 * containers update: pull the installed reference again (or --rebase IMAGE),
 * build a new deployment from it in a free slot (NAME.N) with the saved --set
 * values plus the new ones, switch to it atomically, and restart the unit if
 * it was running, waiting for the job. A restart that fails (or whose unit
 * never becomes ready) switches back to the previous deployment's own
 * recorded files, restarts that, removes the failed deployment and reports
 * the failure as "rolled back" (exit 8).
 *
 * Slots: two exist, NAME.0 and NAME.1, the active one and the previous one
 * (kept for `containers rollback`); an update builds in the one that is not
 * active, as Atomic alternated them. The previous deployment in that slot is
 * first moved aside (`.NAME.N.parked`, not a slot): on success it goes, on
 * failure the new NAME.N goes and it comes back, so a failed update never
 * costs the deployment before it (install v1, update v2, failing v3 -> v2
 * active, v1 still there to roll back to).
 *
 * Values: manifest defaults < computed < the user's --set (saved ones, then
 * this run's). A key the user never set follows the new image's default.
 * The container's $UUID is kept across updates.
 *
 * Nothing outside the deployments dir changes before the new deployment is
 * complete; the switch is journaled (deployment/switch.ts), and a failure or
 * a crash after it is undone by replaying that journal.
 */
import { ConflictError, doing, NotFoundError, SysctrError, SystemdError, toSysctrError } from '../errors'
import { openImageSource } from '../transports/open'
import { recordedImageName, sourceOptions, type SourceFlags } from './source-options'
import { Store } from '../store/store'
import { checkContainerName } from '../deployment/name'
import { FIXED_KEYS, parseSetFlags, sameValues } from '../templates/values'
import { Deployment, Deployments, previousDeployment, removeTree, updateSlot } from '../deployment/deployments'
import { applySwitch, commitSwitch, journalRestart, killPoint, recover, SimulatedKill, unitIsRunning } from '../deployment/switch'
import { checkHostFileConflicts } from '../deployment/host-files'
import type { ImageSource } from '../transports/image-source'
import type { JobResult } from '../systemd/systemd'
import { UnitFile, splitUnitList } from '../systemd/unit-file'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import type { OpsContext } from './context'
import { planAndBuild } from './install'
import { pullImage, PullResult } from './pull-image'
import { withNameLock } from './name-lock'
import { parseGrants } from '../runtime/grants'

export interface UpdateOptions extends SourceFlags {
  /** More --set KEY=VALUE; added to (and overriding) the saved ones. */
  set?: string[]
  /** Move to another image reference. */
  rebase?: string
  /** More `--grant ITEM`s, added to the recorded ones (an image that asks for more is refused without them). */
  grant?: string[]
  /** Grant everything from now on (recorded). */
  privileged?: boolean
  /** Tests hand in a source per image; default: the registry, or the local transport the image names. */
  openSource?: (image: string) => ImageSource
}

export interface ValueChange {
  key: string
  /** undefined: the key is new. */
  from?: string
  /** undefined: the key is gone. */
  to?: string
}

export interface UpdateResult {
  name: string
  unit: string
  image: string
  previousImage: string
  manifestDigest: string
  previousManifestDigest: string
  /** True when image digest and values are unchanged: nothing was done. */
  unchanged: boolean
  /** The deployment active now (`NAME.N`). */
  deployment: string
  previousDeployment?: string
  /** Values whose rendered value changed (keys sysctr fixes per deployment left out). */
  changedValues: ValueChange[]
  pull?: PullResult
  /** The unit was running before the update. */
  wasRunning: boolean
  /** Set when the unit was restarted on the new deployment. */
  restarted?: JobResult
}

export async function update(ctx: OpsContext, name: string, opts: UpdateOptions = {}): Promise<UpdateResult> {
  checkContainerName(name)
  return doing(`updating ${name}`, () => withNameLock(ctx, name, `updating ${name}`, () => updateNamed(ctx, name, opts)))
}

async function updateNamed(ctx: OpsContext, name: string, opts: UpdateOptions): Promise<UpdateResult> {
  const deployments = new Deployments(ctx.paths.containersDir)
  await recover(ctx, deployments, name)
  const current = await deployments.active(name)
  if (!current) {
    throw new NotFoundError('container.not-found', `no container named ${name} is installed`, { hint: 'sysctr containers list shows what is installed' })
  }
  const old = current.record
  const { image } = await recordedImageName(ctx, opts.rebase ?? old.image, opts)
  const setValues = { ...old.setValues, ...parseSetFlags(opts.set ?? []) }
  parseGrants(opts.grant ?? [])

  const store = await Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
  try {
    return await updateWithStore(ctx, opts, { name, image, setValues, deployments, current, store })
  } finally {
    await store.close()
  }
}

async function updateWithStore(
  ctx: OpsContext,
  opts: UpdateOptions,
  u: { name: string; image: string; setValues: Record<string, string>; deployments: Deployments; current: Deployment; store: Store },
): Promise<UpdateResult> {
  const { name, image, setValues, deployments, current, store } = u
  const old = current.record
  // As install: registries.conf (mirrors, insecure, blocked) and auth.json apply; local transports by their recorded name.
  const source = opts.openSource ? opts.openSource(image) : (await openImageSource(image, sourceOptions(ctx, opts))).source
  let pull: PullResult
  try {
    pull = await doing(`pulling ${image}`, () => pullImage(store, source, image, { reporter: ctx.reporter }))
  } finally {
    await source.close()
  }
  const base = {
    name,
    unit: old.unit,
    image,
    previousImage: old.image,
    manifestDigest: pull.manifestDigest,
    previousManifestDigest: old.manifestDigest,
    pull,
  }
  const grants = [...new Set([...(old.grants ?? []), ...(opts.grant ?? [])])]
  const privileged = old.privileged === true || opts.privileged === true
  const sameGrants = grants.length === (old.grants ?? []).length && privileged === (old.privileged === true)
  if (pull.manifestDigest === old.manifestDigest && image === old.image && sameValues(setValues, old.setValues) && sameGrants) {
    ctx.reporter.info(`${name} already runs ${image} (${pull.manifestDigest.slice(0, 19)}) with the same values: nothing to do`)
    return { ...base, unchanged: true, deployment: `${name}.${current.slot}`, changedValues: [], wasRunning: false }
  }

  // Keep the active deployment and the previous one; build in the other slot (NAME.0 <-> NAME.1).
  // The previous deployment, when it holds that slot, is parked (.NAME.N.parked) until the update
  // is done, so a failed update still leaves it to roll back to (cleanLeftovers puts it back).
  const previous = await previousDeployment(deployments, name, current.slot)
  const slot = updateSlot(current.slot)
  for (const n of await deployments.slots(name)) {
    if (n !== current.slot && n !== previous?.slot) await removeTree(deployments.slotDir(name, n))
  }
  if (previous?.slot === slot) await deployments.park(name, slot)
  let built: { plan: Awaited<ReturnType<typeof planAndBuild>>['plan']; deployment: Deployment }
  try {
    built = await planAndBuild(ctx, store, deployments, {
      name,
      image,
      pull,
      runtime: old.runtime,
      slot,
      setValues,
      uuid: old.values.UUID!,
      // What the operator granted stays granted across updates; an image asking for more is refused (exit 6) without new --grant flags.
      privileged,
      grants,
      from: current,
      // A remote rootfs stays remote: only the configuration (exports, values) changes, as with Atomic.
      ...(old.rootfs ? { rootfs: old.rootfs } : {}),
    })
  } catch (err) {
    if (!(err instanceof SimulatedKill)) await deployments.cleanLeftovers(name).catch(() => {})
    throw err
  }
  const { plan, deployment: next } = built
  killPoint(ctx, 'update:built')
  // Host files new in this deployment must not overwrite files sysctr did not write.
  try {
    await checkHostFileConflicts(ctx, name, next.record.files, old.files)
  } catch (err) {
    await removeTree(next.dir).catch(() => {})
    await deployments.cleanLeftovers(name).catch(() => {})
    throw err
  }
  const changedValues = diffValues(old.values, plan.record.values)
  for (const c of changedValues) ctx.reporter.info(`value ${c.key}: ${c.from ?? '(unset)'} -> ${c.to ?? '(unset)'}`)

  const systemd = await ctx.systemd()
  const wasRunning = await unitIsRunning(systemd, old.unit, current)
  try {
    await applySwitch(ctx, deployments, plan.switch, next, current)
  } catch (err) {
    if (err instanceof SimulatedKill) throw err
    // The journal puts the previous deployment's files and link back and removes the new slot.
    await recover(ctx, deployments, name, 'failed').catch((e) =>
      ctx.reporter.warn(`could not switch ${name} back to ${name}.${current.slot}: ${(e as Error).message}`),
    )
    throw err
  }
  const result: UpdateResult = {
    ...base,
    unchanged: false,
    deployment: `${name}.${slot}`,
    previousDeployment: `${name}.${current.slot}`,
    changedValues,
    wasRunning,
  }
  if (wasRunning && !next.record.noContainerService) {
    await journalRestart(deployments, name, old.unit)
    try {
      result.restarted = await doing(`restarting ${old.unit}`, () => systemd.restartUnit(old.unit))
    } catch (err) {
      throw await rollBackAfterFailedRestart(ctx, deployments, current, next, err)
    }
    killPoint(ctx, 'update:restarted')
  }
  await commitSwitch(deployments, name)
  // The new deployment is in use: the one before the previous goes (parked, or in a third slot an older sysctr built).
  await deployments.dropParked(name)
  if (previous && previous.slot !== slot) await removeTree(previous.dir)
  return result
}

/** The restart on the new deployment failed: replay the journal (back to the previous deployment), restart that, and explain. */
async function rollBackAfterFailedRestart(
  ctx: OpsContext,
  deployments: Deployments,
  previous: Deployment,
  failed: Deployment,
  cause: unknown,
): Promise<SysctrError> {
  const { name, unit } = { name: previous.name, unit: previous.record.unit }
  const why = toSysctrError(cause).fullMessage
  ctx.reporter.warn(`${unit} did not start on ${name}.${failed.slot} (${why}); rolling back to ${name}.${previous.slot}`)
  let restartedOld: JobResult | undefined
  try {
    // Removes the failed deployment too (the journal says this update built it).
    await recover(ctx, deployments, name, 'failed', { restart: false })
    restartedOld = await (await ctx.systemd()).restartUnit(unit)
  } catch (err) {
    return new SystemdError('update.rollback-failed', `${unit} failed on the new deployment ${name}.${failed.slot} (${why}), and rolling back to ${name}.${previous.slot} failed too: ${toSysctrError(err).fullMessage}`, {
        hint: `see journalctl -u ${unit}; sysctr containers rollback ${name} switches deployments by hand`,
        cause,
        data: { name, failedDeployment: `${name}.${failed.slot}`, previousDeployment: `${name}.${previous.slot}` },
      })
  }
  return new SystemdError(
    'update.rolled-back',
    `${unit} failed to start on ${name}.${failed.slot} (${failed.record.image}, ${failed.record.manifestDigest.slice(0, 19)}): ${why}; rolled back to ${name}.${previous.slot} (${previous.record.image}, ${previous.record.manifestDigest.slice(0, 19)}), restart: ${restartedOld}`,
    {
      hint: `the failed deployment was removed, the one before it is kept for rollback; see journalctl -u ${unit}`,
      cause,
      data: {
        name,
        rolledBack: true,
        failedDeployment: `${name}.${failed.slot}`,
        activeDeployment: `${name}.${previous.slot}`,
        restarted: restartedOld,
      },
    },
  )
}

export interface UpdateAllResult {
  /** Container names in the order they were updated (dependencies first). */
  order: string[]
  results: UpdateResult[]
  failed: { name: string; error: SysctrError }[]
}

/**
 * Update every installed container, dependencies first (After=/Requires=/
 * Wants=/BindsTo= among the installed containers' units). A failure is
 * recorded and the rest go on, except containers that depend on a failed one.
 */
export async function updateAll(ctx: OpsContext, opts: Omit<UpdateOptions, 'rebase'> = {}): Promise<UpdateAllResult> {
  const order = await dependencyOrder(ctx)
  const out: UpdateAllResult = { order: order.map((o) => o.name), results: [], failed: [] }
  const failedUnits = new Set<string>()
  for (const { name, deps } of order) {
    const blocked = deps.find((d) => failedUnits.has(d))
    if (blocked) {
      out.failed.push({
        name,
        error: new ConflictError('update.dependency-failed', `not updating ${name}: its dependency ${blocked} failed to update`),
      })
      failedUnits.add(`${name}.service`)
      continue
    }
    try {
      out.results.push(await update(ctx, name, opts))
    } catch (err) {
      out.failed.push({ name, error: toSysctrError(err) })
      failedUnits.add(`${name}.service`)
    }
  }
  return out
}

/**
 * Installed containers sorted so that each comes after the containers its
 * unit orders itself after or requires. Ties (and cycles) go by name.
 */
export async function dependencyOrder(ctx: OpsContext): Promise<{ name: string; deps: string[] }[]> {
  const deployments = new Deployments(ctx.paths.containersDir)
  const nodes = new Map<string, string[]>()
  const units = new Map<string, string>()
  for (const name of await deployments.names()) {
    const d = await deployments.active(name)
    if (d) units.set(d.record.unit, name)
  }
  for (const [unit, name] of units) {
    const d = (await deployments.active(name))!
    let deps: string[] = []
    try {
      const file = UnitFile.parse(await fsp.readFile(join(d.dir, unit), 'utf8'), unit)
      for (const key of ['After', 'Requires', 'Wants', 'BindsTo', 'Requisite']) {
        for (const v of file.getAll('Unit', key)) deps.push(...splitUnitList(v))
      }
    } catch {
      /* an unreadable unit orders nothing */
    }
    deps = [...new Set(deps.filter((u) => units.has(u) && u !== unit))]
    nodes.set(name, deps)
  }
  const done = new Set<string>()
  const out: { name: string; deps: string[] }[] = []
  const pending = [...nodes.keys()].sort()
  while (pending.length > 0) {
    let i = pending.findIndex((n) => nodes.get(n)!.every((u) => done.has(units.get(u)!)))
    if (i < 0) i = 0 // a cycle: take the first by name
    const [name] = pending.splice(i, 1)
    done.add(name)
    out.push({ name, deps: nodes.get(name)! })
  }
  return out
}

/** What changed between two deployments' values; keys fixed per deployment (paths, digests) are left out. */
export function diffValues(before: Record<string, string>, after: Record<string, string>): ValueChange[] {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((k) => !FIXED_KEYS.includes(k)).sort()
  return keys.filter((k) => before[k] !== after[k]).map((k) => ({ key: k, from: before[k], to: after[k] }))
}
