/**
 * images info: what an image in the store ships under /exports and which
 * template values it takes, read from its commit (store.readFile/lookup):
 * no checkout, nothing written to the store or the host.

 */
import { join } from 'node:path'
import { doing, NotFoundError, toSysctrError } from '../errors'
import { describeInput, isLocalInput, openImageSource } from '../transports/open'
import { isShortName, loadRegistriesConf, resolveShortName } from '../config/registries'
import { findLocalImage, looksLikeImageId } from './local-images'
import { sourceOptions, type SourceFlags } from './source-options'
import type { ImageRecord, Store } from '../store/store'
import type { TreeEntry } from '../store/tree'
import { templateVariables, type Exports } from '../templates/exports'
import { exportsFromStore } from '../templates/exports-from-store'
import { computeDefaults, FIXED_KEYS, resolveValues } from '../templates/values'
import { renderExports } from '../templates/exports'
import type { ImageConfig, ImageManifest } from '../oci/types'
import { checkRuntimeConfig } from '../runtime/config-check'
import { describeHostAsks, serviceIdentity, type HostAsks } from '../runtime/grants'
import { Store as StoreClass } from '../store/store'
import type { OpsContext } from './context'
import { DEFAULT_RUNTIME } from '../runtime/default-runtime'

export interface ExportFile {
  /** Path in the image, e.g. `/exports/service.template`. */
  path: string
  type: TreeEntry['type']
}

export type VariableSource = 'manifest' | 'computed' | 'none'

export interface TemplateVariable {
  name: string
  /** Which rendered files use it. */
  usedBy: ('config.json' | 'service' | 'tmpfiles')[]
  /** Where its default comes from; `none`: it needs --set. */
  source: VariableSource
  /** The manifest default, or for computed values an example (as for a container named after the image). */
  default?: string
  /** Computed values that --set cannot change. */
  fixed?: boolean
}

export interface ImageInfo extends ImageFacts {
  reference: string
  manifestDigest: string
  configDigest: string
  stored: true
  commit: string
  /** Whether the image has an /exports directory. */
  hasExports: boolean
  /** Every entry under /exports, sorted. */
  files: ExportFile[]
  templates: Record<'configJson' | 'service' | 'tmpfiles', { file: string; origin: 'image' | 'default'; syntax: string }>
  manifest: Exports['manifest'] & { present: boolean }
  variables: TemplateVariable[]
  /** Variables with no default anywhere: install fails without `--set NAME=VALUE`. */
  needsSet: string[]
  /**
   * What the rendered config.json (with the defaults, under the default name) asks of the
   * host, and the `--grant` flags an install needs (runtime/grants.ts). Undefined when it
   * cannot be rendered without `--set` values (`hostAsksNote` says why) or the image has no service.
   */
  hostAsks?: HostAsks
  hostAsksNote?: string
}

/** The store ref of IMAGE (any name images list prints, see local-images.ts), or undefined. */
export async function findImageRef(store: Store, image: string): Promise<{ name: string; record: ImageRecord } | undefined> {
  const found = await findLocalImage(store, image)
  return found ? { name: found.name, record: found.record } : undefined
}

/** What an image's config says, skopeo-inspect-like (the same fields for a stored and a remote image). */
export interface ImageFacts {
  /** The manifest digest (skopeo's `Digest`); the same as manifestDigest. */
  digest: string
  architecture: string
  os: string
  variant?: string
  /** The config's `created`, if any. */
  created?: string
  labels: Record<string, string>
  env: string[]
  /** The manifest's layers, bottom first, as the registry (or the source) serves them. */
  layers: { digest: string; size: number; mediaType: string }[]
}

/** `images info` of an image not in the store: read from where it is (manifest and config only, nothing pulled). */
export interface RemoteImageInfo extends ImageFacts {
  reference: string
  manifestDigest: string
  configDigest: string
  /** Always false here: the image is not in the store, so /exports and the template values are unknown. */
  stored: false
  note: string
}

