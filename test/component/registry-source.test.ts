import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { ContentError, NotFoundError, RegistryError, SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { hostArchitecture } from '../../src/transports/registry/platform'
import { Descriptor, Digest, MediaType } from '../../src/oci/types'
import { parseReference } from '../../src/reference/reference'
import { openRegistrySource, RegistrySource, RegistrySourceOptions } from '../../src/transports/registry'
import { FakeRegistry, startFakeRegistry } from '../helpers/http-fake-registry'

const OTHER_ARCH = hostArchitecture() === 'arm64' ? 'amd64' : 'arm64'

let dir: string
let image: WrittenImage
let other: WrittenImage
let reg: FakeRegistry
const open: RegistrySource[] = []
const extraServers: FakeRegistry[] = []

const FAST: RegistrySourceOptions = { tlsVerify: false, retries: 2, retryDelayMs: 1, maxRetryDelayMs: 5, timeoutMs: 5_000 }

function source(ref: string, opts: RegistrySourceOptions = {}): RegistrySource {
  const s = openRegistrySource(parseReference(ref.replace('REG', reg.host)), { ...FAST, ...opts })
  open.push(s)
  return s
}

/** Read a blob stream to the end; returns the sha256 of what came out, or the error and whether 'end' fired. */
async function drain(stream: Readable): Promise<{ digest?: Digest; error?: unknown; ended: boolean; bytes: number }> {
  const hash = createHash('sha256')
  let ended = false
  let bytes = 0
  stream.on('end', () => (ended = true))
  try {
    for await (const c of stream) {
      hash.update(c as Buffer)
      bytes += (c as Buffer).length
    }
    return { digest: `sha256:${hash.digest('hex')}` as Digest, ended, bytes }
  } catch (error) {
    return { error, ended, bytes }
  }
}

async function failure(p: Promise<unknown>): Promise<SysctrError> {
  const err = await p.then(
    () => undefined,
    (e) => e,
  )
  expect(err, 'expected a failure').toBeInstanceOf(SysctrError)
  return err as SysctrError
}

beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-registry-'))
  const written = await writeOciLayout(dir, [
    {
      tag: 'v1',
      layers: [
        [{ path: 'etc/', type: 'directory' }, { path: 'etc/hello', content: 'hello\n' }],
        [{ path: 'usr/bin/app', content: Buffer.alloc(300_000, 7), mode: 0o755 }],
      ],
      config: { Cmd: ['/usr/bin/app'] },
    },
    { tag: 'other', layers: [[{ path: 'x', content: 'other arch' }]], platform: { os: 'linux', architecture: OTHER_ARCH } },
  ])
  ;[image, other] = written
})

afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

async function freshRegistry(): Promise<FakeRegistry> {
  const r = await startFakeRegistry({ repository: 'demo/app' })
  await r.loadLayout(dir)
  return r
}

beforeAll(async () => {
  reg = await freshRegistry()
})
afterAll(async () => {
  await reg.close()
})
afterEach(async () => {
  for (const s of open.splice(0)) await s.close()
  for (const r of extraServers.splice(0)) await r.close()
  for (const k of Object.keys(reg.faults)) delete (reg.faults as Record<string, unknown>)[k]
  reg.requests.length = 0
})

describe('RegistrySource against a well-behaved registry', () => {
  it('resolves by tag and streams every blob verified', async () => {
    const s = source('REG/demo/app:v1')
    expect(s.name).toBe(`docker://${reg.host}/demo/app:v1`)
    const r = await s.resolve()
    expect(r.manifestDigest).toBe(image.manifestDigest)
    expect(r.topDigest).toBe(image.manifestDigest)
    expect(r.manifest.layers).toEqual(image.layers)
    expect(r.config.config?.Cmd).toEqual(['/usr/bin/app'])
    expect(r.config.rootfs?.diff_ids).toEqual(image.diffIDs)
    expect(createHash('sha256').update(r.configBytes).digest('hex')).toBe(image.configDigest.slice(7))
    for (const layer of r.manifest.layers) {
      const got = await drain(await s.openBlob(layer))
      expect(got.error).toBeUndefined()
      expect(got.digest).toBe(layer.digest)
      expect(got.ended).toBe(true)
    }
  })

  it('resolves by digest', async () => {
    const r = await source(`REG/demo/app@${image.manifestDigest}`).resolve()
    expect(r.manifestDigest).toBe(image.manifestDigest)
  })

  it('refuses https to a plain-http registry when TLS is verified', async () => {
    const err = await failure(source('REG/demo/app:v1', { tlsVerify: true }).resolve())
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.code).toBe('registry.tls')
    expect(err.hint).toMatch(/tls-verify=false/)
  })

  it('reports a refused connection naming host:port', async () => {
    const gone = await startFakeRegistry()
    const host = gone.host
    await gone.close()
    const s = openRegistrySource(parseReference(`${host}/demo/app:v1`), FAST)
    open.push(s)
    const err = await failure(s.resolve())
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.code).toBe('registry.unreachable')
    expect(err.message).toContain(host)
  })
})

