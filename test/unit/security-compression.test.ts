/**
 * Hostile layers: truncated gzip, and trailing garbage after the tar (raw,
 * inside the gzip stream, or after the gzip member). All refused at import
 * (content.bad-compression / content.bad-tar, exit 6) with the blob's digest
 * correct, so only the content is at fault; nothing is published.
 */
import { describe, expect, it } from 'vitest'
import { expectNothingPublished, expectRefused, gzip, importAndCheckout, rawBlob, tarOf, useSecurityEnv } from './security-fixture'

const env = useSecurityEnv()

const entries = () => [
  { path: 'etc/', type: 'directory' as const },
  { path: 'etc/big', content: 'x'.repeat(200_000) },
  { path: 'etc/small', content: 'small' },
]
const garbage = Buffer.from('GARBAGE!'.repeat(200))

describe('security: compression and tar framing', () => {
  it('refuses a truncated gzip stream', async () => {
    const gz = gzip(await tarOf(env, entries()))
    const b = rawBlob(gz.subarray(0, Math.floor(gz.length / 2)), 'gzip')
    const e = await expectRefused(importAndCheckout(env, [b]), /^content\.bad-(compression|tar)$/)
    expect(e.fullMessage).toContain(b.desc.digest)
    await expectNothingPublished(env, [b])
  })

  it('refuses a gzip stream missing only its trailer (CRC and size)', async () => {
    const gz = gzip(await tarOf(env, entries()))
    const b = rawBlob(gz.subarray(0, gz.length - 8), 'gzip')
    await expectRefused(importAndCheckout(env, [b]), /^content\.bad-(compression|tar)$/)
    await expectNothingPublished(env, [b])
  })

  it('refuses an uncompressed tar with garbage after its end blocks', async () => {
    const b = rawBlob(Buffer.concat([await tarOf(env, entries()), garbage]), 'none')
    await expectRefused(importAndCheckout(env, [b]), 'content.bad-tar')
    await expectNothingPublished(env, [b])
  })

  it('refuses a gzip whose tar has garbage after its end blocks', async () => {
    const b = rawBlob(gzip(Buffer.concat([await tarOf(env, entries()), garbage])), 'gzip')
    await expectRefused(importAndCheckout(env, [b]), 'content.bad-tar')
    await expectNothingPublished(env, [b])
  })

  it('refuses garbage after the gzip member', async () => {
    const b = rawBlob(Buffer.concat([gzip(await tarOf(env, entries())), garbage]), 'gzip')
    await expectRefused(importAndCheckout(env, [b]), /^content\.bad-(compression|tar)$/)
    await expectNothingPublished(env, [b])
  })

  it('accepts extra zero blocks after the end of the archive (tar record padding)', async () => {
    const b = rawBlob(gzip(Buffer.concat([await tarOf(env, entries()), Buffer.alloc(10240)])), 'gzip')
    await importAndCheckout(env, [b])
    expect(await env.store.getLayer(b.desc.digest)).toBeDefined()
  })
})
