import { fork } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { defaultLockTimeoutMs, isAlive, processStartTime, StoreLock } from '../../src/store/lock'
import { Store } from '../../src/store/store'

let dir: string
beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-lock-'))
})
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

/** A child that takes the lock, appends "start"/"end" lines to a log, holding it for `holdMs`. */
const CHILD = `
const { StoreLock } = require(process.env.LOCK_MODULE)
const fs = require('node:fs')
;(async () => {
  const lock = await StoreLock.acquire(process.env.ROOT, process.env.WHAT, {
    pollMs: 20,
    onWait: (_h, msg) => process.send && process.send({ waiting: msg }),
  })
  fs.appendFileSync(process.env.LOG, process.env.WHAT + ' start\\n')
  process.send && process.send({ locked: true })
  if (process.env.HOLD === 'until-told') await new Promise((r) => process.on('message', (m) => m && m.release && r()))
  else await new Promise((r) => setTimeout(r, Number(process.env.HOLD)))
  fs.appendFileSync(process.env.LOG, process.env.WHAT + ' end\\n')
  if (process.env.DIE) process.exit(0) // without releasing
  await lock.release()
  process.exit(0)
})()
`

/** `holdMs` 'until-told': the child holds the lock until the test sends it {release: true}. */
function child(what: string, holdMs: number | 'until-told', opts: { die?: boolean } = {}) {
  const script = join(dir, 'child.js')
  const c = fork(script, [], {
    env: { ...process.env, LOCK_MODULE: LOCK_JS, ROOT: dir, WHAT: what, LOG: join(dir, 'log'), HOLD: String(holdMs), ...(opts.die ? { DIE: '1' } : {}) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const messages: Record<string, unknown>[] = []
  c.on('message', (m) => messages.push(m as Record<string, unknown>))
  const exited = new Promise<number | null>((r) => c.on('exit', (code) => r(code)))
  const locked = new Promise<void>((r) => c.on('message', (m) => (m as { locked?: boolean }).locked && r()))
  const waiting = new Promise<void>((r) => c.on('message', (m) => (m as { waiting?: string }).waiting && r()))
  return { c, messages, exited, locked, waiting }
}

// The child is plain node: bundle the lock module to JS with esbuild (vitest's own bundler).
let LOCK_JS = ''
beforeEach(async () => {
  const esbuild = await import('esbuild')
  LOCK_JS = join(dir, 'lock.js')
  await esbuild.build({ entryPoints: [join(__dirname, '../../src/store/lock.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: LOCK_JS, logLevel: 'silent' })
  await fsp.writeFile(join(dir, 'child.js'), CHILD)
})

describe('StoreLock', () => {
  it('serialises two processes and reports who holds it', async () => {
    // a holds the lock until b has said it waits: no timing assumption under load.
    const a = child('installing etcd', 'until-told')
    await a.locked
    const b = child('installing nginx', 10)
    await b.waiting
    a.c.send({ release: true })
    expect(await a.exited).toBe(0)
    expect(await b.exited).toBe(0)
    const log = (await fsp.readFile(join(dir, 'log'), 'utf8')).trim().split('\n')
    expect(log).toEqual(['installing etcd start', 'installing etcd end', 'installing nginx start', 'installing nginx end'])
    expect(b.messages.find((m) => m.waiting)?.waiting).toBe(`waiting for store lock held by pid ${a.c.pid} (installing etcd)`)
    await expect(fsp.readlink(join(dir, 'lock'))).rejects.toThrow()
  })

  it('takes over from a dead holder', async () => {
    const a = child('crashing', 10, { die: true })
    expect(await a.exited).toBe(0)
    expect(JSON.parse(await fsp.readlink(join(dir, 'lock'))).what).toBe('crashing')
    const b = child('after crash', 10)
    expect(await b.exited).toBe(0)
    expect((await fsp.readFile(join(dir, 'log'), 'utf8')).trim().split('\n').slice(-2)).toEqual(['after crash start', 'after crash end'])
  })

  it('treats a reused pid with another start time as stale', async () => {
    const me = processStartTime(process.pid)!
    expect(isAlive({ pid: process.pid, start: me })).toBe(true)
    expect(isAlive({ pid: process.pid, start: me + 1 })).toBe(false)
    await fsp.symlink(JSON.stringify({ pid: process.pid, start: me + 1, what: 'old', since: '' }), join(dir, 'lock'))
    const lock = await StoreLock.acquire(dir, 'new', { pollMs: 5 })
    expect(JSON.parse(await fsp.readlink(join(dir, 'lock'))).what).toBe('new')
    await lock.release()
  })

  it('times out with a conflict while a live holder keeps it', async () => {
    const held = await StoreLock.acquire(dir, 'holding')
    const waits: string[] = []
    await expect(StoreLock.acquire(dir, 'second', { timeoutMs: 50, pollMs: 10, onWait: (_h, m) => waits.push(m) })).rejects.toMatchObject({ code: 'store.locked' })
    expect(waits).toEqual([`waiting for store lock held by pid ${process.pid} (holding)`])
    await held.release()
  })

  it('with no timeout given, SYSCTR_LOCK_TIMEOUT bounds the wait (every wait in sysctr is bounded)', async () => {
    const held = await StoreLock.acquire(dir, 'holding')
    const before = process.env.SYSCTR_LOCK_TIMEOUT
    process.env.SYSCTR_LOCK_TIMEOUT = '0.05'
    try {
      const err = await StoreLock.acquire(dir, 'second', { pollMs: 10 }).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'store.locked', exitCode: 4 })
      expect((err as Error).message).toContain(`held by pid ${process.pid} (holding) after 0 s of waiting`)
    } finally {
      if (before === undefined) delete process.env.SYSCTR_LOCK_TIMEOUT
      else process.env.SYSCTR_LOCK_TIMEOUT = before
      await held.release()
    }
    expect(defaultLockTimeoutMs({})).toBe(30 * 60 * 1000)
  })

  it('Store.withLock is re-entrant and queues callers in one process', async () => {
    const store = await Store.open(join(dir, 'store'))
    const order: string[] = []
    await Promise.all([
      store.withLock('one', async () => {
        order.push('one:start')
        await store.withLock('nested', async () => order.push('nested'))
        await new Promise((r) => setTimeout(r, 30))
        order.push('one:end')
      }),
      store.withLock('two', async () => order.push('two')),
    ])
    expect(order).toEqual(['one:start', 'nested', 'one:end', 'two'])
  })
})
