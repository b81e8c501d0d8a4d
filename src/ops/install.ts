/**
 * install --system: reference -> pull into the store -> read-only checkout ->
 * render the image's /exports (or the defaults) -> validate -> publish the
 * deployment -> write unit and tmpfiles -> switch the active link -> systemd
 * (reload, enable, and with --now start and wait for the job).
 *
 * The install is a transaction up to and including enable: any failure undoes
 * what this run wrote (unit, tmpfiles entry, link, deployment) and leaves an
 * existing install untouched. A failed start with --now is reported (exit 8)
 * but the install stays: it is complete and enabled, and `uninstall` removes it.
 */
import { randomUUID } from 'node:crypto'
import { constants as fsc, promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { ConflictError, doing, HostError, withContext } from '../errors'
import type { Digest, ImageConfig } from '../oci/types'
import type { ImageReference } from '../reference/reference'
import { describeInput, openImageSource, type InputDescription } from '../transports/open'
import { Store } from '../store/store'
import { checkContainerName } from '../deployment/name'
import { computeDefaults, parseSetFlags, resolveValues } from '../templates/values'
import { loadExports, renderExports } from '../templates/exports'
import { checkRuntimeConfig, refusePrivileged } from '../runtime/config-check'
import { Deployments, DeploymentRecord, HostFile, RECORD_FORMAT, removeTree } from '../deployment/deployments'
import { sha256File, writeFileAtomic } from '../util/atomic-file'
import { createHash } from 'node:crypto'
import type { ImageSource } from '../transports/image-source'
import { fromRoot, inRoot, type OpsContext } from './context'
import { checkHostFileConflicts, cleanInterrupted, planHostFiles, stageHostFiles, switchHostFiles } from './hostfs'
import { withNameLock } from './name-lock'
import { pullImage, PullResult } from './pull'
import { registryReference, sourceOptions, type SourceFlags } from './image-name'
import type { JobResult } from '../systemd/systemd'
import { UnitFile } from '../systemd/unit-file'

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
}

export interface InstallResult {
  name: string
  unit: string
  image: string
  manifestDigest: Digest
  deployment: string
  /** True when the same image and values were installed already: nothing changed. */
  unchanged: boolean
  pull?: PullResult
  started?: JobResult
  values: Record<string, string>
  files: HostFile[]
  /** Installed with --privileged. */
  privileged?: boolean
  /** The image has no service (manifest.json noContainerService): host files only, nothing enabled or started. */
  noContainerService?: boolean
}

export const DEFAULT_RUNTIME = '/usr/bin/runc'

export async function install(ctx: OpsContext, opts: InstallOptions): Promise<InstallResult> {
  const name = opts.name ?? describeInput(opts.image).defaultName
  checkContainerName(name)
  return doing(`installing ${name}`, () => withNameLock(ctx, name, `installing ${name}`, () => installNamed(ctx, opts, name)))
}

async function installNamed(ctx: OpsContext, opts: InstallOptions, name: string): Promise<InstallResult> {
  // oci:/oci-archive:/docker-archive:/dir: inputs name a local image; anything else a registry.
  const local = localInput(opts.image)
  const ref = local ? undefined : await registryReference(opts.image, sourceOptions(ctx, opts), (m) => ctx.reporter.info(m))
  const image = local ? local.refName! : ref!.toString()
  const setValues = parseSetFlags(opts.set ?? [])
  const runtime = opts.runtime ?? DEFAULT_RUNTIME
  const unit = `${name}.service`
  const unitPath = join(ctx.paths.unitDir, unit)
  const tmpfilesPath = join(ctx.paths.tmpfilesDir, `${name}.conf`)
  const deployments = new Deployments(ctx.paths.containersDir)
  await deployments.ensure()
  await cleanInterrupted(ctx, deployments, name)

  const existing = await deployments.active(name)
  if (existing) {
    const r = existing.record
    if (r.image === image && r.runtime === runtime && sameValues(r.setValues, setValues)) {
      ctx.reporter.info(`${name} is already installed from ${image} with the same values: nothing to do`)
      return {
        name,
        unit,
        image,
        manifestDigest: r.manifestDigest,
        deployment: existing.dir,
        unchanged: true,
        values: r.values,
        files: r.files,
      }
    }
    throw new ConflictError('container.exists', `a container named ${name} is already installed (from ${r.image})`, {
      hint: `uninstall it first (sysctr uninstall ${name}), or choose another name with --name`,
    })
  }
  await removeUnlinkedSlots(ctx, deployments, name)
  await refuseForeignFile(unitPath, 'unit')
  await refuseForeignFile(tmpfilesPath, 'tmpfiles entry')
  await checkRuntime(ctx, runtime)

  const store = await Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
  // Close drops this process's lease file: nothing of the run stays in the store (a --root tree is reproducible).
  try {
    return await installWithStore(ctx, opts, { ref, image, name, unit, unitPath, tmpfilesPath, runtime, setValues, deployments, store })
  } finally {
    await store.close()
  }
}

