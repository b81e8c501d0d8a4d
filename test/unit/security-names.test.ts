/**
 * Hostile layers: names with NUL, overlong names and paths, PAX headers with
 * odd paths. A NUL in a PAX path, a component longer than NAME_MAX (255
 * bytes) or a path longer than PATH_MAX (4096) is refused at import
 * (content.unsafe-path); a PAX path is held to the same rules as a header
 * name. A NUL in a ustar name field ends the name (the format's rule).
 */
import { promises as fsp } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { END, expectNothingPublished, expectRefused, importAndCheckout, layer, listTree, pad, paxHeader, rawBlob, ustarHeader, useSecurityEnv } from './security-fixture'

const env = useSecurityEnv()

const file = (name: string | Buffer, content: string, pax?: Record<string, string | Buffer>): Buffer =>
  Buffer.concat([pax ? paxHeader(pax) : Buffer.alloc(0), ustarHeader(Buffer.from(name), { size: content.length }), pad(Buffer.from(content))])

describe('security: names', () => {
  it('refuses a NUL in a PAX path', async () => {
    const b = rawBlob(Buffer.concat([file('ok', 'x', { path: Buffer.from('a\0/../../outside/pwned') }), END]), 'none')
    await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
    await expectNothingPublished(env, [b])
  })

  it('refuses a NUL in a PAX linkpath of a hardlink', async () => {
    const b = rawBlob(
      Buffer.concat([file('f', 'x'), paxHeader({ linkpath: Buffer.from('f\0../../etc/shadow') }), ustarHeader(Buffer.from('h'), { type: '1', linkname: Buffer.from('f') }), END]),
      'none',
    )
    await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
  })

  it('a NUL in a ustar name field ends the name', async () => {
    const b = rawBlob(Buffer.concat([file(Buffer.from('evil\0/../../outside/pwned'), 'x'), END]), 'none')
    const co = await importAndCheckout(env, [b])
    expect(await listTree(co)).toEqual(['evil'])
    expect(await fsp.readdir(env.outside)).toEqual([])
  })

  it('refuses a component longer than 255 bytes (PAX path)', async () => {
    const b = await layer(env, [{ path: `d/${'n'.repeat(256)}`, content: 'x' }])
    const e = await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
    expect(e.fullMessage).toContain('too long')
    await expectNothingPublished(env, [b])
  })

  it('refuses a path longer than 4096 bytes (PAX path of short components)', async () => {
    const path = Array.from({ length: 900 }, () => 'dddd').join('/')
    const b = await layer(env, [{ path, content: 'x' }])
    const e = await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
    expect(e.fullMessage).toContain('too long')
  })

  it('accepts a 255-byte component and a long path within the limits', async () => {
    const long = 'n'.repeat(255)
    const deep = Array.from({ length: 100 }, () => 'dddd').join('/')
    const b = await layer(env, [{ path: long, content: 'x' }, { path: `${deep}/f`, content: 'y' }])
    const co = await importAndCheckout(env, [b])
    expect((await listTree(co)).filter((p) => !p.startsWith('dddd'))).toEqual([long])
  })

  const odd: [string, string, string][] = [
    ['..', '../../outside/pwned', 'content.unsafe-path'],
    ['the root (for a file)', '.', 'content.bad-entry'],
  ]
  for (const [what, path, code] of odd) {
    it(`refuses a PAX path that is ${what} over a harmless header name`, async () => {
      const b = rawBlob(Buffer.concat([file('harmless', 'x', { path }), END]), 'none')
      await expectRefused(importAndCheckout(env, [b]), code)
      await expectNothingPublished(env, [b])
    })
  }

  it('a PAX path with a leading / lands under the image root', async () => {
    const b = rawBlob(Buffer.concat([file('harmless', 'x', { path: '/etc/pwned' }), END]), 'none')
    expect(await listTree(await importAndCheckout(env, [b]))).toEqual(['etc', 'etc/pwned'])
    expect(await fsp.readdir(env.outside)).toEqual([])
  })

  // Store trees are JSON strings: bytes that are not UTF-8 could not reach the checkout unchanged.
  const latin1 = Buffer.from([0x63, 0x61, 0x66, 0xe9]) // "café" in Latin-1
  it('refuses a ustar name, a PAX path and a symlink target that are not valid UTF-8', async () => {
    const b1 = rawBlob(Buffer.concat([file(latin1, 'x'), END]), 'none')
    const e = await expectRefused(importAndCheckout(env, [b1]), 'content.unsafe-path')
    expect(e.fullMessage).toContain('not valid UTF-8')
    const b2 = rawBlob(Buffer.concat([file('harmless', 'x', { path: Buffer.concat([Buffer.from('d/'), latin1]) }), END]), 'none')
    await expectRefused(importAndCheckout(env, [b2]), 'content.unsafe-path')
    const b3 = rawBlob(Buffer.concat([ustarHeader(Buffer.from('l'), { type: '2', linkname: latin1 }), END]), 'none')
    await expectRefused(importAndCheckout(env, [b3]), 'content.unsafe-path')
    await expectNothingPublished(env, [b1, b2, b3])
  })

  it('keeps a UTF-8 name byte for byte, from a ustar field and a PAX path', async () => {
    const cafe = Buffer.from('café', 'utf8')
    const b = rawBlob(Buffer.concat([file(cafe, 'x'), file('harmless', 'y', { path: Buffer.from('日本/名前') }), END]), 'none')
    const co = await importAndCheckout(env, [b])
    const names = (await fsp.readdir(co, { encoding: 'buffer' })).map((n) => n.toString('hex')).sort()
    expect(names).toEqual([cafe.toString('hex'), Buffer.from('日本').toString('hex')].sort())
    expect((await fsp.readdir(`${co}/日本`, { encoding: 'buffer' }))[0].equals(Buffer.from('名前'))).toBe(true)
  })

  it('an empty PAX path falls back to the header name (POSIX: an empty value removes the record)', async () => {
    const b = rawBlob(Buffer.concat([file('harmless', 'x', { path: '' }), END]), 'none')
    expect(await listTree(await importAndCheckout(env, [b]))).toEqual(['harmless'])
  })

  it('refuses a PAX linkpath climbing out for a hardlink', async () => {
    const b = rawBlob(
      Buffer.concat([file('f', 'x'), paxHeader({ linkpath: '../../outside/secret' }), ustarHeader(Buffer.from('h'), { type: '1', linkname: Buffer.from('f') }), END]),
      'none',
    )
    await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
  })
})
