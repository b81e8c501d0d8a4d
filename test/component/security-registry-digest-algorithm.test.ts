/**
 * Hostile registry, class "an algorithm other than sha256/sha512": digests
 * with sha384, md5 or upper-case hex, in a reference, a manifest's layer or
 * config descriptor and an index entry. Refused naming the algorithm (a
 * reference: UsageError `reference.invalid`; content: ContentError
 * `content.bad-manifest`, exit 6), nothing fetched by such a digest, the
 * store unchanged. sha512 is accepted by the registry client end to end (a
 * fake registry whose blobs are all addressed by sha512: resolved, every blob
 * streamed through a sha512 check, a tampered one refused), and by the real
 * docker-registry, and pulled into the store (blobs/sha512/, layers/sha512/):
 * it checks out and fsck is clean.
 * Protections: digestProblem (src/reference/digest.ts), checkDescriptor,
 * RegistryClient.getBlob, DigestStream.
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { ContentError, UsageError } from '../../src/errors'
import { hostArchitecture } from '../../src/transports/registry/platform'
import { Descriptor, Digest, ImageManifest, MediaType } from '../../src/oci/types'
import { parseReference } from '../../src/reference/reference'
import { fsck } from '../../src/store/fsck'
import { registrySkipReason } from '../helpers/registry'
import { failure, Harness, harnessPerTest, realRegistryWithImage, storeFiles } from '../helpers/security-registry'

let h: Harness
harnessPerTest((x) => (h = x))

const BAD: Array<[string, string]> = [
  ['sha384', `sha384:${'ab'.repeat(48)}`],
  ['md5', `md5:${'ab'.repeat(16)}`],
  ['upper-case', `sha256:${'AB'.repeat(32)}`],
]

function hexOf(d: Digest): string {
  return d.slice(d.indexOf(':') + 1)
}

async function blobBytes(d: Digest): Promise<Buffer> {
  return fsp.readFile(join(h.dir, 'layout', 'blobs', 'sha256', hexOf(d)))
}

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of s) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

/** The harness image re-addressed by sha512 (config, layers, manifest), tagged s512 in the fake registry. */
async function sha512Image(): Promise<{ manifest: ImageManifest; digest: Digest; bytes: Map<string, Buffer> }> {
  const bytes = new Map<string, Buffer>()
  const re = async (d: Descriptor): Promise<Descriptor> => {
    const b = await blobBytes(d.digest)
    const nd = h.reg.putBlob(b, 'sha512')
    bytes.set(nd, b)
    return { ...d, digest: nd }
  }
  const manifest: ImageManifest = { ...h.image.manifest, config: await re(h.image.manifest.config), layers: await Promise.all(h.image.manifest.layers.map(re)) }
  const digest = h.reg.putManifest(manifest, MediaType.ociManifest, 's512', 'sha512')
  return { manifest, digest, bytes }
}

describe('digests of other algorithms: refused naming the algorithm', () => {
  it('in a reference (usage error before any request)', () => {
    for (const [name, d] of BAD) {
      let err: unknown
      try {
        parseReference(`${h.reg.host}/demo/app@${d}`)
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(UsageError)
      expect((err as UsageError).code).toBe('reference.invalid')
      expect((err as UsageError).message).toMatch(name === 'upper-case' ? /lower-case/ : new RegExp(`"${name}"`))
    }
  })

  it('a layer descriptor: refused before any blob is fetched', async () => {
    for (const [name, d] of BAD) {
      const m = structuredClone(h.image.manifest)
      m.layers[1].digest = d as Digest
      h.reg.putManifest(m, MediaType.ociManifest, 'alg')
      const err = await h.refused('REG/demo/app:alg', ContentError, 'content.bad-manifest')
      expect(err.exitCode).toBe(6)
      expect(err.message).toMatch(name === 'upper-case' ? /lower-case/ : new RegExp(`"${name}"`))
    }
    expect(h.reg.requests.filter((q) => q.path.includes('/blobs/'))).toEqual([])
  })

  it('the config descriptor', async () => {
    for (const [name, d] of BAD) {
      const m = structuredClone(h.image.manifest)
      m.config.digest = d as Digest
      h.reg.putManifest(m, MediaType.ociManifest, 'alg')
      const err = await h.refused('REG/demo/app:alg', ContentError, 'content.bad-manifest')
      expect(err.message).toMatch(name === 'upper-case' ? /lower-case/ : new RegExp(`"${name}"`))
    }
  })

  it('an index entry', async () => {
    for (const [name, d] of BAD) {
      h.reg.putManifest(
        { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociManifest, digest: d, size: 10, platform: { os: 'linux', architecture: hostArchitecture() } }] },
        MediaType.ociIndex,
        'alg',
      )
      const err = await h.refused('REG/demo/app:alg', ContentError, 'content.bad-manifest')
      expect(err.message).toMatch(name === 'upper-case' ? /lower-case/ : new RegExp(`"${name}"`))
      expect(h.reg.requests.filter((q) => q.path.includes(d))).toEqual([])
    }
  })
})