interface InstallPlan {
  /** Undefined for a local transport. */
  ref: ImageReference | undefined
  image: string
  name: string
  unit: string
  unitPath: string
  tmpfilesPath: string
  runtime: string
  setValues: Record<string, string>
  deployments: Deployments
  store: Store
}

async function installWithStore(ctx: OpsContext, opts: InstallOptions, plan: InstallPlan): Promise<InstallResult> {
  const { ref, image, name, unit, unitPath, tmpfilesPath, runtime, setValues, deployments, store } = plan
  const source =
    opts.source ??
    (await openImageSource(ref ? ref.toString() : opts.image, sourceOptions(ctx, opts))).source
  let pull: PullResult
  try {
    pull = await doing(`pulling ${image}`, () => pullImage(store, source, image, { reporter: ctx.reporter }))
  } finally {
    await source.close()
  }

  const slot = 0
  const destDir = inRoot(ctx, deployments.slotDir(name, slot))
  const written: string[] = []
  const hostWritten: string[] = []
  let linked = false
  let published = false
  try {
    const built = await buildDeployment(ctx, { store, deployments, pull, name, image, runtime, slot, setValues, privileged: opts.privileged })
    published = true
    const { record } = built
    const { values, files } = record
    const rendered = { service: built.service, tmpfiles: built.tmpfiles }

    const noService = record.noContainerService === true
    const hasTmpfiles = files.some((f) => f.role === 'tmpfiles')
    await checkHostFileConflicts(ctx, name, files)
    if (!noService) {
      await fsp.mkdir(ctx.paths.unitDir, { recursive: true })
      written.push(unitPath)
      await writeFileAtomic(unitPath, rendered.service, { mode: 0o644 })
    }
    if (hasTmpfiles) {
      await fsp.mkdir(ctx.paths.tmpfilesDir, { recursive: true })
      written.push(tmpfilesPath)
      await writeFileAtomic(tmpfilesPath, rendered.tmpfiles, { mode: 0o644 })
    }
    await doing('writing host files', () => switchHostFiles(ctx, built.dir, files, [], hostWritten))
    await deployments.activate(name, slot)
    linked = true
    if (hasTmpfiles) await doing(`applying ${tmpfilesPath}`, () => ctx.tmpfiles('create', tmpfilesPath))
    if (noService) {
      // Nothing to enable or start: the image only ships host files.
      if (opts.now) ctx.reporter.info(`${name} has no service (noContainerService): nothing to start`)
      return { name, unit, image, manifestDigest: pull.manifestDigest, deployment: destDir, unchanged: false, pull, values, files, noContainerService: true, ...(record.privileged ? { privileged: true } : {}) }
    }

    const systemd = await ctx.systemd()
    await doing('reloading systemd', () => systemd.reload())
    await doing(`enabling ${unit}`, () => systemd.enableUnitFiles([unit]))
    const result: InstallResult = { name, unit, image, manifestDigest: pull.manifestDigest, deployment: destDir, unchanged: false, pull, values, files, ...(record.privileged ? { privileged: true } : {}) }
    if (opts.now) {
      try {
        result.started = await systemd.startUnit(unit)
      } catch (err) {
        throw withContext(err, `${name} is installed and enabled, but starting ${unit} failed (journalctl -u ${unit})`)
      }
    }
    return result
  } catch (err) {
    if ((err as { context?: string[] }).context?.some((c) => c.includes('is installed and enabled'))) throw err
    await undo(ctx, { name, deployments, written, hostWritten, linked, slot, published }).catch((e) =>
      ctx.reporter.warn(`could not undo the partial install of ${name}: ${(e as Error).message}`),
    )
    throw err
  }
}

