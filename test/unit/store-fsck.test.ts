import { createReadStream, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LayerEntry, writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { fsck } from '../../src/store/fsck'
import { LayerRecord, Store } from '../../src/store/store'

let dir: string
beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-fsck-'))
})
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

const d = (path: string): LayerEntry => ({ path, type: 'directory', mode: 0o755 })
const f = (path: string, content: string, mode = 0o644): LayerEntry => ({ path, type: 'file', content, mode })

async function pullImage(store: Store, name: string, layers: LayerEntry[][]): Promise<{ commit: string; img: WrittenImage; records: LayerRecord[] }> {
  const layout = join(dir, `oci-${name}`)
  const [img] = await writeOciLayout(layout, [{ tag: name, layers }])
  const records: LayerRecord[] = []
  for (const desc of img.layers) records.push((await store.importLayer(desc, createReadStream(join(layout, 'blobs', 'sha256', desc.digest.slice(7))))).record)
  const manifest = await fsp.readFile(join(layout, 'blobs', 'sha256', img.manifestDigest.slice(7)))
  const config = await fsp.readFile(join(layout, 'blobs', 'sha256', img.configDigest.slice(7)))
  await store.putBlob(img.configDigest, config)
  await store.putBlob(img.manifestDigest, manifest)
  const { commit } = await store.commitImage({ manifestDigest: img.manifestDigest, configDigest: img.configDigest, layers: records })
  await store.setImageRef(name, { reference: name, manifestDigest: img.manifestDigest, configDigest: img.configDigest, commit, layers: img.layers.map((l) => l.digest) })
  return { commit, img, records }
}

const base = [[d('etc/'), f('etc/passwd', 'root:x:0:0\n'), f('etc/hostname', 'box\n'), d('bin/'), f('bin/tool', 'TOOL', 0o755)], [f('etc/motd', 'hi\n')]]

/** The store path of the file object for `path` in `commit`. */
async function objectOf(store: Store, commit: string, path: string): Promise<string> {
  const e = await store.lookup(commit, path)
  if (e?.type !== 'file') throw new Error(`${path} is not a file`)
  return store.objectPath(e.object, 'file')
}