describe('authentication', () => {
  it('fetches an anonymous bearer token once per scope and sends it', async () => {
    reg.faults.requireToken = true
    const s = source('REG/demo/app:v1')
    const r = await s.resolve()
    for (const l of r.manifest.layers) expect((await drain(await s.openBlob(l))).ended).toBe(true)
    expect(reg.tokensIssued).toHaveLength(1)
    const repoRequests = reg.requests.filter((q) => q.path.startsWith('/v2/demo/app/'))
    expect(repoRequests.length).toBeGreaterThanOrEqual(4)
    for (const q of repoRequests) expect(q.authorization).toBe(`Bearer ${reg.tokensIssued[0]}`)
  })

  it('sends credentials to the token service, and says so when they are refused (without the password)', async () => {
    reg.faults.requireToken = true
    reg.faults.tokenCredentials = { username: 'alice', password: 'wonderland-pw' }
    const r = await source('REG/demo/app:v1', { credentials: { username: 'alice', password: 'wonderland-pw' } }).resolve()
    expect(r.manifestDigest).toBe(image.manifestDigest)

    const err = await failure(source('REG/demo/app:v1', { credentials: { username: 'alice', password: 'wrong-pw' } }).resolve())
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.code).toBe('registry.unauthorized')
    expect(JSON.stringify({ ...err.toJSON(), hint: err.hint })).not.toMatch(/wrong-pw|wonderland/)
    const anon = await failure(source('REG/demo/app:v1').resolve())
    expect(anon.code).toBe('registry.unauthorized')
  })

  it('uses Basic auth when the registry asks for it', async () => {
    reg.faults.basicAuth = { username: 'bob', password: 'builder-pw' }
    const r = await source('REG/demo/app:v1', { credentials: { username: 'bob', password: 'builder-pw' } }).resolve()
    expect(r.manifestDigest).toBe(image.manifestDigest)
    const err = await failure(source('REG/demo/app:v1', { credentials: { username: 'bob', password: 'nope-pw' } }).resolve())
    expect(err.code).toBe('registry.unauthorized')
    expect(err.message).toContain(reg.host)
    expect(err.message).not.toContain('nope-pw')
  })

  it('401 and 403 on the repository -> registry.unauthorized naming the registry', async () => {
    for (const fault of ['unauthorized', 'forbidden'] as const) {
      reg.faults[fault] = true
      const err = await failure(source('REG/demo/app:v1').resolve())
      expect(err).toBeInstanceOf(RegistryError)
      expect(err.code).toBe('registry.unauthorized')
      expect(err.message).toContain(reg.host)
      expect(err.data?.status).toBe(fault === 'forbidden' ? 403 : 401)
      delete reg.faults[fault]
    }
  })
})

describe('status mapping and retries', () => {
  it('404 manifest -> NotFoundError image.not-found naming the reference', async () => {
    const err = await failure(source('REG/demo/app:nope').resolve())
    expect(err).toBeInstanceOf(NotFoundError)
    expect(err.code).toBe('image.not-found')
    expect(err.message).toContain(`${reg.host}/demo/app:nope`)
    reg.faults.notFound = true
    expect((await failure(source('REG/demo/app:v1').resolve())).code).toBe('image.not-found')
  })

  it('404 blob -> NotFoundError blob.not-found', async () => {
    const s = source('REG/demo/app:v1')
    const missing: Descriptor = { mediaType: MediaType.ociLayerGzip, digest: `sha256:${'0'.repeat(64)}` as Digest, size: 3 }
    const err = await failure(s.openBlob(missing))
    expect(err).toBeInstanceOf(NotFoundError)
    expect(err.code).toBe('blob.not-found')
  })

  it('429 then ok: retried', async () => {
    reg.faults.tooManyRequests = 2
    const r = await source('REG/demo/app:v1').resolve()
    expect(r.manifestDigest).toBe(image.manifestDigest)
    expect(reg.requests.filter((q) => q.path === '/v2/demo/app/manifests/v1')).toHaveLength(3)
  })

  it('500 every time: RegistryError with the status, after the retries', async () => {
    reg.faults.serverErrors = Infinity
    const err = await failure(source('REG/demo/app:v1').resolve())
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.code).toBe('registry.status')
    expect(err.data?.status).toBe(500)
    expect(err.message).toMatch(/internal trouble/)
    expect(reg.requests.filter((q) => q.path === '/v2/demo/app/manifests/v1')).toHaveLength(3)
  })

  it('429 past the retries -> RegistryError 429 with a hint', async () => {
    reg.faults.tooManyRequests = 10
    const err = await failure(source('REG/demo/app:v1', { retries: 1 }).resolve())
    expect(err.code).toBe('registry.status')
    expect(err.data?.status).toBe(429)
    expect(err.hint).toMatch(/rate/)
  })
})

