/**
 * Hostile layers: device nodes and fifos are kept as in the image under
 * /dev only; anywhere else they are refused (content.special-file). A name
 * with `..` is refused like any other entry (content.unsafe-path); a leading
 * `/` means the image root. setuid/setgid files are kept as in the image.
 * Needs root to create device nodes.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { LayerEntry } from '../../harness/oci-layout-writer'
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

  for (const path of ['../outside/sda', '/dev/../outside/sda']) {
    it(`refuses a device node named ${path}`, async () => {
      const b = await layer(env, [{ path, type: 'block-device', devmajor: 8, devminor: 0, mode: 0o666 }])
      await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
      await expectNothingPublished(env, [b])
    })
  }

  const outsideDev: [string, LayerEntry][] = [
    ['a block device in /etc', { path: 'etc/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o666 }],
    ['a character device at the root', { path: 'mem', type: 'character-device', devmajor: 1, devminor: 1, mode: 0o666 }],
    ['a fifo in /run', { path: 'run/ctl', type: 'fifo', mode: 0o600 }],
    ['a device named /dev itself', { path: '/dev', type: 'character-device', devmajor: 1, devminor: 3 }],
    ['a device in a dir named like /dev', { path: 'devices/null', type: 'character-device', devmajor: 1, devminor: 3 }],
  ]
  for (const [what, entry] of outsideDev) {
    it(`refuses ${what} (${entry.path})`, async () => {
      const b = await layer(env, [entry])
      const e = await expectRefused(importAndCheckout(env, [b]), 'content.special-file')
      expect(e.fullMessage).toContain('outside /dev')
      await expectNothingPublished(env, [b])
    })
  }

  it.skipIf(!isRoot)('keeps a fifo and a device named with a leading / under /dev', async () => {
    const b = await layer(env, [
      { path: '/dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { path: 'dev/initctl', type: 'fifo', mode: 0o600 },
    ])
    const co = await importAndCheckout(env, [b])
    expect((await fsp.lstat(join(co, 'dev/null'))).isCharacterDevice()).toBe(true)
    expect((await fsp.lstat(join(co, 'dev/initctl'))).isFIFO()).toBe(true)
  })

  it('refuses a setuid file named outside the root', async () => {
    const b = await layer(env, [{ path: '../outside/su', content: 'su', mode: 0o4755 }])
    await expectRefused(importAndCheckout(env, [b]), 'content.unsafe-path')
    await expectNothingPublished(env, [b])
  })
})
