/**
 * The deployment plan: everything an install or an update would change, as
 * plain data, computed before anything changes. `--dry-run` prints a plan;
 * install and update apply one (deployment/switch.ts). Nothing is planned
 * twice: the dry runs and the real runs call the same `planDeployment`, the
 * real run reading the image from its fresh checkout, the dry run from the
 * image commit in the store (the same files, no checkout).
 *
 * A plan has two halves:
 * - the deployment NAME.N itself (`deploymentFiles`, `record`): the checkout
 *   of `commit`, the rendered config.json, unit, tmpfiles entry and host-file
 *   copies, and info.json;
 * - the switch (`planSwitch`): the files to write on the host (unit, tmpfiles
 *   entry, host files, each with its bytes, mode and reason), the files to
 *   remove, and the systemd steps, from the active deployment (if any) to the
 *   new one. `containers rollback` plans only a switch, between two
 *   deployments that exist, from their recorded files (never re-rendered).
 *
 * Invariants:
 * - Planning reads; it never writes outside its own temp dirs.
 * - A plan's host paths are host paths (with --root: under the root); its
 *   record names paths as seen inside the root (`inRoot`).
 * - What a plan refuses (privileges, foreign host files checked by the
 *   apply) the apply refuses too; a dry run never promises more.
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join, resolve } from 'node:path'
import { ContentError, doing, UsageError } from '../errors'
import type { Digest, ImageConfig } from '../oci/types'
import type { Store } from '../store/store'
import { loadExports, renderExports, templateVariables, type Exports } from '../templates/exports'
import { exportsFromStore } from '../templates/exports-from-store'
import { computeDefaults, nearestKey, resolveValues } from '../templates/values'
import { bindMountSources, checkRuntimeConfig, refusePrivileged } from '../runtime/config-check'
import { isOwnPath, serviceIdentity } from '../runtime/grants'
import { keepContainerInService, SYSTEM_MANAGER, userManager } from '../runtime/cgroup'
import { rootlessConfig } from '../runtime/rootless'
import { adaptTmpfilesForUser, adaptUnitForUser } from '../systemd/user-unit'
import { UnitFile } from '../systemd/unit-file'
import { adaptUnit } from '../systemd/unit-adapt'
import { fromRoot, inRoot, type OpsContext } from '../ops/context'
import { Deployments, RECORD_FORMAT, type AutoUpdateMode, type Deployment, type DeploymentRecord, type HostFile } from './deployments'
import { planHostFiles, rootfsReader, stagedHostFile, storeReader, type HostFilePlan } from './host-files'
import { DIRECTORY_MARK, symlinkFingerprint } from '../util/atomic-file'

/** Where the plan reads the image: its checkout (install, update) or its commit in the store (dry runs). */
export type ImageView = { kind: 'checkout'; rootfs: string } | { kind: 'store'; store: Store; commit: string }

/** What the operator chose for a deployment (and update carries over): the same for the real run and the dry run. */
export interface DeploymentChoices {
  name: string
  /** The normalised image reference recorded with the deployment. */
  image: string
  runtime: string
  slot: number
  /** The user's --set values (saved in the record for later updates). */
  setValues: Record<string, string>
  uuid: string
  /** Accept every privilege finding of config.json (--privileged, or the record's on update). */
  privileged: boolean
  /** `--grant ITEM`s (runtime/grants.ts): what config.json may ask beyond the default grant (with the record's on update). */
  grants: string[]
  /** The active deployment the switch starts from (update); none on install. */
  from?: Deployment
  /** The --set keys of this run to check against what the image's templates use (install: all; update: this run's). */
  checkSetKeys?: string[]
  /** --strict: a --set key no template uses is a usage error instead of a warning. */
  strict?: boolean
  /** `install --autoupdate` (update: the record's): recorded as is. */
  autoupdate?: AutoUpdateMode
  /** install --rootfs: the host directory used as the container's root (config.json root.path), no checkout. */
  rootfs?: string
}

