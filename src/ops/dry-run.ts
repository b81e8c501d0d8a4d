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
import { describeInput, openImageSource, type OpenImageOptions } from '../transports/open'
import { registryReference, sourceOptions } from './image-name'
import type { ImageSource } from '../transports/image-source'
import { Store } from '../store/store'
import { checkContainerName } from '../deployment/name'
import { computeDefaults, parseSetFlags, resolveValues } from '../templates/values'
import { renderExports } from '../templates/exports'
import { checkRuntimeConfig, refusePrivileged } from '../runtime/config-check'
import { Deployments } from '../deployment/deployments'
import { UnitFile } from '../systemd/unit-file'
import { sha256File } from '../util/atomic-file'
import { unifiedDiff } from '../util/line-diff'
import { fromRoot, inRoot, type OpsContext } from './context'
import { planHostFiles, stagedHostFile, type HostFilePlan, type ImageTreeReader } from './hostfs'
import { DEFAULT_RUNTIME, keepContainerInService, type InstallOptions } from './install'
import { exportsFromStore } from './image-info'
import { diffValues, type UpdateOptions, type ValueChange } from './update'
import { previousDeployment } from './rollback'

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
  role: 'unit' | 'config.json' | 'tmpfiles' | 'hostfs'
  /** Where the real run would write it (host path; the deployment's copy for config.json). */
  path: string
  text: string
  /** hostfs: the file's mode. */
  mode?: number
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
  warnings: string[]
  note?: string
}

const LOCAL = /^(oci|oci-archive|docker-archive|dir):/

/** The name the store and the record use: a local transport's absolute form, or the qualified registry name (short names resolved). */
async function storeName(ctx: OpsContext, input: string, open: OpenImageOptions): Promise<string> {
  return LOCAL.test(input) ? describeInput(input).refName! : (await registryReference(input, open, (m) => ctx.reporter.info(m))).toString()
}

export async function installDryRun(ctx: OpsContext, opts: InstallOptions): Promise<InstallDryRun> {
  const name = opts.name ?? describeInput(opts.image).defaultName
  checkContainerName(name)
  return doing(`planning the install of ${name}`, async () => {
    const image = await storeName(ctx, opts.image, sourceOptions(ctx, opts))
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
      (await openImageSource(image, sourceOptions(ctx, opts))).source
    const store = await Store.open(ctx.paths.storeDir)
    try {
      const resolved = await resolveOnly(source)
      const { pull, commit } = await planPull(store, image, resolved)
      const out: InstallDryRun = { dryRun: true, name, unit, image, deployment: `${name}.0`, unchanged, pull, warnings: [] }
      if (!commit) {
        out.note = notPulledNote(opts.image)
        return out
      }
      const r = await renderPlanned(ctx, store, { commit, resolved, name, image, runtime, slot: 0, setValues, uuid: ctx.uuid?.(name, resolved.manifestDigest) ?? randomUUID(), privileged: opts.privileged === true })
      out.values = r.values
      out.files = plannedFiles(ctx, deployments, name, 0, r)
      out.warnings = r.warnings
      return out
    } finally {
      await store.close()
    }
  })
}