describe('redirects', () => {
  it('follows blob redirects to another host without the Authorization header', async () => {
    const cdn = await freshRegistry()
    extraServers.push(cdn)
    reg.faults.requireToken = true
    reg.faults.redirectBlobsTo = cdn.url
    const s = source('REG/demo/app:v1')
    const r = await s.resolve()
    for (const l of r.manifest.layers) expect((await drain(await s.openBlob(l))).digest).toBe(l.digest)
    const cdnBlobRequests = cdn.requests.filter((q) => q.path.startsWith('/cdn/blobs/'))
    expect(cdnBlobRequests.length).toBe(3) // config + 2 layers
    for (const q of cdnBlobRequests) expect(q.authorization).toBeUndefined()
  })

  it('errors about a redirected blob do not show the signed query', async () => {
    const cdn = await freshRegistry()
    extraServers.push(cdn)
    reg.faults.redirectBlobsTo = cdn.url
    cdn.faults.stall = [image.layers[1].digest]
    const s = source('REG/demo/app:v1', { timeoutMs: 300 })
    const r = await s.resolve()
    const got = await drain(await s.openBlob(r.manifest.layers[1]))
    expect(got.error).toBeInstanceOf(RegistryError)
    expect((got.error as RegistryError).code).toBe('registry.timeout')
    expect((got.error as RegistryError).message).not.toContain('s3cr3t')
    expect(got.ended).toBe(false)
  })
})

describe('bad content is never handed over', () => {
  it('wrong bytes for a layer: the stream fails with digest-mismatch and never ends', async () => {
    reg.faults.wrongBytes = [image.layers[1].digest]
    const s = source('REG/demo/app:v1')
    const r = await s.resolve()
    const got = await drain(await s.openBlob(r.manifest.layers[1]))
    expect(got.error).toBeInstanceOf(ContentError)
    expect((got.error as ContentError).code).toBe('content.digest-mismatch')
    expect((got.error as ContentError).data?.expected).toBe(image.layers[1].digest)
    expect(got.ended).toBe(false)
  })

  it('wrong bytes for the config: resolve fails', async () => {
    reg.faults.wrongBytes = [image.configDigest]
    const err = await failure(source('REG/demo/app:v1').resolve())
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe('content.digest-mismatch')
  })

  it('wrong bytes for the manifest, by digest and by tag (Docker-Content-Digest)', async () => {
    reg.faults.wrongBytes = [image.manifestDigest]
    const byDigest = await failure(source(`REG/demo/app@${image.manifestDigest}`).resolve())
    expect(byDigest).toBeInstanceOf(ContentError)
    expect(byDigest.code).toBe('content.digest-mismatch')
    const byTag = await failure(source('REG/demo/app:v1').resolve())
    expect(byTag.code).toBe('content.digest-mismatch')
  })

  it('connection dropped mid-blob: the stream fails and never ends', async () => {
    reg.faults.truncate = [image.layers[1].digest]
    const s = source('REG/demo/app:v1')
    const r = await s.resolve()
    const got = await drain(await s.openBlob(r.manifest.layers[1]))
    expect(got.error).toBeInstanceOf(RegistryError)
    expect((got.error as RegistryError).code).toBe('registry.connection-lost')
    expect(got.ended).toBe(false)
  })

  it('body ends early (chunked): size-mismatch', async () => {
    reg.faults.shortChunked = [image.layers[1].digest]
    const s = source('REG/demo/app:v1')
    const r = await s.resolve()
    const got = await drain(await s.openBlob(r.manifest.layers[1]))
    expect(got.error).toBeInstanceOf(ContentError)
    expect((got.error as ContentError).code).toBe('content.size-mismatch')
    expect(got.ended).toBe(false)
  })

  it('a stalled blob times out', async () => {
    reg.faults.stall = [image.layers[1].digest]
    const s = source('REG/demo/app:v1', { timeoutMs: 300 })
    const r = await s.resolve()
    const got = await drain(await s.openBlob(r.manifest.layers[1]))
    expect((got.error as RegistryError).code).toBe('registry.timeout')
    expect(got.ended).toBe(false)
  })

  it('a descriptor whose size differs from Content-Length fails before any byte', async () => {
    const s = source('REG/demo/app:v1')
    const l = image.layers[0]
    const err = await failure(s.openBlob({ ...l, size: l.size + 1 }))
    expect(err.code).toBe('content.size-mismatch')
  })
})