describe('fsck', () => {
  it('finds nothing wrong in a sound store, counting every entry', async () => {
    const store = await Store.open(join(dir, 'store'))
    await pullImage(store, 'a', base)
    await pullImage(store, 'b', [...base, [f('extra', 'x')]])
    const r = await fsck(store)
    expect(r.problems).toEqual([])
    expect(r.remaining).toBe(0)
    expect(r.objectsChecked).toBeGreaterThan(10)
  })

  it('detects a tampered file object (content, and mode), names the user sharing it, and repair removes dependents', async () => {
    const store = await Store.open(join(dir, 'store'))
    const a = await pullImage(store, 'a', base)
    const b = await pullImage(store, 'other', [[d('srv/'), f('srv/data', 'unrelated')]])
    const co = join(dir, 'co')
    await store.checkout(a.commit, co)
    // root on the host edits the checkout: the object is the same inode
    await fsp.writeFile(join(co, 'etc/passwd'), 'root::0:0\n')
    const r = await fsck(store, { users: [{ name: 'etcd.0', commit: a.commit }, { name: 'other.0', commit: b.commit }] })
    const passwdObj = await objectOf(store, a.commit, 'etc/passwd')
    expect(r.problems).toContainEqual(expect.objectContaining({ kind: 'corrupt-object', path: passwdObj.slice(join(dir, 'store').length + 1) }))
    expect(r.affected).toEqual([expect.objectContaining({ name: 'etcd.0', example: '/etc/passwd' })])
    expect(r.problems.find((p) => p.kind === 'corrupt-checkout')?.path).toBe('etcd.0')
    expect(r.remaining).toBe(r.problems.length)

    const toolObj = await objectOf(store, a.commit, 'bin/tool')
    await fsp.chmod(toolObj, 0o4755)
    const r2 = await fsck(store)
    expect(r2.problems.filter((p) => p.kind === 'corrupt-object')).toHaveLength(2)

    const fixed = await fsck(store, { repair: true, users: [{ name: 'etcd.0', commit: a.commit }] })
    const removed = fixed.removed.map((x) => x.path)
    expect(removed).toContain(`refs/images/a`)
    expect(removed).toContain(`objects/${a.commit.slice(0, 2)}/${a.commit}.commit`)
    expect(removed.filter((p) => p.startsWith('layers/'))).toHaveLength(1) // the layer holding etc/passwd; the motd layer stays
    expect(fixed.remaining).toBe(1) // the deployment's checkout is still corrupt
    expect(await store.getImageRef('a')).toBeUndefined()
    expect(await store.getImageRef('other')).toBeDefined()
    const after = await fsck(store)
    expect(after.problems).toEqual([])
    // the untouched image still checks out
    await store.checkout(b.commit, join(dir, 'co2'))
    // a fresh pull refetches the removed layer and is whole again
    const again = await pullImage(store, 'a', base)
    expect(again.commit).toBe(a.commit)
    expect((await fsck(store)).problems).toEqual([])
  })

  it('detects corrupt and missing trees, commits, blobs, layer records and refs', async () => {
    const store = await Store.open(join(dir, 'store'))
    const a = await pullImage(store, 'a', base)
    const root = join(dir, 'store')
    const commit = await store.readCommit(a.commit)
    // a missing tree (the image root)
    await fsp.rm(store.objectPath(commit.root.tree, 'tree'))
    // a corrupt blob (the config)
    await fsp.appendFile(join(root, 'blobs', 'sha256', a.img.configDigest.slice(7)), ' ')
    // a layer record naming another blob
    const layerHex = a.img.layers[1].digest.slice(7)
    const rec = JSON.parse(await fsp.readFile(join(root, 'layers', 'sha256', layerHex), 'utf8'))
    await fsp.writeFile(join(root, 'layers', 'sha256', layerHex), JSON.stringify({ ...rec, blobDigest: a.img.layers[0].digest }))
    // an unreadable ref and a stray file in objects/
    await fsp.writeFile(join(root, 'refs', 'images', 'broken'), '{not json')
    await fsp.writeFile(join(root, 'objects', '00', 'junk'), 'x').catch(async () => {
      await fsp.mkdir(join(root, 'objects', '00'))
      await fsp.writeFile(join(root, 'objects', '00', 'junk'), 'x')
    })
    const r = await fsck(store)
    const kinds = new Set(r.problems.map((p) => p.kind))
    expect(kinds).toEqual(new Set(['missing-object', 'corrupt-blob', 'bad-layer-record', 'bad-ref', 'unexpected-entry']))
    expect(r.problems.find((p) => p.kind === 'missing-object')?.what).toContain(commit.root.tree)
    const fixed = await fsck(store, { repair: true })
    expect(fixed.remaining).toBe(0)
    expect((await fsck(store)).problems).toEqual([])
    expect(await store.listImageRefs()).toEqual([])
  })

  it('detects a tree object whose bytes changed', async () => {
    const store = await Store.open(join(dir, 'store'))
    const a = await pullImage(store, 'a', base)
    const c = await store.readCommit(a.commit)
    const etc = await store.lookup(a.commit, 'etc')
    if (etc?.type !== 'dir') throw new Error('no etc')
    const p = store.objectPath(etc.tree, 'tree')
    const bytes = await fsp.readFile(p)
    await fsp.chmod(p, 0o644)
    await fsp.writeFile(p, bytes.toString().replace('passwd', 'passwx'))
    const r = await fsck(store)
    expect(r.problems).toContainEqual(expect.objectContaining({ kind: 'corrupt-object', what: expect.stringContaining('tree content') }))
    expect(c.kind).toBe('image')
  })
})
