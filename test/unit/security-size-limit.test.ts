/**
 * Hostile layers: a layer that decompresses to far more than its size (a gzip
 * bomb) is refused with content.too-large once the uncompressed tar passes the
 * limit (SYSCTR_MAX_LAYER_SIZE, default 64 GiB); nothing is published.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DEFAULT_MAX_LAYER_SIZE, maxLayerSize } from '../../src/store/layer-import'
import { expectNothingPublished, expectRefused, gzip, importAndCheckout, rawBlob, tarOf, ustarHeader, useSecurityEnv } from './security-fixture'

const env = useSecurityEnv()
let saved: string | undefined
beforeEach(() => {
  saved = process.env.SYSCTR_MAX_LAYER_SIZE
})
afterEach(() => {
  if (saved === undefined) delete process.env.SYSCTR_MAX_LAYER_SIZE
  else process.env.SYSCTR_MAX_LAYER_SIZE = saved
})

async function objectFiles(): Promise<string[]> {
  const out: string[] = []
  const objects = join(env.dir, 'store', 'objects')
  for (const d of await fsp.readdir(objects).catch(() => [])) out.push(...(await fsp.readdir(join(objects, d))).filter((f) => f.endsWith('.file')))
  return out
}

describe('security: decompression limit', () => {
  it('refuses a gzip bomb past SYSCTR_MAX_LAYER_SIZE; nothing published', async () => {
    const tar = await tarOf(env, [{ path: 'small', content: 'a file that would be stored' }, { path: 'zeros', content: Buffer.alloc(16 << 20).toString() }])
    const b = rawBlob(gzip(tar), 'gzip')
    expect(b.bytes.length).toBeLessThan(100_000)
    process.env.SYSCTR_MAX_LAYER_SIZE = String(1 << 20)
    const e = await expectRefused(importAndCheckout(env, [b]), 'content.too-large')
    expect(e.fullMessage).toContain(`more than ${1 << 20} bytes`)
    expect(e.data).toMatchObject({ limit: 1 << 20 })
    expect(e.hint).toContain('SYSCTR_MAX_LAYER_SIZE')
    await expectNothingPublished(env, [b])
    expect(await objectFiles()).toEqual([])
  })

  it('stops an 8 GiB bomb before 1 MiB of it is read, naming the limit and how to raise it', async () => {
    // gzip members decode as their concatenation: one tar header for an 8 GiB file, then 16 MiB of zeros at a time.
    const header = gzip(ustarHeader(Buffer.from('zeros'), { size: 8 * 1024 ** 3 - 1 }))
    const zeros = gzip(Buffer.alloc(16 << 20))
    let read = 0
    async function* bomb(): AsyncGenerator<Buffer> {
      read += header.length
      yield header
      for (let i = 0; i < 512; i++) {
        read += zeros.length
        yield zeros
      }
    }
    // Refused before the digest is known: the descriptor's digest never matters here.
    const desc = { ...rawBlob(Buffer.from('x'), 'gzip').desc, size: -1 }
    process.env.SYSCTR_MAX_LAYER_SIZE = String(1 << 20)
    const e = await expectRefused(env.store.importLayer(desc, Readable.from(bomb())), 'content.too-large')
    expect(e.message).toContain(`more than ${1 << 20} bytes`)
    expect(e.hint).toContain('SYSCTR_MAX_LAYER_SIZE')
    expect(read).toBeLessThan(1 << 20)
    expect(await env.store.getLayer(desc.digest)).toBeUndefined()
  })

  it('refuses an uncompressed layer past the limit too', async () => {
    const b = rawBlob(await tarOf(env, [{ path: 'f', content: 'x'.repeat(200_000) }]), 'none')
    process.env.SYSCTR_MAX_LAYER_SIZE = '100000'
    await expectRefused(importAndCheckout(env, [b]), 'content.too-large')
    await expectNothingPublished(env, [b])
  })

  it('accepts the same layer under a limit it fits', async () => {
    const b = rawBlob(gzip(await tarOf(env, [{ path: 'f', content: 'x'.repeat(200_000) }])), 'gzip')
    process.env.SYSCTR_MAX_LAYER_SIZE = String(1 << 20)
    await importAndCheckout(env, [b])
    expect(await env.store.getLayer(b.desc.digest)).toBeDefined()
  })

  it('defaults to 64 GiB and refuses a nonsense setting', () => {
    expect(maxLayerSize({})).toBe(DEFAULT_MAX_LAYER_SIZE)
    expect(DEFAULT_MAX_LAYER_SIZE).toBe(64 * 1024 ** 3)
    expect(maxLayerSize({ SYSCTR_MAX_LAYER_SIZE: '4096' })).toBe(4096)
    expect(() => maxLayerSize({ SYSCTR_MAX_LAYER_SIZE: 'lots' })).toThrow(expect.objectContaining({ code: 'usage.bad-limit' }))
  })
})