export interface PlanInput extends DeploymentChoices {
  manifestDigest: Digest
  configDigest: Digest
  /** The image commit (hex) in the store. */
  commit: string
  /** The image config (Env, Entrypoint... feed the default config.json). */
  config: ImageConfig
  view: ImageView
}

/** A file of the deployment directory NAME.N. */
export interface DeploymentFile {
  /** Relative to NAME.N: `config.json`, `NAME.service`, `tmpfiles.conf`, `hostfs/PATH`. */
  name: string
  content: Buffer
  mode: number
  /** hostfs: a symlink (to `target`) or an empty directory instead of a file (content: its fingerprint). */
  kind?: 'symlink' | 'dir'
  target?: string
}

export type FileRole = HostFile['role']

/** A host file the switch writes. */
export interface PlannedWrite {
  role: FileRole
  /** The host path (with --root: under the root). */
  path: string
  /** As the record names it (inside the root). */
  recordPath: string
  content: Buffer
  mode: number
  /** What the active deployment recorded at this path (a host file changed since is kept, not overwritten). */
  previousSha256?: string
  reason: string
}

/** A host file the switch removes. */
export interface PlannedRemoval {
  role: FileRole
  path: string
  recordPath: string
  /** What sysctr wrote there: a host file with other content is kept. */
  sha256: string
  reason: string
}

/** The systemd side of a switch, in order (stop/disable before the files, the rest after the link). */
export type SystemdStep =
  | { op: 'stop'; unit: string }
  | { op: 'disable'; unit: string }
  | { op: 'tmpfiles-remove'; path: string }
  | { op: 'tmpfiles-create'; path: string }
  | { op: 'reload' }
  | { op: 'enable'; unit: string }

export interface SwitchPlan {
  name: string
  unit: string
  /** The deployment switched to, and the one active until now. */
  toSlot: number
  fromSlot?: number
  /** True when NAME.N is built by this operation (a failed or interrupted switch removes it). */
  newSlot: boolean
  writes: PlannedWrite[]
  removes: PlannedRemoval[]
  steps: SystemdStep[]
}

export interface DeploymentPlan {
  name: string
  unit: string
  image: string
  manifestDigest: Digest
  slot: number
  /** `NAME.N`. */
  deployment: string
  /** The host path of NAME.N. */
  dir: string
  /** The image commit checked out read-only as NAME.N/rootfs. */
  commit: string
  values: Record<string, string>
  /** The record info.json gets (createdAt set when applied). */
  record: DeploymentRecord
  deploymentFiles: DeploymentFile[]
  /** Rendered texts, for printing. */
  service: string
  configJson: string
  tmpfiles: string
  hostfs: HostFilePlan[]
  /** What config.json asks of the host beyond the default grant (ITEMs), and what was granted. */
  privileges: { privileged: boolean; asked: string[]; granted: string[]; unused: string[] }
  warnings: string[]
  switch: SwitchPlan
}

/** $ATOMIC: the CLI that installed the container (Atomic gave the path of its own). */
const SYSCTR_CLI = resolve(__dirname, '..', '..', 'bin', 'sysctr')

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex')
}

/**
 * Plan deployment NAME.N from an image: read /exports, resolve values,
 * render, check config.json, plan host files, then the switch from `from`.
 * Order of the checks (and so of the first error) is the install's.
 */