/**
 * Pull `ref` (an image whose config and layers are sha512), then: its blobs and
 * layer records are under blobs/<alg>, layers/sha512, it checks out, fsck is clean.
 * `digest`: the manifest digest expected (undefined: whatever the registry names it).
 */
async function expectPulledSha512(ref: string, digest: Digest | undefined, manifest: ImageManifest): Promise<void> {
  const r = await h.pull(ref)
  if (digest) expect(r.manifestDigest).toBe(digest)
  digest = r.manifestDigest
  expect(r.configDigest).toBe(manifest.config.digest)
  const files = await storeFiles(h.storeDir)
  const alg = digest.slice(0, digest.indexOf(':'))
  expect(files).toContain(join('blobs', alg, hexOf(digest)))
  expect(files).toContain(join('blobs', 'sha512', hexOf(manifest.config.digest)))
  for (const l of manifest.layers) expect(files).toContain(join('layers', 'sha512', hexOf(l.digest)))
  expect(files.filter((f) => f.startsWith('layers/sha256/'))).toEqual([])
  const rec = await h.store.getImageRef('pulled')
  expect(rec).toMatchObject({ manifestDigest: digest, configDigest: manifest.config.digest, layers: manifest.layers.map((l) => l.digest) })
  const layer = await h.store.getLayer(manifest.layers[1].digest)
  expect(layer?.diffID).toBe(h.image.diffIDs[1]) // the diffID stays sha256
  const co = join(h.dir, 'co')
  await h.store.checkout(rec!.commit, co)
  expect(await fsp.readFile(join(co, 'etc/hello'), 'utf8')).toBe('hello\n')
  expect((await fsp.readFile(join(co, 'usr/bin/app'))).equals(Buffer.alloc(200_000, 7))).toBe(true)
  expect((await fsck(h.store)).problems).toEqual([])
  // pulled again: every layer reused
  const again = await h.pull(ref)
  expect(again).toMatchObject({ commit: rec!.commit, layersFetched: 0 })
}

