/**
 * sha512-addressed content in the store: blobs under blobs/sha512/<hex> and
 * layer records under layers/sha512/<hex>, verified with sha512 on put, get,
 * import and fsck; gc keys them by digest. The store's own names (objects,
 * diffIDs) stay sha256.
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ContentError } from '../../src/errors'
import { LayerEntry, writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { Descriptor, Digest, ImageManifest } from '../../src/oci/types'
import { fsck } from '../../src/store/fsck'
import { gc, listStore } from '../../src/store/gc'
import { LayerRecord, Store } from '../../src/store/store'

let dir: string
let store: Store
beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-store-sha512-'))
  store = await Store.open(join(dir, 'store'))
})
afterEach(async () => {
  await store.close()
  await fsp.rm(dir, { recursive: true, force: true })
})

const sha512 = (b: Buffer): Digest => `sha512:${createHash('sha512').update(b).digest('hex')}` as Digest
const hexOf = (d: Digest): string => d.slice(d.indexOf(':') + 1)

const d = (path: string): LayerEntry => ({ path, type: 'directory', mode: 0o755 })
const f = (path: string, content: string, mode = 0o644): LayerEntry => ({ path, type: 'file', content, mode })

interface Image512 {
  img: WrittenImage
  manifestDigest: Digest
  configDigest: Digest
  manifestBytes: Buffer
  configBytes: Buffer
  layers: { desc: Descriptor; bytes: Buffer }[]
}

/** An image written by layout-writer (sha256), every blob re-addressed by sha512. */
async function image512(tag: string, layers: LayerEntry[][]): Promise<Image512> {
  const layout = join(dir, `oci-${tag}`)
  const [img] = await writeOciLayout(layout, [{ tag, layers }])
  const read = (dg: Digest) => fsp.readFile(join(layout, 'blobs', 'sha256', hexOf(dg)))
  const configBytes = await read(img.configDigest)
  const ls = await Promise.all(
    img.layers.map(async (desc) => {
      const bytes = await read(desc.digest)
      return { desc: { ...desc, digest: sha512(bytes) }, bytes }
    }),
  )
  const manifest: ImageManifest = { ...img.manifest, config: { ...img.manifest.config, digest: sha512(configBytes) }, layers: ls.map((l) => l.desc) }
  const manifestBytes = Buffer.from(JSON.stringify(manifest))
  return { img, manifestDigest: sha512(manifestBytes), configDigest: sha512(configBytes), manifestBytes, configBytes, layers: ls }
}

/** What a pull does: blobs, layers, image commit, ref. */
async function pull(name: string, i: Image512): Promise<{ commit: string; records: LayerRecord[] }> {
  await store.putBlob(i.configDigest, i.configBytes)
  await store.putBlob(i.manifestDigest, i.manifestBytes)
  const records: LayerRecord[] = []
  for (const l of i.layers) records.push((await store.importLayer(l.desc, Readable.from([l.bytes]))).record)
  const { commit } = await store.commitImage({ manifestDigest: i.manifestDigest, configDigest: i.configDigest, layers: records })
  await store.setImageRef(name, { reference: name, manifestDigest: i.manifestDigest, configDigest: i.configDigest, commit, layers: records.map((r) => r.blobDigest) })
  return { commit, records }
}

const base: LayerEntry[] = [d('etc/'), f('etc/os-release', 'ID=test\n')]