export async function planDeployment(ctx: OpsContext, i: PlanInput): Promise<DeploymentPlan> {
  const { name, slot } = i
  const unit = `${name}.service`
  const deployments = new Deployments(ctx.paths.containersDir)
  const dir = deployments.slotDir(name, slot)
  // Rendered values name paths as the running system sees them (inside --root).
  const destDir = inRoot(ctx, dir)
  const view = i.view
  const ex: Exports = await doing('reading the image exports', () =>
    view.kind === 'checkout' ? loadExports(view.rootfs, ctx.paths.templatesDir) : exportsFromStore(view.store, view.commit, ctx.paths.templatesDir),
  )
  const computed = computeDefaults({
    name,
    destDir,
    runtime: i.runtime,
    imageName: i.image,
    imageId: i.manifestDigest,
    hostUid: ctx.root ? 0 : (ctx.user?.uid ?? process.getuid?.() ?? 0),
    hostGid: ctx.root ? 0 : (ctx.user?.gid ?? process.getgid?.() ?? 0),
    uuid: i.uuid,
    atomic: SYSCTR_CLI,
    // --user: the user's directories (Atomic: $XDG_RUNTIME_DIR, ~/.config, ~/.data; here the XDG ones).
    ...(ctx.user ? { runDirectory: ctx.user.runtimeDir, stateDirectory: ctx.user.dataHome, confDirectory: ctx.user.configHome } : {}),
  })
  const { values } = resolveValues({ manifestDefaults: ex.manifest?.defaultValues ?? {}, computed, set: i.setValues })
  const renderedRaw = await doing('rendering templates', () => renderExports(ex, values, i.config.config ?? {}))
  const userTmpfiles = ctx.user ? join(ctx.paths.tmpfilesDir, `${name}.conf`) : undefined
  const adapted = adaptUnit(ctx.user ? adaptUnitForUser(renderedRaw.service, { tmpfiles: userTmpfiles }).text : renderedRaw.service, values)
  let rendered = { ...renderedRaw, service: adapted.text }
  // noContainerService (Atomic): the image ships host files (and maybe a tmpfiles entry), no service: no container runs.
  const noService = ex.manifest?.noContainerService === true
  let configJson = rendered.configJson
  const warnings: string[] = [...adapted.changes]
  if (!noService && ex.service.origin === 'image') {
    const w = undelegatedWarning(name, UnitFile.parse(rendered.service, unit))
    if (w) warnings.push(w)
  }
  let privileges: DeploymentPlan['privileges'] = { privileged: i.privileged, asked: [], granted: [...i.grants], unused: [] }
  if (!noService) {
    const checked = checkRuntimeConfig(rendered.configJson, { privileged: i.privileged, grants: i.grants, ...serviceIdentity(name, i.image, values) })
    refusePrivileged(checked)
    const asked = [...new Set(checked.asked.map((a) => a.grant))]
    privileges = { privileged: i.privileged, asked, granted: checked.granted, unused: checked.unusedGrants }
    warnings.push(...(checked.warnings ?? []).map((w) => `config.json: ${w}`))
    for (const g of checked.unusedGrants) warnings.push(`--grant ${g}: the image does not ask for it`)
    // Legacy runtime-spec shapes (runtime/legacy-spec.ts) are written translated.
    configJson = keepContainerInService(checked.configJson, name, UnitFile.parse(rendered.service, unit), ctx.user ? userManager(ctx.user.uid) : SYSTEM_MANAGER)
    if (ctx.user) {
      const rootless = rootlessConfig(configJson, ctx.user, name)
      configJson = rootless.configJson
      warnings.push(...rootless.warnings)
    }
    // A remote rootfs (install --rootfs DIR), as Atomic's: config.json's root.path names DIR instead of NAME.N/rootfs.
    if (i.rootfs) configJson = `${JSON.stringify({ ...JSON.parse(configJson), root: { ...JSON.parse(configJson).root, path: i.rootfs } }, null, 2)}\n`
    // As Atomic: with no tmpfiles template of the image's, the bind sources the container needs are created
    // (only its own directories: a granted host path must exist).
    if (ex.tmpfiles.origin === 'default') {
      const id = serviceIdentity(name, i.image, values)
      const dirs = bindMountSources(checked.spec).filter((p) => isOwnPath(p, id) && !p.includes(' '))
      if (dirs.length > 0) rendered = { ...rendered, tmpfiles: rendered.tmpfiles + dirs.map((d) => `d ${d} 0755 root root -\n`).join('') }
    }
  }
  if (ctx.user) {
    const u = ctx.user
    const t = adaptTmpfilesForUser(rendered.tmpfiles, [u.runtimeDir, u.dataHome, u.configHome, '/tmp', '/var/tmp'])
    if (t.outside.length > 0) {
      throw new ContentError('user.tmpfiles-path', `the tmpfiles entry of ${name} creates ${t.outside.slice(0, 3).join(', ')}: a --user install can create only under ${u.runtimeDir}, ${u.dataHome} and ${u.configHome}`, {
        hint: 'the image names a system path; install it with --system, or use an image whose templates use ${RUN_DIRECTORY} and ${STATE_DIRECTORY}',
        data: { paths: t.outside },
      })
    }
    rendered = { ...rendered, tmpfiles: t.text }
    warnings.push(...t.warnings)
  }
  const reader = view.kind === 'checkout' ? rootfsReader(view.rootfs) : storeReader(view.store, view.commit)
  const used = new Set<string>(templateVariables(ex).all)
  const hostfs = await doing('reading /exports/hostfs', () => planHostFiles(reader, ex.manifest, values, used))
  warnings.push(...unusedSetKeys(i, ex, renderedRaw.service, used))
  if (ctx.user && hostfs.length > 0) {
    throw new ContentError('user.hostfs', `${name} ships host files (/exports/hostfs: ${hostfs.map((f) => f.path).slice(0, 3).join(', ')}${hostfs.length > 3 ? ', ...' : ''}): a --user install cannot write the host's files`, {
      hint: 'install it as a system container (--system, as root)',
    })
  }

  const files: HostFile[] = []
  if (!noService) files.push({ path: inRoot(ctx, join(ctx.paths.unitDir, unit)), sha256: sha256(rendered.service), role: 'unit' })
  const socketUnit = `${name}.socket`
  if (!noService && rendered.socket !== undefined) files.push({ path: inRoot(ctx, join(ctx.paths.unitDir, socketUnit)), sha256: sha256(rendered.socket), role: 'socket' })
  if (!noService || (ex.tmpfiles.origin === 'image' && rendered.tmpfiles.trim() !== '')) {
    files.push({ path: inRoot(ctx, join(ctx.paths.tmpfilesDir, `${name}.conf`)), sha256: sha256(rendered.tmpfiles), role: 'tmpfiles' })
  }
  for (const f of hostfs) files.push({ path: f.path, sha256: sha256(f.content), role: 'hostfs', source: f.source })

  const deploymentFiles: DeploymentFile[] = [{ name: 'config.json', content: Buffer.from(configJson), mode: 0o644 }]
  if (!noService) deploymentFiles.push({ name: unit, content: Buffer.from(rendered.service), mode: 0o644 })
  if (!noService && rendered.socket !== undefined) deploymentFiles.push({ name: socketUnit, content: Buffer.from(rendered.socket), mode: 0o644 })
  deploymentFiles.push({ name: 'tmpfiles.conf', content: Buffer.from(rendered.tmpfiles), mode: 0o644 })
  for (const f of hostfs) deploymentFiles.push({ name: `hostfs${f.path}`, content: f.content, mode: f.mode, ...(f.kind ? { kind: f.kind, target: f.target } : {}) })

  const record: DeploymentRecord = {
    format: RECORD_FORMAT,
    name,
    slot,
    image: i.image,
    manifestDigest: i.manifestDigest,
    configDigest: i.configDigest,
    imageCommit: i.commit,
    runtime: i.runtime,
    values,
    setValues: i.setValues,
    templates: { configJson: ex.configJson.origin, service: ex.service.origin, tmpfiles: ex.tmpfiles.origin },
    unit,
    files,
    createdAt: (ctx.now?.() ?? new Date()).toISOString(),
    ...(i.privileged ? { privileged: true } : {}),
    ...(privileges.granted.length > 0 ? { grants: privileges.granted } : {}),
    ...(privileges.asked.length > 0 ? { asked: privileges.asked } : {}),
    ...(noService ? { noContainerService: true } : {}),
    ...(i.autoupdate ? { autoupdate: i.autoupdate } : {}),
    ...(i.rootfs ? { rootfs: i.rootfs } : {}),
  }
  const content = (f: HostFile): DeploymentFile => deploymentFiles.find((d) => d.name === deploymentFileName(f, unit))!
  return {
    name,
    unit,
    image: i.image,
    manifestDigest: i.manifestDigest,
    slot,
    deployment: `${name}.${slot}`,
    dir,
    commit: i.commit,
    values,
    record,
    deploymentFiles,
    service: rendered.service,
    configJson,
    tmpfiles: rendered.tmpfiles,
    hostfs,
    privileges,
    warnings,
    switch: planSwitch(ctx, { name, slot, record, newSlot: true, content: (f) => content(f) }, i.from),
  }
}

