/**
 * Crash safety: the built CLI is killed with SIGKILL at many points of
 * `images pull`, `images checkout` and `images prune`; after each kill the
 * store must be sound (fsck), an image ref must be either absent or complete
 * (its checkout equals a clean pull's), and the next run must succeed and
 * leave no tmp/ leftovers.
 *
 * Kill points: a spread of delays over the measured length of a clean run,
 * plus "right after layer N's record was published" (the stderr line that
 * announces layer N+1).
 */
import { execFileSync } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fsck } from '../../src/store/fsck'
import { Store } from '../../src/store/store'
import { buildCrashImages, cliSkipReason, CrashImages, runCli, startCli } from '../helpers/crash'
import { pushLayout, registrySkipReason, RunningRegistry, startRegistry } from '../helpers/registry'
import { compareTrees } from '../helpers/tree-compare'

const skip = registrySkipReason() ?? cliSkipReason()

let dir: string
let registry: RunningRegistry
let images: CrashImages
let v1: string
let v2: string
let pullMs = 0
const refCheckout: Record<string, string> = {}
const refCommit: Record<string, string> = {}

async function checkoutFromStore(stateDir: string, name: string, target: string): Promise<boolean> {
  const store = await Store.open(join(stateDir, 'store'))
  try {
    const rec = await store.getImageRef(name)
    if (!rec) return false
    await store.checkout(rec.commit, target)
    return true
  } finally {
    await store.close()
  }
}

/**
 * After a kill: the store is sound (fsck), and each ref is absent or names
 * exactly the commit of a clean pull (content addressing + a clean fsck: the
 * same tree, all present). With `compare`, also check it out and compare the
 * tree with the clean pull's checkout.
 */
async function assertAfterKill(stateDir: string, names: string[], compare = false): Promise<Record<string, boolean>> {
  const store = await Store.open(join(stateDir, 'store'))
  const present: Record<string, boolean> = {}
  try {
    expect((await fsck(store)).problems).toEqual([])
    for (const name of names) {
      const rec = await store.getImageRef(name)
      present[name] = rec !== undefined
      if (!rec) continue
      expect(rec.commit).toBe(refCommit[name])
      if (!compare) continue
      const out = join(dir, `co-${Math.random().toString(36).slice(2)}`)
      await store.checkout(rec.commit, out)
      expect(await compareTrees(refCheckout[name], out)).toBeUndefined()
      await fsp.rm(out, { recursive: true, force: true })
    }
  } finally {
    await store.close()
  }
  return present
}

async function commitOf(stateDir: string, name: string): Promise<string> {
  const store = await Store.open(join(stateDir, 'store'))
  try {
    return (await store.getImageRef(name))!.commit
  } finally {
    await store.close()
  }
}

async function tmpLeftovers(stateDir: string): Promise<string[]> {
  return fsp.readdir(join(stateDir, 'store', 'tmp')).catch(() => [])
}