describe('media types', () => {
  it('Content-Type and body disagree -> ContentError', async () => {
    reg.faults.contentType = { v1: MediaType.dockerManifest }
    const err = await failure(source('REG/demo/app:v1').resolve())
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe('content.media-type-mismatch')
  })

  it('schema 1 and unknown manifest types are refused', async () => {
    reg.putManifest({ schemaVersion: 1, name: 'demo/app', tag: 's1', fsLayers: [] }, 'application/vnd.docker.distribution.manifest.v1+prettyjws', 's1')
    const s1 = await failure(source('REG/demo/app:s1').resolve())
    expect(s1).toBeInstanceOf(ContentError)
    expect(s1.code).toBe('content.unsupported-media-type')
    reg.putManifest({ schemaVersion: 2, mediaType: 'application/vnd.example.thing+json', config: image.manifest.config, layers: [] }, 'application/vnd.example.thing+json', 'odd')
    const odd = await failure(source('REG/demo/app:odd').resolve())
    expect(odd.code).toBe('content.unsupported-media-type')
    expect(odd.message).toContain('application/vnd.example.thing+json')
  })

  it('a config that is not an image config is refused', async () => {
    const m = { ...image.manifest, config: { ...image.manifest.config, mediaType: MediaType.ociLayerGzip } }
    reg.putManifest(m, MediaType.ociManifest, 'badconfig')
    const err = await failure(source('REG/demo/app:badconfig').resolve())
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe('content.unsupported-media-type')
  })
})

describe('image index', () => {
  function putIndex(tag: string, entries: Array<{ img: WrittenImage; arch: string; variant?: string }>): Digest {
    return reg.putManifest(
      {
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: entries.map((e) => ({
          mediaType: MediaType.ociManifest,
          digest: e.img.manifestDigest,
          size: Buffer.byteLength(JSON.stringify(e.img.manifest)),
          platform: { os: 'linux', architecture: e.arch, ...(e.variant ? { variant: e.variant } : {}) },
        })),
      },
      MediaType.ociIndex,
      tag,
    )
  }

  it("picks the host's platform", async () => {
    const idx = putIndex('multi', [
      { img: other, arch: OTHER_ARCH },
      { img: image, arch: hostArchitecture() },
    ])
    const r = await source('REG/demo/app:multi').resolve()
    expect(r.topDigest).toBe(idx)
    expect(r.manifestDigest).toBe(image.manifestDigest)
    const byDigest = await source(`REG/demo/app@${idx}`).resolve()
    expect(byDigest.manifestDigest).toBe(image.manifestDigest)
  })

  it('picks the platform asked for (option or argument), variant included', async () => {
    putIndex('multi', [
      { img: image, arch: hostArchitecture() },
      { img: other, arch: OTHER_ARCH, ...(OTHER_ARCH === 'arm64' ? { variant: 'v8' } : {}) },
    ])
    const viaOption = await source('REG/demo/app:multi', { platform: { os: 'linux', architecture: OTHER_ARCH } }).resolve()
    expect(viaOption.manifestDigest).toBe(other.manifestDigest)
    const viaArg = await source('REG/demo/app:multi').resolve({ os: 'linux', architecture: OTHER_ARCH })
    expect(viaArg.manifestDigest).toBe(other.manifestDigest)
  })

  it('no matching platform -> NotFoundError listing what is available', async () => {
    putIndex('multi', [
      { img: image, arch: 'riscv64' },
      { img: other, arch: 'arm', variant: 'v6' },
    ])
    const err = await failure(source('REG/demo/app:multi').resolve({ os: 'linux', architecture: 's390x' }))
    expect(err).toBeInstanceOf(NotFoundError)
    expect(err.code).toBe('image.platform-not-found')
    expect(err.message).toContain('linux/s390x')
    expect(err.message).toContain('linux/riscv64')
    expect(err.message).toContain('linux/arm/v6')
    const variant = await failure(source('REG/demo/app:multi').resolve({ os: 'linux', architecture: 'arm', variant: 'v7' }))
    expect(variant.code).toBe('image.platform-not-found')
  })

  it('an index entry whose bytes differ from its digest is refused', async () => {
    putIndex('multi', [{ img: image, arch: hostArchitecture() }])
    reg.faults.wrongBytes = [image.manifestDigest]
    const err = await failure(source('REG/demo/app:multi').resolve())
    expect(err.code).toBe('content.digest-mismatch')
  })
})
