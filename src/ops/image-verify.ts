/**
 * images verify [IMAGE]: is a newer image available where a stored image came
 * from? As atomic's `verify`, without pulling: the source (the registry, or
 * the archive or layout a local image was read from) is asked for the
 * manifest and config only, for the stored image's own platform, and its
 * digest, layers and name/version/release labels are compared with the
 * stored ones, layer by layer.
 */
import { toSysctrError } from '../errors'
import type { ImageConfig, Platform } from '../oci/types'
import type { ImageRecord } from '../store/store'
import { isLocalInput, openImageSource } from '../transports/open'
import type { OpsContext } from './context'
import { openStore } from './images'
import { versionOf } from './image-tags'
import { requireLocalImage } from './local-images'
import { sourceOptions, type SourceFlags } from './source-options'

export type LayerStatus = 'same' | 'changed' | 'added' | 'removed'

export interface LayerCheck {
  index: number
  /** The stored layer's digest (absent for `added`). */
  local?: string
  /** The source's layer digest (absent for `removed`). */
  remote?: string
  status: LayerStatus
}

export interface VerifyResult {
  reference: string
  /** What was asked: the registry name, or the local transport form the image was read from. */
  source: string
  localDigest: string
  remoteDigest?: string
  /** True when the source's manifest is the stored one. */
  upToDate?: boolean
  localVersion?: string
  remoteVersion?: string
  layers: LayerCheck[]
  /** Set when the source could not be asked (then upToDate is absent). */
  error?: { code: string; message: string; exitCode: number }
}

/** Layer by layer, bottom first: the same digest at the same index is `same`. */
export function compareLayers(local: string[], remote: string[]): LayerCheck[] {
  const out: LayerCheck[] = []
  for (let i = 0; i < Math.max(local.length, remote.length); i++) {
    const l = local[i]
    const r = remote[i]
    const status: LayerStatus = l === undefined ? 'added' : r === undefined ? 'removed' : l === r ? 'same' : 'changed'
    out.push({ index: i, ...(l !== undefined ? { local: l } : {}), ...(r !== undefined ? { remote: r } : {}), status })
  }
  return out
}

/** Where to ask for a stored image: the local file it was read from, the image a tag names, or the ref itself. */
function sourceOf(name: string, record: ImageRecord): string {
  if (typeof record.source === 'string' && isLocalInput(record.source)) return record.source
  if (typeof record.taggedFrom === 'string') return record.taggedFrom
  return name
}

export async function verifyImages(ctx: OpsContext, input: string | undefined, flags: SourceFlags = {}): Promise<VerifyResult[]> {
  const store = await openStore(ctx)
  const todo: { name: string; record: ImageRecord; config: ImageConfig | null }[] = []
  try {
    const refs = input === undefined ? await store.listImageRefs() : [await requireLocalImage(store, input)]
    for (const r of refs) {
      const config = JSON.parse((await store.getBlob(r.record.configDigest))?.toString('utf8') ?? 'null') as ImageConfig | null
      todo.push({ name: r.name, record: r.record, config })
    }
  } finally {
    await store.close()
  }
  const out: VerifyResult[] = []
  for (const t of todo) {
    const source = sourceOf(t.name, t.record)
    const localVersion = versionOf(t.name, t.record.manifestDigest, t.config).nvr
    const base: VerifyResult = { reference: t.name, source, localDigest: t.record.manifestDigest, localVersion, layers: [] }
    try {
      out.push(await verifyOne(ctx, base, t.record, t.config, flags))
    } catch (err) {
      const e = toSysctrError(err)
      if (input !== undefined) throw e
      out.push({ ...base, error: { code: e.code, message: e.fullMessage, exitCode: e.exitCode } })
    }
  }
  return out
}

async function verifyOne(ctx: OpsContext, base: VerifyResult, record: ImageRecord, config: ImageConfig | null, flags: SourceFlags): Promise<VerifyResult> {
  const platform: Platform | undefined =
    config?.os && config.architecture
      ? { os: config.os, architecture: config.architecture, ...(typeof (config as { variant?: unknown }).variant === 'string' ? { variant: (config as { variant: string }).variant } : {}) }
      : undefined
  const opened = await openImageSource(base.source, sourceOptions(ctx, flags))
  try {
    const r = await opened.source.resolve(flags.platform ? undefined : platform)
    const remoteVersion = versionOf(base.reference, r.manifestDigest, r.config).nvr
    return {
      ...base,
      remoteDigest: r.manifestDigest,
      upToDate: r.manifestDigest === record.manifestDigest,
      remoteVersion,
      layers: compareLayers(record.layers ?? [], r.manifest.layers.map((l) => l.digest)),
    }
  } finally {
    await opened.source.close()
  }
}

/** The exit code of a verify of every image: 0, or the first failure's. */
export function verifyExitCode(results: VerifyResult[]): number {
  return results.find((r) => r.error)?.error?.exitCode ?? 0
}
