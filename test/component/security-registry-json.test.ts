/**
 * Hostile registry, class "huge or malformed JSON": manifests and indexes
 * over the size cap (announced or streamed without a length: the client
 * stops reading at the cap and closes the connection, never buffering the
 * rest), bytes that are not JSON, JSON of the wrong shape or types. Refused
 * with ContentError (`content.too-large`, `content.bad-manifest`,
 * `content.bad-config`, `content.unsupported-media-type`), exit 6, the store
 * unchanged. Protections: RegistryClient.getManifest (Content-Length vs
 * MANIFEST_SIZE_LIMIT, readBody's cap), RegistrySource.fetchManifest (an
 * index entry's size vs the cap), parseManifestBytes/checkManifest/
 * checkDescriptor/parseConfig (src/transports/resolve.ts). A config over its
 * cap: see security-registry-size.test.ts.
 */
import type { ServerResponse } from 'node:http'
import { describe, expect, it } from 'vitest'
import { ContentError } from '../../src/errors'
import { hostArchitecture } from '../../src/transports/registry/platform'
import { MediaType } from '../../src/oci/types'
import { MANIFEST_SIZE_LIMIT } from '../../src/transports/registry/client'
import { Harness, harnessPerTest, startHostileServer } from '../helpers/security-registry'

let h: Harness
const servers = harnessPerTest((x) => (h = x))

/** Write up to `total` bytes of `fill` with backpressure; resolves with what was written once the response closes. */
function pump(res: ServerResponse, total: number, fill: number): Promise<{ sent: number; finished: boolean }> {
  return new Promise((resolve) => {
    const chunk = Buffer.alloc(64 << 10, fill)
    let sent = 0
    let finished = false
    const go = (): void => {
      while (sent < total) {
        sent += chunk.length
        if (!res.write(chunk)) {
          res.once('drain', go)
          return
        }
      }
      finished = true
      res.end()
    }
    res.on('close', () => resolve({ sent, finished }))
    go()
  })
}

describe('over the size cap', () => {
  it('a manifest streamed without a length: reading stops at the cap, the server sees the connection closed', async () => {
    const total = 256 << 20
    let outcome: Promise<{ sent: number; finished: boolean }> | undefined
    const srv = await startHostileServer((_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.ociManifest }) // chunked
      outcome = pump(res, total, 0x20)
    })
    servers.push(srv)
    const err = await h.refused(`${srv.host}/demo/app:v1`, ContentError, 'content.too-large')
    expect(err.exitCode).toBe(6)
    expect(err.data?.limit).toBe(MANIFEST_SIZE_LIMIT)
    const { sent, finished } = await outcome!
    expect(finished).toBe(false)
    expect(sent).toBeLessThan(total / 4)
  })

  it('an index announced bigger than the cap: refused from its Content-Length, before the body', async () => {
    const srv = await startHostileServer((_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.ociIndex, 'content-length': String(1 << 30) })
      res.write('{"schemaVersion":2,') // and then nothing: waiting for the body would end in a stall timeout instead
    })
    servers.push(srv)
    const err = await h.refused(`${srv.host}/demo/app:v1`, ContentError, 'content.too-large', { timeoutMs: 60_000 })
    expect(err.message).toContain(String(1 << 30))
  })

  it('an index entry claiming a manifest bigger than the cap: refused without fetching it', async () => {
    h.reg.putManifest(
      { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: h.image.manifestDigest, size: MANIFEST_SIZE_LIMIT + 1, platform: { os: 'linux', architecture: hostArchitecture() } }] },
      MediaType.ociIndex,
      'big',
    )
    await h.refused('REG/demo/app:big', ContentError, 'content.too-large')
    expect(h.reg.requests.filter((q) => q.path.endsWith(`manifests/${h.image.manifestDigest}`))).toEqual([])
  })
})

describe('malformed JSON and wrong types: refused, exit 6, store unchanged', () => {
  const manifest = () => structuredClone(h.image.manifest) as unknown as Record<string, unknown> & { config: Record<string, unknown>; layers: Array<Record<string, unknown>> }

  it('a manifest that is not JSON, or JSON but not an object', async () => {
    for (const body of ['{"schemaVersion": 2, "layers": [', '\u0000\u0001binary', '[1,2,3]', 'null', '"a string"', '[' .repeat(200_000) + ']'.repeat(200_000)]) {
      h.reg.putManifest(Buffer.from(body), MediaType.ociManifest, 'bad')
      const err = await h.refused('REG/demo/app:bad', ContentError, 'content.bad-manifest')
      expect(err.exitCode).toBe(6)
    }
  })

  it('schemaVersion missing or of the wrong type', async () => {
    for (const v of [undefined, '2', 2.5, null]) {
      const m = manifest()
      if (v === undefined) delete m.schemaVersion
      else m.schemaVersion = v
      h.reg.putManifest(m, MediaType.ociManifest, 'bad')
      await h.refused('REG/demo/app:bad', ContentError, 'content.unsupported-media-type')
    }
  })

  const shapes: Array<[string, (m: ReturnType<typeof manifest>) => void]> = [
    ['layers not an array', (m) => (m.layers = { 0: m.layers[0] } as never)],
    ['layers missing', (m) => delete (m as Record<string, unknown>).layers],
    ['config missing', (m) => delete (m as Record<string, unknown>).config],
    ['config a string', (m) => ((m as Record<string, unknown>).config = 'sha256:abc')],
    ['layer size negative', (m) => (m.layers[0].size = -1)],
    ['layer size not an integer', (m) => (m.layers[0].size = 1.5)],
    ['layer size a string', (m) => (m.layers[0].size = String(m.layers[0].size))],
    ['layer size beyond 2^53', (m) => (m.layers[0].size = 1e300)],
    ['layer digest missing', (m) => delete m.layers[1].digest],
    ['layer digest not a digest', (m) => (m.layers[1].digest = 'sha256:../../etc/passwd')],
    ['layer a number', (m) => ((m.layers as unknown[])[0] = 42)],
    ['config mediaType missing', (m) => delete m.config.mediaType],
    ['config size negative', (m) => (m.config.size = -5)],
  ]
  for (const [name, mutate] of shapes) {
    it(`manifest with ${name}`, async () => {
      const m = manifest()
      mutate(m)
      h.reg.putManifest(m, MediaType.ociManifest, 'bad')
      await h.refused('REG/demo/app:bad', ContentError, 'content.bad-manifest')
    })
  }

  it('an index whose manifests is not an array, or whose chosen entry is malformed', async () => {
    h.reg.putManifest({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: { a: 1 } }, MediaType.ociIndex, 'idx')
    await h.refused('REG/demo/app:idx', ContentError, 'content.bad-manifest')
    h.reg.putManifest(
      { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: h.image.manifestDigest, size: -1, platform: { os: 'linux', architecture: hostArchitecture() } }] },
      MediaType.ociIndex,
      'idx',
    )
    await h.refused('REG/demo/app:idx', ContentError, 'content.bad-manifest')
  })

  it('a config that is not JSON or not an object (its digest and size right)', async () => {
    for (const body of ['not json {', '[]', '17']) {
      const bytes = Buffer.from(body)
      const m = manifest()
      m.config.digest = h.reg.putBlob(bytes)
      m.config.size = bytes.length
      h.reg.putManifest(m, MediaType.ociManifest, 'cfg')
      await h.refused('REG/demo/app:cfg', ContentError, 'content.bad-config')
    }
  })
})
