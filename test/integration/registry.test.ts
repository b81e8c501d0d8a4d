/**
 * RegistrySource against the real registry (docker-registry 2.8), images
 * pushed with skopeo from layouts written by writeOciLayout.
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { hostArchitecture } from '../../src/transports/registry/platform'
import { Digest, ImageIndex, MediaType } from '../../src/oci/types'
import { parseReference } from '../../src/reference/reference'
import { openRegistrySource, RegistrySourceOptions } from '../../src/transports/registry'
import { pushLayout, registrySkipReason, RunningRegistry, startRegistry } from '../helpers/registry'

const skip = registrySkipReason()
const OTHER_ARCH = hostArchitecture() === 'arm64' ? 'amd64' : 'arm64'
const OPTS: RegistrySourceOptions = { tlsVerify: false, timeoutMs: 10_000 }

async function sha256Of(stream: Readable): Promise<Digest> {
  const h = createHash('sha256')
  for await (const c of stream) h.update(c as Buffer)
  return `sha256:${h.digest('hex')}` as Digest
}

async function withSource<T>(ref: string, opts: RegistrySourceOptions, fn: (s: ReturnType<typeof openRegistrySource>) => Promise<T>): Promise<T> {
  const s = openRegistrySource(parseReference(ref), opts)
  try {
    return await fn(s)
  } finally {
    await s.close()
  }
}

describe.skipIf(skip)(`real registry${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let reg: RunningRegistry
  let dir: string
  let single: WrittenImage
  let hostImg: WrittenImage
  let otherImg: WrittenImage
  let indexDigest: Digest

  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-registry-it-'))
    reg = await startRegistry()

    const one = join(dir, 'single')
    ;[single] = await writeOciLayout(one, [
      {
        tag: 'v1',
        layers: [
          [{ path: 'etc/', type: 'directory' }, { path: 'etc/os-release', content: 'ID=sysctr-test\n' }],
          [{ path: 'usr/bin/app', content: Buffer.alloc(200_000, 1), mode: 0o755 }],
        ],
        config: { Cmd: ['/usr/bin/app'] },
      },
    ])
    await pushLayout(one, 'v1', `${reg.host}/demo/app:v1`)

    // A multi-platform image: two manifests and an OCI index naming them, tagged "multi" in index.json.
    const multi = join(dir, 'multi')
    ;[hostImg, otherImg] = await writeOciLayout(multi, [
      { tag: 'host', layers: [[{ path: 'arch', content: hostArchitecture() }]] },
      { tag: 'other', layers: [[{ path: 'arch', content: OTHER_ARCH }]], platform: { os: 'linux', architecture: OTHER_ARCH } },
    ])
    const sizeOf = (w: WrittenImage) => Buffer.byteLength(JSON.stringify(w.manifest))
    const index: ImageIndex = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        { mediaType: MediaType.ociManifest, digest: otherImg.manifestDigest, size: sizeOf(otherImg), platform: { os: 'linux', architecture: OTHER_ARCH } },
        { mediaType: MediaType.ociManifest, digest: hostImg.manifestDigest, size: sizeOf(hostImg), platform: { os: 'linux', architecture: hostArchitecture() } },
      ],
    }
    const indexBytes = Buffer.from(JSON.stringify(index))
    indexDigest = `sha256:${createHash('sha256').update(indexBytes).digest('hex')}` as Digest
    await fsp.writeFile(join(multi, 'blobs', 'sha256', indexDigest.slice(7)), indexBytes)
    const layoutIndex = JSON.parse(await fsp.readFile(join(multi, 'index.json'), 'utf8')) as ImageIndex
    layoutIndex.manifests.push({
      mediaType: MediaType.ociIndex,
      digest: indexDigest,
      size: indexBytes.length,
      annotations: { 'org.opencontainers.image.ref.name': 'multi' },
    })
    await fsp.writeFile(join(multi, 'index.json'), JSON.stringify(layoutIndex))
    await pushLayout(multi, 'multi', `${reg.host}/demo/multi:latest`, { all: true })
  })

  afterAll(async () => {
    await reg?.stop()
    if (dir) await fsp.rm(dir, { recursive: true, force: true })
  })

  it('resolves by tag and streams every blob with the right digest', async () => {
    await withSource(`${reg.host}/demo/app:v1`, OPTS, async (s) => {
      const r = await s.resolve()
      expect(r.manifestDigest).toBe(single.manifestDigest)
      expect(r.topDigest).toBe(single.manifestDigest)
      expect(r.manifest.layers.map((l) => l.digest)).toEqual(single.layers.map((l) => l.digest))
      expect(r.manifest.layers.every((l) => l.mediaType === MediaType.ociLayerGzip)).toBe(true)
      expect(r.config.rootfs?.diff_ids).toEqual(single.diffIDs)
      expect(r.config.config?.Cmd).toEqual(['/usr/bin/app'])
      for (const d of [r.manifest.config, ...r.manifest.layers]) expect(await sha256Of(await s.openBlob(d))).toBe(d.digest)
    })
  })

  it('resolves by digest', async () => {
    await withSource(`${reg.host}/demo/app@${single.manifestDigest}`, OPTS, async (s) => {
      const r = await s.resolve()
      expect(r.manifestDigest).toBe(single.manifestDigest)
      expect(r.config.rootfs?.diff_ids).toEqual(single.diffIDs)
    })
  })

  it("picks the host's manifest from a multi-arch index pushed with skopeo --all", async () => {
    await withSource(`${reg.host}/demo/multi:latest`, OPTS, async (s) => {
      const r = await s.resolve()
      expect(r.topDigest).toBe(indexDigest)
      expect(r.manifestDigest).toBe(hostImg.manifestDigest)
      expect(r.config.architecture).toBe(hostArchitecture())
      const o = await s.resolve({ os: 'linux', architecture: OTHER_ARCH })
      expect(o.manifestDigest).toBe(otherImg.manifestDigest)
      for (const d of [o.manifest.config, ...o.manifest.layers]) expect(await sha256Of(await s.openBlob(d))).toBe(d.digest)
    })
  })

  it('maps the real registry errors: unknown tag, unknown repository, TLS', async () => {
    const codes: string[] = []
    for (const [ref, opts] of [
      [`${reg.host}/demo/app:nope`, OPTS],
      [`${reg.host}/demo/none:v1`, OPTS],
      [`${reg.host}/demo/app:v1`, { ...OPTS, tlsVerify: true }],
    ] as const) {
      const err = await withSource(ref, opts, (s) => s.resolve()).then(
        () => undefined,
        (e) => e as SysctrError,
      )
      expect(err).toBeInstanceOf(SysctrError)
      codes.push(err!.code)
    }
    expect(codes).toEqual(['image.not-found', 'image.not-found', 'registry.tls'])
  })

  describe('with htpasswd', () => {
    let secured: RunningRegistry
    const creds = { user: 'tester', password: 'sekr1t-pass' }

    beforeAll(async () => {
      secured = await startRegistry({ htpasswd: creds })
      await pushLayout(join(dir, 'single'), 'v1', `${secured.host}/demo/app:v1`, { credentials: creds })
    })
    afterAll(async () => {
      await secured?.stop()
    })

    it('pulls with Basic credentials, refuses without them', async () => {
      await withSource(`${secured.host}/demo/app:v1`, { ...OPTS, credentials: { username: creds.user, password: creds.password } }, async (s) => {
        const r = await s.resolve()
        expect(r.manifestDigest).toBe(single.manifestDigest)
        for (const d of r.manifest.layers) expect(await sha256Of(await s.openBlob(d))).toBe(d.digest)
      })
      const anon = await withSource(`${secured.host}/demo/app:v1`, OPTS, (s) => s.resolve()).catch((e) => e as SysctrError)
      expect((anon as SysctrError).code).toBe('registry.unauthorized')
      const wrong = await withSource(`${secured.host}/demo/app:v1`, { ...OPTS, credentials: { username: creds.user, password: 'bad-pass' } }, (s) =>
        s.resolve(),
      ).catch((e) => e as SysctrError)
      expect((wrong as SysctrError).code).toBe('registry.unauthorized')
      expect((wrong as SysctrError).message).not.toContain('bad-pass')
    })
  })
})
