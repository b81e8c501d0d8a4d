/**
 * openImageSource's registry endpoints against in-process registries: a
 * mirror without the image or refusing falls through to the next endpoint;
 * a mirror serving wrong bytes stops the pull (never papered over); blobs
 * come from the endpoint that resolved; a 401 names the credential source.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { emptyRegistriesConf, mergeRegistriesConf, RegistriesConf } from '../../src/config/registries'
import { SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { openImageSource, OpenImageOptions } from '../../src/transports/open'
import { FakeRegistry, startFakeRegistry } from '../helpers/http-fake-registry'

let dir: string
let img: WrittenImage
let mirrorA: FakeRegistry
let mirrorB: FakeRegistry
let upstream: FakeRegistry

function confFor(): RegistriesConf {
  return mergeRegistriesConf(
    emptyRegistriesConf(),
    `[[registry]]
prefix = "upstream.example.com/demo"
location = "${upstream.host}/demo"
insecure = true
[[registry.mirror]]
location = "${mirrorA.host}/demo"
insecure = true
[[registry.mirror]]
location = "${mirrorB.host}/demo"
insecure = true
`,
    'test.conf',
  )
}

beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-fallback-'))
  ;[img] = await writeOciLayout(dir, [{ tag: 'v1', layers: [[{ path: 'a', content: 'a\n' }]], config: { Cmd: ['/a'] } }])
  mirrorA = await startFakeRegistry({ repository: 'demo/app' })
  mirrorB = await startFakeRegistry({ repository: 'demo/app' })
  upstream = await startFakeRegistry({ repository: 'demo/app' })
  for (const r of [mirrorA, mirrorB, upstream]) await r.loadLayout(dir)
})
afterAll(async () => {
  await Promise.all([mirrorA?.close(), mirrorB?.close(), upstream?.close()])
  await fsp.rm(dir, { recursive: true, force: true })
})

function opts(): OpenImageOptions {
  return { registriesConf: confFor(), env: {}, home: dir, registry: { retries: 0, timeoutMs: 5000 } }
}

function reset(): void {
  for (const r of [mirrorA, mirrorB, upstream]) {
    for (const k of Object.keys(r.faults)) delete (r.faults as Record<string, unknown>)[k]
    r.requests.length = 0
  }
}

describe('mirrors', () => {
  it('falls through a mirror without the image and a refusing one, and fetches blobs where it resolved', async () => {
    reset()
    mirrorA.faults.notFound = true
    mirrorB.faults.unauthorized = true
    const o = await openImageSource('upstream.example.com/demo/app:v1', opts())
    expect(o.refName).toBe('upstream.example.com/demo/app:v1')
    const r = await o.source.resolve()
    expect(r.manifestDigest).toBe(img.manifestDigest)
    for await (const _ of await o.source.openBlob(r.manifest.layers[0])) void _
    await o.source.close()
    expect(upstream.requests.some((q) => q.path.includes('/blobs/'))).toBe(true)
    expect(mirrorA.requests.some((q) => q.path.includes('/blobs/'))).toBe(false)
  })

  it('uses the first mirror that has the image', async () => {
    reset()
    const o = await openImageSource('upstream.example.com/demo/app:v1', opts())
    await o.source.resolve()
    await o.source.close()
    expect(mirrorA.requests.some((q) => q.path.includes('/manifests/'))).toBe(true)
    expect(upstream.requests.filter((q) => q.path.includes('/manifests/'))).toHaveLength(0)
  })

  it('stops at a mirror serving bad bytes', async () => {
    reset()
    mirrorA.faults.wrongBytes = [img.configDigest]
    const o = await openImageSource('upstream.example.com/demo/app:v1', opts())
    const err = (await o.source.resolve().catch((e: unknown) => e)) as SysctrError
    await o.source.close()
    expect(err).toBeInstanceOf(SysctrError)
    expect(err.code).toBe('content.digest-mismatch')
    expect(upstream.requests.filter((q) => q.path.includes('/manifests/'))).toHaveLength(0)
  })

  it('when every endpoint fails, says what was tried', async () => {
    reset()
    for (const r of [mirrorA, mirrorB, upstream]) r.faults.notFound = true
    const o = await openImageSource('upstream.example.com/demo/app:v1', opts())
    const err = (await o.source.resolve().catch((e: unknown) => e)) as SysctrError
    expect(err.code).toBe('image.not-found')
    expect(err.fullMessage).toContain(`tried ${mirrorA.host}/demo/app:v1, ${mirrorB.host}/demo/app:v1, ${upstream.host}/demo/app:v1`)
  })
})

describe('credentials', () => {
  it('sends --creds as Basic auth and names the source on a 401, without the password', async () => {
    reset()
    const conf = mergeRegistriesConf(emptyRegistriesConf(), `[[registry]]\nlocation = "${upstream.host}"\ninsecure = true\n`, 't')
    upstream.faults.basicAuth = { username: 'bob', password: 'right-pw' }
    const good = await openImageSource(`${upstream.host}/demo/app:v1`, { ...opts(), registriesConf: conf, creds: 'bob:right-pw' })
    expect((await good.source.resolve()).manifestDigest).toBe(img.manifestDigest)
    await good.source.close()
    const bad = await openImageSource(`${upstream.host}/demo/app:v1`, { ...opts(), registriesConf: conf, creds: 'bob:wrong-pw-123' })
    const err = (await bad.source.resolve().catch((e: unknown) => e)) as SysctrError
    await bad.source.close()
    expect(err.code).toBe('registry.unauthorized')
    expect(err.fullMessage).toContain(upstream.host)
    expect(err.fullMessage).toContain('credentials from --creds')
    expect(JSON.stringify({ m: err.fullMessage, h: err.hint, d: err.data })).not.toContain('wrong-pw-123')
  })
})
