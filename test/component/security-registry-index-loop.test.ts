/**
 * Hostile registry, class "a manifest list that points to itself": an index
 * whose entry resolves to an index again, by a registry that lies (serves
 * the index itself for the entry's digest) or honestly (nested indexes,
 * chains). sysctr follows at most ONE index level, and only to an entry
 * declared an image manifest: a self-reference fails the digest check, a
 * nested index is refused as "not an image manifest", an entry declared an
 * index is never followed. No recursion, at most two manifest GETs, store
 * unchanged. Protections: resolveImage (src/transports/resolve.ts: one level,
 * MANIFEST_MEDIA_TYPES only), choosePlatform, RegistrySource.fetchManifest.
 */
import { describe, expect, it } from 'vitest'
import { ContentError, NotFoundError } from '../../src/errors'
import { hostArchitecture } from '../../src/transports/registry/platform'
import { Digest, MediaType } from '../../src/oci/types'
import { digestOf } from '../../src/reference/digest'
import { Harness, harnessPerTest } from '../helpers/security-registry'

let h: Harness
harnessPerTest((x) => (h = x))

const platform = () => ({ os: 'linux', architecture: hostArchitecture() })
const manifestGets = () => h.reg.requests.filter((q) => q.path.includes('/manifests/')).length

function index(entries: Array<{ digest: Digest; size: number; mediaType?: string }>): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: entries.map((e) => ({ mediaType: e.mediaType ?? MediaType.ociManifest, digest: e.digest, size: e.size, platform: platform() })),
    }),
  )
}

describe('index loops: refused, one level at most, store unchanged', () => {
  it('self-reference: the registry serves the index itself for its entry', async () => {
    const entryDigest = digestOf(Buffer.from('whatever the entry names'))
    const bytes = index([{ digest: entryDigest, size: 0 }])
    h.reg.putManifest(bytes, MediaType.ociIndex, 'loop')
    h.reg.putRaw(entryDigest, bytes, MediaType.ociIndex) // the lie: the entry's digest answers with the index again
    const err = await h.refused('REG/demo/app:loop', ContentError, 'content.size-mismatch')
    expect(err.exitCode).toBe(6)
    expect(manifestGets()).toBe(2)
  })

  it('self-reference with a matching size: the digest check catches it', async () => {
    const entryDigest = digestOf(Buffer.from('x'))
    // the size of the index is the size of its own bytes: fix point by trying lengths
    let bytes = index([{ digest: entryDigest, size: 0 }])
    for (let i = 0; i < 5; i++) bytes = index([{ digest: entryDigest, size: bytes.length }])
    h.reg.putManifest(bytes, MediaType.ociIndex, 'loop')
    h.reg.putRaw(entryDigest, bytes, MediaType.ociIndex)
    const err = await h.refused('REG/demo/app:loop', ContentError, 'content.digest-mismatch')
    expect(err.data?.expected).toBe(entryDigest)
    expect(manifestGets()).toBe(2)
  })

  it('nested index (honest digests): the entry says manifest, the bytes are an index -> refused, not followed', async () => {
    // a chain of 10 indexes, each naming the next as if it were a manifest
    let next = { digest: h.image.manifestDigest, size: Buffer.byteLength(JSON.stringify(h.image.manifest)) }
    for (let i = 0; i < 10; i++) {
      const bytes = index([next])
      const d = h.reg.putManifest(bytes, MediaType.ociIndex, i === 9 ? 'chain' : undefined)
      next = { digest: d, size: bytes.length }
    }
    const err = await h.refused('REG/demo/app:chain', ContentError, 'content.unsupported-media-type')
    expect(err.message).toContain('not an image manifest')
    expect(manifestGets()).toBe(2)
  })

  it('an entry declared an index is never followed: platform not found (exit 3), nothing fetched past the top', async () => {
    const innerBytes = index([{ digest: h.image.manifestDigest, size: Buffer.byteLength(JSON.stringify(h.image.manifest)) }])
    const inner = h.reg.putManifest(innerBytes, MediaType.ociIndex)
    h.reg.putManifest(index([{ digest: inner, size: innerBytes.length, mediaType: MediaType.ociIndex }]), MediaType.ociIndex, 'nested')
    await h.refused('REG/demo/app:nested', NotFoundError, 'image.platform-not-found')
    expect(manifestGets()).toBe(1)
  })

  it('control: a one-level index pulls', async () => {
    h.reg.putManifest(index([{ digest: h.image.manifestDigest, size: Buffer.byteLength(JSON.stringify(h.image.manifest)) }]), MediaType.ociIndex, 'ok')
    expect((await h.pull('REG/demo/app:ok')).manifestDigest).toBe(h.image.manifestDigest)
  })
})
