/**
 * Hostile layers: device nodes and setuid/setgid files are kept as in the
 * image, inside the tree only; one named outside the root is refused like
 * any other entry (content.unsafe-path). Needs root to create device nodes.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { expectNothingPublished, expectRefused, importAndCheckout, layer, useSecurityEnv } from './security-fixture'

const env = useSecurityEnv()
const isRoot = process.getuid?.() === 0

describe('security: devices and setuid files', () => {
  it.skipIf(!isRoot)('keeps a device node and setuid/setgid modes inside the tree (needs root for mknod)', async () => {
    const b = await layer(env, [
      { path: 'dev/', type: 'directory' },
      { path: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
      { path: 'bin/', type: 'directory' },
      { path: 'bin/su', content: 'su', mode: 0o4755 },
      { path: 'bin/wall', content: 'wall', mode: 0o2755, gid: 5 },
    ])
    const co = await importAndCheckout(env, [b])
    const sda = await fsp.lstat(join(co, 'dev/sda'))
    expect(sda.isBlockDevice()).toBe(true)
    expect(sda.rdev).toBe((8 << 8) | 0)
    expect((await fsp.lstat(join(co, 'bin/su'))).mode & 0o7777).toBe(0o4755)
    expect((await fsp.lstat(join(co, 'bin/wall'))).mode & 0o7777).toBe(0o2755)
    expect(await fsp.readdir(env.outside)).toEqual([])
  })

  for (const path of ['../outside/sda', '/dev/sda']) {
    it(`refuses a device node named ${path}`, async () => {
      const b = await layer(env, [{ path, type: 'block-device', devmajor: 8, devminor: 0, mode: 0o666 }])
      await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
      await expectNothingPublished(env, [b])
    })
  }

  it('refuses a setuid file named outside the root', async () => {
    const b = await layer(env, [{ path: '../outside/su', content: 'su', mode: 0o4755 }])
    await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
    await expectNothingPublished(env, [b])
  })
})
