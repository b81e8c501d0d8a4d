/**
 * Hostile registry, class "digest mismatch": the registry serves bytes that
 * are not the ones a digest names (manifest by tag or by digest, the manifest
 * an index points to, the config, a layer). The pull is refused with
 * ContentError `content.digest-mismatch` (exit 6) and the store is unchanged.
 * Protections: RegistrySource.fetchManifest (reference digest, index entry,
 * Docker-Content-Digest), RegistryClient.getBlob -> DigestStream.
 * See also test/component/registry-source.test.ts "bad content is never
 * handed over" (stream-level) and pull.test.ts (cancelled siblings).
 */
import { describe, expect, it } from 'vitest'
import { ContentError } from '../../src/errors'
import { hostArchitecture } from '../../src/transports/registry/platform'
import { MediaType } from '../../src/oci/types'
import { Harness, harnessPerTest } from '../helpers/security-registry'

let h: Harness
harnessPerTest((x) => (h = x))

describe('digest mismatch: refused, exit 6, store unchanged', () => {
  it('manifest by tag: bytes differ from Docker-Content-Digest', async () => {
    h.reg.faults.wrongBytes = [h.image.manifestDigest]
    const err = await h.refused('REG/demo/app:v1', ContentError, 'content.digest-mismatch')
    expect(err.exitCode).toBe(6)
    expect(err.data?.expected).toBe(h.image.manifestDigest)
  })

  it('manifest by digest: bytes differ from the digest in the reference (no Docker-Content-Digest to help)', async () => {
    h.reg.faults.wrongBytes = [h.image.manifestDigest]
    h.reg.faults.noDockerContentDigest = true
    const err = await h.refused(`REG/demo/app@${h.image.manifestDigest}`, ContentError, 'content.digest-mismatch')
    expect(err.message).toContain(h.image.manifestDigest)
  })

  it('the manifest an index points to', async () => {
    h.reg.putManifest(
      {
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [{ mediaType: MediaType.ociManifest, digest: h.image.manifestDigest, size: Buffer.byteLength(JSON.stringify(h.image.manifest)), platform: { os: 'linux', architecture: hostArchitecture() } }],
      },
      MediaType.ociIndex,
      'multi',
    )
    h.reg.faults.wrongBytes = [h.image.manifestDigest]
    const err = await h.refused('REG/demo/app:multi', ContentError, 'content.digest-mismatch')
    expect(err.data?.expected).toBe(h.image.manifestDigest)
  })

  it('a lying registry: other (valid) content under a manifest digest', async () => {
    // Not a flipped byte: a whole different, well-formed manifest served for the digest asked for.
    const other = { ...h.image.manifest, annotations: { evil: 'yes' } }
    h.reg.putRaw(h.image.manifestDigest, Buffer.from(JSON.stringify(other)), MediaType.ociManifest)
    h.reg.faults.noDockerContentDigest = true
    await h.refused(`REG/demo/app@${h.image.manifestDigest}`, ContentError, 'content.digest-mismatch')
  })

  it('config', async () => {
    h.reg.faults.wrongBytes = [h.image.configDigest]
    const err = await h.refused('REG/demo/app:v1', ContentError, 'content.digest-mismatch')
    expect(err.data?.expected).toBe(h.image.configDigest)
  })

  it('every layer: nothing of them is kept', async () => {
    h.reg.faults.wrongBytes = h.image.layers.map((l) => l.digest)
    await h.refused('REG/demo/app:v1', ContentError, 'content.digest-mismatch')
    for (const l of h.image.layers) expect(await h.store.getLayer(l.digest)).toBeUndefined()
  })

  it('one layer: no record for it, no ref, no manifest or config blob', async () => {
    const bad = h.image.layers[1].digest
    h.reg.faults.wrongBytes = [bad]
    const err = await h.pull('REG/demo/app:v1').then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(ContentError)
    expect((err as ContentError).code).toBe('content.digest-mismatch')
    expect(await h.store.getLayer(bad)).toBeUndefined()
    expect(await h.store.getImageRef('pulled')).toBeUndefined()
    expect(await h.store.getBlob(h.image.manifestDigest)).toBeUndefined()
    expect(await h.store.getBlob(h.image.configDigest)).toBeUndefined()
  })

  it('after the registry is fixed the same store pulls fine (control)', async () => {
    h.reg.faults.wrongBytes = [h.image.configDigest]
    await h.refused('REG/demo/app:v1', ContentError, 'content.digest-mismatch')
    h.reg.faults.wrongBytes = []
    const r = await h.pull('REG/demo/app:v1')
    expect(r.manifestDigest).toBe(h.image.manifestDigest)
  })
})
