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
import { isLocalInput, openImageSource } from '../transports/open'
import { recordedImageName, sourceOptions, storedSourceOf, type SourceFlags } from './source-options'
import { Store } from '../store/store'
import { checkContainerName } from '../deployment/name'
import { FIXED_KEYS, parseSetFlags, refuseFixedKeys, sameValues } from '../templates/values'
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
import { planDeployment } from '../deployment/plan'
import type { ImageConfig } from '../oci/types'
import { pullImage, PullResult, RUNS_ONLY_WHERE, wantedPlatform } from './pull-image'
import { withNameLock } from './name-lock'
import { settleCheck, showJournal } from './unit-health'
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
  /** --strict: a --set key of this run that no template of the image uses is refused (exit 2) instead of warned about. */
  strict?: boolean
  /**
   * After restarting the unit, watch it this long (ms); a unit that fails,
   * stops or restarts meanwhile counts as a failed restart and is rolled
   * back (systemd/settle.ts). 0 or undefined: the restart job's result only.
   */
  settleMs?: number
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
  /** True when nothing was done: the same image and values, or (`unchangedBecause`) values that change no rendered file. */
  unchanged: boolean
  /**
   * With `unchanged`: `same-image` (digest, values and grants as installed) or
   * `same-rendering` (the new --set values change no rendered file: no
   * deployment built, nothing restarted, the values not recorded).
   */
  unchangedBecause?: 'same-image' | 'same-rendering'
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
  // Flags first: a bad or fixed --set is refused before any lock, file or network.
  refuseFixedKeys(parseSetFlags(opts.set ?? []))
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
  // An image named after a docker archive's RepoTags is read again from that archive, not from a registry.
  const input = opts.rebase ?? (await storedSourceOf(ctx, old.image)) ?? old.image
  const { image } = await recordedImageName(ctx, input, opts)
  const setValues = { ...old.setValues, ...parseSetFlags(opts.set ?? []) }
  parseGrants(opts.grant ?? [])

  const store = await Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
  try {
    return await updateWithStore(ctx, opts, { name, image, openAs: isLocalInput(input) ? input : image, setValues, deployments, current, store })
  } finally {
    await store.close()
  }
}

async function updateWithStore(
  ctx: OpsContext,
  opts: UpdateOptions,
  u: { name: string; image: string; openAs: string; setValues: Record<string, string>; deployments: Deployments; current: Deployment; store: Store },
): Promise<UpdateResult> {
  const { name, image, openAs, setValues, deployments, current, store } = u
  const old = current.record
  // As install: registries.conf (mirrors, insecure, blocked) and auth.json apply; local transports by their recorded name.
  const source = opts.openSource ? opts.openSource(image) : (await openImageSource(openAs, sourceOptions(ctx, opts))).source
  let pull: PullResult
  try {
    pull = await doing(`pulling ${image}`, () => pullImage(store, source, image, { reporter: ctx.reporter, ...wantedPlatform(opts), mismatchNote: `updating anyway: ${RUNS_ONLY_WHERE}` }))
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
    // The result says it (stdout); no second copy on stderr.
    const wasRunning = await unitIsRunning(await ctx.systemd(), old.unit, current)
    return { ...base, unchanged: true, unchangedBecause: 'same-image', deployment: `${name}.${current.slot}`, changedValues: [], wasRunning }
  }
  const checkSetKeys = Object.keys(parseSetFlags(opts.set ?? []))
  if (pull.manifestDigest === old.manifestDigest && image === old.image && sameGrants) {
    // Only --set values differ: if every rendered file is the same, build nothing and restart nothing.
    const same = await rendersAsInstalled(ctx, store, current, { pull, setValues, privileged, grants, checkSetKeys, strict: opts.strict === true })
    if (same) {
      for (const w of same.warnings) ctx.reporter.warn(w)
      const wasRunning = await unitIsRunning(await ctx.systemd(), old.unit, current)
      return { ...base, unchanged: true, unchangedBecause: 'same-rendering', deployment: `${name}.${current.slot}`, changedValues: [], wasRunning }
    }
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
      checkSetKeys,
      strict: opts.strict === true,
      ...(old.autoupdate ? { autoupdate: old.autoupdate } : {}),
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
  // The changed values are part of the result (printed once, on stdout).
  const changedValues = diffValues(old.values, plan.record.values)

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
      await showJournal(ctx, old.unit)
      throw await rollBackAfterFailedRestart(ctx, deployments, current, next, err)
    }
    // The restart job is done once runc is forked (Type=simple): the same health gate for the settle time.
    const unsettled = await settleCheck(ctx, systemd, old.unit, opts.settleMs, 'update.not-settled', '', `journalctl -u ${old.unit}`)
    if (unsettled) throw await rollBackAfterFailedRestart(ctx, deployments, current, next, unsettled)
    killPoint(ctx, 'update:restarted')
  }
  await commitSwitch(deployments, name)
  // The new deployment is in use: the one before the previous goes (parked, or in a third slot an older sysctr built).
  await deployments.dropParked(name)
  if (previous && previous.slot !== slot) await removeTree(previous.dir)
  return result
}

