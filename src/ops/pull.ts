/**
 * pull: image source -> store. Each layer blob is fetched only when the store
 * does not have it, streamed through digest verification into the store, and
 * checked against the config's diff_ids. The image ref is written last, so a
 * crash or a bad byte leaves the previous ref untouched.
 */
import type { LayerRecord, Store } from '../store/store'
import type { ImageSource } from '../transports/image-source'
import { ContentError, doing } from '../errors'
import type { Digest, Platform } from '../oci/types'
import type { Reporter } from './context'

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
}

export async function pullImage(
  store: Store,
  source: ImageSource,
  refName: string,
  opts: { reporter: Reporter; platform?: Platform },
): Promise<PullResult> {
  const image = await doing(`resolving ${source.name}`, () => source.resolve(opts.platform))
  const { manifest, config } = image
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
  const layerRecords: LayerRecord[] = []
  for (const [i, desc] of manifest.layers.entries()) {
    const short = desc.digest.slice(0, 19)
    const have = await store.getLayer(desc.digest)
    if (have) {
      result.layersReused++
      layerRecords.push(have)
      continue
    }
    opts.reporter.info(`fetching layer ${i + 1}/${manifest.layers.length} ${short} (${formatBytes(desc.size)})`)
    const rec = await doing(`pulling layer ${short}`, async () => {
      const stream = await source.openBlob(desc)
      return store.importLayer(desc, stream)
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
    layerRecords.push(rec.record)
  }
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
  })
  result.commit = commit
  return result
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`
}
