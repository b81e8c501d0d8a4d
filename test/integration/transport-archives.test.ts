/**
 * The on-disk transports against what skopeo writes: a layout made with
 * writeOciLayout, copied by `skopeo copy` to oci-archive:, docker-archive:
 * and dir:, opened with openImageSource, resolved, and every blob streamed
 * through its verification. Plus: `images pull oci-archive:…` then
 * `images checkout` gives the same tree as pulling the same image from the
 * real registry.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { Digest, MediaType } from '../../src/oci/types'
import type { OpsContext } from '../../src/ops/context'
import { checkoutImage, pull } from '../../src/ops/images'
import { openImageSource } from '../../src/transports/open'
import { compareTrees } from '../helpers/tree-compare'
import { pushLayout, registrySkipReason, RunningRegistry, SKOPEO_BIN, startRegistry } from '../helpers/registry'

const execFileP = promisify(execFile)
const skip = existsSync(SKOPEO_BIN) ? undefined : `${SKOPEO_BIN} not installed`
const registrySkip = registrySkipReason()

async function skopeo(...args: string[]): Promise<void> {
  await execFileP(SKOPEO_BIN, ['--insecure-policy', ...args], { timeout: 60_000 })
}

async function sha256Of(stream: NodeJS.ReadableStream): Promise<Digest> {
  const h = createHash('sha256')
  for await (const c of stream) h.update(c as Buffer)
  return `sha256:${h.digest('hex')}` as Digest
}

function ctxFor(root: string): OpsContext {
  return {
    paths: {
      stateDir: join(root, 'state'),
      storeDir: join(root, 'state/store'),
      containersDir: join(root, 'state/containers'),
      unitDir: join(root, 'units'),
      tmpfilesDir: join(root, 'tmpfiles'),
      templatesDir: join(root, 'templates'),
    },
    systemd: () => Promise.reject(new Error('no systemd in this test')),
    tmpfiles: () => Promise.resolve(),
    reporter: { info: () => {}, warn: () => {} },
  }
}

describe.skipIf(skip)(`archives written by skopeo${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string
  let layout: string
  let img: WrittenImage
  const cleanup: string[] = []

  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-transport-it-'))
    cleanup.push(dir)
    layout = join(dir, 'layout')
    ;[img] = await writeOciLayout(layout, [
      {
        tag: 'v1',
        layers: [
          [
            { path: 'etc/', type: 'directory' },
            { path: 'etc/os-release', content: 'ID=sysctr-test\n' },
            { path: 'usr/', type: 'directory' },
            { path: 'usr/bin/', type: 'directory' },
            { path: 'usr/bin/app', content: Buffer.alloc(300_000, 7), mode: 0o755 },
          ],
          [
            { path: 'etc/hostname', content: 'archive\n' },
            { path: 'usr/bin/tool', type: 'symlink', linkname: 'app' },
            { path: 'long/' + 'x'.repeat(120) + '/file', content: 'long name\n' },
          ],
        ],
        config: { Cmd: ['/usr/bin/app'] },
      },
    ])
    await skopeo('copy', `oci:${layout}:v1`, `oci-archive:${join(dir, 'app-oci.tar')}:v1`)
    await skopeo('copy', `oci:${layout}:v1`, `docker-archive:${join(dir, 'app-docker.tar')}:example.com/demo/app:v1`)
    await skopeo('copy', `oci:${layout}:v1`, `dir:${join(dir, 'app-dir')}`)
  }, 60_000)
  afterAll(async () => {
    for (const d of cleanup) await fsp.rm(d, { recursive: true, force: true })
  })

  const inputs = () => [
    { input: `oci:${layout}:v1`, sameManifest: true },
    { input: `oci-archive:${join(dir, 'app-oci.tar')}:v1`, sameManifest: true },
    { input: `dir:${join(dir, 'app-dir')}`, sameManifest: true },
    { input: `docker-archive:${join(dir, 'app-docker.tar')}:example.com/demo/app:v1`, sameManifest: false },
    { input: `docker-archive:${join(dir, 'app-docker.tar')}`, sameManifest: false },
  ]

  it('resolves each transport and streams every blob verified', async () => {
    for (const { input, sameManifest } of inputs()) {
      const opened = await openImageSource(input)
      try {
        const r = await opened.source.resolve()
        if (sameManifest) expect(r.manifestDigest, input).toBe(img.manifestDigest)
        expect(r.config.rootfs?.diff_ids, input).toEqual(img.diffIDs)
        expect(r.config.config?.Cmd).toEqual(['/usr/bin/app'])
        expect(r.manifest.layers).toHaveLength(2)
        for (const l of [r.manifest.config, ...r.manifest.layers]) {
          expect(await sha256Of(await opened.source.openBlob(l)), `${input} ${l.digest}`).toBe(l.digest)
        }
        if (!sameManifest) {
          // docker-archive: layers are the uncompressed tars, named by their diffIDs
          expect(r.manifest.layers.map((l) => l.digest)).toEqual(img.diffIDs)
          expect(r.manifest.layers.every((l) => l.mediaType === MediaType.ociLayer)).toBe(true)
        }
      } finally {
        await opened.source.close()
      }
    }
  })

  it('names the store ref and the default container name from the input', async () => {
    const a = await openImageSource(`oci-archive:${join(dir, 'app-oci.tar')}:v1`)
    expect(a.refName).toBe(`oci-archive:${join(dir, 'app-oci.tar')}:v1`)
    expect(a.defaultName).toBe('app-oci')
    const d = await openImageSource(`docker-archive:${join(dir, 'app-docker.tar')}:example.com/demo/app:v1`)
    expect(d.defaultName).toBe('app')
    await a.source.close()
    await d.source.close()
  })

  it('refuses a blob whose bytes do not match its descriptor', async () => {
    const opened = await openImageSource(`oci-archive:${join(dir, 'app-oci.tar')}:v1`)
    const r = await opened.source.resolve()
    const l = r.manifest.layers[1]
    const lie = { ...l, digest: r.manifest.layers[0].digest }
    await expect(opened.source.openBlob(lie)).rejects.toMatchObject({ code: 'content.size-mismatch' })
    await opened.source.close()
    // a copy of the layout with one byte of a layer changed: same size, other digest
    const bad = join(dir, 'tampered')
    await fsp.cp(layout, bad, { recursive: true })
    const blob = join(bad, 'blobs/sha256', l.digest.slice(7))
    const bytes = await fsp.readFile(blob)
    bytes[bytes.length - 1] ^= 0xff
    await fsp.writeFile(blob, bytes)
    const tampered = await openImageSource(`oci:${bad}:v1`)
    const t = await tampered.source.resolve()
    await expect(sha256Of(await tampered.source.openBlob(t.manifest.layers[1]))).rejects.toMatchObject({ code: 'content.digest-mismatch' })
    await tampered.source.close()
  })

  it('names the tags when the tag is missing', async () => {
    const opened = await openImageSource(`oci-archive:${join(dir, 'app-oci.tar')}:nope`)
    const err = await opened.source.resolve().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SysctrError)
    expect((err as SysctrError).code).toBe('image.not-found')
    expect((err as SysctrError).message).toContain('v1')
    const missing = await openImageSource(`docker-archive:${join(dir, 'nothing.tar')}`).catch((e: unknown) => e)
    expect((missing as SysctrError).code).toBe('image.not-found')
  })

  it.skipIf(registrySkip)(`images pull oci-archive: checks out the same tree as a pull from the registry${registrySkip ? ` (skipped: ${registrySkip})` : ''}`, async () => {
    let reg: RunningRegistry | undefined
    try {
      reg = await startRegistry()
      await pushLayout(layout, 'v1', `${reg.host}/demo/app:v1`)
      const ctx = ctxFor(join(dir, 'ops'))
      const fromArchive = await pull(ctx, `oci-archive:${join(dir, 'app-oci.tar')}:v1`)
      const fromRegistry = await pull(ctx, `${reg.host}/demo/app:v1`, { tlsVerify: false })
      expect(fromArchive.manifestDigest).toBe(fromRegistry.manifestDigest)
      const fromDocker = await pull(ctx, `docker-archive:${join(dir, 'app-docker.tar')}`)
      await checkoutImage(ctx, `oci-archive:${join(dir, 'app-oci.tar')}:v1`, join(dir, 'co-archive'))
      await checkoutImage(ctx, `${reg.host}/demo/app:v1`, join(dir, 'co-registry'))
      await checkoutImage(ctx, `docker-archive:${join(dir, 'app-docker.tar')}`, join(dir, 'co-docker'))
      expect(await compareTrees(join(dir, 'co-registry'), join(dir, 'co-archive'))).toBeUndefined()
      expect(await compareTrees(join(dir, 'co-registry'), join(dir, 'co-docker'))).toBeUndefined()
      expect(await fsp.readFile(join(dir, 'co-archive/etc/hostname'), 'utf8')).toBe('archive\n')
    } finally {
      await reg?.stop()
    }
  }, 60_000)
})
