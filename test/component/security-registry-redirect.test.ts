/**
 * Hostile registry, class "a registry that redirects": blobs redirected to
 * another host must not receive the registry's credentials (bearer token or
 * Basic); https -> http is refused when TLS is verified (and the plain-http
 * host is never contacted); redirect loops end after 5 hops; a redirect to
 * another scheme or without a Location is refused. RegistryError
 * `registry.bad-redirect` (exit 5), store unchanged.
 * Protections: HttpTransport.followRedirects (src/transports/registry/http.ts).
 * See also registry-source.test.ts "redirects" (signed query never shown) and
 * pull-resume.test.ts (Range kept across a redirect).
 */
import { promises as fsp } from 'node:fs'
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { rootCertificates } from 'node:tls'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { RegistryError } from '../../src/errors'
import { FakeRegistry, startFakeRegistry } from '../helpers/http-fake-registry'
import { Harness, HostileServer, startHarness, startHostileServer } from '../helpers/security-registry'
import { makeTestCerts } from '../helpers/tls-certs'

let h: Harness
const closers: Array<() => Promise<void>> = []
beforeEach(async () => {
  h = await startHarness()
})
afterEach(async () => {
  for (const c of closers.splice(0)) await c()
  await h.close()
})

/** A second server holding the same blobs, as the redirect target (its /cdn/blobs/ path needs no auth). */
async function cdn(): Promise<FakeRegistry> {
  const c = await startFakeRegistry({ repository: 'demo/app' })
  await c.loadLayout(join(h.dir, 'layout'))
  closers.push(() => c.close())
  h.reg.faults.redirectBlobsTo = c.url
  return c
}

async function hostile(handler: Parameters<typeof startHostileServer>[0]): Promise<HostileServer> {
  const s = await startHostileServer(handler)
  closers.push(() => s.close())
  return s
}

describe('credentials stay with the registry', () => {
  it('bearer token: sent to the registry, not to the host blobs are redirected to', async () => {
    const c = await cdn()
    h.reg.faults.requireToken = true
    const r = await h.pull('REG/demo/app:v1')
    expect(r.layersFetched).toBe(2)
    const toCdn = c.requests.filter((q) => q.path.startsWith('/cdn/blobs/'))
    expect(toCdn.length).toBe(3) // config + 2 layers
    for (const q of toCdn) expect(q.authorization).toBeUndefined()
    const toReg = h.reg.requests.filter((q) => q.path.startsWith('/v2/demo/app/blobs/'))
    expect(toReg.length).toBe(3)
    for (const q of toReg) expect(q.authorization).toBe(`Bearer ${h.reg.tokensIssued[0]}`)
  })

  it('Basic credentials: never sent to the other host', async () => {
    const c = await cdn()
    h.reg.faults.basicAuth = { username: 'alice', password: 'secret-pw' }
    const r = await h.pull('REG/demo/app:v1', { credentials: { username: 'alice', password: 'secret-pw' } })
    expect(r.layersFetched).toBe(2)
    expect(c.requests.length).toBeGreaterThan(0)
    for (const q of c.requests) expect(q.authorization).toBeUndefined()
  })
})

describe('refused redirects: exit 5, store unchanged', () => {
  it('a redirect loop ends after 5 hops', async () => {
    const s = await hostile((req, res) => {
      const n = Number(/hop=(\d+)/.exec(req.url ?? '')?.[1] ?? 0)
      res.writeHead(302, { location: n % 2 ? '/v2/demo/app/manifests/v1' : `/elsewhere?hop=${n + 1}`, 'content-length': '0' })
      res.end()
    })
    const err = await h.refused(`${s.host}/demo/app:v1`, RegistryError, 'registry.bad-redirect')
    expect(err.exitCode).toBe(5)
    expect(err.message).toMatch(/more than 5 redirects/)
    expect(s.requests.filter((q) => q.path !== '/v2/').length).toBe(6)
  })

  it('a redirect to another scheme, or without a Location', async () => {
    for (const location of ['file:///etc/shadow', 'ftp://127.0.0.1/x', undefined]) {
      const s = await hostile((_req, res) => {
        res.writeHead(307, { ...(location ? { location } : {}), 'content-length': '0' })
        res.end()
      })
      const err = await h.refused(`${s.host}/demo/app:v1`, RegistryError, 'registry.bad-redirect')
      if (location) expect(err.message).toContain(location.slice(0, location.indexOf(':') + 1))
    }
  })

  it('https -> http is refused with TLS verified; the plain-http host is never contacted', async () => {
    const certs = await makeTestCerts(join(h.dir, 'certs'))
    const plain = await hostile((_req, res) => {
      res.writeHead(500)
      res.end()
    })
    const [cert, key, ca] = await Promise.all([fsp.readFile(certs.serverCrt), fsp.readFile(certs.serverKey), fsp.readFile(certs.caCrt, 'utf8')])
    const server: HttpsServer = createHttpsServer({ cert, key }, (req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(200, { 'content-length': '2' })
        res.end('{}')
        return
      }
      res.writeHead(307, { location: `${plain.url}/v2/demo/app/manifests/v1`, 'content-length': '0' })
      res.end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    closers.push(() => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))))
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`
    const tls = { tlsVerify: true, tls: { ca: [...rootCertificates, ca] } }
    const err = await h.refused(`${host}/demo/app:v1`, RegistryError, 'registry.bad-redirect', tls)
    expect(err.message).toMatch(/https to plain http/)
    expect(plain.requests).toEqual([])
  })
})
