/**
 * Transaction.exists: fan-out dirs listed once, big ones asked per name, and
 * an object published by someone else after the listing is staged again but
 * not published twice.
 */
import { mkdirSync, promises as fsp, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { LISTING_LIMIT, Transaction } from '../../src/store/transaction'

let root: string
let objects: string
beforeEach(async () => {
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-tx-'))
  objects = join(root, 'objects')
  await fsp.mkdir(join(root, 'tmp'), { recursive: true })
})
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true })
})

const name = (prefix: string, i: number) => `${prefix}${i.toString(16).padStart(62, '0')}.file`

function publishOutside(n: string): void {
  mkdirSync(join(objects, n.slice(0, 2)), { recursive: true })
  writeFileSync(join(objects, n.slice(0, 2), n), 'x')
}

describe('Transaction.exists', () => {
  it('finds objects in a listed fan-out dir and in one too big to list', async () => {
    publishOutside(name('aa', 1))
    for (let i = 0; i <= LISTING_LIMIT; i++) publishOutside(name('bb', i)) // LISTING_LIMIT + 1 entries
    const tx = await Transaction.begin(join(root, 'tmp'), objects)
    try {
      expect(tx.exists(name('aa', 1))).toBe(true)
      expect(tx.exists(name('aa', 2))).toBe(false)
      expect(tx.exists(name('bb', LISTING_LIMIT))).toBe(true)
      expect(tx.exists(name('bb', LISTING_LIMIT + 1))).toBe(false)
      // Asked per name in the big dir: an object published now is seen.
      publishOutside(name('bb', LISTING_LIMIT + 1))
      expect(tx.exists(name('bb', LISTING_LIMIT + 1))).toBe(true)
      expect(tx.exists(name('cc', 1))).toBe(false) // no fan-out dir yet
    } finally {
      await tx.abort()
    }
  })

  it('an object published after the listing is staged, then dropped by publish (the published one stays)', async () => {
    publishOutside(name('aa', 1))
    const tx = await Transaction.begin(join(root, 'tmp'), objects)
    try {
      expect(tx.exists(name('aa', 2))).toBe(false) // lists aa/
      publishOutside(name('aa', 2)) // another process, after the listing
      expect(tx.putBytesSync(name('aa', 2), Buffer.from('y'), { mode: 0o644 })).toBe(true)
      expect(tx.putBytesSync(name('aa', 3), Buffer.from('z'), { mode: 0o644 })).toBe(true)
      const r = await tx.publish(objects)
      expect(r).toMatchObject({ objectsAdded: 1, filesAdded: 1 })
      expect(await fsp.readFile(join(objects, 'aa', name('aa', 2)), 'utf8')).toBe('x')
      expect(await fsp.readFile(join(objects, 'aa', name('aa', 3)), 'utf8')).toBe('z')
    } finally {
      await tx.abort()
    }
    expect(await fsp.readdir(join(root, 'tmp'))).toEqual([])
  })
})
