/**
 * Hostile layers: whiteouts naming `..`, `.`, nothing, `/`, or a path outside
 * the root are refused at import (content.bad-entry / content.unsafe-path).
 * Whiteouts are applied to the store's trees, never to the host filesystem:
 * one "through" a symlink to a host dir removes nothing on the host.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { expectNothingPublished, expectRefused, importAndCheckout, layer, useSecurityEnv } from './security-fixture'

const env = useSecurityEnv()

describe('security: whiteouts', () => {
  const refused: [string, string, string][] = [
    ['a whiteout of ..', '.wh...', 'content.bad-entry'],
    ['a whiteout of . in a dir', 'a/.wh..', 'content.bad-entry'],
    ['a whiteout of nothing', 'a/.wh.', 'content.bad-entry'],
    ['a whiteout of the root spelled "/.wh."', '/.wh.', 'content.bad-entry'],
    ['a whiteout above the root', '../.wh.outside', 'content.unsafe-path'],
    ['a whiteout leaving the root through ..', 'a/../../.wh.outside', 'content.unsafe-path'],
    ['an opaque marker above the root', '../.wh..wh..opq', 'content.unsafe-path'],
  ]
  for (const [what, path, code] of refused) {
    it(`refuses ${what} (${path})`, async () => {
      const lower = await layer(env, [{ path: 'a/', type: 'directory' }, { path: 'a/f', content: 'x' }])
      const upper = await layer(env, [{ path, content: '' }])
      await expectRefused(importAndCheckout(env, [lower, upper]), code)
      await expectNothingPublished(env, [upper])
    })
  }

  it('a whiteout under a symlink to a host dir removes nothing on the host', async () => {
    await fsp.writeFile(join(env.outside, 'victim'), 'keep me')
    const lower = await layer(env, [{ path: 'link', type: 'symlink', linkname: env.outside }, { path: 'keep', content: 'k' }])
    const upper = await layer(env, [
      { path: 'link/.wh.victim', content: '' },
      { path: 'link/.wh..wh..opq', content: '' },
    ])
    const co = await importAndCheckout(env, [lower, upper])
    expect(await fsp.readFile(join(env.outside, 'victim'), 'utf8')).toBe('keep me')
    expect((await fsp.lstat(join(co, 'link'))).isDirectory()).toBe(true)
    expect(await fsp.readdir(join(co, 'link'))).toEqual([])
    expect(await fsp.readFile(join(co, 'keep'), 'utf8')).toBe('k')
  })
})