export function factsOf(manifestDigest: string, manifest: ImageManifest | null, config: (ImageConfig & { created?: unknown; variant?: unknown }) | null): ImageFacts {
  const labels = config?.config?.Labels ?? {}
  return {
    digest: manifestDigest,
    architecture: config?.architecture ?? '',
    os: config?.os ?? '',
    ...(typeof config?.variant === 'string' ? { variant: config.variant } : {}),
    ...(typeof config?.created === 'string' ? { created: config.created } : {}),
    labels: labels && typeof labels === 'object' ? { ...labels } : {},
    env: config?.config?.Env ?? [],
    layers: (manifest?.layers ?? []).map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
  }
}

/**
 * images info: a stored image (any name images list prints) from the store;
 * `docker://REF`, or a registry name the store does not have, from the
 * registry without pulling (manifest and config only).
 */
export async function imageInfo(ctx: OpsContext, image: string, flags: SourceFlags = {}): Promise<ImageInfo | RemoteImageInfo> {
  return doing(`reading image ${image}`, async () => {
    // docker://REF is the registry's only (as skopeo inspect): the store is not opened, so no root is needed.
    if (!image.startsWith('docker://')) {
      const store = await StoreClass.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
      try {
        const found = await findImageRef(store, image)
        if (found) return await infoOf(ctx, store, found.name, found.record)
      } finally {
        await store.close()
      }
    }
    if (!image.startsWith('docker://') && !(await mayNameRegistry(image, flags))) {
      throw new NotFoundError('image.not-found', `no image named ${image} in the store`, {
        hint: `sysctr images list shows what is stored; pull it (sysctr images pull ${image}) or read a registry image without pulling: sysctr images info docker://REGISTRY/REPO[:TAG]`,
        data: { image },
      })
    }
    return remoteInfo(ctx, image, flags)
  })
}

/** A qualified registry name, or a short name registries.conf resolves (an ID or an unresolvable short name is the store's only). */
async function mayNameRegistry(image: string, _flags: SourceFlags): Promise<boolean> {
  if (isLocalInput(image)) return true
  if (looksLikeImageId(image) && !image.includes('/')) return false
  try {
    if (!isShortName(image)) return true
    const conf = await loadRegistriesConf({})
    return resolveShortName(conf, image).candidates.length > 0
  } catch {
    return false
  }
}

async function remoteInfo(ctx: OpsContext, image: string, flags: SourceFlags): Promise<RemoteImageInfo> {
  const opened = await openImageSource(image, sourceOptions(ctx, flags))
  try {
    const r = await opened.source.resolve()
    return {
      reference: opened.refName,
      manifestDigest: r.manifestDigest,
      configDigest: r.manifest.config.digest,
      ...factsOf(r.manifestDigest, r.manifest, r.config as ImageConfig & { created?: unknown }),
      stored: false,
      note: `not in the store: /exports and template values are known once it is pulled (sysctr images pull ${image})`,
    }
  } finally {
    await opened.source.close()
  }
}

