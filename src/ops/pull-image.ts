/**
 * pull: image source -> store. Each layer blob is fetched only when the store
 * does not have it, streamed through digest verification into the store, and
 * checked against the config's diff_ids. The image ref is written last, so a
 * crash or a bad byte leaves the previous ref untouched.
 *
 * Layers are fetched concurrently (at most `concurrency`, default 3); the
 * layer records keep the manifest's order. The first failure cancels the
 * other transfers (their streams are destroyed, so the store publishes
 * nothing for them), waits for them to settle, and is what pull throws.
 */
import type { LayerRecord, Store } from '../store/store'
import type { ImageSource } from '../transports/image-source'
import { ContentError, doing } from '../errors'
import type { Digest, Platform, ResolvedImage } from '../oci/types'
import { parsePlatform } from '../transports/open'
import { formatPlatform, hostPlatform, normalizePlatform, platformMatches } from '../transports/registry/platform'
import type { ProgressEvent, Reporter } from './context'
import { Transform, TransformCallback } from 'node:stream'
import type { Readable } from 'node:stream'
import type { Descriptor } from '../oci/types'
import { formatBytes } from '../util/format-bytes'
import { markVerified, verifiedAs } from '../util/digest-stream'

const LOCAL_PREFIX = /^(oci|oci-archive|docker-archive|dir):/

export interface PullResult {
  reference: string
  manifestDigest: Digest
  configDigest: Digest
  /** The image commit (hex) in the store. */
  commit: string
  layersFetched: number
  layersReused: number
  bytesFetched: number
  objectsAdded: number
  bytesAdded: number
  /** A single-platform image for another platform than the one asked for (a warning was given). */
  platformMismatch?: { image: string; asked: string }
}

export interface PullOptions {
  reporter: Reporter
  platform?: Platform
  /**
   * The platform asked for (--platform; default this host), for the one check
   * a single-platform image gets: its config's os/architecture. An index
   * picks by platform already (and fails when none matches); a plain manifest
   * is pulled whatever it is for, with one warning naming both platforms,
   * followed by `mismatchNote` (what the caller does about it).
   */
  wantPlatform?: Platform
  mismatchNote?: string
  /** Layers fetched at once; default 3. */
  concurrency?: number
  /** The local transport form to record as where the image is read again (default: the source's, when it is a local file named otherwise). */
  origin?: string
}

/**
 * What the ref records about where its image comes from: a local file, when
 * the ref is named after what the file says (docker-archive RepoTags), so
 * update and verify read that file again; a re-pull from the store itself
 * (a stored image installed by a short name or ID) keeps what was recorded.
 */
async function whereFrom(store: Store, source: ImageSource, refName: string, origin: string | undefined): Promise<{ source?: string; taggedFrom?: string }> {
  if (source.name.startsWith('store:')) {
    const prev = await store.getImageRef(refName)
    return {
      ...(typeof prev?.source === 'string' ? { source: prev.source } : {}),
      ...(typeof prev?.taggedFrom === 'string' ? { taggedFrom: prev.taggedFrom } : {}),
    }
  }
  const from = origin ?? source.name
  return from !== refName && LOCAL_PREFIX.test(from) ? { source: from } : {}
}

export async function pullImage(
  store: Store,
  source: ImageSource,
  refName: string,
  opts: PullOptions,
): Promise<PullResult> {
  const image = await doing(`resolving ${source.name}`, () => source.resolve(opts.platform))
  const { manifest, config } = image
  const mismatch = platformMismatch(image, opts.wantPlatform ?? opts.platform)
  if (mismatch) {
    opts.reporter.warn(`${refName} is a single-platform image for ${mismatch.image}, not ${mismatch.asked} (${opts.wantPlatform || opts.platform ? 'the platform asked for' : 'this host'})${opts.mismatchNote ? `: ${opts.mismatchNote}` : ''}`)
  }
  const diffIDs = config.rootfs?.diff_ids ?? []
  if (diffIDs.length !== manifest.layers.length) {
    throw new ContentError(
      'content.diffid-count',
      `image config lists ${diffIDs.length} diff_ids but the manifest has ${manifest.layers.length} layers`,
    )
  }
  const result: PullResult = {
    reference: refName,
    manifestDigest: image.manifestDigest,
    configDigest: manifest.config.digest,
    commit: '',
    layersFetched: 0,
    layersReused: 0,
    bytesFetched: 0,
    objectsAdded: 0,
    bytesAdded: 0,
  }
  const layerRecords = await fetchLayers(store, source, manifest.layers, diffIDs, result, opts)
  await store.putBlob(manifest.config.digest, image.configBytes)
  await store.putBlob(image.manifestDigest, image.manifestBytes)
  const { commit } = await store.commitImage({
    manifestDigest: image.manifestDigest,
    configDigest: manifest.config.digest,
    layers: layerRecords,
  })
  await store.setImageRef(refName, {
    reference: refName,
    manifestDigest: image.manifestDigest,
    configDigest: manifest.config.digest,
    commit,
    layers: manifest.layers.map((l) => l.digest),
    ...(await whereFrom(store, source, refName, opts.origin)),
  })
  result.commit = commit
  if (mismatch) result.platformMismatch = mismatch
  return result
}

