/**
 * install --system: reference -> pull into the store -> read-only checkout ->
 * plan (deployment/plan.ts: render the image's /exports or the defaults,
 * check config.json, plan host files and the switch) -> build NAME.0 ->
 * switch (deployment/switch.ts: journal, unit, tmpfiles entry, host files,
 * active link, reload, enable) -> with --now start and wait for the job.
 *
 * The install is a transaction up to and including enable: any failure
 * replays the switch's undo journal (deployment/switch.ts recover), so what
 * this run wrote goes and an existing install stays untouched. A failed
 * start with --now is reported (exit 8) but the install stays: it is
 * complete and enabled, and `uninstall` removes it.
 */
import { randomUUID } from 'node:crypto'
import { constants as fsc, promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { ConflictError, doing, HostError, NotFoundError, UsageError, withContext } from '../errors'
import { isRunOnce, runOnce, type RunOnceResult } from './run-once'
import type { Digest, ImageConfig } from '../oci/types'
import type { ImageReference } from '../reference/reference'
import { describeInput, isLocalInput, openImageSource } from '../transports/open'
import { Store } from '../store/store'
import { checkContainerName } from '../deployment/name'
import { parseSetFlags, refuseFixedKeys, sameValues } from '../templates/values'
import { Deployments, removeTree, type AutoUpdateMode, type Deployment, type HostFile } from '../deployment/deployments'
import { planDeployment, type DeploymentChoices, type DeploymentPlan } from '../deployment/plan'
import { applySwitch, buildDeployment, commitSwitch, recover, repairInstalled, SimulatedKill, stageCheckout } from '../deployment/switch'
import { checkHostFileConflicts } from '../deployment/host-files'
import { sha256File } from '../util/atomic-file'
import type { ImageSource } from '../transports/image-source'
import { fromRoot, inRoot, type OpsContext } from './context'
import { withNameLock } from './name-lock'
import { settleCheck, showJournal } from './unit-health'
import { pullImage, PullResult, RUNS_ONLY_WHERE, wantedPlatform } from './pull-image'
import { defaultContainerName, recordedImageName, sourceOptions, type SourceFlags } from './source-options'
import { storedImageFor, storeSource } from './local-images'
import type { JobResult } from '../systemd/systemd'
import { DEFAULT_RUNTIME } from '../runtime/default-runtime'
import { parseGrants } from '../runtime/grants'

export interface InstallOptions extends SourceFlags {
  image: string
  name?: string
  set?: string[]
  now?: boolean
  runtime?: string
  /** Tests and other transports hand in a source; default: the registry. */
  source?: ImageSource
  /** Accept a config.json that asks for host namespaces, capabilities, privileged binds, devices or hooks (recorded). */
  privileged?: boolean
  /** `--grant ITEM`s: exactly what config.json may ask beyond the default grant (recorded; runtime/grants.ts). */
  grant?: string[]
  /** --autoupdate: opt in to (registry) or out of (disabled) `containers update --all --auto`; recorded. */
  autoupdate?: AutoUpdateMode
  /** --strict: a --set key that no template of the image uses is refused (exit 2) instead of warned about. */
  strict?: boolean
  /**
   * With `now`: watch the started unit this long (ms) and fail (exit 8,
   * `install.start-failed`) if it fails, stops or restarts meanwhile
   * (systemd/settle.ts). 0 or undefined: only the start job's result counts.
   */
  settleMs?: number
  /** Atomic's remote rootfs: an existing host directory used as the container's root instead of a checkout. */
  rootfs?: string
  /** Run-once images: runs the runtime (tests hand in another); default: with sysctr's stdio. */
  spawnRuntime?: (cmd: string, args: string[]) => Promise<number>
}

export interface InstallResult {
  name: string
  unit: string
  image: string
  manifestDigest: Digest
  /** The deployment, `NAME.N` (the same scheme as containers list, update and rollback). */
  deployment: string
  /** Its directory. */
  deploymentDir: string
  /** True when the same image and values were installed already: nothing changed. */
  unchanged: boolean
  pull?: PullResult
  started?: JobResult
  values: Record<string, string>
  files: HostFile[]
  /** Installed with --privileged. */
  privileged?: boolean
  /** The --grant ITEMs recorded, and what the image asks beyond the default grant. */
  grants?: string[]
  asked?: string[]
  /** The image has no service (manifest.json noContainerService): host files only, nothing enabled or started. */
  noContainerService?: boolean
  /** With --now: how long (ms) the unit was watched after its start job and stayed up. */
  settledMs?: number
  /** A run-once image (atomic.run=once): it ran to completion and nothing was installed. */
  runOnce?: RunOnceResult
  /** install --rootfs: the host directory the container runs on. */
  rootfs?: string
}

export { DEFAULT_RUNTIME }

export async function install(ctx: OpsContext, optsIn: InstallOptions): Promise<InstallResult> {
  // Flags first: a bad or fixed --set is refused before any lock, file or network.
  refuseFixedKeys(parseSetFlags(optsIn.set ?? []))
  // Local names first (a short name or an ID of a stored image): installed from the store, nothing fetched.
  const local = optsIn.source ? undefined : await storedImageFor(ctx.paths.storeDir, optsIn.image)
  if (local) ctx.reporter.info(`${optsIn.image} is ${local.name} in the store (${local.record.manifestDigest.slice(0, 19)}): installing that`)
  const opts = local ? { ...optsIn, image: local.name, source: storeSource(ctx.paths.storeDir, local) } : optsIn
  const name = opts.name ?? (await defaultContainerName(opts.image, ctx.root))
  checkContainerName(name)
  return doing(`installing ${name}`, () => withNameLock(ctx, name, `installing ${name}`, () => installNamed(ctx, opts, name)))
}

async function installNamed(ctx: OpsContext, opts: InstallOptions, name: string): Promise<InstallResult> {
  const { image, ref } = await recordedImageName(ctx, opts.image, opts)
  const setValues = parseSetFlags(opts.set ?? [])
  parseGrants(opts.grant ?? [])
  const runtime = opts.runtime ?? DEFAULT_RUNTIME
  const unit = `${name}.service`
  const unitPath = join(ctx.paths.unitDir, unit)
  const tmpfilesPath = join(ctx.paths.tmpfilesDir, `${name}.conf`)
  const deployments = new Deployments(ctx.paths.containersDir)
  const rootfs = opts.rootfs === undefined ? undefined : await resolveRemoteRootfs(ctx, opts.rootfs)
  await deployments.ensure()
  await recover(ctx, deployments, name)

  const existing = await deployments.active(name)
  if (existing) {
    const r = existing.record
    if (r.image === image && r.runtime === runtime && r.rootfs === rootfs && sameValues(r.setValues, setValues) && sameGrants(r, opts)) {
      // The host must say what the record says (a unit edited or removed, a unit never enabled): put it back.
      const repaired = await doing(`checking the installed ${name}`, () => repairInstalled(ctx, existing))
      if (repaired.length > 0) ctx.reporter.warn(`${name} is installed from ${image}, but the host did not match its record: put back ${repaired.join(', ')}`)
      // else: the result says "already installed ..., nothing changed" (stdout); no second copy on stderr.
      return {
        name,
        unit,
        image,
        manifestDigest: r.manifestDigest,
        deployment: `${name}.${existing.slot}`,
        deploymentDir: existing.dir,
        unchanged: true,
        values: r.values,
        files: r.files,
      }
    }
    throw new ConflictError('container.exists', `a container named ${name} is already installed (from ${r.image})`, {
      hint: `uninstall it first (sysctr uninstall ${name}), or choose another name with --name`,
    })
  }
  await refuseForeignFile(unitPath, 'unit')
  await refuseForeignFile(tmpfilesPath, 'tmpfiles entry')
  await checkRuntime(ctx, runtime)

  const store = await Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
  // Close drops this process's lease file: nothing of the run stays in the store (a --root tree is reproducible).
  try {
    return await installWithStore(ctx, opts, { ref, image, name, unit, runtime, setValues, deployments, store, rootfs })
  } finally {
    await store.close()
  }
}

interface InstallInput {
  /** Undefined for a local transport. */
  ref: ImageReference | undefined
  image: string
  name: string
  unit: string
  runtime: string
  setValues: Record<string, string>
  deployments: Deployments
  store: Store
  rootfs?: string
}

async function installWithStore(ctx: OpsContext, opts: InstallOptions, i: InstallInput): Promise<InstallResult> {
  const { ref, image, name, unit, runtime, setValues, deployments, store, rootfs } = i
  const source =
    opts.source ??
    (await openImageSource(ref ? ref.toString() : opts.image, sourceOptions(ctx, opts))).source
  let pull: PullResult
  try {
    // A local file is recorded as written (under --root: the path the booted system reads), not where this run opened it.
    const origin = isLocalInput(opts.image) ? describeInput(opts.image).refName : undefined
    pull = await doing(`pulling ${image}`, () =>
      pullImage(store, source, image, { reporter: ctx.reporter, ...(origin ? { origin } : {}), ...wantedPlatform(opts), mismatchNote: `installing anyway: ${RUNS_ONLY_WHERE}` }),
    )
  } finally {
    await source.close()
  }

  const imageConfig = JSON.parse((await store.getBlob(pull.configDigest))!.toString('utf8')) as ImageConfig
  if (isRunOnce(imageConfig)) {
    if (rootfs) throw new UsageError('install.run-once-rootfs', `${image} is a run-once image (atomic.run=once): --rootfs does not apply (it runs on a throwaway copy of the image)`)
    if (ctx.root) throw new UsageError('install.run-once-root', `${image} is a run-once image (atomic.run=once): it cannot run inside --root ${ctx.root}`)
    const r = await runOnce(ctx, store, {
      name,
      image,
      pull,
      config: imageConfig,
      runtime,
      setValues,
      uuid: ctx.uuid?.(name, pull.manifestDigest) ?? randomUUID(),
      privileged: opts.privileged === true,
      grants: opts.grant ?? [],
      spawnRuntime: opts.spawnRuntime,
    })
    return { name, unit, image, manifestDigest: pull.manifestDigest, deployment: '', deploymentDir: '', unchanged: false, pull, values: {}, files: [], runOnce: r }
  }

  const slot = 0
  const destDir = inRoot(ctx, deployments.slotDir(name, slot))
  const { plan, deployment } = await planAndBuild(ctx, store, deployments, {
    name,
    image,
    pull,
    runtime,
    slot,
    setValues,
    uuid: ctx.uuid?.(name, pull.manifestDigest) ?? randomUUID(),
    privileged: opts.privileged === true,
    grants: opts.grant ?? [],
    checkSetKeys: Object.keys(setValues),
    strict: opts.strict === true,
    ...(opts.autoupdate ? { autoupdate: opts.autoupdate } : {}),
    ...(rootfs ? { rootfs } : {}),
  })
  if (rootfs) ctx.reporter.info(`${name} runs on the remote rootfs ${rootfs} (the image supplies its /exports only)`)
  const { values, files } = plan.record
  const noService = plan.record.noContainerService === true
  try {
    await checkHostFileConflicts(ctx, name, files)
  } catch (err) {
    await removeTree(deployment.dir).catch(() => {})
    throw err
  }
  try {
    await applySwitch(ctx, deployments, plan.switch, deployment)
  } catch (err) {
    if (err instanceof SimulatedKill) throw err
    // The one undo path: the journal puts back what this run wrote and removes NAME.0.
    await recover(ctx, deployments, name, 'failed').catch((e) =>
      ctx.reporter.warn(`could not undo the partial install of ${name}: ${(e as Error).message}`),
    )
    throw err
  }
  await commitSwitch(deployments, name)
  const result: InstallResult = {
    name,
    unit,
    image,
    manifestDigest: pull.manifestDigest,
    deployment: `${name}.${slot}`,
    deploymentDir: destDir,
    unchanged: false,
    pull,
    values,
    files,
    ...(plan.record.privileged ? { privileged: true } : {}),
    ...(plan.record.grants ? { grants: plan.record.grants } : {}),
    ...(plan.record.asked ? { asked: plan.record.asked } : {}),
    ...(noService ? { noContainerService: true } : {}),
    ...(rootfs ? { rootfs } : {}),
  }
  if (noService) {
    // Nothing to enable or start: the image only ships host files.
    if (opts.now) ctx.reporter.info(`${name} has no service (noContainerService): nothing to start`)
    return result
  }
  if (opts.now) {
    // A failed start is reported, but the install stays: it is complete and enabled.
    // Socket activation: --now starts NAME.socket; the service starts on the first connection.
    const first = files.some((f) => f.role === 'socket') ? unit.replace(/\.service$/, '.socket') : unit
    const systemd = await ctx.systemd()
    try {
      result.started = await systemd.startUnit(first)
    } catch (err) {
      await showJournal(ctx, unit)
      throw withContext(err, `${name} is installed and enabled, but starting ${first} failed (journalctl -u ${unit})`)
    }
    // A start job is done once runc is forked (Type=simple): watch the unit for the settle time.
    const failed = await settleCheck(ctx, systemd, first, opts.settleMs, 'install.start-failed', `${name} is installed and enabled, but `, `see journalctl -u ${unit}; the install stays (sysctr uninstall ${name} removes it, sysctr containers update ${name} --set KEY=VALUE changes it)`)
    if (failed) throw failed
    if (opts.settleMs) result.settledMs = opts.settleMs
  }
  return result
}

export interface PlanAndBuildOptions extends DeploymentChoices {
  pull: PullResult
}

/**
 * Check the pulled image out into a staged NAME.N, plan the deployment from
 * that checkout (deployment/plan.ts, as the dry runs plan it from the store)
 * and build NAME.N from the plan. Touches nothing outside the deployments
 * dir; a failure removes the staged directory. Shared by install and update.
 */
export async function planAndBuild(
  ctx: OpsContext,
  store: Store,
  deployments: Deployments,
  o: PlanAndBuildOptions,
): Promise<{ plan: DeploymentPlan; deployment: Deployment }> {
  // A remote rootfs (--rootfs) has no checkout: /exports and /exports/hostfs are read from the store.
  const staged = o.rootfs ? await deployments.stage(o.name, o.slot) : await stageCheckout(store, deployments, o.name, o.slot, o.pull.commit)
  try {
    const config = JSON.parse((await store.getBlob(o.pull.configDigest))!.toString('utf8')) as ImageConfig
    const { pull, ...choices } = o
    const plan = await planDeployment(ctx, {
      ...choices,
      manifestDigest: pull.manifestDigest,
      configDigest: pull.configDigest,
      commit: pull.commit,
      config,
      view: o.rootfs ? { kind: 'store', store, commit: pull.commit } : { kind: 'checkout', rootfs: join(staged, 'rootfs') },
    })
    for (const w of plan.warnings) ctx.reporter.warn(w)
    return { plan, deployment: await buildDeployment(deployments, plan, staged) }
  } catch (err) {
    await removeTree(staged).catch(() => {})
    throw err
  }
}

/**
 * Atomic's remote rootfs: DIR/rootfs when DIR has one (an exploded container), else DIR itself when it
 * holds a /usr (the root given directly), resolved (realpath). Anything else is `rootfs.not-found` (exit 3).
 */
export async function resolveRemoteRootfs(ctx: OpsContext, dir: string): Promise<string> {
  if (ctx.root) throw new UsageError('install.rootfs-root', '--rootfs cannot be used with --root')
  if (!dir.startsWith('/')) throw new UsageError('install.rootfs-relative', `--rootfs ${dir}: the path must be absolute`)
  const isDir = (p: string) => fsp.stat(p).then((s) => s.isDirectory(), () => false)
  const real = await fsp.realpath(dir).catch(() => undefined)
  if (real && (await isDir(join(real, 'rootfs')))) return fsp.realpath(join(real, 'rootfs'))
  if (real && (await isDir(join(real, 'usr')))) return real
  throw new NotFoundError('rootfs.not-found', `--rootfs ${dir} does not contain a rootfs (neither ${join(dir, 'rootfs')} nor ${join(dir, 'usr')} is a directory)`, {
    hint: 'give the root directory of an exploded image (with /usr), or the directory that holds it as rootfs/',
  })
}

/** A unit or tmpfiles file that exists and that no sysctr deployment wrote is never overwritten. */
async function refuseForeignFile(path: string, what: string): Promise<void> {
  const have = await sha256File(path)
  if (have === undefined) return
  throw new ConflictError('host.file-exists', `${path} exists and was not written by sysctr; refusing to overwrite that ${what}`, {
    hint: 'choose another name with --name, or move the file away',
  })
}

async function checkRuntime(ctx: OpsContext, runtime: string): Promise<void> {
  try {
    await fsp.access(fromRoot(ctx, runtime), fsc.X_OK)
  } catch {
    if (ctx.root) {
      // A tree being composed may get its runtime later (a package, a bind of /usr at boot).
      ctx.reporter.warn(`container runtime ${runtime} is not (yet) an executable under ${ctx.root}`)
      return
    }
    throw new HostError('runtime.missing', `container runtime ${runtime} is not an executable`, {
      hint: 'install runc (apt-get install runc) or name another runtime with --runtime PATH',
    })
  }
}

/** Same privileges as the record: --privileged and the --grant ITEMs (order and duplicates aside). */
function sameGrants(r: { privileged?: boolean; grants?: string[] }, opts: { privileged?: boolean; grant?: string[] }): boolean {
  const a = [...new Set(r.grants ?? [])].sort()
  const b = [...new Set(opts.grant ?? [])].sort()
  return (r.privileged === true) === (opts.privileged === true) && a.length === b.length && a.every((x, i) => x === b[i])
}
