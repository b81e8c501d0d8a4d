/**
 * images info: what an image in the store ships under /exports and which
 * template values it takes, read from its commit (store.readFile/lookup):
 * no checkout, nothing written to the store or the host.

 */
import { join } from 'node:path'
import { doing, NotFoundError, toSysctrError } from '../errors'
import { describeInput } from '../transports/open'
import type { ImageRecord, Store } from '../store/store'
import type { TreeEntry } from '../store/tree'
import { templateVariables, type Exports } from '../templates/exports'
import { exportsFromStore } from '../templates/exports-from-store'
import { computeDefaults, FIXED_KEYS, resolveValues } from '../templates/values'
import { renderExports } from '../templates/exports'
import type { ImageConfig } from '../oci/types'
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

export interface ImageInfo {
  reference: string
  manifestDigest: string
  configDigest: string
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

/** The store ref of IMAGE (as `images pull` names it), or undefined. */
export async function findImageRef(store: Store, image: string): Promise<{ name: string; record: ImageRecord } | undefined> {
  let refName: string | undefined
  try {
    refName = describeInput(image).refName
  } catch {
    refName = undefined
  }
  for (const n of [refName, image]) {
    if (!n) continue
    const record = await store.getImageRef(n)
    if (record) return { name: n, record }
  }
  return undefined
}

export async function imageInfo(ctx: OpsContext, image: string): Promise<ImageInfo> {
  return doing(`reading image ${image}`, async () => {
    const store = await StoreClass.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
    try {
      const found = await findImageRef(store, image)
      if (!found) {
        throw new NotFoundError('image.not-found', `${image} is not in the store`, {
          hint: `pull it first: sysctr images pull ${image}`,
          data: { image },
        })
      }
      return await infoOf(ctx, store, found.name, found.record)
    } finally {
      await store.close()
    }
  })
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
  return {
    reference: name,
    manifestDigest: record.manifestDigest,
    configDigest: record.configDigest,
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

