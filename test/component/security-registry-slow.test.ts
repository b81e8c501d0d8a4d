/**
 * Hostile registry, class "answers slowly forever": a server that accepts and
 * never answers, sends headers and then stalls (manifest, blob), or trickles
 * a few bytes forever. What protects:
 * - the stall timeout (`timeoutMs`, default 30 s: nothing received for that
 *   long, connect/headers/body alike) -> RegistryError `registry.timeout`
 *   naming host:port; a stall is not retried or resumed;
 * - a trickle resets the stall timeout on every byte, so: manifests have a
 *   whole-body deadline (`manifestTimeoutMs`, default 120 s; at most 4 MiB),
 *   blobs a low-speed limit (`lowSpeed`, default fewer than 1024 bytes in
 *   60 s) -> RegistryError `registry.too-slow` naming host:port.
 * All exit 5, the store unchanged. The options are shrunk here to keep the
 * tests fast; the assertions are about outcomes, not durations.
 */
import type { ServerResponse } from 'node:http'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { NotFoundError, RegistryError } from '../../src/errors'
import { Harness, HostileServer, startHarness, startHostileServer } from '../helpers/security-registry'

let h: Harness
const servers: HostileServer[] = []
const timers: NodeJS.Timeout[] = []
beforeEach(async () => {
  h = await startHarness()
})
afterEach(async () => {
  for (const t of timers.splice(0)) clearInterval(t)
  for (const s of servers.splice(0)) await s.close()
  await h.close()
})

async function hostile(handler: Parameters<typeof startHostileServer>[0]): Promise<HostileServer> {
  const s = await startHostileServer(handler)
  servers.push(s)
  return s
}

/** Send one byte every `ms`, forever (until the client goes). */
function trickle(res: ServerResponse, ms: number): void {
  const t = setInterval(() => {
    if (res.destroyed) clearInterval(t)
    else res.write(' ')
  }, ms)
  timers.push(t)
}

describe('stalls: registry.timeout naming the registry, exit 5, store unchanged', () => {
  it('a manifest request that is never answered', async () => {
    const s = await hostile(() => {
      /* never answers */
    })
    const err = await h.refused(`${s.host}/demo/app:v1`, RegistryError, 'registry.timeout', { timeoutMs: 300 })
    expect(err.exitCode).toBe(5)
    expect(err.message).toContain(s.host)
  })

  it('manifest headers, then nothing', async () => {
    const s = await hostile((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': '5000' })
      res.write('{"schemaVersion":2,')
    })
    const err = await h.refused(`${s.host}/demo/app:v1`, RegistryError, 'registry.timeout', { timeoutMs: 300 })
    expect(err.message).toContain(s.host)
  })

  it('layer blobs: half, then nothing (not resumed)', async () => {
    const layer = h.image.layers[1].digest
    h.reg.faults.stall = h.image.layers.map((l) => l.digest)
    const err = await h.refused('REG/demo/app:v1', RegistryError, 'registry.timeout', { timeoutMs: 300 })
    expect(err.message).toContain(h.reg.host)
    expect(h.reg.requests.filter((q) => q.path.endsWith(layer)).length).toBe(1)
    expect(await h.store.getLayer(layer)).toBeUndefined()
  })
})

describe('trickles: registry.too-slow, exit 5, store unchanged', () => {
  it('a manifest trickled byte by byte: the whole-body deadline ends it', async () => {
    const s = await hostile((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' })
      trickle(res, 20)
    })
    const err = await h.refused(`${s.host}/demo/app:v1`, RegistryError, 'registry.too-slow', { timeoutMs: 5_000, manifestTimeoutMs: 400 })
    expect(err.exitCode).toBe(5)
    expect(err.message).toContain(s.host)
  })

  it('a layer trickled byte by byte (well under the stall timeout each time): the low-speed limit ends it', async () => {
    const c = await hostile((req, res) => {
      const d = h.image.layers.find((l) => req.url?.includes(l.digest)) ?? h.image.manifest.config
      res.writeHead(200, { 'content-length': String(d.size) })
      trickle(res, 20)
    })
    // the config comes from the registry itself; then blobs are redirected to the trickling host
    const s = h.source('REG/demo/app:v1', { timeoutMs: 5_000, lowSpeed: { bytes: 1024, windowMs: 300 } })
    const r = await s.resolve()
    h.reg.faults.redirectBlobsTo = c.url
    const stream = await s.openBlob(r.manifest.layers[1])
    const err = await new Promise<unknown>((resolve) => {
      stream.on('error', resolve)
      stream.on('end', () => resolve(undefined))
      stream.resume()
    })
    expect(err).toBeInstanceOf(RegistryError)
    expect((err as RegistryError).code).toBe('registry.too-slow')
    expect((err as RegistryError).message).toContain(c.host)
  })

  it('a pull whose blobs trickle fails and writes nothing', async () => {
    const c = await hostile((req, res) => {
      const d = [h.image.manifest.config, ...h.image.layers].find((l) => req.url?.includes(l.digest))
      res.writeHead(200, { 'content-length': String(d?.size ?? 0) })
      trickle(res, 20)
    })
    h.reg.faults.redirectBlobsTo = c.url
    await h.refused('REG/demo/app:v1', RegistryError, 'registry.too-slow', { timeoutMs: 5_000, lowSpeed: { bytes: 1024, windowMs: 300 } })
  })

  it('an error body trickled forever: the error is reported without its detail', async () => {
    const s = await hostile((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.write('{"errors":[')
      trickle(res, 20)
    })
    const err = await h.refused(`${s.host}/demo/app:v1`, NotFoundError, 'image.not-found', { timeoutMs: 5_000, manifestTimeoutMs: 300 })
    expect(err.message).not.toContain('(')
  })

  it('control: a slow but steady blob (enough bytes per window) is not cut', async () => {
    const r = await h.pull('REG/demo/app:v1', { lowSpeed: { bytes: 1, windowMs: 50 } })
    expect(r.layersFetched).toBe(2)
  })
})