describe.skipIf(skip)('store crash safety (kill -9 of the CLI)', () => {
  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-crash-'))
    registry = await startRegistry()
    images = await buildCrashImages(join(dir, 'oci'), 300)
    v1 = `${registry.host}/crash/app:v1`
    v2 = `${registry.host}/crash/app:v2`
    await pushLayout(images.layout, 'v1', v1)
    await pushLayout(images.layout, 'v2', v2)
    // The reference: a clean pull and checkout of each.
    const ref = join(dir, 'ref-state')
    for (const name of [v1, v2]) {
      const r = await runCli(['images', 'pull', '--tls-verify=false', name], ref)
      expect(r.code, r.stderr).toBe(0)
      if (name === v1) pullMs = r.ms
      refCheckout[name] = join(dir, `ref-${name === v1 ? 'v1' : 'v2'}`)
      expect(await checkoutFromStore(ref, name, refCheckout[name])).toBe(true)
      refCommit[name] = await commitOf(ref, name)
    }
  })
  afterAll(async () => {
    await registry?.stop()
    if (dir) await fsp.rm(dir, { recursive: true, force: true })
  })

  it('pull: killed at a spread of points and after each layer, leaves old or new state; a rerun completes', { timeout: 120_000 }, async () => {
    expect((await runCli(['images', 'pull', '--tls-verify=false', v2], join(dir, 'v2-only'))).code).toBe(0)
    const points: ({ ms: number } | { line: RegExp })[] = [
      { line: /fetching layer 2\/3/ },
      { line: /fetching layer 3\/3/ },
      ...[0.45, 0.65, 0.85, 0.95].map((f) => ({ ms: Math.round(pullMs * f) })),
    ]
    const seen = { absent: 0, complete: 0, leftovers: 0 }
    for (const [i, p] of points.entries()) {
      const state = join(dir, `pull-${i}`)
      // Half the runs start from a store holding v2 already (shared layers), half from empty.
      if (i % 2 === 1) execFileSync('cp', ['-a', join(dir, 'v2-only'), state])
      const run = startCli(['images', 'pull', '--tls-verify=false', v1], state)
      if ('ms' in p) setTimeout(run.kill, p.ms)
      else void run.waitForLine(p.line).then(run.kill)
      const r = await run.done
      if ((await tmpLeftovers(state)).length > 0) seen.leftovers++
      const present = await assertAfterKill(state, i % 2 === 1 ? [v1, v2] : [v1], i === points.length - 1)
      if (i % 2 === 1) expect(present[v2]).toBe(true)
      seen[present[v1] ? 'complete' : 'absent']++
      expect(r.signal === 'SIGKILL' || r.code === 0, r.stderr).toBe(true)
      // The next run completes, cleans up, and the result is whole.
      const again = await runCli(['images', 'pull', '--tls-verify=false', v1], state)
      expect(again.code, again.stderr).toBe(0)
      expect(await tmpLeftovers(state)).toEqual([])
      await assertAfterKill(state, [v1], i === 0)
      await fsp.rm(state, { recursive: true, force: true })
      console.log(`kill point ${JSON.stringify('ms' in p ? p.ms : String(p.line))}: killed after ${r.ms} ms, ref ${present[v1] ? 'complete' : 'absent'}`)
    }
    // The spread really hit the middle of pulls.
    expect(seen.absent).toBeGreaterThan(2)
    console.log(`crash test (pull, ${pullMs} ms clean): ${JSON.stringify(seen)}`)
  })

  it('checkout: a killed checkout never harms the store', { timeout: 60_000 }, async () => {
    const state = join(dir, 'checkout')
    const first = await runCli(['images', 'pull', '--tls-verify=false', v1], state)
    expect(first.code).toBe(0)
    const clean = await runCli(['images', 'checkout', v1, join(dir, 'co-clean')], state)
    expect(clean.code, clean.stderr).toBe(0)
    for (const f of [0.5, 0.7, 0.9]) {
      const target = join(dir, `co-killed-${f}`)
      const run = startCli(['images', 'checkout', v1, target], state)
      setTimeout(run.kill, Math.round(clean.ms * f))
      await run.done
      await assertAfterKill(state, [v1])
      await fsp.rm(target, { recursive: true, force: true })
    }
  })

  it('prune: killed mid-sweep leaves a sound store; a rerun finishes the job', { timeout: 60_000 }, async () => {
    // A clean prune (to time the kills), then kills of the same prune.
    const cleanState = join(dir, 'prune-clean')
    execFileSync('cp', ['-a', join(dir, 'ref-state'), cleanState])
    expect((await runCli(['images', 'delete', v1], cleanState)).code).toBe(0)
    const clean = await runCli(['images', 'prune'], cleanState)
    expect(clean.code, clean.stderr).toBe(0)
    // The same starting point for each kill: v1 and v2 pulled, v1's ref deleted.
    const start = join(dir, 'prune-start')
    execFileSync('cp', ['-a', join(dir, 'ref-state'), start])
    expect((await runCli(['images', 'delete', v1], start)).code).toBe(0)
    for (const [i, f] of [0.6, 0.75, 0.9].entries()) {
      const state = join(dir, `prune-${i}`)
      execFileSync('cp', ['-a', start, state])
      const run = startCli(['images', 'prune'], state)
      setTimeout(run.kill, Math.round(clean.ms * f))
      await run.done
      const present = await assertAfterKill(state, [v1, v2])
      expect(present).toEqual({ [v1]: false, [v2]: true })
      const again = await runCli(['images', 'prune', '--json'], state)
      expect(again.code, again.stderr).toBe(0)
      await assertAfterKill(state, [v2])
    }
  })
})
