/**
 * Hostile registry, class "unknown or mismatched media types": an unknown
 * manifest type, a Content-Type that contradicts the body's mediaType, a
 * config that is not an image config, a layer of a type sysctr cannot unpack
 * (encrypted, an artifact), an index where a manifest was expected and a
 * manifest where an index was declared. Refused with ContentError
 * `content.unsupported-media-type` / `content.media-type-mismatch` /
 * `content.bad-manifest` (exit 6), nothing fetched past the refusal, the
 * store unchanged.
 * Protections: parseManifestBytes, checkManifest (LAYER_MEDIA_TYPES),
 * resolveImage (config type, index entry type) in src/transports/resolve.ts.
 * Real registry: docker-registry 2.8 accepts a manifest with an artifact
 * config type and an encrypted layer type; the pulls are refused.
 */
import { describe, expect, it } from 'vitest'
import { ContentError } from '../../src/errors'
import { hostArchitecture } from '../../src/transports/registry/platform'
import { MediaType } from '../../src/oci/types'
import { registrySkipReason } from '../helpers/registry'
import { Harness, harnessPerTest, realRegistryWithImage } from '../helpers/security-registry'

let h: Harness
harnessPerTest((x) => (h = x))

const layerFetches = () => h.reg.requests.filter((q) => h.image.layers.some((l) => q.path.endsWith(`blobs/${l.digest}`)))

describe('media types: refused, exit 6, store unchanged', () => {
  it('unknown manifest media type (Content-Type and body agree)', async () => {
    const odd = 'application/vnd.example.thing+json'
    h.reg.putManifest({ ...h.image.manifest, mediaType: odd }, odd, 'odd')
    const err = await h.refused('REG/demo/app:odd', ContentError, 'content.unsupported-media-type')
    expect(err.exitCode).toBe(6)
    expect(err.message).toContain(odd)
  })

  it('schema 1 manifest', async () => {
    h.reg.putManifest({ schemaVersion: 1, name: 'demo/app', tag: 's1', fsLayers: [] }, 'application/vnd.docker.distribution.manifest.v1+prettyjws', 's1')
    await h.refused('REG/demo/app:s1', ContentError, 'content.unsupported-media-type')
  })

  it('Content-Type says Docker, the body says OCI', async () => {
    h.reg.faults.contentType = { v1: MediaType.dockerManifest }
    const err = await h.refused('REG/demo/app:v1', ContentError, 'content.media-type-mismatch')
    expect(err.data).toMatchObject({ expected: MediaType.dockerManifest, found: MediaType.ociManifest })
  })

  it('config of an unexpected type (a layer type, an artifact type)', async () => {
    for (const type of [MediaType.ociLayerGzip, 'application/vnd.cncf.helm.config.v1+json']) {
      const m = structuredClone(h.image.manifest)
      m.config.mediaType = type
      h.reg.putManifest(m, MediaType.ociManifest, 'cfg')
      const err = await h.refused('REG/demo/app:cfg', ContentError, 'content.unsupported-media-type')
      expect(err.message).toContain(type)
    }
    expect(layerFetches()).toEqual([])
  })

  it('a layer of a type sysctr cannot unpack (encrypted, unknown): refused before any layer is fetched', async () => {
    for (const type of ['application/vnd.oci.image.layer.v1.tar+gzip+encrypted', 'application/vnd.example.blob', '']) {
      const m = structuredClone(h.image.manifest)
      m.layers[1].mediaType = type
      h.reg.putManifest(m, MediaType.ociManifest, 'layer')
      const err = await h.refused('REG/demo/app:layer', ContentError, 'content.unsupported-media-type')
      if (type) expect(err.message).toContain(type)
    }
    expect(layerFetches()).toEqual([])
  })

  it('an index where a manifest was expected (entry says manifest, the bytes are an index)', async () => {
    const innerIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: h.image.manifestDigest, size: 1, platform: { os: 'linux', architecture: hostArchitecture() } }] }
    const inner = h.reg.putManifest(innerIndex, MediaType.ociIndex)
    const innerBytes = JSON.stringify(innerIndex)
    h.reg.putManifest(
      { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: inner, size: Buffer.byteLength(innerBytes), platform: { os: 'linux', architecture: hostArchitecture() } }] },
      MediaType.ociIndex,
      'outer',
    )
    const err = await h.refused('REG/demo/app:outer', ContentError, 'content.unsupported-media-type')
    expect(err.message).toContain('not an image manifest')
  })

  it('an index entry declared Docker whose manifest is OCI', async () => {
    h.reg.putManifest(
      { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.dockerManifest, digest: h.image.manifestDigest, size: Buffer.byteLength(JSON.stringify(h.image.manifest)), platform: { os: 'linux', architecture: hostArchitecture() } }] },
      MediaType.ociIndex,
      'entry',
    )
    const err = await h.refused('REG/demo/app:entry', ContentError, 'content.media-type-mismatch')
    expect(err.data).toMatchObject({ expected: MediaType.dockerManifest, found: MediaType.ociManifest })
  })

  it('a manifest where an index was declared (Content-Type index, no mediaType in the body)', async () => {
    const { mediaType: _drop, ...bare } = h.image.manifest as unknown as Record<string, unknown>
    h.reg.putManifest(bare, MediaType.ociIndex, 'notindex')
    const err = await h.refused('REG/demo/app:notindex', ContentError, 'content.bad-manifest')
    expect(err.message).toContain('no manifests list')
  })
})

describe.skipIf(registrySkipReason() !== undefined)('the real registry (docker-registry 2.8)', () => {
  it('serves an artifact config type and an encrypted layer type as pushed; sysctr refuses both', async () => {
    const real = await realRegistryWithImage(h)
    try {
      const cfg = structuredClone(h.image.manifest)
      cfg.config.mediaType = 'application/vnd.cncf.helm.config.v1+json'
      let put = await real.putManifest('artifact', Buffer.from(JSON.stringify(cfg)), MediaType.ociManifest)
      expect(put.status, put.body).toBe(201)
      await h.refused(`${real.host}/demo/app:artifact`, ContentError, 'content.unsupported-media-type')

      const enc = structuredClone(h.image.manifest)
      enc.layers[0].mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted'
      put = await real.putManifest('encrypted', Buffer.from(JSON.stringify(enc)), MediaType.ociManifest)
      expect(put.status, put.body).toBe(201)
      await h.refused(`${real.host}/demo/app:encrypted`, ContentError, 'content.unsupported-media-type')
    } finally {
      await real.stop()
    }
  })

  it('a manifest PUT with a Content-Type that contradicts its body: the real registry refuses it itself (the fake covers the client side)', async () => {
    const real = await realRegistryWithImage(h)
    try {
      const put = await real.putManifest('mixed', Buffer.from(JSON.stringify(h.image.manifest)), MediaType.dockerManifest)
      expect(put.status).toBe(400)
      expect(put.body).toContain('MANIFEST_INVALID')
    } finally {
      await real.stop()
    }
  })
})
