/**
 * install --dry-run and containers update --dry-run: what the real run would
 * pull and write, changing nothing.
 *
 * - The manifest and config are resolved from the source (source.resolve,
 *   which reads the manifest and the config blob only); layers the store
 *   lacks are listed with their sizes. No layer is fetched.
 * - Rendering needs the image's /exports. When the resolved image is already
 *   in the store (any ref with that manifest digest), its /exports are read
 *   from the store commit (no checkout) and the unit, config.json and
 *   tmpfiles entry are rendered exactly as install/update would render them
 *   (for update: the slot the update would use, the container's $UUID).
 *   Otherwise the result says the files are unknown until the image is
 *   pulled: `sysctr images pull IMAGE` (a pull is not an install) and run the
 *   dry run again.
 * - Nothing is written under the containers dir, the unit dir or the tmpfiles
 *   dir, and systemd is not contacted. The store is opened (and created, if it
 *   did not exist) for reading; no blob, layer, commit or ref is written.
 */
import { randomUUID } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { ConflictError, doing, NotFoundError } from '../errors'
import type { Digest, ImageConfig, ResolvedImage } from '../oci/types'
import { isLocalInput, openImageSource } from '../transports/open'
import { defaultContainerName, recordedImageName, sourceOptions, storedSourceOf } from './source-options'
import { storedImageFor, storeSource } from './local-images'
import type { ImageSource } from '../transports/image-source'
import { Store } from '../store/store'
import { checkContainerName } from '../deployment/name'
import { parseSetFlags, refuseFixedKeys, sameValues } from '../templates/values'
import { Deployments, updateSlot } from '../deployment/deployments'
import { DIRECTORY_MARK, SYMLINK_MARK } from '../util/atomic-file'
import { isRunOnce } from './run-once'
import { planDeployment, type DeploymentChoices, type DeploymentPlan, type SystemdStep } from '../deployment/plan'
import { stagedHostFile } from '../deployment/host-files'
import { sha256File } from '../util/atomic-file'
import { unifiedDiff } from '../util/line-diff'
import { fromRoot, inRoot, type OpsContext } from './context'
import { type InstallOptions } from './install'
import { DEFAULT_RUNTIME } from '../runtime/default-runtime'
import { diffValues, type UpdateOptions, type ValueChange } from './update'

export interface PullPlan {
  /** The store ref the pull would write. */
  reference: string
  manifestDigest: Digest
  layers: { digest: Digest; size: number; inStore: boolean }[]
  layersToFetch: number
  bytesToFetch: number
  /** The image (this manifest digest) is in the store already: the pull would only (re)write its ref. */
  imageInStore: boolean
}

export interface PlannedFile {
  role: 'unit' | 'config.json' | 'tmpfiles' | 'hostfs' | 'socket'
  /** Where the real run would write it (host path; the deployment's copy for config.json). */
  path: string
  text: string
  /** hostfs: the file's mode. */
  mode?: number
}

/** What the switch would change on the host besides writing `files` (deployment/plan.ts). */
export interface PlannedChanges {
  /** Host files the real run would remove (kept if the user changed them). */
  removes: { role: string; path: string; reason: string }[]
  /** systemd steps, in order. */
  steps: SystemdStep[]
}

export interface InstallDryRun {
  dryRun: true
  name: string
  unit: string
  image: string
  /** The deployment the install would create (`NAME.0`). */
  deployment: string
  /** The same image and values are installed already: install would do nothing. */
  unchanged: boolean
  pull: PullPlan
  /** Undefined when the image is not in the store (see `note`). */
  files?: PlannedFile[]
  values?: Record<string, string>
  changes?: PlannedChanges
  /** What config.json asks beyond the default grant (ITEMs), what is granted. */
  privileges?: DeploymentPlan['privileges']
  warnings: string[]
  note?: string
}

export interface FileDiff {
  role: PlannedFile['role']
  path: string
  /** Unified diff against the active deployment's file ('' when equal). */
  diff: string
}