/**
 * An image's own unit without Delegate=yes (as most of Atomic's were): runc
 * puts the container in a cgroup of its own beside the service
 * (runtime/cgroup.ts leaves cgroupsPath alone), so systemd neither tracks
 * nor accounts the container's processes as the unit's. One line.
 */
function undelegatedWarning(name: string, unit: UnitFile): string | undefined {
  const delegate = (unit.get('Service', 'Delegate') ?? 'no').trim().toLowerCase()
  if (['yes', 'true', 'on', '1'].includes(delegate)) return undefined
  return `unit: ${name}.service has no Delegate=yes: the container's processes run outside the unit's cgroup (systemctl status ${name} shows only runc; stop relies on ExecStop= and runc); add Delegate=yes to the image's unit to keep them inside`
}

/**
 * The --set keys of this run that nothing of the image uses: no template
 * (config.json, unit, socket, tmpfiles, hostfs templates and renamed
 * destinations), not its manifest's defaultValues, and not STOP_TIMEOUT when
 * sysctr adds TimeoutStopSec= from it. One warning each, naming the nearest
 * key that is used; with --strict a usage error (exit 2).
 */
function unusedSetKeys(i: DeploymentChoices, ex: Exports, rawService: string, used: Set<string>): string[] {
  for (const k of Object.keys(ex.manifest?.defaultValues ?? {})) used.add(k)
  if (!/^\s*(TimeoutStopSec|TimeoutSec)\s*=/m.test(rawService)) used.add('STOP_TIMEOUT')
  const unused = (i.checkSetKeys ?? []).filter((k) => !used.has(k))
  const lines = unused.map((k) => {
    const near = nearestKey(k, used)
    return `--set ${k}: no template of the image uses ${k}${near ? ` (nearest used key: ${near})` : ''}`
  })
  if (i.strict && unused.length > 0) {
    throw new UsageError('values.unused-set', lines.join('; '), {
      hint: 'fix or drop the --set (sysctr images info IMAGE lists the variables the templates use), or leave out --strict',
      data: { keys: unused },
    })
  }
  return lines
}