describe('sha512 blobs', () => {
  it('putBlob/getBlob keep a sha512 blob under blobs/sha512 and verify it with sha512', async () => {
    const bytes = Buffer.from('{"hello":"sha512"}')
    const dg = sha512(bytes)
    await store.putBlob(dg, bytes)
    await store.putBlob(dg, bytes) // idempotent
    expect(await fsp.readFile(join(store.root, 'blobs', 'sha512', hexOf(dg)))).toEqual(bytes)
    expect(await store.getBlob(dg)).toEqual(bytes)
    expect(await store.getBlob(sha512(Buffer.from('other')))).toBeUndefined()

    const wrong = await store.putBlob(sha512(Buffer.from('something else')), bytes).catch((e: unknown) => e)
    expect(wrong).toBeInstanceOf(ContentError)
    expect((wrong as ContentError).code).toBe('content.digest-mismatch')
    expect(String((wrong as ContentError).data?.found)).toBe(dg)

    await fsp.writeFile(join(store.root, 'blobs', 'sha512', hexOf(dg)), 'tampered')
    await expect(store.getBlob(dg)).rejects.toMatchObject({ code: 'store.corrupt-blob' })
  })

  it('other algorithms and malformed digests stay refused', async () => {
    for (const bad of [`sha384:${'ab'.repeat(48)}`, `sha512:${'AB'.repeat(64)}`, `sha512:${'ab'.repeat(32)}`, `md5:${'ab'.repeat(16)}`])
      await expect(store.putBlob(bad as Digest, Buffer.from('x'))).rejects.toMatchObject({ code: 'content.unsupported-digest' })
  })
})

describe('sha512 layers', () => {
  it('importLayer of a sha512-addressed gzip layer: record under layers/sha512, sha256 diffID, checks out', async () => {
    const i = await image512('a', [base, [d('usr/'), f('usr/hello', 'hi', 0o755)]])
    const l = i.layers[1]
    const r = await store.importLayer(l.desc, Readable.from([l.bytes]))
    expect(r.existing).toBe(false)
    expect(r.blobDigest).toBe(l.desc.digest)
    expect(r.diffID).toBe(i.img.diffIDs[1])
    expect(JSON.parse(await fsp.readFile(join(store.root, 'layers', 'sha512', hexOf(l.desc.digest)), 'utf8'))).toMatchObject({ blobDigest: l.desc.digest })
    expect(await store.getLayer(l.desc.digest)).toEqual(r.record)
    // imported once
    expect((await store.importLayer(l.desc, Readable.from([l.bytes]))).existing).toBe(true)

    const { commit } = await pull('a', i)
    await store.checkout(commit, join(dir, 'co'))
    expect(await fsp.readFile(join(dir, 'co', 'usr/hello'), 'utf8')).toBe('hi')
    expect(await fsp.readFile(join(dir, 'co', 'etc/os-release'), 'utf8')).toBe('ID=test\n')
    expect((await fsck(store)).problems).toEqual([])
  })

  it('a layer whose bytes do not match its sha512 digest is refused, nothing recorded', async () => {
    const i = await image512('a', [base])
    const other = sha512(Buffer.from('not this layer'))
    const err = await store.importLayer({ ...i.layers[0].desc, digest: other }, Readable.from([i.layers[0].bytes])).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ContentError)
    expect((err as ContentError).code).toBe('content.digest-mismatch')
    expect((err as ContentError).data).toEqual({ expected: other, found: i.layers[0].desc.digest })
    expect(await store.getLayer(other)).toBeUndefined()
    expect(await fsp.readdir(join(store.root, 'layers', 'sha512'))).toEqual([])
  })
})