describe('sha512', () => {
  it('resolves by tag and by digest; every blob is streamed through a sha512 check', async () => {
    const img = await sha512Image()
    for (const ref of ['REG/demo/app:s512', `REG/demo/app@${img.digest}`]) {
      const s = h.source(ref)
      const r = await s.resolve()
      expect(r.manifestDigest).toBe(img.digest)
      expect(r.manifest.config.digest).toBe(img.manifest.config.digest)
      expect(`sha512:${createHash('sha512').update(r.configBytes).digest('hex')}`).toBe(img.manifest.config.digest)
      for (const l of r.manifest.layers) {
        expect(l.digest.startsWith('sha512:')).toBe(true)
        expect((await collect(await s.openBlob(l))).equals(img.bytes.get(l.digest)!)).toBe(true)
      }
    }
  })

  it('a tampered sha512 layer, config or manifest is refused naming the sha512 digest', async () => {
    const img = await sha512Image()
    const layer = img.manifest.layers[1]
    h.reg.faults.wrongBytes = [layer.digest]
    const s = h.source('REG/demo/app:s512')
    const r = await s.resolve()
    const err = await failure(collect(await s.openBlob(r.manifest.layers[1])))
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe('content.digest-mismatch')
    expect(err.data?.expected).toBe(layer.digest)
    expect(String(err.data?.found)).toMatch(/^sha512:/)
    for (const d of [img.manifest.config.digest, img.digest]) {
      h.reg.faults.wrongBytes = [d]
      const e = await failure(h.source('REG/demo/app:s512').resolve())
      expect(e.code).toBe('content.digest-mismatch')
      expect(e.message).toContain(d)
    }
  })

  it('a sha512 image is pulled into the store (blobs/sha512, layers/sha512), checks out, and fsck is clean', async () => {
    const img = await sha512Image()
    await expectPulledSha512(`REG/demo/app:s512`, img.digest, img.manifest)
  })

  it('a tampered sha512 layer is refused by the pull: no ref, no record of that layer, fsck clean', async () => {
    const img = await sha512Image()
    const bad = img.manifest.layers[1].digest
    h.reg.faults.wrongBytes = [bad]
    const err = await failure(h.pull('REG/demo/app:s512'))
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe('content.digest-mismatch')
    expect(err.message).toContain(bad)
    expect(await h.store.getImageRef('pulled')).toBeUndefined()
    expect(await h.store.getLayer(bad)).toBeUndefined()
    expect((await fsck(h.store)).problems).toEqual([])
  })
})

describe.skipIf(registrySkipReason() !== undefined)('the real registry (docker-registry 2.8)', () => {
  async function upload(base: string, bytes: Buffer, digest: string): Promise<number> {
    const start = await fetch(`${base}/v2/demo/app/blobs/uploads/`, { method: 'POST' })
    await start.arrayBuffer()
    const loc = new URL(start.headers.get('location')!, base)
    loc.searchParams.set('digest', digest)
    const put = await fetch(loc, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: bytes })
    await put.arrayBuffer()
    return put.status
  }

  it('stores a sha384 layer and a manifest naming it; sysctr refuses the pull naming sha384', async () => {
    const real = await realRegistryWithImage(h)
    try {
      const data = await blobBytes(h.image.layers[1].digest)
      const d384 = `sha384:${createHash('sha384').update(data).digest('hex')}` as Digest
      expect(await upload(real.url, data, d384)).toBe(201)
      const m = structuredClone(h.image.manifest)
      m.layers[1].digest = d384
      const put = await real.putManifest('s384', Buffer.from(JSON.stringify(m)), MediaType.ociManifest)
      expect(put.status, put.body).toBe(201)
      const err = await h.refused(`${real.host}/demo/app:s384`, ContentError, 'content.bad-manifest')
      expect(err.message).toContain('"sha384"')
    } finally {
      await real.stop()
    }
  })

  it('stores sha512 blobs; sysctr resolves a sha512 image from it and verifies every blob', async () => {
    const real = await realRegistryWithImage(h)
    try {
      const bytes = new Map<string, Buffer>()
      const re = async (d: Descriptor): Promise<Descriptor> => {
        const data = await blobBytes(d.digest)
        const nd = `sha512:${createHash('sha512').update(data).digest('hex')}` as Digest
        expect(await upload(real.url, data, nd)).toBe(201)
        bytes.set(nd, data)
        return { ...d, digest: nd }
      }
      const manifest = { ...h.image.manifest, config: await re(h.image.manifest.config), layers: await Promise.all(h.image.manifest.layers.map(re)) }
      const put = await real.putManifest('s512', Buffer.from(JSON.stringify(manifest)), MediaType.ociManifest)
      expect(put.status, put.body).toBe(201)
      const s = h.source(`${real.host}/demo/app:s512`)
      const r = await s.resolve()
      expect(r.manifest.config.digest).toBe(manifest.config.digest)
      for (const l of r.manifest.layers) expect((await collect(await s.openBlob(l))).equals(bytes.get(l.digest)!)).toBe(true)
      // and into the store (docker-registry names manifests by sha256 only: the config and layers are sha512)
      await expectPulledSha512(`${real.host}/demo/app:s512`, undefined, manifest)
    } finally {
      await real.stop()
    }
  })
})
