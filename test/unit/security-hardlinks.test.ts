/**
 * Hostile layers: hardlinks whose target has a `..` component (refused at
 * import, content.unsafe-path), is absent (refused at commit,
 * content.hardlink-target-missing), goes through a symlink pointing out
 * (resolved inside the root, as containerd's hardlinkRootPath and umoci's
 * securejoin do: an absolute symlink starts at the image root, `..` stops
 * at it; a target that exists only on the host is absent), or is a symlink
 * pointing out (sanitised: the link becomes a copy of the symlink, never a
 * link to the host file it names). A leading `/` means the image root.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { expectNothingPublished, expectRefused, importAndCheckout, layer, useSecurityEnv } from './security-fixture'

const env = useSecurityEnv()

describe('security: hardlinks', () => {
  for (const target of ['../outside/secret', '/../outside/secret', 'a/../../outside/secret']) {
    it(`refuses a hardlink to ${target}`, async () => {
      const b = await layer(env, [{ path: 'a/', type: 'directory' }, { path: 'h', type: 'link', linkname: target }])
      const e = await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
      expect(e.fullMessage).toContain('hardlink target')
      await expectNothingPublished(env, [b])
    })
  }

  it('refuses a hardlink to a path no layer has', async () => {
    const lower = await layer(env, [{ path: 'f', content: 'x' }])
    const upper = await layer(env, [{ path: 'h', type: 'link', linkname: 'missing' }])
    await expectRefused(importAndCheckout(env, [lower, upper]), 'content.hardlink-target-missing')
    await expect(fsp.access(env.checkoutDir)).rejects.toThrow()
  })

  it('refuses a hardlink whose target path goes through a symlink to a host dir (same layer and across layers)', async () => {
    await fsp.writeFile(join(env.outside, 'secret'), 'host secret')
    const same = await layer(env, [
      { path: 'd', type: 'symlink', linkname: env.outside },
      { path: 'h', type: 'link', linkname: 'd/secret' },
    ])
    await expectRefused(importAndCheckout(env, [same]), 'content.hardlink-target-missing')
    const lower = await layer(env, [{ path: 'd2', type: 'symlink', linkname: env.outside }])
    const upper = await layer(env, [{ path: 'h', type: 'link', linkname: 'd2/secret' }])
    await expectRefused(importAndCheckout(env, [lower, upper]), 'content.hardlink-target-missing')
    expect((await fsp.stat(join(env.outside, 'secret'))).nlink).toBe(1)
  })

  it('a hardlink through a symlink pointing out resolves inside the root (same layer, across layers, absolute and climbing)', async () => {
    await fsp.mkdir(join(env.outside, 'etc'))
    await fsp.writeFile(join(env.outside, 'etc', 'secret'), 'host secret')
    const lower = await layer(env, [
      { path: 'etc/', type: 'directory' },
      { path: 'etc/secret', content: 'image secret' },
      { path: 'up', type: 'symlink', linkname: '../../../../../..' },
    ])
    const upper = await layer(env, [
      { path: 'abs', type: 'symlink', linkname: '/etc' },
      { path: 'h1', type: 'link', linkname: 'abs/secret' }, // same layer symlink, lower file
      { path: 'h2', type: 'link', linkname: 'up/etc/secret' }, // lower symlink climbing out: stops at the root
    ])
    const co = await importAndCheckout(env, [lower, upper])
    const ino = (await fsp.stat(join(co, 'etc/secret'))).ino
    for (const h of ['h1', 'h2']) {
      expect(await fsp.readFile(join(co, h), 'utf8')).toBe('image secret')
      expect((await fsp.stat(join(co, h))).ino).toBe(ino)
    }
    expect((await fsp.stat(join(env.outside, 'etc', 'secret'))).nlink).toBe(1)
  })

  it('a hardlink through a symlink to a path only the host has is refused', async () => {
    const b = await layer(env, [
      { path: 'etc/', type: 'directory' },
      { path: 'abs', type: 'symlink', linkname: '/etc' },
      { path: 'h', type: 'link', linkname: 'abs/shadow' },
    ])
    await expectRefused(importAndCheckout(env, [b]), 'content.hardlink-target-missing')
    await expect(fsp.access(env.checkoutDir)).rejects.toThrow()
  })

  it('a hardlink to a symlink pointing out becomes the same symlink, not a link to the host file', async () => {
    await fsp.writeFile(join(env.outside, 'secret'), 'host secret')
    const lower = await layer(env, [{ path: 'l', type: 'symlink', linkname: join(env.outside, 'secret') }])
    const upper = await layer(env, [
      { path: 'l2', type: 'symlink', linkname: '../outside/secret' },
      { path: 'h2', type: 'link', linkname: 'l2' },
      { path: 'h', type: 'link', linkname: 'l' },
    ])
    const co = await importAndCheckout(env, [lower, upper])
    for (const [name, target] of [
      ['h', join(env.outside, 'secret')],
      ['h2', '../outside/secret'],
    ]) {
      expect((await fsp.lstat(join(co, name))).isSymbolicLink()).toBe(true)
      expect(await fsp.readlink(join(co, name))).toBe(target)
    }
    expect((await fsp.stat(join(env.outside, 'secret'))).nlink).toBe(1)
    expect(await fsp.readdir(env.outside)).toEqual(['secret'])
  })
})
