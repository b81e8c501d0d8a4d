import { createReadStream, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LayerEntry, writeOciLayout } from '../../harness/oci-layout-writer'
import { fsck } from '../../src/store/fsck'
import { gc, listStore } from '../../src/store/gc'
import { processStartTime } from '../../src/store/lock'
import { LayerRecord, Store } from '../../src/store/store'

let dir: string
beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-gc-'))
})
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

const d = (path: string): LayerEntry => ({ path, type: 'directory', mode: 0o755 })
const f = (path: string, content: string): LayerEntry => ({ path, type: 'file', content, mode: 0o644 })

async function pull(store: Store, name: string, layers: LayerEntry[][], ref = true): Promise<string> {
  const layout = join(dir, `oci-${name}`)
  const [img] = await writeOciLayout(layout, [{ tag: name, layers }])
  const records: LayerRecord[] = []
  for (const desc of img.layers) records.push((await store.importLayer(desc, createReadStream(join(layout, 'blobs', 'sha256', desc.digest.slice(7))))).record)
  await store.putBlob(img.configDigest, await fsp.readFile(join(layout, 'blobs', 'sha256', img.configDigest.slice(7))))
  await store.putBlob(img.manifestDigest, await fsp.readFile(join(layout, 'blobs', 'sha256', img.manifestDigest.slice(7))))
  const { commit } = await store.commitImage({ manifestDigest: img.manifestDigest, configDigest: img.configDigest, layers: records })
  if (ref) await store.setImageRef(name, { reference: name, manifestDigest: img.manifestDigest, configDigest: img.configDigest, commit, layers: img.layers.map((l) => l.digest) })
  return commit
}

const shared = [d('usr/'), d('usr/lib/'), f('usr/lib/libc.so', 'libc'.repeat(1000)), f('usr/lib/libm.so', 'libm')]

describe('gc', () => {
  it('removes what no ref or root reaches, keeps shared layers, and leaves a sound store', async () => {
    const store = await Store.open(join(dir, 'store'))
    await pull(store, 'a', [shared, [d('a/'), f('a/only-a', 'AAAA'.repeat(500))]])
    const b = await pull(store, 'b', [shared, [d('b/'), f('b/only-b', 'B')]])
    const before = await listStore(store.root)
    expect(await gc(store)).toMatchObject({ objectsRemoved: 0, bytesFreed: 0 })

    await store.deleteImageRef('a')
    const r = await gc(store)
    // a's own layer: record, layer commit, 3 trees (root, a/), 1 file; a's image commit and root trees; 2 blobs
    expect(r.layersRemoved).toBe(1)
    expect(r.commitsRemoved).toBe(2)
    expect(r.filesRemoved).toBe(1)
    expect(r.blobsRemoved).toBe(2)
    expect(r.treesRemoved).toBeGreaterThanOrEqual(2)
    expect(r.bytesFreed).toBeGreaterThanOrEqual(2000)
    const after = await listStore(store.root)
    expect(after.layers).toHaveLength(2)
    expect(after.objects.size).toBe(before.objects.size - r.commitsRemoved - r.treesRemoved - r.filesRemoved)
    expect((await fsck(store)).problems).toEqual([])
    await store.checkout(b, join(dir, 'co-b'))
    expect(await fsp.readFile(join(dir, 'co-b', 'usr/lib/libm.so'), 'utf8')).toBe('libm')
    expect(await gc(store)).toMatchObject({ objectsRemoved: 0 })
  })

  it('keeps a commit given as a root (a deployment) without a ref, and counts linked files as not freed', async () => {
    const store = await Store.open(join(dir, 'store'))
    const c = await pull(store, 'dep', [[d('x/'), f('x/y', 'deployed'.repeat(20000))]], false)
    await store.checkout(c, join(dir, 'co'))
    const kept = await gc(store, { roots: [c, 'f'.repeat(64)] })
    expect(kept.objectsRemoved).toBe(0)
    expect(kept.missingRoots).toEqual(['f'.repeat(64)])
    const dry = await gc(store, { dryRun: true })
    expect(dry.filesRemoved).toBe(1)
    expect(dry.stillLinked).toBe(1) // the checkout still links it
    expect((await listStore(store.root)).objects.size).toBeGreaterThan(0)
    const r = await gc(store)
    expect(r.filesRemoved).toBe(1)
    expect(r.bytesFreed).toBeLessThan(160000) // the file's bytes are still held by the checkout
    expect(await fsp.readFile(join(dir, 'co', 'x/y'), 'utf8')).toBe('deployed'.repeat(20000))
    expect((await listStore(store.root)).objects.size).toBe(0)
  })

  it('refuses to sweep when a reachable object is missing', async () => {
    const store = await Store.open(join(dir, 'store'))
    const c = await pull(store, 'a', [[d('x/'), f('x/y', 'y')]])
    await fsp.rm(store.objectPath((await store.readCommit(c)).root.tree, 'tree'))
    await expect(gc(store)).rejects.toMatchObject({ code: 'store.gc-broken', exitCode: 6 })
  })

  it('waits while another live process holds a lease, saying what it waits for', async () => {
    const store = await Store.open(join(dir, 'store'))
    await pull(store, 'a', [[f('z', 'z')]])
    await store.deleteImageRef('a')
    // A lease held by another live process (pid 1, with its real start time).
    const lease = join(store.root, 'leases', '1-0-test')
    await fsp.symlink(JSON.stringify({ pid: 1, start: processStartTime(1), what: 'sysctr images pull x', since: '' }), lease)
    const waits: string[] = []
    const waiting = await Store.open(store.root, { onWait: (m) => waits.push(m) })
    let done = false
    const p = gc(waiting).then((r) => ((done = true), r))
    for (let i = 0; i < 100 && waits.length === 0; i++) await new Promise((r) => setTimeout(r, 20))
    expect(waits).toEqual(['waiting for pid 1 (sysctr images pull x) to finish using the store'])
    expect(done).toBe(false)
    await fsp.rm(lease)
    const r = await p
    expect(r.commitsRemoved).toBe(2)
    // a dead process's lease is ignored and removed
    await fsp.symlink(JSON.stringify({ pid: 1, start: 1, what: 'gone', since: '' }), lease)
    await gc(waiting)
    expect(await fsp.readdir(join(store.root, 'leases'))).not.toContain('1-0-test')
  })

  it('a reader takes one lease and close() drops it', async () => {
    const store = await Store.open(join(dir, 'store'))
    await store.getImageRef('nothing')
    await store.getImageRef('nothing')
    const leases = await fsp.readdir(join(store.root, 'leases'))
    expect(leases).toHaveLength(1)
    expect(JSON.parse(await fsp.readlink(join(store.root, 'leases', leases[0])))).toMatchObject({ pid: process.pid })
    await store.close()
    expect(await fsp.readdir(join(store.root, 'leases'))).toEqual([])
  })
})
