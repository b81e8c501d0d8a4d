import { createReadStream, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ContentError, HostError } from '../../src/errors'
import { LayerEntry, writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { Digest } from '../../src/oci/types'
import { LayerRecord, Store } from '../../src/store/store'
import { getXattrs } from '../../src/store/xattr'

let dir: string
beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-store-'))
})
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

async function build(tag: string, layers: LayerEntry[][], compression: 'gzip' | 'none' = 'gzip'): Promise<WrittenImage> {
  const [img] = await writeOciLayout(join(dir, 'oci'), [{ tag, layers, compression }])
  return img
}

async function importImage(store: Store, img: WrittenImage): Promise<{ commit: string; layers: LayerRecord[]; filesAdded: number }> {
  const layers: LayerRecord[] = []
  let filesAdded = 0
  for (const [i, desc] of img.layers.entries()) {
    const r = await store.importLayer(desc, createReadStream(join(dir, 'oci', 'blobs', 'sha256', desc.digest.slice(7))))
    expect(r.diffID).toBe(img.diffIDs[i])
    filesAdded += r.filesAdded
    layers.push(r.record)
  }
  const { commit } = await store.commitImage({ manifestDigest: img.manifestDigest, configDigest: img.configDigest, layers })
  return { commit, layers, filesAdded }
}

async function countFiles(root: string, ext: string): Promise<number> {
  let n = 0
  for (const d of await fsp.readdir(join(root, 'objects'))) n += (await fsp.readdir(join(root, 'objects', d))).filter((f) => f.endsWith(ext)).length
  return n
}

const d = (path: string, mode = 0o755, extra: Partial<LayerEntry> = {}): LayerEntry => ({ path, type: 'directory', mode, ...extra })
const f = (path: string, content: string, mode = 0o644, extra: Partial<LayerEntry> = {}): LayerEntry => ({ path, type: 'file', content, mode, ...extra })