/**
 * Would `current`'s image, rendered with these values, give exactly the files
 * `current` has (config.json, unit, socket, tmpfiles entry, host files)?
 * Yes: the plan's warnings (the build that is skipped would have given them).
 * Planned from the store at the active slot's own path (so DESTDIR and the
 * runtime command lines are the same); nothing is checked out or written.
 */
async function rendersAsInstalled(
  ctx: OpsContext,
  store: Store,
  current: Deployment,
  c: { pull: PullResult; setValues: Record<string, string>; privileged: boolean; grants: string[]; checkSetKeys: string[]; strict: boolean },
): Promise<{ warnings: string[] } | undefined> {
  const old = current.record
  const config = JSON.parse((await store.getBlob(c.pull.configDigest))!.toString('utf8')) as ImageConfig
  const plan = await planDeployment(ctx, {
    name: current.name,
    image: old.image,
    runtime: old.runtime,
    slot: current.slot,
    setValues: c.setValues,
    uuid: old.values.UUID!,
    privileged: c.privileged,
    grants: c.grants,
    checkSetKeys: c.checkSetKeys,
    strict: c.strict,
    ...(old.rootfs ? { rootfs: old.rootfs } : {}),
    manifestDigest: c.pull.manifestDigest,
    configDigest: c.pull.configDigest,
    commit: c.pull.commit,
    config,
    view: { kind: 'store', store, commit: c.pull.commit },
  })
  const key = (f: { role: string; path: string; sha256: string }) => `${f.role}\0${f.path}\0${f.sha256}`
  const a = plan.record.files.map(key).sort()
  const b = old.files.map(key).sort()
  if (a.length !== b.length || a.some((x, i) => x !== b[i])) return undefined
  const installedConfig = await fsp.readFile(join(current.dir, 'config.json'), 'utf8').catch(() => undefined)
  return installedConfig === plan.configJson ? { warnings: plan.warnings } : undefined
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
  /** With --auto: the installed containers left alone because they did not opt in. */
  notOptedIn?: string[]
}

/** The image label that opts a container in to `update --all --auto`, as podman's io.containers.autoupdate. */
export const AUTOUPDATE_LABEL = 'sysctr.autoupdate'

/**
 * The containers that opted in to automatic updates: the record's
 * `install --autoupdate` (registry / disabled) wins; without one, the active
 * deployment's image label sysctr.autoupdate=registry.
 */
export async function optedIn(ctx: OpsContext, names: string[]): Promise<Set<string>> {
  const deployments = new Deployments(ctx.paths.containersDir)
  const out = new Set<string>()
  let store: Store | undefined
  try {
    for (const name of names) {
      const d = await deployments.active(name)
      if (!d) continue
      let mode = d.record.autoupdate
      if (!mode) {
        store ??= await Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
        const blob = await store.getBlob(d.record.configDigest)
        const labels = blob ? ((JSON.parse(blob.toString('utf8')) as ImageConfig).config?.Labels ?? {}) : {}
        if (labels[AUTOUPDATE_LABEL] === 'registry') mode = 'registry'
      }
      if (mode === 'registry') out.add(name)
    }
  } finally {
    await store?.close()
  }
  return out
}

/**
 * Update every installed container, dependencies first (After=/Requires=/
 * Wants=/BindsTo= among the installed containers' units). A failure is
 * recorded and the rest go on, except containers that depend on a failed one.
 */
export async function updateAll(ctx: OpsContext, opts: Omit<UpdateOptions, 'rebase'> & { auto?: boolean } = {}): Promise<UpdateAllResult> {
  let order = await dependencyOrder(ctx)
  let skipped: string[] | undefined
  if (opts.auto) {
    // --auto (the timer's sysctr-update.service): only the containers that opted in; the others are not touched.
    const opted = await optedIn(ctx, order.map((o) => o.name))
    skipped = order.filter((o) => !opted.has(o.name)).map((o) => o.name)
    order = order.filter((o) => opted.has(o.name))
  }
  const out: UpdateAllResult = { order: order.map((o) => o.name), results: [], failed: [], ...(skipped ? { notOptedIn: skipped } : {}) }
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