/** A plain manifest (no index) whose config names another os/architecture than `want` (default this host). */
export function platformMismatch(image: ResolvedImage, want: Platform | undefined): { image: string; asked: string } | undefined {
  if (image.topDigest !== image.manifestDigest) return undefined // picked from an index by platform
  const { os, architecture } = image.config
  const variant = (image.config as { variant?: string }).variant
  if (!os || !architecture) return undefined
  const have: Platform = { os, architecture, ...(variant ? { variant } : {}) }
  const asked = want ?? hostPlatform()
  return platformMatches(asked, have) ? undefined : { image: formatPlatform(have), asked: formatPlatform(normalizePlatform(asked)) }
}


/** Fetch (or reuse) every layer, at most opts.concurrency at once; records in manifest order. */
async function fetchLayers(
  store: Store,
  source: ImageSource,
  layers: Descriptor[],
  diffIDs: Digest[],
  result: PullResult,
  opts: PullOptions,
): Promise<LayerRecord[]> {
  const count = layers.length
  const records: LayerRecord[] = new Array(count)
  const limit = Math.max(1, Math.floor(opts.concurrency ?? 3))
  const active = new Set<Readable>()
  const report = (e: ProgressEvent) => opts.reporter.progress?.(e)
  let failure: { err: unknown } | undefined
  let next = 0

  const fetchOne = async (i: number): Promise<void> => {
    const desc = layers[i]!
    const short = desc.digest.slice(0, 19)
    const base = { digest: desc.digest, index: i, count, total: desc.size }
    const have = await store.getLayer(desc.digest)
    if (have) {
      result.layersReused++
      records[i] = have
      report({ kind: 'skipped', ...base })
      return
    }
    if (failure) return
    if (opts.reporter.progress) report({ kind: 'start', ...base })
    else opts.reporter.info(`fetching layer ${i + 1}/${count} ${short} (${formatBytes(desc.size)})`)
    const rec = await doing(`pulling layer ${short}`, async () => {
      const blob = await source.openBlob(desc)
      const counted = countBytes(blob, (bytes) => report({ kind: 'bytes', ...base, bytes }))
      active.add(counted)
      try {
        if (failure) counted.destroy(cancelled())
        return await store.importLayer(desc, counted)
      } finally {
        active.delete(counted)
      }
    })
    if (rec.diffID !== diffIDs[i]) {
      throw new ContentError('content.diffid-mismatch', `layer ${short} unpacks to ${rec.diffID}, the config says ${diffIDs[i]}`, {
        data: { expected: diffIDs[i], found: rec.diffID },
      })
    }
    result.layersFetched++
    result.bytesFetched += desc.size
    result.objectsAdded += rec.filesAdded
    result.bytesAdded += rec.bytesAdded
    records[i] = rec.record
    report({ kind: 'done', ...base, bytes: desc.size })
  }

  const worker = async (): Promise<void> => {
    while (!failure && next < count) {
      const i = next++
      try {
        await fetchOne(i)
      } catch (err) {
        if (!failure) {
          failure = { err }
          for (const s of active) s.destroy(cancelled())
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker))
  if (failure) throw failure.err
  return records
}

function cancelled(): Error {
  return Object.assign(new Error('cancelled: another layer failed'), { code: 'ECANCELED' })
}

/** A pass-through that reports the running byte count; errors of `src` fail it. */
function countBytes(src: Readable, onBytes: (bytes: number) => void): Readable {
  let n = 0
  const t = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      n += chunk.length
      onBytes(n)
      cb(null, chunk)
    },
  })
  // It forwards src's error and ends only when src ended: it verifies what src verifies.
  markVerified(t, verifiedAs(src))
  src.on('error', (err) => t.destroy(err))
  // The consumer sees a failure through its read; no listener yet must not crash.
  t.on('error', () => {})
  t.on('close', () => {
    if (!src.readableEnded) src.destroy()
  })
  src.pipe(t)
  return t
}

/** What install and update say after the platform warning. */
export const RUNS_ONLY_WHERE = "it runs only where the host executes that platform's binaries (qemu-user-binfmt); otherwise runc fails to start it with \"exec format error\""

/** PullOptions.wantPlatform from a --platform flag (absent: this host, decided in pullImage). */
export function wantedPlatform(flags: { platform?: string }): { wantPlatform?: Platform } {
  return flags.platform !== undefined ? { wantPlatform: parsePlatform(flags.platform) } : {}
}