describe('Store: import, commit, checkout', () => {
  it('checks out files, modes, owners, symlinks, devices, fifos and hardlinks', async () => {
    const img = await build('a', [
      [
        d('./', 0o755),
        d('bin/'),
        f('bin/su', 'su!', 0o4755),
        f('bin/sg', 'sg!', 0o2711, { uid: 0, gid: 42 }),
        d('tmp/', 0o1777),
        d('home/'),
        d('home/u/', 0o700, { uid: 1000, gid: 1000 }),
        f('home/u/.profile', 'x', 0o600, { uid: 1000, gid: 1000 }),
        { path: 'bin/sh', type: 'symlink', linkname: 'busybox', uid: 5, gid: 6 },
        f('bin/busybox', 'BB', 0o755),
        { path: 'bin/ls', type: 'link', linkname: 'bin/busybox' },
        d('dev/'),
        { path: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
        { path: 'dev/loop0', type: 'block-device', devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
        { path: 'dev/run.fifo', type: 'fifo', mode: 0o620 },
        d('ro/', 0o555),
        f('ro/inside', 'in ro dir', 0o444),
        f('etc/implicit-parent', 'p'),
        f('usr/bin/cap', 'cap', 0o755, { pax: { 'SCHILY.xattr.user.test': 'hello', 'SCHILY.xattr.security.capability': '\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' } }),
      ],
    ])
    const store = await Store.open(join(dir, 'store'))
    const { commit } = await importImage(store, img)
    const out = join(dir, 'co')
    const stats = await store.checkout(commit, out)
    expect(stats).toMatchObject({ files: 8, symlinks: 1, special: 3, copied: 0, hardlinks: 8 })
    const st = async (p: string) => fsp.lstat(join(out, p))
    expect((await st('bin/su')).mode & 0o7777).toBe(0o4755)
    expect((await st('bin/sg')).mode & 0o7777).toBe(0o2711)
    expect((await st('bin/sg')).gid).toBe(42)
    expect((await st('tmp')).mode & 0o7777).toBe(0o1777)
    expect((await st('home/u')).uid).toBe(1000)
    expect((await st('home/u')).mode & 0o7777).toBe(0o700)
    expect(await fsp.readlink(join(out, 'bin/sh'))).toBe('busybox')
    expect((await st('bin/sh')).uid).toBe(5)
    expect((await st('bin/ls')).ino).toBe((await st('bin/busybox')).ino)
    expect((await st('dev/null')).isCharacterDevice()).toBe(true)
    expect((await st('dev/null')).rdev).toBe(0x103)
    expect((await st('dev/loop0')).isBlockDevice()).toBe(true)
    expect((await st('dev/run.fifo')).isFIFO()).toBe(true)
    expect((await st('dev/run.fifo')).mode & 0o7777).toBe(0o620)
    expect((await st('ro')).mode & 0o7777).toBe(0o555)
    expect(await fsp.readFile(join(out, 'ro/inside'), 'utf8')).toBe('in ro dir')
    expect((await st('etc')).mode & 0o7777).toBe(0o755)
    const x = (await getXattrs([join(out, 'usr/bin/cap')])).get(join(out, 'usr/bin/cap'))!
    expect(Buffer.from(x['user.test'], 'base64').toString()).toBe('hello')
    expect(Buffer.from(x['security.capability'], 'base64')).toHaveLength(20)
    // Hardlinked to the object: the object file has the same inode.
    expect((await st('bin/su')).nlink).toBeGreaterThanOrEqual(2)
    expect((await store.readFile(commit, '/bin/busybox')).toString()).toBe('BB')
    await expect(store.readFile(commit, 'bin/sh')).rejects.toMatchObject({ code: 'store.not-a-file' })
    await expect(store.readFile(commit, 'nope')).rejects.toMatchObject({ code: 'store.path-not-found' })
    const walked = []
    for await (const e of store.walk(commit)) walked.push(e.path)
    expect(walked).toContain('home/u/.profile')
  })

  it('applies whiteouts, opaque dirs, file<->dir replacement, re-creation and cross-layer hardlinks', async () => {
    const img = await build('b', [
      [
        d('a/'),
        f('a/gone', '1'),
        f('a/kept', '2'),
        d('opq/'),
        f('opq/old', 'old'),
        d('opq/sub/'),
        f('opq/sub/deep', 'deep'),
        f('f2d', 'file'),
        d('d2f/'),
        f('d2f/x', 'x'),
        f('again', 'first'),
        f('target', 'T', 0o4750, { gid: 3 }),
      ],
      [
        f('a/.wh.gone', ''),
        f('opq/.wh..wh..opq', ''),
        f('opq/new', 'new'),
        d('f2d/', 0o750),
        f('f2d/inner', 'i'),
        f('d2f', 'now a file'),
        f('.wh.again', ''),
        { path: 'link-to-lower', type: 'link', linkname: 'target' },
      ],
      [f('again', 'second', 0o600)],
    ])
    const store = await Store.open(join(dir, 'store'))
    const { commit } = await importImage(store, img)
    const out = join(dir, 'co')
    await store.checkout(commit, out)
    const ls = async (p: string) => (await fsp.readdir(join(out, p))).sort()
    expect(await ls('a')).toEqual(['kept'])
    expect(await ls('opq')).toEqual(['new'])
    expect((await fsp.lstat(join(out, 'f2d'))).isDirectory()).toBe(true)
    expect((await fsp.lstat(join(out, 'f2d'))).mode & 0o777).toBe(0o750)
    expect(await ls('f2d')).toEqual(['inner'])
    expect(await fsp.readFile(join(out, 'd2f'), 'utf8')).toBe('now a file')
    expect(await fsp.readFile(join(out, 'again'), 'utf8')).toBe('second')
    expect((await fsp.lstat(join(out, 'again'))).mode & 0o777).toBe(0o600)
    const t = await fsp.lstat(join(out, 'target'))
    const l = await fsp.lstat(join(out, 'link-to-lower'))
    expect(l.ino).toBe(t.ino)
    expect(l.mode & 0o7777).toBe(0o4750)
    // Idempotent: the same layers give the same commit.
    const again = await store.commitImage({ manifestDigest: img.manifestDigest, configDigest: img.configDigest, layers: await Promise.all(img.layers.map(async (l) => (await store.getLayer(l.digest))!)) })
    expect(again.commit).toBe(commit)
  })

  it('deduplicates layers and files', async () => {
    const base = [d('etc/'), f('etc/os-release', 'ID=test'), f('etc/a', 'same'), f('etc/b', 'same')]
    const img1 = await build('one', [base, [f('app', 'v1')]])
    const store = await Store.open(join(dir, 'store'))
    const r1 = await importImage(store, img1)
    expect(await countFiles(store.root, '.file')).toBe(3) // os-release, same (a=b), app
    // Same file content and metadata in another layer: one object.
    const img2 = await build('two', [base, [f('app', 'v1'), f('other', 'same')]])
    const before = await countFiles(store.root, '.file')
    const r2 = await importImage(store, img2)
    expect(r2.filesAdded).toBe(0)
    expect(await countFiles(store.root, '.file')).toBe(before)
    expect(r2.layers[0].commit).toBe(r1.layers[0].commit)
    const again = await store.importLayer(img1.layers[0], createReadStream(join(dir, 'oci', 'blobs', 'sha256', img1.layers[0].digest.slice(7))))
    expect(again.existing).toBe(true)
    const co = join(dir, 'co')
    await store.checkout(r2.commit, co)
    expect((await fsp.stat(join(co, 'etc/a'))).ino).toBe((await fsp.stat(join(co, 'other'))).ino)
  })

  it.each([
    ['../escape', 'content.unsafe-path'],
    ['a/../b', 'content.unsafe-path'],
    ['a/../../x', 'content.unsafe-path'],
  ])('refuses the entry %s and publishes nothing', async (path, code) => {
    const img = await build('bad', [[f('ok', 'fine'), f(path, 'evil')]], 'none')
    const store = await Store.open(join(dir, 'store'))
    const desc = img.layers[0]
    const err = await store.importLayer(desc, createReadStream(join(dir, 'oci', 'blobs', 'sha256', desc.digest.slice(7)))).catch((e) => e)
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe(code)
    expect(err.message).toContain(JSON.stringify(path))
    expect(await store.getLayer(desc.digest)).toBeUndefined()
    expect(await countFiles(store.root, '')).toBe(0)
    expect(await fsp.readdir(join(store.root, 'tmp'))).toEqual([])
  })

  it('rejects a corrupted gzip blob and publishes nothing', async () => {
    const img = await build('corrupt', [[f('a', 'x'.repeat(100000)), f('b', 'y'.repeat(5000))]])
    const desc = img.layers[0]
    const blob = await fsp.readFile(join(dir, 'oci', 'blobs', 'sha256', desc.digest.slice(7)))
    blob[Math.floor(blob.length / 2)] ^= 0xff
    const bad = join(dir, 'bad-blob')
    await fsp.writeFile(bad, blob)
    const store = await Store.open(join(dir, 'store'))
    const err = await store.importLayer(desc, createReadStream(bad)).catch((e) => e)
    expect(err).toBeInstanceOf(ContentError)
    expect(['content.bad-compression', 'content.digest-mismatch', 'content.bad-tar']).toContain(err.code)
    expect(await store.getLayer(desc.digest)).toBeUndefined()
    expect(await countFiles(store.root, '')).toBe(0)
  })

  it('accepts a tar that ends right after file data (umoci 0.4) but not one cut inside data', async () => {
    const img = await build('short', [[f('a', 'hi\n')]], 'none')
    const desc = img.layers[0]
    const full = await fsp.readFile(join(dir, 'oci', 'blobs', 'sha256', desc.digest.slice(7)))
    const { createHash } = await import('node:crypto')
    const { Readable } = await import('node:stream')
    const asBlob = (b: Buffer) => ({ desc: { ...desc, size: b.length, digest: `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest }, b })
    const store = await Store.open(join(dir, 'store'))
    const unpadded = asBlob(full.subarray(0, 512 + 3))
    const r = await store.importLayer(unpadded.desc, Readable.from([unpadded.b]))
    expect(r.diffID).toBe(unpadded.desc.digest)
    const cut = asBlob(full.subarray(0, 512 + 2))
    await expect(store.importLayer(cut.desc, Readable.from([cut.b]))).rejects.toMatchObject({ code: 'content.bad-tar' })
  })

  it('refuses broken zstd data and other digests with a content error', async () => {
    const store = await Store.open(join(dir, 'store'))
    const zstd = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0])
    const { Readable } = await import('node:stream')
    const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: `sha256:${'0'.repeat(64)}` as Digest, size: 8 }
    await expect(store.importLayer(desc, Readable.from([zstd]))).rejects.toMatchObject({ exitCode: 6 })
    const img = await build('ok', [[f('a', 'x')]])
    const wrong = { ...img.layers[0], digest: `sha256:${'1'.repeat(64)}` as Digest }
    await expect(store.importLayer(wrong, createReadStream(join(dir, 'oci', 'blobs', 'sha256', img.layers[0].digest.slice(7))))).rejects.toMatchObject({
      code: 'content.digest-mismatch',
    })
  })

  it('checks out across devices only with copy, keeping metadata', async () => {
    const img = await build('x', [[f('s', 'suid', 0o4755, { uid: 7, pax: { 'SCHILY.xattr.user.k': 'v' } }), f('t', 'suid', 0o4755, { uid: 7, pax: { 'SCHILY.xattr.user.k': 'v' } })]])
    const store = await Store.open(join(dir, 'store'))
    const { commit } = await importImage(store, img)
    const shm = await fsp.mkdtemp('/dev/shm/sysctr-co-')
    try {
      const err = await store.checkout(commit, join(shm, 'co')).catch((e) => e)
      expect(err).toBeInstanceOf(HostError)
      expect(err.code).toBe('checkout.cross-device')
      expect(err.message).toMatch(/store on .* target on /)
      await expect(fsp.lstat(join(shm, 'co'))).rejects.toThrow()
      const stats = await store.checkout(commit, join(shm, 'co'), { copy: true })
      expect(stats.copied).toBe(2)
      const s = await fsp.lstat(join(shm, 'co', 's'))
      expect(s.mode & 0o7777).toBe(0o4755)
      expect(s.uid).toBe(7)
      const x = (await getXattrs([join(shm, 'co', 's')])).get(join(shm, 'co', 's'))!
      expect(x['user.k']).toBe(Buffer.from('v').toString('base64'))
    } finally {
      await fsp.rm(shm, { recursive: true, force: true })
    }
    await expect(store.checkout(commit, join(dir))).rejects.toMatchObject({ code: 'checkout.target-exists' })
  })
})

describe('Store: format, refs, blobs', () => {
  it('refuses a newer format and cleans dead tmp leftovers', async () => {
    const root = join(dir, 'store')
    const store = await Store.open(root)
    await fsp.mkdir(join(root, 'tmp', 'staging-999999999-1-abc'))
    await Store.open(root)
    expect(await fsp.readdir(join(root, 'tmp'))).toEqual([])
    await fsp.writeFile(join(root, 'format'), 'sysctr-store 2\n')
    await expect(Store.open(root)).rejects.toMatchObject({ code: 'store.unsupported-format' })
    expect(store.root).toBe(root)
  })

  it('stores blobs verified and refs atomically', async () => {
    const store = await Store.open(join(dir, 'store'))
    const bytes = Buffer.from('{"a":1}')
    const { createHash } = await import('node:crypto')
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest
    await store.putBlob(digest, bytes)
    expect((await store.getBlob(digest))?.toString()).toBe('{"a":1}')
    await expect(store.putBlob(`sha256:${'2'.repeat(64)}` as Digest, bytes)).rejects.toMatchObject({ code: 'content.digest-mismatch' })
    const rec = { reference: 'registry.example/ns/etcd:3.5', manifestDigest: digest, configDigest: digest, commit: 'c'.repeat(64), layers: [] }
    await store.setImageRef('registry.example/ns/etcd:3.5', rec)
    await store.setImageRef('..', { ...rec, reference: '..' })
    expect(await store.getImageRef('registry.example/ns/etcd:3.5')).toEqual(rec)
    expect((await store.listImageRefs()).map((r) => r.name).sort()).toEqual(['..', 'registry.example/ns/etcd:3.5'])
    expect(await store.deleteImageRef('..')).toBe(true)
    expect(await store.deleteImageRef('..')).toBe(false)
    expect(await fsp.readdir(join(store.root, 'tmp'))).toEqual([])
  })
})