/** The name, inside NAME.N, of the copy of a recorded host file. */
export function deploymentFileName(f: Pick<HostFile, 'role' | 'path'>, unit: string): string {
  if (f.role === 'socket') return unit.replace(/\.service$/, '.socket')
  return f.role === 'unit' ? unit : f.role === 'tmpfiles' ? 'tmpfiles.conf' : `hostfs${f.path}`
}

export interface SwitchTarget {
  name: string
  slot: number
  record: DeploymentRecord
  newSlot: boolean
  /** The bytes and mode of one of the record's files. */
  content(f: HostFile): { content: Buffer; mode: number }
}

/**
 * The host side of making `to` the active deployment of its container, from
 * `from` (none on install): its recorded unit and tmpfiles entry, its host
 * files, the removal of what `from` had and `to` has not, and the systemd
 * steps. Between a deployment with a service and one without
 * (noContainerService) the unit is stopped and disabled, or enabled.
 */
export function planSwitch(ctx: Pick<OpsContext, 'root'>, to: SwitchTarget, from?: Deployment): SwitchPlan {
  const { name, record } = to
  const has = (r: DeploymentRecord | undefined, role: string) => r?.files.some((f) => f.role === role) === true
  const unitGoes = has(from?.record, 'unit') && !has(record, 'unit')
  const unitComes = has(record, 'unit') && !has(from?.record, 'unit')
  const socketUnit = record.unit.replace(/\.service$/, '.socket')
  const socketGoes = has(from?.record, 'socket') && !has(record, 'socket')
  const socketComes = has(record, 'socket') && !has(from?.record, 'socket')
  const prev = new Map((from?.record.files ?? []).map((f) => [f.path, f]))
  const steps: SystemdStep[] = []
  if (socketGoes || (unitGoes && has(from?.record, 'socket'))) steps.push({ op: 'stop', unit: socketUnit }, { op: 'disable', unit: socketUnit })
  if (unitGoes) steps.push({ op: 'stop', unit: from!.record.unit }, { op: 'disable', unit: from!.record.unit })
  const removes: PlannedRemoval[] = []
  for (const f of from?.record.files ?? []) {
    if (record.files.some((g) => g.path === f.path)) continue
    const path = fromRoot(ctx, f.path)
    if (f.role === 'tmpfiles') steps.push({ op: 'tmpfiles-remove', path })
    removes.push({
      role: f.role,
      path,
      recordPath: f.path,
      sha256: f.sha256,
      reason: f.role === 'hostfs' ? `${name}.${to.slot} no longer ships it (kept if changed since sysctr wrote it)` : `${name}.${to.slot} has no ${f.role === 'unit' ? 'service' : f.role === 'socket' ? 'socket' : 'tmpfiles entry'}`,
    })
  }
  const writes: PlannedWrite[] = record.files.map((f) => {
    const { content, mode } = to.content(f)
    const before = prev.get(f.path)?.sha256
    return {
      role: f.role,
      path: fromRoot(ctx, f.path),
      recordPath: f.path,
      content,
      mode,
      ...(before !== undefined ? { previousSha256: before } : {}),
      reason:
        f.role === 'hostfs'
          ? `${f.source ?? 'host file'} of ${name}.${to.slot} (a file changed since sysctr wrote it is kept)`
          : `${f.role === 'unit' ? 'unit' : f.role === 'socket' ? 'socket unit' : 'tmpfiles entry'} of ${name}.${to.slot}`,
    }
  })
  const tmpfiles = record.files.find((f) => f.role === 'tmpfiles')
  if (tmpfiles) steps.push({ op: 'tmpfiles-create', path: fromRoot(ctx, tmpfiles.path) })
  steps.push({ op: 'reload' })
  if (unitComes) steps.push({ op: 'enable', unit: record.unit })
  // Socket activation: NAME.socket is enabled (and so listens from boot on); the service starts on the first connection.
  if (socketComes) steps.push({ op: 'enable', unit: socketUnit })
  return { name, unit: record.unit, toSlot: to.slot, ...(from ? { fromSlot: from.slot } : {}), newSlot: to.newSlot, writes, removes, steps }
}

/** The switch to an existing deployment (rollback), from its own recorded files. */
export async function planSwitchTo(ctx: Pick<OpsContext, 'root'>, to: Deployment, from?: Deployment): Promise<SwitchPlan> {
  const contents = new Map<string, { content: Buffer; mode: number }>()
  for (const f of to.record.files) {
    const p = f.role === 'hostfs' ? stagedHostFile(to.dir, f.path) : join(to.dir, deploymentFileName(f, to.record.unit))
    const st = await fsp.lstat(p)
    // Host symlinks and empty directories are planned by their fingerprint (util/atomic-file.ts sha256File).
    const content = st.isSymbolicLink() ? symlinkFingerprint(await fsp.readlink(p)) : st.isDirectory() ? DIRECTORY_MARK : await fsp.readFile(p)
    contents.set(f.path, { content, mode: f.role === 'hostfs' ? st.mode & 0o7777 : 0o644 })
  }
  return planSwitch(ctx, { name: to.name, slot: to.slot, record: to.record, newSlot: false, content: (f) => contents.get(f.path)! }, from)
}