export interface UpdateDryRun {
  dryRun: true
  name: string
  unit: string
  image: string
  previousImage: string
  manifestDigest: Digest
  previousManifestDigest: string
  /** Same digest, image and values: update would do nothing. */
  unchanged: boolean
  /** The deployment update would build (`NAME.N`). */
  deployment: string
  activeDeployment: string
  pull: PullPlan
  changedValues?: ValueChange[]
  diffs?: FileDiff[]
  files?: PlannedFile[]
  changes?: PlannedChanges
  privileges?: DeploymentPlan['privileges']
  warnings: string[]
  note?: string
}

export async function installDryRun(ctx: OpsContext, optsIn: InstallOptions): Promise<InstallDryRun> {
  const local = optsIn.source ? undefined : await storedImageFor(ctx.paths.storeDir, optsIn.image)
  const opts = local ? { ...optsIn, image: local.name, source: storeSource(ctx.paths.storeDir, local) } : optsIn
  const name = opts.name ?? (await defaultContainerName(opts.image, ctx.root))
  checkContainerName(name)
  refuseFixedKeys(parseSetFlags(opts.set ?? []))
  return doing(`planning the install of ${name}`, async () => {
    const { image } = await recordedImageName(ctx, opts.image, opts)
    const setValues = parseSetFlags(opts.set ?? [])
    const runtime = opts.runtime ?? DEFAULT_RUNTIME
    const unit = `${name}.service`
    const deployments = new Deployments(ctx.paths.containersDir)
    const existing = await deployments.active(name)
    let unchanged = false
    if (existing) {
      const r = existing.record
      if (r.image !== image || r.runtime !== runtime || !sameValues(r.setValues, setValues)) {
        throw new ConflictError('container.exists', `a container named ${name} is already installed (from ${r.image})`, {
          hint: `uninstall it first (sysctr uninstall ${name}), or choose another name with --name`,
        })
      }
      unchanged = true
    } else {
      for (const p of [join(ctx.paths.unitDir, unit), join(ctx.paths.tmpfilesDir, `${name}.conf`)]) {
        if ((await sha256File(p)) !== undefined) {
          throw new ConflictError('host.file-exists', `${p} exists and was not written by sysctr; install would refuse to overwrite it`, {
            hint: 'choose another name with --name, or move the file away',
          })
        }
      }
    }
    const source =
      opts.source ??
      (await openImageSource(isLocalInput(opts.image) ? opts.image : image, sourceOptions(ctx, opts))).source
    const store = await Store.open(ctx.paths.storeDir)
    try {
      const resolved = await resolveOnly(source)
      const { pull, commit } = await planPull(store, image, resolved)
      const out: InstallDryRun = { dryRun: true, name, unit, image, deployment: `${name}.0`, unchanged, pull, warnings: [] }
      if (isRunOnce(resolved.config as ImageConfig)) {
        // ops/run-once.ts: install would run it on a throwaway copy; nothing would be written.
        out.note = `${image} is a run-once image (atomic.run=once): install would run it to completion and install nothing (no unit, deployment, tmpfiles entry or host files)`
        out.deployment = ''
        return out
      }
      if (!commit) {
        out.note = notPulledNote(opts.image)
        return out
      }
      const r = await planFromStore(ctx, store, { commit, resolved, name, image, runtime, slot: 0, setValues, uuid: ctx.uuid?.(name, resolved.manifestDigest) ?? randomUUID(), privileged: opts.privileged === true, grants: opts.grant ?? [], checkSetKeys: Object.keys(setValues), strict: opts.strict === true })
      out.values = r.values
      out.files = plannedFiles(ctx, deployments, r)
      out.changes = plannedChanges(r)
      out.privileges = r.privileges
      out.warnings = r.warnings
      return out
    } finally {
      await store.close()
    }
  })
}

