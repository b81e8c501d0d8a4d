import { createHash } from 'node:crypto'
import { PassThrough, Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { ContentError } from '../../src/errors'
import type { Digest } from '../../src/oci/types'
import { digestOf, digestProblem, isDigest, verifyBytes } from '../../src/reference/digest'
import { DigestStream } from '../../src/util/digest-stream'

const data = Buffer.from('hello, layer\n'.repeat(1000))
const sha256 = `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest
const sha512 = `sha512:${createHash('sha512').update(data).digest('hex')}` as Digest

/** Pipe chunks through a DigestStream; resolves with what came out or rejects with the stream's error. */
async function run(chunks: Buffer[], expect: ConstructorParameters<typeof DigestStream>[0]): Promise<{ out: Buffer; ended: boolean }> {
  const out: Buffer[] = []
  const ds = new DigestStream(expect)
  let ended = false
  ds.on('end', () => {
    ended = true
  })
  const sink = new Writable({
    write(c, _e, cb) {
      out.push(c)
      cb()
    },
  })
  await pipeline(Readable.from(chunks), ds, sink)
  return { out: Buffer.concat(out), ended }
}

function split(b: Buffer, n: number): Buffer[] {
  const parts: Buffer[] = []
  for (let i = 0; i < b.length; i += n) parts.push(b.subarray(i, i + n))
  return parts
}

describe('DigestStream', () => {
  it('passes good bytes through (sha256 and sha512)', async () => {
    for (const digest of [sha256, sha512]) {
      const { out, ended } = await run(split(data, 777), { digest, size: data.length })
      expect(out.equals(data)).toBe(true)
      expect(ended).toBe(true)
    }
  })

  it('size is optional', async () => {
    const { out } = await run(split(data, 100), { digest: sha256 })
    expect(out.length).toBe(data.length)
  })

  it('fails with digest-mismatch, never ending', async () => {
    const bad = Buffer.from(data)
    bad[10] ^= 1
    const ds = new DigestStream({ digest: sha256, size: data.length })
    let ended = false
    ds.on('end', () => (ended = true))
    const err = await pipeline(Readable.from(split(bad, 500)), ds, new PassThrough().resume()).catch((e) => e)
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe('content.digest-mismatch')
    expect(err.data).toEqual({ expected: sha256, found: digestOf(bad) })
    expect(ended).toBe(false)
  })

  it('fails with size-mismatch on short input', async () => {
    const err = await run([data.subarray(0, 100)], { digest: sha256, size: data.length }).catch((e) => e)
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe('content.size-mismatch')
    expect(err.data).toEqual({ expected: data.length, found: 100 })
  })

  it('fails early once more bytes than the size arrive', async () => {
    let pulled = 0
    const source = new Readable({
      read() {
        pulled++
        this.push(Buffer.alloc(1000)) // endless
      },
    })
    const err = await run([], { digest: sha256, size: 2500 }).then(
      () => undefined,
      (e) => e,
    )
    expect(err.code).toBe('content.size-mismatch') // empty input: short
    const ds = new DigestStream({ digest: sha256, size: 2500 })
    const e2 = await pipeline(source, ds, new PassThrough().resume()).catch((e) => e)
    expect(e2).toBeInstanceOf(ContentError)
    expect(e2.code).toBe('content.size-mismatch')
    expect(ds.bytes).toBe(3000)
    expect(pulled).toBeLessThan(100)
  })

  it('refuses an unusable expected digest', () => {
    expect(() => new DigestStream({ digest: 'md5:00' as Digest })).toThrow(ContentError)
  })
})

describe('digest helpers', () => {
  it('digestProblem / isDigest', () => {
    expect(isDigest(sha256)).toBe(true)
    expect(isDigest(sha512)).toBe(true)
    expect(digestProblem('sha256:xyz')).toMatch(/hex/)
    expect(digestProblem('sha384:' + 'a'.repeat(96))).toMatch(/unsupported/)
    expect(isDigest(42)).toBe(false)
  })
  it('verifyBytes', () => {
    expect(() => verifyBytes(data, sha256, data.length, 'x')).not.toThrow()
    expect(() => verifyBytes(data, sha512, undefined, 'x')).not.toThrow()
    expect(() => verifyBytes(data, sha256, 1, 'x')).toThrow(/size mismatch/)
    expect(() => verifyBytes(Buffer.from('nope'), sha256, undefined, 'x')).toThrow(/digest mismatch/)
  })
})
