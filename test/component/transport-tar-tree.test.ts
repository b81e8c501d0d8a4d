/**
 * TarTree, the archive index behind oci-archive: and docker-archive:
 * archives built with tar-stream: ustar prefix, pax and GNU long names,
 * symlinks and hardlinks followed inside the archive only, big entries
 * streamed by range; gzip, truncated and non-tar files refused.
 */
import { createWriteStream, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import * as tar from 'tar-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SysctrError } from '../../src/errors'
import { safeRelative, TarTree } from '../../src/transports/file-tree'

let dir: string
const LONG = `blobs/sha256/${'d'.repeat(64)}/${'n'.repeat(90)}`
const BIG = Buffer.alloc(1_500_000)
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 31) & 0xff

async function writeTar(file: string, entries: Array<Partial<tar.Header> & { name: string; content?: Buffer | string }>, gzip = false): Promise<void> {
  const pack = tar.pack()
  const done = gzip ? pipeline(pack, createGzip(), createWriteStream(file)) : pipeline(pack, createWriteStream(file))
  for (const { content, ...h } of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve())
      if (content === undefined) pack.entry(h as tar.Header, cb)
      else pack.entry(h as tar.Header, Buffer.from(content), cb)
    })
  }
  pack.finalize()
  await done
}

async function text(t: TarTree, p: string): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of await t.open(p)) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-tartree-'))
  await writeTar(join(dir, 'a.tar'), [
    { name: 'index.json', content: '{"x":1}' },
    { name: './oci-layout', content: 'layout' },
    { name: 'dir/', type: 'directory' },
    { name: LONG, content: 'long' },
    { name: 'big', content: BIG },
    { name: 'empty', content: '' },
    { name: 'dir/link', type: 'symlink', linkname: '../index.json' },
    { name: 'hard', type: 'link', linkname: 'big' },
    { name: 'escape', type: 'symlink', linkname: '../../etc/passwd' },
    { name: 'abs', type: 'symlink', linkname: '/etc/passwd' },
    { name: 'loop', type: 'symlink', linkname: 'loop' },
    { name: 'pax-name', content: 'pax', pax: { path: 'über/pax-path' } },
  ])
  await writeTar(join(dir, 'gz.tar'), [{ name: 'a', content: 'a' }], true)
  const whole = await fsp.readFile(join(dir, 'a.tar'))
  await fsp.writeFile(join(dir, 'short.tar'), whole.subarray(0, 1024 + 600_000))
  await fsp.writeFile(join(dir, 'not.tar'), Buffer.alloc(2048, 0x41))
})
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

describe('TarTree', () => {
  it('indexes names and streams files by range', async () => {
    const t = await TarTree.open(join(dir, 'a.tar'))
    expect(await text(t, 'index.json')).toBe('{"x":1}')
    expect(await text(t, 'oci-layout')).toBe('layout')
    expect(await text(t, LONG)).toBe('long')
    expect(await text(t, 'über/pax-path')).toBe('pax')
    expect(await text(t, 'empty')).toBe('')
    expect(await t.size('big')).toBe(BIG.length)
    const chunks: Buffer[] = []
    for await (const c of await t.open('big')) chunks.push(c as Buffer)
    expect(Buffer.concat(chunks).equals(BIG)).toBe(true)
    expect((await t.read('index.json', 100)).toString()).toBe('{"x":1}')
    await expect(t.read('big', 1000)).rejects.toMatchObject({ code: 'content.too-large' })
  })

  it('follows links inside the archive only', async () => {
    const t = await TarTree.open(join(dir, 'a.tar'))
    expect(await text(t, 'dir/link')).toBe('{"x":1}')
    expect(await t.size('hard')).toBe(BIG.length)
    await expect(t.size('escape')).rejects.toMatchObject({ code: 'content.unsafe-path' })
    expect(await t.size('abs')).toBeUndefined()
    expect(await t.size('loop')).toBeUndefined()
    expect(await t.size('dir')).toBeUndefined()
    await expect(t.open('missing')).rejects.toMatchObject({ code: 'image.file-not-found' })
  })

  it.each(['../x', '/etc/passwd', 'a/../../x', ''])('refuses the path %j', (p) => {
    let err: unknown
    try {
      safeRelative(p, 'test')
    } catch (e) {
      err = e
    }
    expect((err as SysctrError).code).toBe('content.unsafe-path')
  })

  it.each([
    ['gz.tar', 'gzip-compressed'],
    ['short.tar', 'truncated'],
    ['not.tar', 'not a tar archive'],
  ])('refuses %s', async (file, message) => {
    const err = (await TarTree.open(join(dir, file)).catch((e: unknown) => e)) as SysctrError
    expect(err.code).toBe('content.bad-archive')
    expect(err.message).toContain(message)
  })
})
