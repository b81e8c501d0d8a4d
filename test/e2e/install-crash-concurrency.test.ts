/**
 * Crash safety and concurrency of whole installs, under a real systemd with
 * the built CLI: two installs at once, an install racing a prune, and
 * `kill -9` of install and uninstall at a spread of points. After each:
 * `sysctr fsck` is clean, a rerun completes, and what is installed runs.
 */
import { resolve } from 'node:path'
import { promises as fsp } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDemoEnvironment, DemoEnvironment } from '../../harness/demo-env'
import { systemdSkipReason } from '../../harness/nspawn'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()
const SYSCTR = '/opt/sysctr/bin/sysctr'

describe.skipIf(skip !== undefined)(`install/uninstall: kill -9 and concurrency (real systemd)${skip ? `: skipped, ${skip}` : ''}`, () => {
  let env: DemoEnvironment

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js'))
    env = await startDemoEnvironment({ repo })
  })
  afterAll(async () => {
    await env?.stop()
  })

  const sh = (script: string, timeoutMs = 120_000) => env.box.exec(['sh', '-c', script], { timeoutMs })
  const fsckClean = async () => {
    const r = await env.sysctr(['fsck'])
    expect({ code: r.code, out: r.stdout + r.stderr }).toMatchObject({ code: 0 })
  }
  const installed = async (name: string) => {
    const r = await env.sysctr(['containers', 'list', '--json'])
    expect(r.code).toBe(0)
    return (JSON.parse(r.stdout) as { name: string }[]).some((c) => c.name === name)
  }

  it('two installs at once (sharing a layer) both succeed; the store is sound', async () => {
    const r = await sh(
      `${SYSCTR} install -q --system --tls-verify=false --name c1 ${env.images.etcd} & a=$!; ` +
        `${SYSCTR} install -q --system --tls-verify=false --name c2 ${env.images.flannel} & b=$!; ` +
        'wait $a; ra=$?; wait $b; rb=$?; echo "$ra $rb"',
    )
    expect(r.stdout.trim()).toBe('0 0')
    expect(await installed('c1')).toBe(true)
    expect(await installed('c2')).toBe(true)
    await fsckClean()
  })

  it('an install racing a prune: the install completes and its checkout is whole', async () => {
    const r = await sh(
      `${SYSCTR} install -q --system --tls-verify=false --name c3 ${env.images.engine} & a=$!; ` +
        `${SYSCTR} images prune -q & b=$!; wait $a; ra=$?; wait $b; rb=$?; echo "$ra $rb"`,
    )
    expect(r.stdout.trim()).toBe('0 0')
    await fsckClean()
    const bb = await fsp.stat(env.box.hostPath('/var/lib/sysctr/containers/c3.0/rootfs/bin/busybox'))
    expect(bb.size).toBeGreaterThan(100_000)
    const start = await env.box.exec(['systemctl', 'start', 'c1.service'], { timeoutMs: 60_000 })
    expect(start.code).toBe(0)
  })

  it('kill -9 of install at a spread of points: a rerun completes, fsck is clean, nothing half-installed remains', async () => {
    const outcomes: string[] = []
    for (const ms of [50, 150, 300, 450, 600, 800, 1000, 1300]) {
      // A fresh name each round; the image is in the store already after the first rounds,
      // so later kills land in checkout, render, publish and the systemd calls.
      const name = `k${ms}`
      await sh(`${SYSCTR} install -q --system --tls-verify=false --name ${name} ${env.images.etcd} >/dev/null 2>&1 & p=$!; sleep ${ms / 1000}; kill -9 $p 2>/dev/null; wait $p; true`)
      const was = (await installed(name)) ? 'installed' : 'absent'
      outcomes.push(`${ms}ms:${was}`)
      await fsckClean()
      // The rerun finishes the job (or finds it done) ...
      const again = await env.sysctr(['install', '--system', '--tls-verify=false', '--name', name, env.images.etcd])
      expect({ name, code: again.code, stderr: again.stderr }).toMatchObject({ code: 0 })
      // ... and leaves no temp dirs.
      const leftovers = (await fsp.readdir(env.box.hostPath('/var/lib/sysctr/containers'))).filter((e) => e.startsWith('.'))
      expect(leftovers).toEqual([])
      const unit = await fsp.readFile(env.box.hostPath(`/etc/systemd/system/${name}.service`), 'utf8')
      expect(unit).toContain(`--bundle /var/lib/sysctr/containers/${name}.0 ${name}`)
    }
    // Some kills must have landed before the end, or the test proved nothing.
    expect(outcomes.some((o) => o.endsWith('absent'))).toBe(true)
  })

  it('kill -9 of uninstall at a spread of points: a rerun completes and leaves nothing', async () => {
    for (const ms of [50, 150, 300, 450, 600, 800, 1000, 1300]) {
      const name = `k${ms}`
      await env.box.exec(['systemctl', 'start', `${name}.service`], { timeoutMs: 60_000 })
      await sh(`${SYSCTR} uninstall -q ${name} >/dev/null 2>&1 & p=$!; sleep ${ms / 1000}; kill -9 $p 2>/dev/null; wait $p; true`)
      if (await installed(name)) {
        const again = await env.sysctr(['uninstall', name])
        expect({ name, code: again.code, stderr: again.stderr }).toMatchObject({ code: 0 })
      } else {
        // Gone from the list: every trace must be gone too, or a rerun must say not installed.
        const again = await env.sysctr(['uninstall', name])
        expect([0, 3]).toContain(again.code)
      }
      await expect(fsp.access(env.box.hostPath(`/etc/systemd/system/${name}.service`))).rejects.toThrow()
      await expect(fsp.access(env.box.hostPath(`/etc/tmpfiles.d/${name}.conf`))).rejects.toThrow()
      const left = (await fsp.readdir(env.box.hostPath('/var/lib/sysctr/containers'))).filter((e) => e === name || e.startsWith(`${name}.`) || e.startsWith(`.${name}.`))
      expect(left).toEqual([])
    }
    await fsckClean()
  })
})