export async function updateDryRun(ctx: OpsContext, name: string, opts: UpdateOptions = {}): Promise<UpdateDryRun> {
  checkContainerName(name)
  refuseFixedKeys(parseSetFlags(opts.set ?? []))
  return doing(`planning the update of ${name}`, async () => {
    const deployments = new Deployments(ctx.paths.containersDir)
    const current = await deployments.active(name)
    if (!current) {
      throw new NotFoundError('container.not-found', `no container named ${name} is installed`, { hint: 'sysctr containers list shows what is installed' })
    }
    const old = current.record
    const input = opts.rebase ?? (await storedSourceOf(ctx, old.image)) ?? old.image
    const { image } = await recordedImageName(ctx, input, opts)
    const setValues = { ...old.setValues, ...parseSetFlags(opts.set ?? []) }
    const slot = updateSlot(current.slot)
    const source = opts.openSource ? opts.openSource(image) : (await openImageSource(isLocalInput(input) ? input : image, sourceOptions(ctx, opts))).source
    const store = await Store.open(ctx.paths.storeDir)
    try {
      const resolved = await resolveOnly(source)
      const { pull, commit } = await planPull(store, image, resolved)
      const unchanged = resolved.manifestDigest === old.manifestDigest && image === old.image && sameValues(setValues, old.setValues)
      const out: UpdateDryRun = {
        dryRun: true,
        name,
        unit: old.unit,
        image,
        previousImage: old.image,
        manifestDigest: resolved.manifestDigest,
        previousManifestDigest: old.manifestDigest,
        unchanged,
        deployment: unchanged ? `${name}.${current.slot}` : `${name}.${slot}`,
        activeDeployment: `${name}.${current.slot}`,
        pull,
        warnings: [],
      }
      if (unchanged) return out
      if (!commit) {
        out.note = notPulledNote(input)
        return out
      }
      const r = await planFromStore(ctx, store, { commit, resolved, name, image, runtime: old.runtime, slot, setValues, uuid: old.values.UUID!, privileged: old.privileged === true || opts.privileged === true, grants: [...new Set([...(old.grants ?? []), ...(opts.grant ?? [])])], from: current, checkSetKeys: Object.keys(parseSetFlags(opts.set ?? [])), strict: opts.strict === true, ...(old.rootfs ? { rootfs: old.rootfs } : {}) })
      out.changedValues = diffValues(old.values, r.values)
      out.files = plannedFiles(ctx, deployments, r)
      out.changes = plannedChanges(r)
      out.privileges = r.privileges
      out.warnings = r.warnings
      // Against the active deployment's own copies (records, not the host: a host file the user edited is kept anyway).
      const activeText = async (f: PlannedFile): Promise<string> =>
        readOr(join(current.dir, baseName(ctx, f, old.unit)))
      out.diffs = []
      for (const f of out.files) {
        const base = baseName(ctx, f, old.unit)
        out.diffs.push({ role: f.role, path: f.path, diff: unifiedDiff(await activeText(f), f.text, `${name}.${current.slot}/${base}`, `${name}.${slot}/${base}`) })
      }
      // Host files the new deployment no longer ships: removed by the update when the user left them unchanged.
      const shipped = new Set(r.hostfs.map((f) => f.path)) // as seen inside the root, as recorded
      for (const h of old.files.filter((x) => x.role === 'hostfs' && !shipped.has(x.path))) {
        const base = `hostfs${h.path}`
        out.diffs.push({ role: 'hostfs', path: fromRoot(ctx, h.path), diff: unifiedDiff(await readOr(stagedHostFile(current.dir, h.path)), '', `${name}.${current.slot}/${base}`, `${name}.${slot}/${base}`) })
      }
      return out
    } finally {
      await store.close()
    }
  })
}

/** The file's name in a deployment directory. */
function baseName(ctx: OpsContext, f: PlannedFile, unit: string): string {
  if (f.role === 'socket') return unit.replace(/\.service$/, '.socket')
  return f.role === 'unit' ? unit : f.role === 'tmpfiles' ? 'tmpfiles.conf' : f.role === 'hostfs' ? `hostfs${inRoot(ctx, f.path)}` : 'config.json'
}

async function readOr(p: string): Promise<string> {
  return fsp.readFile(p, 'utf8').catch(() => '')
}

