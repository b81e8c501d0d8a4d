// Deployments.scan: one read of the containers directory gives every name with
// an active link, the slot it names, and every slot directory (issue 18: the
// listing verbs read the directory once per command, not once per container).
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Deployments } from '../../src/deployment/deployments'

let dir: string
beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-scan-'))
})
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

describe('Deployments.scan', () => {
  it('lists names, active slots and slot dirs; skips temp dirs and non-slots', async () => {
    for (const d of ['a.0', 'a.1', 'b.2', 'b.10', 'orphan.0', '.a.3.tmp-1234', 'notaslot']) await fsp.mkdir(join(dir, d))
    await fsp.writeFile(join(dir, 'c.0'), '') // a file named like a slot is no slot
    await fsp.symlink('a.1', join(dir, 'a'))
    await fsp.symlink('b.10', join(dir, 'b'))
    await fsp.symlink('elsewhere', join(dir, 'weird'))
    const scan = await new Deployments(dir).scan()
    expect(scan.names).toEqual(['a', 'b', 'weird'])
    expect(Object.fromEntries(scan.active)).toEqual({ a: 1, b: 10, weird: undefined })
    expect(Object.fromEntries(scan.slots)).toEqual({ a: [0, 1], b: [2, 10], orphan: [0] })
  })

  it('reads an absent containers directory as empty', async () => {
    const scan = await new Deployments(join(dir, 'none')).scan()
    expect(scan.names).toEqual([])
    expect(scan.slots.size).toBe(0)
  })
})