async function undo(
  ctx: OpsContext,
  s: { name: string; deployments: Deployments; written: string[]; hostWritten: string[]; linked: boolean; slot: number; published: boolean },
): Promise<void> {
  for (const f of s.written) await fsp.rm(f, { force: true })
  // Only host files this run wrote (each one did not exist before: foreign files were refused).
  for (const f of s.hostWritten) await fsp.rm(fromRoot(ctx, f), { force: true })
  if (s.linked) await fsp.rm(s.deployments.linkPath(s.name), { force: true })
  if (s.published) await removeTree(s.deployments.slotDir(s.name, s.slot))
  if (s.written.length > 0) {
    try {
      const systemd = await ctx.systemd()
      await systemd.reload()
    } catch {
      /* systemd unreachable: nothing was enabled either */
    }
  }
}

export interface BuildDeploymentOptions {
  store: Store
  deployments: Deployments
  pull: PullResult
  name: string
  /** The normalised image reference recorded with the deployment. */
  image: string
  runtime: string
  slot: number
  /** The user's --set values (saved in the record for later updates). */
  setValues: Record<string, string>
  /** Keep the previous deployment's $UUID (updates); default: a new one. */
  uuid?: string
  /** Accept privilege findings in config.json (install --privileged; an update keeps the record's). Default: refuse them. */
  privileged?: boolean
}

export interface BuiltDeployment {
  /** The published deployment directory NAME.N. */
  dir: string
  record: DeploymentRecord
  /** The rendered unit and tmpfiles entry, as also kept in the deployment. */
  service: string
  tmpfiles: string
}

/**
 * Build deployment NAME.N from a pulled image: checkout, read /exports,
 * resolve values, render, check, write the deployment's files and record,
 * publish (rename into place). Touches nothing outside the deployments dir;
 * on failure the staged directory is removed. NAME.N must not exist.
 * Shared by install (slot 0) and update (the other slot).
 */
export async function buildDeployment(ctx: OpsContext, o: BuildDeploymentOptions): Promise<BuiltDeployment> {
  const { store, deployments, pull, name, image, runtime, slot, setValues } = o
  const unit = `${name}.service`
  // Rendered values name paths as the running system sees them (inside --root).
  const destDir = inRoot(ctx, deployments.slotDir(name, slot))
  const staged = await deployments.stage(name, slot)
  try {
    await doing('checking out the image', () => store.checkout(pull.commit, join(staged, 'rootfs')))
    const exportsFound = await doing('reading the image exports', () => loadExports(join(staged, 'rootfs'), ctx.paths.templatesDir))
    const config = JSON.parse((await store.getBlob(pull.configDigest))!.toString('utf8')) as ImageConfig
    const computed = computeDefaults({
      name,
      destDir,
      runtime,
      imageName: image,
      imageId: pull.manifestDigest,
      hostUid: ctx.root ? 0 : (process.getuid?.() ?? 0),
      hostGid: ctx.root ? 0 : (process.getgid?.() ?? 0),
      uuid: o.uuid ?? ctx.uuid?.(name, pull.manifestDigest) ?? randomUUID(),
    })
    const { values } = resolveValues({ manifestDefaults: exportsFound.manifest?.defaultValues ?? {}, computed, set: setValues })
    const rendered = await doing('rendering templates', () => renderExports(exportsFound, values, config.config ?? {}))
    // noContainerService (Atomic): the image ships host files (and maybe a tmpfiles entry), no service: no container runs.
    const noService = exportsFound.manifest?.noContainerService === true
    let configJson = rendered.configJson
    if (!noService) {
      const checked = checkRuntimeConfig(rendered.configJson, { privileged: o.privileged === true })
      refusePrivileged(checked)
      for (const w of checked.warnings ?? []) ctx.reporter.warn(`config.json: ${w}`)
      configJson = keepContainerInService(rendered.configJson, name, UnitFile.parse(rendered.service, unit))
    }
    const hostPlans = await doing('reading /exports/hostfs', () => planHostFiles(join(staged, 'rootfs'), exportsFound.manifest, values))

    await writeFileAtomic(join(staged, 'config.json'), configJson, { mode: 0o644 })
    if (!noService) await writeFileAtomic(join(staged, unit), rendered.service, { mode: 0o644 })
    await writeFileAtomic(join(staged, 'tmpfiles.conf'), rendered.tmpfiles, { mode: 0o644 })
    const files: HostFile[] = []
    if (!noService) files.push({ path: inRoot(ctx, join(ctx.paths.unitDir, unit)), sha256: sha256(rendered.service), role: 'unit' })
    if (!noService || (exportsFound.tmpfiles.origin === 'image' && rendered.tmpfiles.trim() !== '')) {
      files.push({ path: inRoot(ctx, join(ctx.paths.tmpfilesDir, `${name}.conf`)), sha256: sha256(rendered.tmpfiles), role: 'tmpfiles' })
    }
    files.push(...(await stageHostFiles(staged, hostPlans)))
    const record: DeploymentRecord = {
      format: RECORD_FORMAT,
      name,
      slot,
      image,
      manifestDigest: pull.manifestDigest,
      configDigest: pull.configDigest,
      imageCommit: pull.commit,
      runtime,
      values,
      setValues,
      templates: {
        configJson: exportsFound.configJson.origin,
        service: exportsFound.service.origin,
        tmpfiles: exportsFound.tmpfiles.origin,
      },
      unit,
      files,
      createdAt: (ctx.now?.() ?? new Date()).toISOString(),
      ...(o.privileged ? { privileged: true } : {}),
      ...(noService ? { noContainerService: true } : {}),
    }
    await deployments.writeRecord(staged, record)
    const dir = await deployments.publish(staged, name, slot)
    return { dir, record, service: rendered.service, tmpfiles: rendered.tmpfiles }
  } catch (err) {
    await removeTree(staged).catch(() => {})
    throw err
  }
}