describe('gc and fsck with sha512 content', () => {
  it('gc removes an unreferenced sha512 blob and keeps the referenced ones; then everything once the ref goes', async () => {
    const i = await image512('a', [base, [f('app', 'A')]])
    await pull('a', i)
    const stray = Buffer.from('{"unreferenced":true}')
    await store.putBlob(sha512(stray), stray)
    const r = await gc(store)
    expect(r.blobsRemoved).toBe(1)
    expect(r.layersRemoved).toBe(0)
    const left = await listStore(store.root)
    expect(left.blobs.sort()).toEqual([i.configDigest, i.manifestDigest].sort())
    expect(left.layers.sort()).toEqual(i.layers.map((l) => l.desc.digest).sort())
    expect(await store.getBlob(i.manifestDigest)).toEqual(i.manifestBytes)
    expect((await fsck(store)).problems).toEqual([])

    await store.deleteImageRef('a')
    const r2 = await gc(store)
    expect(r2).toMatchObject({ blobsRemoved: 2, layersRemoved: 2 })
    expect(await fsp.readdir(join(store.root, 'blobs', 'sha512'))).toEqual([])
    expect(await fsp.readdir(join(store.root, 'layers', 'sha512'))).toEqual([])
    expect((await listStore(store.root)).objects.size).toBe(0)
  })

  it('a sha256 and a sha512 image side by side: gc of one keeps the other', async () => {
    const i = await image512('a', [base])
    await pull('a', i)
    // the same layer bytes under sha256 too
    const l = i.img.layers[0]
    const b = await store.importLayer(l, Readable.from([i.layers[0].bytes]))
    expect(b.diffID).toBe(i.img.diffIDs[0])
    const r = await gc(store)
    expect(r.layersRemoved).toBe(1) // the unreferenced sha256 record
    expect(await store.getLayer(l.digest)).toBeUndefined()
    expect(await store.getLayer(i.layers[0].desc.digest)).toBeDefined()
    expect((await fsck(store)).problems).toEqual([])
  })

  it('fsck detects a tampered sha512 blob and a wrong sha512 layer record; --repair removes them and the ref', async () => {
    const i = await image512('a', [base, [f('app', 'A')]])
    await pull('a', i)
    expect((await fsck(store)).problems).toEqual([])
    const blobRel = join('blobs', 'sha512', hexOf(i.configDigest))
    await fsp.appendFile(join(store.root, blobRel), ' ')
    const layerRel = join('layers', 'sha512', hexOf(i.layers[1].desc.digest))
    const rec = JSON.parse(await fsp.readFile(join(store.root, layerRel), 'utf8'))
    await fsp.writeFile(join(store.root, layerRel), JSON.stringify({ ...rec, blobDigest: i.layers[0].desc.digest }))

    const r = await fsck(store)
    expect(r.problems).toContainEqual(expect.objectContaining({ kind: 'corrupt-blob', path: blobRel }))
    expect(r.problems).toContainEqual(expect.objectContaining({ kind: 'bad-layer-record', path: layerRel }))
    expect(r.remaining).toBeGreaterThan(0)

    const fixed = await fsck(store, { repair: true })
    const removed = fixed.removed.map((x) => x.path)
    expect(removed).toEqual(expect.arrayContaining([blobRel, layerRel, join('refs', 'images', 'a')]))
    expect(fixed.remaining).toBe(0)
    expect((await fsck(store)).problems).toEqual([])
    // pulled again, whole again
    await pull('a', i)
    expect((await fsck(store)).problems).toEqual([])
  })

  it('fsck reports an image ref naming a missing sha512 blob or layer record', async () => {
    const i = await image512('a', [base])
    await pull('a', i)
    await fsp.rm(join(store.root, 'blobs', 'sha512', hexOf(i.manifestDigest)))
    await fsp.rm(join(store.root, 'layers', 'sha512', hexOf(i.layers[0].desc.digest)))
    const r = await fsck(store)
    const missing = r.problems.filter((p) => p.kind === 'missing-object').map((p) => p.what)
    expect(missing).toContainEqual(expect.stringContaining(`names blob ${i.manifestDigest}`))
    expect(missing).toContainEqual(expect.stringContaining(`names layer ${i.layers[0].desc.digest}`))
  })

  it('a store without sha512 dirs (made before this change) is valid: empty, and open creates them', async () => {
    await fsp.rm(join(store.root, 'blobs', 'sha512'), { recursive: true })
    await fsp.rm(join(store.root, 'layers', 'sha512'), { recursive: true })
    expect((await fsck(store)).problems).toEqual([])
    expect(await gc(store)).toMatchObject({ objectsRemoved: 0 })
    expect(await store.getBlob(sha512(Buffer.from('x')))).toBeUndefined()
    await store.close()
    store = await Store.open(join(dir, 'store'))
    expect(await fsp.readFile(join(store.root, 'format'), 'utf8')).toBe('sysctr-store 1\n')
    expect(await fsp.readdir(join(store.root, 'blobs'))).toEqual(['sha256', 'sha512'])
  })
})