function notPulledNote(input: string): string {
  return `the image is not in the store, so its /exports (and the files rendered from them) are unknown: pull it with \`sysctr images pull ${input}\` (a pull is not an install) and run the dry run again`
}

async function resolveOnly(source: ImageSource): Promise<ResolvedImage> {
  try {
    return await doing(`resolving ${source.name}`, () => source.resolve())
  } finally {
    await source.close()
  }
}

async function planPull(store: Store, image: string, resolved: ResolvedImage): Promise<{ pull: PullPlan; commit?: string }> {
  const layers = []
  for (const l of resolved.manifest.layers) layers.push({ digest: l.digest, size: l.size, inStore: (await store.getLayer(l.digest)) !== undefined })
  const missing = layers.filter((l) => !l.inStore)
  const own = await store.getImageRef(image)
  let commit = own?.manifestDigest === resolved.manifestDigest ? own.commit : undefined
  if (!commit) commit = (await store.listImageRefs()).find((r) => r.record.manifestDigest === resolved.manifestDigest)?.record.commit
  return {
    pull: {
      reference: image,
      manifestDigest: resolved.manifestDigest,
      layers,
      layersToFetch: missing.length,
      bytesToFetch: missing.reduce((n, l) => n + l.size, 0),
      imageInStore: commit !== undefined,
    },
    commit,
  }
}

/** The plan the real run makes, from the image commit in the store instead of a checkout. */
async function planFromStore(ctx: OpsContext, store: Store, o: DeploymentChoices & { commit: string; resolved: ResolvedImage }): Promise<DeploymentPlan> {
  const { commit, resolved, ...choices } = o
  return planDeployment(ctx, {
    ...choices,
    manifestDigest: resolved.manifestDigest,
    configDigest: resolved.manifest.config.digest,
    commit,
    config: resolved.config as ImageConfig,
    view: { kind: 'store', store, commit },
  })
}

/** The plan's files as the dry runs print them: the unit, the deployment's config.json, the tmpfiles entry, host files. */
function plannedFiles(ctx: OpsContext, deployments: Deployments, plan: DeploymentPlan): PlannedFile[] {
  const out: PlannedFile[] = []
  const write = (role: PlannedFile['role']) => plan.switch.writes.find((w) => w.role === role)
  const unit = write('unit')
  if (unit) out.push({ role: 'unit', path: unit.path, text: unit.content.toString('utf8') })
  out.push({ role: 'config.json', path: join(deployments.slotDir(plan.name, plan.slot), 'config.json'), text: plan.configJson })
  const tmpfiles = write('tmpfiles')
  if (tmpfiles) out.push({ role: 'tmpfiles', path: tmpfiles.path, text: tmpfiles.content.toString('utf8') })
  const socket = write('socket')
  if (socket) out.push({ role: 'socket', path: socket.path, text: socket.content.toString('utf8') })
  for (const w of plan.switch.writes.filter((x) => x.role === 'hostfs')) out.push({ role: 'hostfs', path: w.path, text: hostEntryText(w.content), mode: w.mode })
  return out
}

function plannedChanges(plan: DeploymentPlan): PlannedChanges {
  return { removes: plan.switch.removes.map((r) => ({ role: r.role, path: r.path, reason: r.reason })), steps: plan.switch.steps }
}

/** The systemd steps of a plan, as one line (`reload, enable etcd.service`). */
export function describeSteps(changes: PlannedChanges | undefined): string | undefined {
  if (!changes) return undefined
  const words = changes.steps.map((s) => (s.op === 'reload' ? 'daemon-reload' : 'unit' in s ? `${s.op} ${s.unit}` : `${s.op} ${s.path}`))
  return `  then: ${words.join(', ')}`
}

/** A host entry's planned bytes as a dry run prints them: a symlink and an empty directory by what they are. */
function hostEntryText(content: Buffer): string {
  const s = content.toString('utf8')
  if (s.startsWith(SYMLINK_MARK)) return `symlink -> ${s.slice(SYMLINK_MARK.length)}\n`
  if (content.equals(DIRECTORY_MARK)) return '(empty directory)\n'
  return s
}
