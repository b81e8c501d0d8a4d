/**
 * zstd layers: the same tar compressed with the `zstd` tool (Debian's zstd)
 * imports to the same diffID and commit as its gzip twin; a truncated zstd
 * blob is refused and publishes nothing.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeOciLayout } from '../../harness/oci-layout-writer'
import { Store } from '../../src/store/store'
import type { Digest } from '../../src/oci/types'
import { compareTrees } from '../helpers/tree-compare'

const haveZstd = spawnSync('zstd', ['--version']).status === 0
let dir: string

beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-zstd-'))
})
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest

describe.skipIf(!haveZstd)(`zstd layers${haveZstd ? '' : ': skipped, needs the zstd tool (apt-get install zstd)'}`, () => {
  it('import to the same diffID and image commit as the gzip layer of the same tar', async () => {
    const entries = [
      { path: 'etc/', type: 'directory' as const },
      { path: 'etc/hello', content: 'hello zstd\n'.repeat(1000) },
      { path: 'bin/', type: 'directory' as const },
      { path: 'bin/tool', content: Buffer.alloc(300_000, 7), mode: 0o755 },
    ]
    const [plain] = await writeOciLayout(join(dir, 'plain'), [{ tag: 't', layers: [entries], compression: 'none' }])
    const [gz] = await writeOciLayout(join(dir, 'gz'), [{ tag: 't', layers: [entries] }])
    const tarPath = join(dir, 'plain', 'blobs', 'sha256', plain!.layers[0]!.digest.slice(7))
    const z = spawnSync('zstd', ['-q', '-c', '-19', tarPath])
    expect(z.status).toBe(0)
    const zst = z.stdout as Buffer
    const zdesc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: digestOf(zst), size: zst.length }

    const store = await Store.open(join(dir, 'store'))
    const zr = await store.importLayer(zdesc, Readable.from([zst.subarray(0, 1000), zst.subarray(1000)]))
    const gzBlob = await fsp.readFile(join(dir, 'gz', 'blobs', 'sha256', gz!.layers[0]!.digest.slice(7)))
    const gr = await store.importLayer(gz!.layers[0]!, Readable.from([gzBlob]))
    expect(zr.diffID).toBe(plain!.diffIDs[0])
    expect(zr.diffID).toBe(gr.diffID)
    // Layer commits name their blob (which differs); the trees are the same: same file objects, nothing new.
    expect(gr.filesAdded).toBe(0)
    const a = await store.commitImage({ manifestDigest: digestOf(Buffer.from('a')), configDigest: digestOf(Buffer.from('c')), layers: [zr.record] })
    const b = await store.commitImage({ manifestDigest: digestOf(Buffer.from('b')), configDigest: digestOf(Buffer.from('c')), layers: [gr.record] })
    await store.checkout(a.commit, join(dir, 'co-zstd'))
    await store.checkout(b.commit, join(dir, 'co-gzip'))
    expect(await compareTrees(join(dir, 'co-zstd'), join(dir, 'co-gzip'))).toBeUndefined()
    expect(await fsp.readFile(join(dir, 'co-zstd/etc/hello'), 'utf8')).toBe('hello zstd\n'.repeat(1000))
    await store.close()
  })

  it('refuses a truncated zstd blob and publishes nothing', async () => {
    const [plain] = await writeOciLayout(join(dir, 'plain2'), [{ tag: 't', layers: [[{ path: 'f', content: Buffer.alloc(200_000, 1) }]], compression: 'none' }])
    const z = spawnSync('zstd', ['-q', '-c', join(dir, 'plain2', 'blobs', 'sha256', plain!.layers[0]!.digest.slice(7))])
    const cut = (z.stdout as Buffer).subarray(0, Math.floor((z.stdout as Buffer).length / 2))
    const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: digestOf(cut), size: cut.length }
    const store = await Store.open(join(dir, 'store2'))
    await expect(store.importLayer(desc, Readable.from([cut]))).rejects.toMatchObject({ exitCode: 6 })
    expect(await store.getLayer(desc.digest)).toBeUndefined()
    await store.close()
  })
})
