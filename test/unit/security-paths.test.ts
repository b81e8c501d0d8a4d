/**
 * Hostile layers: absolute paths and `..` components. Refused at import
 * (content.unsafe-path, exit 6), nothing published, nothing written outside
 * the tree. `..` that stays inside is normalised lexically (as node-tar does).
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { expectNothingPublished, expectRefused, importAndCheckout, layer, listTree, useSecurityEnv } from './security-fixture'

const env = useSecurityEnv()

describe('security: absolute paths and ..', () => {
  const refused: [string, string][] = [
    ['an absolute path', '/etc/pwned'],
    ['a leading ..', '../outside/pwned'],
    ['.. after a component that leaves the root', 'a/../../outside/pwned'],
    ['.. hidden after ./ and //', './/a/./../..//outside/pwned'],
  ]
  for (const [what, path] of refused) {
    it(`refuses ${what} (${path})`, async () => {
      const b = await layer(env, [{ path: 'a/', type: 'directory' }, { path, content: 'pwned' }])
      const e = await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
      expect(e.fullMessage).toContain(JSON.stringify(path))
      await expectNothingPublished(env, [b])
    })
  }

  it('refuses an absolute hardlink name and a symlink entry named with ..', async () => {
    const b1 = await layer(env, [{ path: '../outside/link', type: 'symlink', linkname: '/etc/shadow' }])
    await expectRefused(importAndCheckout(env, [b1]), 'content.unsafe-path')
    const b2 = await layer(env, [{ path: 'f', content: 'x' }, { path: '/abs-link', type: 'link', linkname: 'f' }])
    await expectRefused(importAndCheckout(env, [b2]), 'content.unsafe-path')
    await expectNothingPublished(env, [b1, b2])
  })

  it('normalises .. that stays inside, and accepts the root spelled "/" (umoci)', async () => {
    const b = await layer(env, [{ path: '/', type: 'directory' }, { path: 'a/', type: 'directory' }, { path: 'a/../b', content: 'in' }])
    const co = await importAndCheckout(env, [b])
    expect(await listTree(co)).toEqual(['a', 'b'])
    expect(await fsp.readFile(join(co, 'b'), 'utf8')).toBe('in')
    expect(await fsp.readdir(env.outside)).toEqual([])
  })
})
