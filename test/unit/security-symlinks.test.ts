/**
 * Hostile layers: a symlink, then an entry written "through" it (in the same
 * layer, or through a symlink to a directory from an earlier layer).
 * Sanitised: layers are applied to in-memory trees where a symlink is only
 * ever a leaf, so the later entry replaces the symlink with a directory
 * inside the tree (as the layer's path says); the checkout creates every entry
 * by name under directories it made itself and never follows a symlink.
 * Nothing is written outside.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { importAndCheckout, layer, useSecurityEnv } from './security-fixture'

const env = useSecurityEnv()

async function expectDirInside(co: string, name: string, child: string): Promise<void> {
  const st = await fsp.lstat(join(co, name))
  expect(st.isDirectory()).toBe(true)
  expect(st.isSymbolicLink()).toBe(false)
  expect(await fsp.readFile(join(co, name, child), 'utf8')).toBe('pwned')
  expect(await fsp.readdir(env.outside)).toEqual([])
}

describe('security: writing through symlinks', () => {
  it('same layer: a symlink to an absolute host dir, then a file under it', async () => {
    const b = await layer(env, [
      { path: 'escape', type: 'symlink', linkname: env.outside },
      { path: 'escape/pwned', content: 'pwned' },
    ])
    await expectDirInside(await importAndCheckout(env, [b]), 'escape', 'pwned')
  })

  it('same layer: a relative symlink climbing out, then a file under it', async () => {
    const b = await layer(env, [
      { path: 'escape', type: 'symlink', linkname: '../outside' },
      { path: 'escape/pwned', content: 'pwned' },
    ])
    await expectDirInside(await importAndCheckout(env, [b]), 'escape', 'pwned')
  })

  it('across layers: a symlink to a directory from an earlier layer, then a file under it', async () => {
    const lower = await layer(env, [
      { path: 'etc/', type: 'directory' },
      { path: 'etc/conf', type: 'symlink', linkname: env.outside },
    ])
    const upper = await layer(env, [{ path: 'etc/conf/pwned', content: 'pwned' }])
    await expectDirInside(await importAndCheckout(env, [lower, upper]), 'etc/conf', 'pwned')
  })

  it('across layers: a chain of symlinks (a -> b -> host dir), then a file under a', async () => {
    const lower = await layer(env, [
      { path: 'a', type: 'symlink', linkname: 'b' },
      { path: 'b', type: 'symlink', linkname: env.outside },
    ])
    const upper = await layer(env, [{ path: 'a/pwned', content: 'pwned' }])
    const co = await importAndCheckout(env, [lower, upper])
    await expectDirInside(co, 'a', 'pwned')
    expect(await fsp.readlink(join(co, 'b'))).toBe(env.outside) // kept as in the image, never followed
  })

  it('across layers: a directory entry and a hardlink under a symlinked dir stay inside', async () => {
    const lower = await layer(env, [{ path: 'f', content: 'pwned' }, { path: 'd', type: 'symlink', linkname: env.outside }])
    const upper = await layer(env, [
      { path: 'd/sub/', type: 'directory' },
      { path: 'd/sub/h', type: 'link', linkname: 'f' },
    ])
    const co = await importAndCheckout(env, [lower, upper])
    expect((await fsp.lstat(join(co, 'd'))).isDirectory()).toBe(true)
    expect(await fsp.readFile(join(co, 'd/sub/h'), 'utf8')).toBe('pwned')
    expect(await fsp.readdir(env.outside)).toEqual([])
  })
})