async function infoOf(ctx: OpsContext, store: Store, name: string, record: ImageRecord): Promise<ImageInfo> {
  const files = await listExportFiles(store, record.commit)
  const ex = await exportsFromStore(store, record.commit, ctx.paths.templatesDir)
  const vars = templateVariables(ex)
  const computed = computeDefaults({
    name: describeInputName(name),
    destDir: join(ctx.paths.containersDir, `${describeInputName(name)}.0`),
    runtime: DEFAULT_RUNTIME,
    imageName: name,
    imageId: record.manifestDigest,
    hostUid: 0,
    hostGid: 0,
    uuid: '(random at install)',
  })
  const defaults = ex.manifest.defaultValues
  const variables: TemplateVariable[] = vars.all.map((v) => {
    const usedBy = (
      [
        ['config.json', vars.configJson],
        ['service', vars.service],
        ['tmpfiles', vars.tmpfiles],
      ] as const
    )
      .filter(([, list]) => list.includes(v))
      .map(([k]) => k)
    if (v in computed) return { name: v, usedBy, source: 'computed', default: computed[v], ...(FIXED_KEYS.includes(v) ? { fixed: true } : {}) }
    if (v in defaults) return { name: v, usedBy, source: 'manifest', default: defaults[v] }
    return { name: v, usedBy, source: 'none' }
  })
  // Manifest defaults no template uses are still listed: --set can change them.
  for (const [k, d] of Object.entries(defaults)) {
    if (!variables.some((x) => x.name === k)) variables.push({ name: k, usedBy: [], source: 'manifest', default: d })
  }
  const tpl = (t: Exports['service']) => ({ file: t.file, origin: t.origin, syntax: t.syntax })
  let hostAsks: HostAsks | undefined
  let hostAsksNote: string | undefined
  if (ex.manifest.noContainerService) hostAsksNote = 'the image has no service (noContainerService)'
  else {
    try {
      // Values nobody supplies (needsSet) get a placeholder: privileges rarely depend on them, and the note says so.
      const placeholders = Object.fromEntries(variables.filter((v) => v.source === 'none').map((v) => [v.name, 'VALUE']))
      const { values } = resolveValues({ manifestDefaults: { ...placeholders, ...defaults }, computed })
      if (Object.keys(placeholders).length > 0) hostAsksNote = `rendered with a placeholder for ${Object.keys(placeholders).join(', ')}`
      const config = JSON.parse((await store.getBlob(record.configDigest))!.toString('utf8')) as ImageConfig
      const rendered = await renderExports(ex, values, config.config ?? {})
      const id = serviceIdentity(describeInputName(name), name, values)
      const checked = checkRuntimeConfig(rendered.configJson, { privileged: true, ...id })
      hostAsks = describeHostAsks(checked.spec, id)
    } catch (err) {
      hostAsksNote = `config.json cannot be rendered with the defaults alone (${toSysctrError(err).fullMessage})`
    }
  }
  const manifestJson = JSON.parse((await store.getBlob(record.manifestDigest))?.toString('utf8') ?? 'null') as ImageManifest | null
  const configJson = JSON.parse((await store.getBlob(record.configDigest))?.toString('utf8') ?? 'null') as ImageConfig | null
  return {
    reference: name,
    manifestDigest: record.manifestDigest,
    configDigest: record.configDigest,
    ...factsOf(record.manifestDigest, manifestJson, configJson),
    stored: true,
    commit: record.commit,
    hasExports: ex.present,
    files,
    templates: { configJson: tpl(ex.configJson), service: tpl(ex.service), tmpfiles: tpl(ex.tmpfiles) },
    manifest: { ...ex.manifest, present: ex.manifestOrigin === 'image' },
    variables,
    needsSet: variables.filter((v) => v.source === 'none').map((v) => v.name),
    ...(hostAsks ? { hostAsks } : {}),
    ...(hostAsksNote ? { hostAsksNote } : {}),
  }
}

function describeInputName(ref: string): string {
  try {
    return describeInput(ref).defaultName
  } catch {
    return 'NAME'
  }
}

/** Every entry under /exports of an image commit, depth first, sorted by path. */
export async function listExportFiles(store: Store, commit: string): Promise<ExportFile[]> {
  const top = await store.lookup(commit, 'exports')
  if (!top || top.type !== 'dir') return []
  const layer = (await store.readCommit(commit)).kind === 'layer'
  const out: ExportFile[] = []
  const rec = async (tree: string, prefix: string): Promise<void> => {
    const entries = (await store.readTree(tree, layer)).entries
    for (const n of Object.keys(entries).sort()) {
      const e = entries[n]
      if (e.type === 'whiteout') continue
      out.push({ path: `${prefix}/${n}`, type: e.type })
      if (e.type === 'dir') await rec(e.tree, `${prefix}/${n}`)
    }
  }
  await rec(top.tree, '/exports')
  return out
}