export async function updateDryRun(ctx: OpsContext, name: string, opts: UpdateOptions = {}): Promise<UpdateDryRun> {
  checkContainerName(name)
  return doing(`planning the update of ${name}`, async () => {
    const deployments = new Deployments(ctx.paths.containersDir)
    const current = await deployments.active(name)
    if (!current) {
      throw new NotFoundError('container.not-found', `no container named ${name} is installed`, { hint: 'sysctr containers list shows what is installed' })
    }
    const old = current.record
    const input = opts.rebase ?? old.image
    const image = await storeName(ctx, input, sourceOptions(ctx, opts))
    const setValues = { ...old.setValues, ...parseSetFlags(opts.set ?? []) }
    const previous = await previousDeployment(deployments, name, current.slot)
    let slot = 0
    while (slot === current.slot || slot === previous?.slot) slot++
    const source = opts.openSource ? opts.openSource(image) : (await openImageSource(image, sourceOptions(ctx, opts))).source
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
      const r = await renderPlanned(ctx, store, { commit, resolved, name, image, runtime: old.runtime, slot, setValues, uuid: old.values.UUID, privileged: old.privileged === true })
      out.changedValues = diffValues(old.values, r.values)
      out.files = plannedFiles(ctx, deployments, name, slot, r)
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

interface Rendered {
  values: Record<string, string>
  service: string
  configJson: string
  tmpfiles: string
  warnings: string[]
  /** manifest.json noContainerService: no unit, config.json not checked. */
  noService: boolean
  /** The image ships a non-empty tmpfiles template (written even without a service). */
  imageTmpfiles: boolean
  hostfs: HostFilePlan[]
}

/** The image commit in the store, read as planHostFiles reads a checkout. */
function storeReader(store: Store, commit: string): ImageTreeReader {
  return {
    stat: async (p) => {
      const e = await store.lookup(commit, p)
      if (!e) return undefined
      if (e.type === 'dir') return { kind: 'dir', mode: e.mode }
      if (e.type === 'file') return { kind: 'file', mode: (await fsp.stat(store.objectPath(e.object, 'file'))).mode }
      return { kind: 'other', mode: 0 }
    },
    list: async (d) => {
      const e = await store.lookup(commit, d)
      return e?.type === 'dir' ? Object.keys((await store.readTree(e.tree, false)).entries) : []
    },
    read: (p) => store.readFile(commit, p),
  }
}

/** As buildDeployment renders, from the store commit instead of a checkout. */
async function renderPlanned(
  ctx: OpsContext,
  store: Store,
  o: { commit: string; resolved: ResolvedImage; name: string; image: string; runtime: string; slot: number; setValues: Record<string, string>; uuid: string; privileged: boolean },
): Promise<Rendered> {
  const deployments = new Deployments(ctx.paths.containersDir)
  const unit = `${o.name}.service`
  const ex = await doing('reading the image exports', () => exportsFromStore(store, o.commit, ctx.paths.templatesDir))
  const computed = computeDefaults({
    name: o.name,
    destDir: inRoot(ctx, deployments.slotDir(o.name, o.slot)),
    runtime: o.runtime,
    imageName: o.image,
    imageId: o.resolved.manifestDigest,
    hostUid: ctx.root ? 0 : (process.getuid?.() ?? 0),
    hostGid: ctx.root ? 0 : (process.getgid?.() ?? 0),
    uuid: o.uuid,
  })
  const { values } = resolveValues({ manifestDefaults: ex.manifest.defaultValues, computed, set: o.setValues })
  const config = o.resolved.config as ImageConfig
  const rendered = await doing('rendering templates', () => renderExports(ex, values, config.config ?? {}))
  // As buildDeployment: an image without a service (noContainerService) has its config.json neither checked nor used.
  const noService = ex.manifest.noContainerService === true
  let configJson = rendered.configJson
  let warnings: string[] = []
  if (!noService) {
    const checked = checkRuntimeConfig(rendered.configJson, { privileged: o.privileged })
    // Refuse what the real install would refuse, so a dry run never promises more.
    refusePrivileged(checked)
    configJson = keepContainerInService(rendered.configJson, o.name, UnitFile.parse(rendered.service, unit))
    warnings = (checked.warnings ?? []).map((w) => `config.json: ${w}`)
  }
  const hostfs = await doing('reading /exports/hostfs', () => planHostFiles(storeReader(store, o.commit), ex.manifest, values))
  const imageTmpfiles = ex.tmpfiles.origin === 'image' && rendered.tmpfiles.trim() !== ''
  return { values, service: rendered.service, configJson, tmpfiles: rendered.tmpfiles, warnings, noService, imageTmpfiles, hostfs }
}

function plannedFiles(ctx: OpsContext, deployments: Deployments, name: string, slot: number, r: Rendered): PlannedFile[] {
  const out: PlannedFile[] = []
  if (!r.noService) out.push({ role: 'unit', path: join(ctx.paths.unitDir, `${name}.service`), text: r.service })
  out.push({ role: 'config.json', path: join(deployments.slotDir(name, slot), 'config.json'), text: r.configJson })
  if (!r.noService || r.imageTmpfiles) out.push({ role: 'tmpfiles', path: join(ctx.paths.tmpfilesDir, `${name}.conf`), text: r.tmpfiles })
  for (const f of r.hostfs) out.push({ role: 'hostfs', path: fromRoot(ctx, f.path), text: f.content.toString('utf8'), mode: f.mode })
  return out
}

function sameValues(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k])
}
