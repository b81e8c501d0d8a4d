/**
 * Hostile layers: absolute paths and `..` components.
 * - A leading `/` (names, hardlink targets, PAX path/linkpath) means the
 *   image root: stripped, as containerd and node-tar do; the entry lands
 *   inside the tree, never on the host.
 * - Any `..` component is refused at import (content.unsafe-path, exit 6),
 *   even one that would stay inside the root (node-tar refuses these too);
 *   nothing published, nothing written outside the tree.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { expectNothingPublished, expectRefused, importAndCheckout, layer, listTree, useSecurityEnv } from './security-fixture'

const env = useSecurityEnv()

describe('security: absolute paths and ..', () => {
  const refused: [string, string][] = [
    ['a leading ..', '../outside/pwned'],
    ['.. after a component that leaves the root', 'a/../../outside/pwned'],
    ['.. hidden after ./ and //', './/a/./../..//outside/pwned'],
    ['.. that stays inside the root', 'a/../b'],
    ['.. after a leading /', '/a/../b'],
  ]
  for (const [what, path] of refused) {
    it(`refuses ${what} (${path})`, async () => {
      const b = await layer(env, [{ path: 'a/', type: 'directory' }, { path, content: 'pwned' }])
      const e = await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
      expect(e.fullMessage).toContain(JSON.stringify(path))
      expect(e.fullMessage).toContain('".." component')
      await expectNothingPublished(env, [b])
    })
  }

  it('refuses a symlink entry named with .. and a hardlink target with a .. that stays inside', async () => {
    const b1 = await layer(env, [{ path: '../outside/link', type: 'symlink', linkname: '/etc/shadow' }])
    await expectRefused(importAndCheckout(env, [b1]), 'content.unsafe-path')
    const b2 = await layer(env, [{ path: 'a/', type: 'directory' }, { path: 'f', content: 'x' }, { path: 'h', type: 'link', linkname: 'a/../f' }])
    const e = await expectRefused(importAndCheckout(env, [b2]), 'content.unsafe-path')
    expect(e.fullMessage).toContain('hardlink target')
    await expectNothingPublished(env, [b1, b2])
  })

  it('a leading / means the image root: names and hardlink targets land inside the tree', async () => {
    const b = await layer(env, [
      { path: '/', type: 'directory' },
      { path: '/etc/', type: 'directory' },
      { path: '/etc/pwned', content: 'in' },
      { path: '//abs-link', type: 'link', linkname: '/etc/pwned' },
    ])
    const co = await importAndCheckout(env, [b])
    expect(await listTree(co)).toEqual(['abs-link', 'etc', 'etc/pwned'])
    expect(await fsp.readFile(join(co, 'etc/pwned'), 'utf8')).toBe('in')
    expect((await fsp.stat(join(co, 'abs-link'))).ino).toBe((await fsp.stat(join(co, 'etc/pwned'))).ino)
    expect(await fsp.readdir(env.outside)).toEqual([])
  })
})
