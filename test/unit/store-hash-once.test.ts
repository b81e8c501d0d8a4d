// The store hashes a layer blob only when the stream it reads does not verify it
// already (issue 18: each blob was hashed twice, by the transport and the store).
// Bad bytes are refused either way and nothing is published.
import { createReadStream, promises as fsp, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import type { Digest } from '../../src/oci/types'
import { Store } from '../../src/store/store'
import { fsck } from '../../src/store/fsck'
import { DigestStream, markVerified } from '../../src/util/digest-stream'

let dir: string
beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-hash-once-'))
})
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

async function image(): Promise<WrittenImage> {
  const [img] = await writeOciLayout(join(dir, 'oci'), [{ tag: 't', layers: [[{ path: 'a', type: 'file', content: 'hello', mode: 0o644 }]], compression: 'gzip' }])
  return img
}
const blobPath = (d: Digest) => join(dir, 'oci', 'blobs', 'sha256', d.slice(7))

describe('layer blob digest: hashed once, verified always', () => {
  it('imports through a DigestStream (the transport verifies) and records the layer', async () => {
    const img = await image()
    const desc = img.layers[0]
    const store = await Store.open(join(dir, 'store'))
    const verify = new DigestStream({ digest: desc.digest, size: desc.size })
    createReadStream(blobPath(desc.digest)).pipe(verify)
    const r = await store.importLayer(desc, verify)
    expect(r.existing).toBe(false)
    expect(r.diffID).toBe(img.diffIDs[0])
    expect(await store.getLayer(desc.digest)).toBeDefined()
  })

  it('refuses other bytes through a DigestStream and publishes nothing', async () => {
    const img = await image()
    const desc = img.layers[0]
    const bytes = readFileSync(blobPath(desc.digest))
    const other = Buffer.from(bytes)
    other[other.length - 9] ^= 0xff // inside the gzip trailer (CRC): the tar parses, the digest differs
    const store = await Store.open(join(dir, 'store'))
    const verify = new DigestStream({ digest: desc.digest, size: desc.size })
    verify.on('error', () => {}) // as pull's byte counter does: the failure reaches the store through its read
    Readable.from([other]).pipe(verify)
    await expect(store.importLayer(desc, verify)).rejects.toMatchObject({ exitCode: 6 })
    expect(await store.getLayer(desc.digest)).toBeUndefined()
    expect((await fsck(store)).remaining).toBe(0)
  })

  it('hashes itself when the stream verifies another digest, or nothing', async () => {
    const img = await image()
    const desc = img.layers[0]
    const store = await Store.open(join(dir, 'store'))
    const wrong = { ...desc, digest: `sha256:${'1'.repeat(64)}` as Digest }
    // A stream that claims to verify the real digest is not trusted for another one.
    const claimed = markVerified(createReadStream(blobPath(desc.digest)), { digest: desc.digest, size: desc.size })
    await expect(store.importLayer(wrong, claimed)).rejects.toMatchObject({ code: 'content.digest-mismatch' })
    await expect(store.importLayer(wrong, createReadStream(blobPath(desc.digest)))).rejects.toMatchObject({ code: 'content.digest-mismatch' })
    expect(await store.getLayer(wrong.digest)).toBeUndefined()
  })
})

describe('fsck reads xattrs with one walk', () => {
  it('accepts file objects with xattrs and detects a changed xattr', async () => {
    const [img] = await writeOciLayout(join(dir, 'oci'), [
      {
        tag: 'x',
        layers: [[
          { path: 'plain', type: 'file', content: 'p', mode: 0o644 },
          { path: 'with', type: 'file', content: 'w', mode: 0o755, pax: { 'SCHILY.xattr.user.k': 'v' } },
        ]],
        compression: 'gzip',
      },
    ])
    const store = await Store.open(join(dir, 'store'))
    const rec = await store.importLayer(img.layers[0], createReadStream(blobPath(img.layers[0].digest)))
    await store.putBlob(img.manifestDigest, readFileSync(blobPath(img.manifestDigest)))
    await store.putBlob(img.configDigest, readFileSync(blobPath(img.configDigest)))
    const { commit } = await store.commitImage({ manifestDigest: img.manifestDigest, configDigest: img.configDigest, layers: [rec.record] })
    expect((await fsck(store)).problems).toEqual([])
    const e = await store.lookup(commit, 'with')
    if (e?.type !== 'file') throw new Error('no file entry')
    const { execFileSync } = await import('node:child_process')
    execFileSync('setfattr', ['-h', '-n', 'user.k', '-v', 'changed', store.objectPath(e.object, 'file')])
    const r = await fsck(store)
    expect(r.problems.map((p) => p.kind)).toEqual(['corrupt-object'])
    expect(r.problems[0].path).toContain(e.object)
  })
})

describe('file object header', () => {
  it('is the canonical JSON of (mode, uid, gid, xattrs), cached or not', async () => {
    const { fileObjectHeader, canonicalJson } = await import('../../src/store/canonical')
    const cases: { mode: number; uid: number; gid: number; xattrs?: Record<string, string> }[] = [
      { mode: 0o100644, uid: 0, gid: 0 },
      { mode: 0o4755, uid: 1000, gid: 42 },
      { mode: 0o644, uid: 0, gid: 0, xattrs: {} },
      { mode: 0o755, uid: 7, gid: 8, xattrs: { 'user.k': 'dg==' } },
    ]
    for (const m of [...cases, ...cases]) {
      const xattrs = m.xattrs && Object.keys(m.xattrs).length ? m.xattrs : undefined
      const want = `sysctr-file 1\n${canonicalJson({ mode: m.mode & 0o7777, uid: m.uid, gid: m.gid, xattrs })}\n`
      expect(fileObjectHeader(m).toString()).toBe(want)
    }
    expect(() => fileObjectHeader({ mode: 0o644, uid: 1.5, gid: 0 })).toThrow(/integer/)
    expect(() => fileObjectHeader({ mode: 0o644, uid: 1.5, gid: 0 })).toThrow(/integer/)
  })
})