/**
 * Slots of NAME with no active link are what a crashed install left: remove
 * them and the host files they recorded (only where the file is still exactly
 * what sysctr wrote).
 */
async function removeUnlinkedSlots(ctx: OpsContext, deployments: Deployments, name: string): Promise<void> {
  for (const slot of await deployments.slots(name)) {
    const d = await deployments.read(name, slot)
    for (const f of d?.record.files ?? []) {
      const host = fromRoot(ctx, f.path)
      if ((await sha256File(host)) === f.sha256) await fsp.rm(host, { force: true })
    }
    await fsp.rm(deployments.slotDir(name, slot), { recursive: true, force: true })
  }
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

/**
 * Keep the container inside its service's cgroup: when the unit delegates its
 * cgroup (`Delegate=yes`) and the image's config names no cgroupsPath, use
 * `/<slice path>/NAME.service/container` (the unit's Slice=, default
 * system.slice). The path is absolute: runc and crun read relative paths
 * differently (runc from its parent cgroup, crun from the root). systemd then
 * tracks, stops and accounts the container's processes as the service's own,
 * and accepts sd_notify from them. Without delegation the runtime's default
 * (a cgroup beside the service) is left alone, as Atomic had it.
 */
export function keepContainerInService(configJson: string, name: string, unit: UnitFile): string {
  const delegate = (unit.get('Service', 'Delegate') ?? 'no').trim().toLowerCase()
  if (!['yes', 'true', 'on', '1'].includes(delegate)) return configJson
  const spec = JSON.parse(configJson) as { linux?: { cgroupsPath?: string } }
  spec.linux ??= {}
  if (spec.linux.cgroupsPath) return configJson
  spec.linux.cgroupsPath = `${slicePath(unit.get('Service', 'Slice') ?? 'system.slice')}/${name}.service/container`
  return JSON.stringify(spec, null, 2) + '\n'
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex')
}

/** The description of a local-transport input (oci:, oci-archive:, docker-archive:, dir:), else undefined. */
function localInput(image: string): InputDescription | undefined {
  return /^(oci|oci-archive|docker-archive|dir):/.test(image) ? describeInput(image) : undefined
}

function sameValues(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k])
}

/** The cgroup path of a slice unit: `a-b.slice` -> `/a.slice/a-b.slice`, `-.slice` -> ``. */
export function slicePath(slice: string): string {
  const base = slice.trim().replace(/\.slice$/, '')
  if (base === '' || base === '-') return ''
  const parts = base.split('-')
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('-')}.slice`).join('')
}
