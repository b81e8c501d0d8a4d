/**
 * A full disk (the state dir on a small tmpfs): the built CLI's install exits
 * 7 (HostError host.enospc) with one line saying the filesystem is full and
 * where, the store stays sound (fsck clean, nothing left in tmp/, no
 * half-built deployment), and once space is freed the same install succeeds.
 * (Before: exit 1, "pulling layer …: Premature close": the stream's error hid
 * the write's ENOSPC.)
 *
 * Two ways to fill it: too few bytes for the image's layer (size=), and too
 * few inodes for the checkout and the deployment's files (nr_inodes=, grown
 * step by step from what the store alone needs, so ENOSPC hits the install at
 * several points after the pull).
 */
import { execFileSync } from 'node:child_process'
import { promises as fsp, statfsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildDemoImages } from '../../harness/demo/images'
import { fsck } from '../../src/store/fsck'
import { Store } from '../../src/store/store'
import { cliSkipReason, startCli } from '../helpers/crash'
import { serveLayout, type ServedLayout } from '../helpers/http-fake-registry'

const skip = cliSkipReason()

let served: ServedLayout<unknown>
const mounts: string[] = []
const dirs: string[] = []

beforeAll(async () => {
  if (skip) return
  served = await serveLayout('demo/images', (dir) => buildDemoImages(dir))
})
afterAll(async () => {
  for (const m of mounts) execFileSync('umount', [m])
  await served?.close()
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true })
})

/** A root DIR whose var/lib/sysctr is a tmpfs mounted with `opts`. */
async function smallRoot(opts: string): Promise<{ root: string; state: string }> {
  const root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-disk-'))
  dirs.push(root)
  const state = join(root, 'var/lib/sysctr')
  await fsp.mkdir(state, { recursive: true })
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', state])
  mounts.unshift(state)
  return { root, state }
}

async function installCli(root: string, name: string, tag: string) {
  const r = startCli(['install', '--system', '--root', root, '--name', name, '--tls-verify=false', `${served.registry.host}/demo/images:${tag}`], join(root, 'var/lib/sysctr'))
  const guard = setTimeout(() => r.kill(), 60_000)
  try {
    return await r.done
  } finally {
    clearTimeout(guard)
  }
}

/** The store is sound, its tmp/ empty, and no deployment of `name` (nor a temp dir) is left. */
async function assertClean(state: string, name: string): Promise<void> {
  const store = await Store.open(join(state, 'store'))
  try {
    expect((await fsck(store)).problems).toEqual([])
  } finally {
    await store.close()
  }
  expect(await fsp.readdir(join(state, 'store', 'tmp'))).toEqual([])
  const left = (await fsp.readdir(join(state, 'containers')).catch(() => [] as string[])).filter((e) => e === name || e.startsWith(`${name}.`) || e.startsWith(`.${name}.`))
  expect(left).toEqual([])
}

function expectDiskFull(r: { code: number | null; stderr: string }, state: string): void {
  expect(r.code).toBe(7)
  const lines = r.stderr.trim().split('\n').filter((l) => /^(error|hint): /.test(l))
  expect(lines, r.stderr).toHaveLength(2)
  expect(lines[0]).toMatch(/^error: installing \S+: .*no space left on device: the filesystem holding \/\S+ is full/)
  expect(lines[0]).toContain(state)
  expect(lines[0]).not.toMatch(/Premature close/)
  expect(lines[1]).toMatch(/^hint: free space/)
  expect(r.stderr).not.toMatch(/\n\s+at /)
}

describe.skipIf(skip)('disk full', () => {
  it('a store too small for the layer: exit 7 naming the filesystem and the layer; clean; succeeds after the remount', async () => {
    const { root, state } = await smallRoot('size=1m')
    const r = await installCli(root, 'etcd', 'etcd')
    expectDiskFull(r, state)
    expect(r.stderr).toMatch(/pulling layer sha256:[0-9a-f]{12}: no space left on device: .* \(\d.* free of 1\.0 MiB\); needed: layer sha256:[0-9a-f]{12}, [\d.]+ [KM]iB compressed/)
    await assertClean(state, 'etcd')

    execFileSync('mount', ['-o', 'remount,size=64m', state])
    const again = await installCli(root, 'etcd', 'etcd')
    expect({ code: again.code, stderr: again.code === 0 ? '' : again.stderr }).toEqual({ code: 0, stderr: '' })
    expect(await fsp.readlink(join(state, 'containers', 'etcd'))).toBe('etcd.0')
  })

  it('too few inodes for the checkout and the records: every attempt exits 7 and leaves nothing; the last one succeeds', async () => {
    const { root, state } = await smallRoot('size=64m')
    // etcd first: the shared base layer is in the store, so flannel's install is mostly checkout and records.
    expect((await installCli(root, 'etcd', 'etcd')).code).toBe(0)
    const used = () => {
      const s = statfsSync(state)
      return s.files - s.ffree
    }
    const base = used()
    let extra = 1
    let failures = 0
    const seen = new Set<string>()
    for (;;) {
      execFileSync('mount', ['-o', `remount,nr_inodes=${base + extra}`, state])
      const r = await installCli(root, 'flannel', 'flannel')
      if (r.code === 0) break
      expectDiskFull(r, state)
      seen.add(r.stderr.split('\n').find((l) => l.startsWith('error: '))!.replace(/ \(.*\)/, ' (…)'))
      // fsck takes the store lock: it needs an inode of its own.
      execFileSync('mount', ['-o', 'remount,nr_inodes=1000000', state])
      await assertClean(state, 'flannel')
      failures++
      expect(extra).toBeLessThan(1 << 16)
      extra *= 2
    }
    expect(failures).toBeGreaterThan(2)
    console.log([...seen].join('\n'))
    expect(await fsp.readlink(join(state, 'containers', 'flannel'))).toBe('flannel.0')
    // etcd was never disturbed.
    expect(await fsp.readlink(join(state, 'containers', 'etcd'))).toBe('etcd.0')
  })
})
