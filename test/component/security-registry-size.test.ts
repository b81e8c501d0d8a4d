/**
 * Hostile registry, class "a size that lies": a descriptor whose size is not
 * the blob's (larger, smaller) for a layer, the config and an index entry; a
 * Content-Length that disagrees with the descriptor; a body with no length
 * that goes on past the size. Refused with ContentError `content.size-mismatch`
 * (exit 6), the store unchanged, and the client stops reading at size+1.
 * Protections: RegistryClient.getBlob (Content-Length vs descriptor before
 * any byte), DigestStream (size cap while streaming, short body at the end),
 * verifyBytes (manifest from an index entry), CONFIG_SIZE_LIMIT (resolve).
 * Real registry: docker-registry 2.8 stores a manifest whose layer size lies;
 * the pull from it is refused the same way.
 */
import { describe, expect, it } from 'vitest'
import { ContentError } from '../../src/errors'
import { hostArchitecture } from '../../src/transports/registry/platform'
import { Descriptor, MediaType } from '../../src/oci/types'
import { registrySkipReason } from '../helpers/registry'
import { Harness, harnessPerTest, HostileServer, realRegistryWithImage, startHostileServer, storeFiles } from '../helpers/security-registry'

let h: Harness
const servers = harnessPerTest((x) => (h = x))

/**
 * The image's manifest with every layer (or the config) described with another size, tagged `tag`.
 * Every layer: layers are fetched concurrently, and a good one may be kept (by design) before a bad one fails.
 */
function lyingManifest(tag: string, change: { config?: boolean; delta: number }): void {
  const m = structuredClone(h.image.manifest)
  const lie = (d: Descriptor) => (d.size += change.delta)
  if (change.config) lie(m.config)
  else m.layers.forEach(lie)
  h.reg.putManifest(m, MediaType.ociManifest, tag)
}

describe('descriptor sizes that lie: refused, exit 6, store unchanged', () => {
  it('layers described larger than they are', async () => {
    lyingManifest('big', { delta: +1 })
    const err = await h.refused('REG/demo/app:big', ContentError, 'content.size-mismatch')
    expect(err.exitCode).toBe(6)
    expect(h.image.layers.map((l) => l.size + 1)).toContain(err.data?.expected)
  })

  it('layers described smaller than they are', async () => {
    lyingManifest('small', { delta: -1 })
    await h.refused('REG/demo/app:small', ContentError, 'content.size-mismatch')
  })

  it('config described larger and smaller', async () => {
    lyingManifest('cbig', { config: true, delta: +7 })
    await h.refused('REG/demo/app:cbig', ContentError, 'content.size-mismatch')
    lyingManifest('csmall', { config: true, delta: -7 })
    await h.refused('REG/demo/app:csmall', ContentError, 'content.size-mismatch')
  })

  it('config claimed bigger than the config limit: refused before it is fetched', async () => {
    lyingManifest('huge', { config: true, delta: 1 << 30 })
    await h.refused('REG/demo/app:huge', ContentError, 'content.too-large')
    expect(h.reg.requests.some((q) => q.path.includes(h.image.configDigest))).toBe(false)
  })

  it('index entry whose size is not the manifest size', async () => {
    const real = Buffer.byteLength(JSON.stringify(h.image.manifest))
    for (const [tag, size] of [['ibig', real + 1], ['ismall', real - 1]] as const) {
      h.reg.putManifest(
        { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: h.image.manifestDigest, size, platform: { os: 'linux', architecture: hostArchitecture() } }] },
        MediaType.ociIndex,
        tag,
      )
      await h.refused(`REG/demo/app:${tag}`, ContentError, 'content.size-mismatch')
    }
  })
})

describe('Content-Length and bodies that lie', () => {
  /** Blobs redirected to a server that answers every blob with `respond`. */
  async function blobsFrom(respond: HostileServerHandler): Promise<HostileServer> {
    const s = await startHostileServer(respond)
    servers.push(s)
    h.reg.faults.redirectBlobsTo = s.url
    return s
  }
  type HostileServerHandler = Parameters<typeof startHostileServer>[0]

  it('Content-Length differs from the descriptor: refused before any byte is read', async () => {
    let written = 0
    await blobsFrom((_req, res) => {
      res.writeHead(200, { 'content-length': '123456789' })
      res.write(Buffer.alloc(1000))
      written += 1000
    })
    const err = await h.refused('REG/demo/app:v1', ContentError, 'content.size-mismatch')
    expect(err.message).toContain('123456789')
    expect(written).toBe(1000)
  })

  it('no Content-Length and an endless body: cut at size+1, the server sees the connection close', async () => {
    const cfg = h.image.manifest.config
    let sent = 0
    let closedEarly = false
    await blobsFrom((req, res) => {
      if (!req.url?.includes(cfg.digest)) {
        res.writeHead(404)
        res.end()
        return
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' }) // chunked
      const chunk = Buffer.alloc(16 << 10, 0x7b)
      const pump = (): void => {
        while (sent < 64 << 20) {
          sent += chunk.length
          if (!res.write(chunk)) {
            res.once('drain', pump)
            return
          }
        }
        res.end()
      }
      res.on('close', () => {
        if (sent < 64 << 20) closedEarly = true
      })
      pump()
    })
    const err = await h.refused('REG/demo/app:v1', ContentError, 'content.size-mismatch')
    expect(err.data?.expected).toBe(cfg.size)
    await new Promise((r) => setTimeout(r, 50))
    expect(closedEarly).toBe(true)
    expect(sent).toBeLessThan(64 << 20)
  })

  it('Content-Length right but the body ends short and the connection closes: never accepted', async () => {
    await blobsFrom((req, res) => {
      const m = /blobs\/([^?]+)/.exec(req.url ?? '')
      const d = [h.image.manifest.config, ...h.image.layers].find((x) => x.digest === m?.[1])
      res.writeHead(200, { 'content-length': String(d?.size ?? 0) })
      res.write(Buffer.alloc(5), () => res.socket?.destroy())
    })
    const before = await storeFiles(h.storeDir)
    const err = await h.pull('REG/demo/app:v1').then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    )
    expect(err?.code).toBe('registry.connection-lost')
    expect(await storeFiles(h.storeDir)).toEqual(before)
  })
})

describe.skipIf(registrySkipReason() !== undefined)('the real registry (docker-registry 2.8)', () => {
  it('stores a manifest whose layer size lies; pulling it is refused and writes nothing', async () => {
    const real = await realRegistryWithImage(h)
    try {
      const m = structuredClone(h.image.manifest)
      for (const l of m.layers) l.size += 10 // every layer: a good one fetched first would be kept, by design
      const put = await real.putManifest('lie', Buffer.from(JSON.stringify(m)), MediaType.ociManifest)
      expect(put.status, put.body).toBe(201)
      const err = await h.refused(`${real.host}/demo/app:lie`, ContentError, 'content.size-mismatch')
      expect(h.image.layers.map((l) => l.size + 10)).toContain(err.data?.expected)
      expect((await h.pull(`${real.host}/demo/app:v1`)).manifestDigest).toBe(h.image.manifestDigest)
    } finally {
      await real.stop()
    }
  })
})
