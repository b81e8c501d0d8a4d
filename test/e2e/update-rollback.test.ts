/**
 * update / rollback / list / mount end to end: svc v1, v2, v3
 * (test/helpers/update-images.ts) pushed with skopeo to the registry inside a
 * real systemd (the demo environment), driven by the built CLI, run by runc.
 * The tag `svc:latest` is re-pushed as a publisher would; v3 exits before it
 * becomes ready, so its restart job fails and update rolls back by itself.
 */
import { resolve, join } from 'node:path'
import { promises as fsp } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDemoEnvironment, DemoEnvironment, WORK_IN_CONTAINER } from '../../harness/demo-env'
import { connectSystemd } from '../../src/systemd/dbus-systemd'
import type { Systemd } from '../../src/systemd/systemd'
import { systemdSkipReason } from '../../harness/nspawn'
import { buildUpdateImages } from '../helpers/update-images'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()

describe.skipIf(skip !== undefined)(`containers update/rollback/list, mount end to end${skip ? `: skipped, ${skip}` : ''}`, () => {
  let env: DemoEnvironment
  let systemd: Systemd
  let ref: string

  const publish = async (v: string) => {
    const r = await env.box.exec(
      ['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${WORK_IN_CONTAINER}/oci-svc:svc-${v}`, `docker://${ref}`],
      { timeoutMs: 60_000 },
    )
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  }
  const run = async (args: string[]) => env.sysctr(args)
  /** What the running container reports: its version file and its process env. */
  const running = async () => {
    const version = (await env.box.exec(['runc', 'exec', 'svc', 'cat', '/etc/svc-version'])).stdout.trim()
    const environ = (await env.box.exec(['runc', 'exec', 'svc', 'cat', '/proc/1/environ'])).stdout.split('\0')
    return { version, env: environ.filter((e) => /^(VERSION|GREETING)=/.test(e)).sort() }
  }
  const list = async () => {
    const r = await run(['containers', 'list', '--json'])
    expect(r.code).toBe(0)
    return JSON.parse(r.stdout) as { name: string; deployment: string; activeState: string; manifestDigest: string; image: string }[]
  }

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
    })
    env = await startDemoEnvironment({ repo })
    await buildUpdateImages(join(env.workDir, 'oci-svc'))
    systemd = await connectSystemd({ busAddress: env.box.busAddress })
    ref = `${env.registry}/demo/svc:latest`
  }, 120_000)
  afterAll(async () => {
    await systemd?.close()
    await env?.stop()
  })

  it('install v1 --now, then update to v2: the unit runs v2, with the saved --set value', async () => {
    await publish('v1')
    const i = await run(['install', '--system', '--tls-verify=false', '--name', 'svc', '--set', 'GREETING=hi', '--now', ref])
    expect(i.stderr).not.toMatch(/^error:/m)
    expect(i.code).toBe(0)
    expect(await running()).toEqual({ version: 'v1', env: ['GREETING=hi', 'VERSION=v1'] })
    await publish('v2')
    const t0 = process.hrtime.bigint()
    const u = await run(['containers', 'update', '--tls-verify=false', 'svc'])
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    expect(u.stderr).not.toMatch(/^error:/m)
    expect(u.code).toBe(0)
    expect(u.stdout).toContain('value VERSION: v1 -> v2')
    expect(u.stdout).toContain('layers: 1 fetched')
    expect(u.stdout).toContain('restarted: done')
    // Measured, not asserted: an update where one small layer changed (pull + checkout + render + switch + restart).
    console.log(`update v1 -> v2 (one layer changed), CLI wall time: ${ms.toFixed(0)} ms`)
    expect(await running()).toEqual({ version: 'v2', env: ['GREETING=hi', 'VERSION=v2'] })
    const s = await systemd.unitState('svc.service')
    expect(s.activeState).toBe('active')
    console.log(`  of which v2 start to ready (systemd timestamps): ${Number(s.activeEnterTimestampMonotonic - s.inactiveExitTimestampMonotonic) / 1000} ms`)
    const t1 = process.hrtime.bigint()
    const again = await run(['containers', 'update', '--tls-verify=false', 'svc'])
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('nothing to do')
    console.log(`update with nothing to do (CLI start + manifest fetch): ${(Number(process.hrtime.bigint() - t1) / 1e6).toFixed(0)} ms`)
  })

  it('a v3 that fails to start is rolled back to v2 by itself (exit 8, says so); v2 runs', async () => {
    await publish('v3')
    const u = await run(['containers', 'update', '--tls-verify=false', 'svc'])
    expect(u.code).toBe(8)
    expect(u.stderr).toMatch(/^error: updating svc: svc\.service failed to start on svc\.0 .*rolled back to svc\.1/m)
    expect((await systemd.unitState('svc.service')).activeState).toBe('active')
    expect(await running()).toEqual({ version: 'v2', env: ['GREETING=hi', 'VERSION=v2'] })
    const [c] = await list()
    expect(c).toMatchObject({ name: 'svc', deployment: 'svc.1', activeState: 'active' })
  })

  it('manual rollback goes to v1 with its own files; list shows the truth', async () => {
    const r = await run(['containers', 'rollback', 'svc'])
    expect(r.stderr).not.toMatch(/^error:/m)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('rolled back svc to svc.0')
    expect(await running()).toEqual({ version: 'v1', env: ['GREETING=hi', 'VERSION=v1'] })
    const unit = await fsp.readFile(env.box.hostPath('/etc/systemd/system/svc.service'), 'utf8')
    expect(unit).toBe(await fsp.readFile(env.box.hostPath('/var/lib/sysctr/containers/svc.0/svc.service'), 'utf8'))
    const [c] = await list()
    const info = JSON.parse(await fsp.readFile(env.box.hostPath('/var/lib/sysctr/containers/svc.0/info.json'), 'utf8'))
    expect(c).toMatchObject({ name: 'svc', image: ref, deployment: 'svc.0', activeState: 'active', manifestDigest: info.manifestDigest })
  })

  it("slots alternate svc.0 <-> svc.1 as Atomic's did: after two rollbacks and an update only svc.0 and svc.1 exist", async () => {
    const slots = async () => (await fsp.readdir(env.box.hostPath('/var/lib/sysctr/containers'))).filter((e) => e.includes('svc')).sort()
    // Active svc.0 (v1) after the manual rollback: roll forward to svc.1 (v2), back to svc.0, forward again.
    for (const to of ['svc.1', 'svc.0', 'svc.1']) {
      const r = await run(['containers', 'rollback', 'svc'])
      expect(r.code).toBe(0)
      expect(r.stdout).toContain(`rolled back svc to ${to}`)
    }
    await publish('v1')
    const u = await run(['containers', 'update', '--tls-verify=false', 'svc'])
    expect(u.stderr).not.toMatch(/^error:/m)
    expect(u.code).toBe(0)
    expect(await slots()).toEqual(['svc', 'svc.0', 'svc.1'])
    expect(await fsp.readlink(env.box.hostPath('/var/lib/sysctr/containers/svc'))).toBe('svc.0')
    expect(await running()).toEqual({ version: 'v1', env: ['GREETING=hi', 'VERSION=v1'] })
    const unit = await fsp.readFile(env.box.hostPath('/etc/systemd/system/svc.service'), 'utf8')
    expect(unit).toContain('--bundle /var/lib/sysctr/containers/svc.0 ')
  })

  it("stop, run and exec as Atomic's run/stop: over D-Bus waiting for the job; a command inside the running container with its output and exit status", async () => {
    const stop = await run(['stop', 'svc'])
    expect({ code: stop.code, stderr: stop.stderr }).toEqual({ code: 0, stderr: '' })
    expect(stop.stdout).toContain('stopped svc.service: done (inactive/dead)')
    expect((await systemd.unitState('svc.service')).activeState).toBe('inactive')
    const notRunning = await run(['exec', 'svc', 'cat', '/etc/svc-version'])
    expect(notRunning.code).toBe(4)
    expect(notRunning.stderr).toMatch(/^error: running cat in svc: svc is not running \(svc\.service: inactive\)\nhint: sysctr run svc starts it/m)
    const start = await run(['run', 'svc'])
    expect({ code: start.code, stderr: start.stderr }).toEqual({ code: 0, stderr: '' })
    expect(start.stdout).toContain('started svc.service: done (active/running)')
    expect((await systemd.unitState('svc.service')).activeState).toBe('active')
    const cat = await run(['run', 'svc', 'cat', '/etc/svc-version'])
    expect({ code: cat.code, stdout: cat.stdout, stderr: cat.stderr }).toEqual({ code: 0, stdout: 'v1\n', stderr: '' })
    // Flags after NAME belong to the command; its exit status and stderr are sysctr's.
    const sh = await run(['exec', 'svc', 'sh', '-c', 'echo out; echo err >&2; exit 7'])
    expect({ code: sh.code, stdout: sh.stdout, stderr: sh.stderr }).toEqual({ code: 7, stdout: 'out\n', stderr: 'err\n' })
    const missing = await run(['run', 'nope'])
    expect(missing.code).toBe(3)
    expect(missing.stderr).toMatch(/no container named nope is installed/)
  })

  it('mount lets a reader read files and refuses writes; umount undoes it', async () => {
    const m = await run(['mount', 'svc', '/mnt/svc'])
    expect(m.stderr).not.toMatch(/^error:/m)
    expect(m.code).toBe(0)
    expect((await env.box.exec(['cat', '/mnt/svc/etc/svc-version'])).stdout).toBe('v1\n')
    const w = await env.box.exec(['touch', '/mnt/svc/etc/x'])
    expect(w.code).not.toBe(0)
    expect(w.stderr).toMatch(/Read-only file system/)
    const u = await run(['umount', '/mnt/svc'])
    expect(u.code).toBe(0)
    expect((await env.box.exec(['ls', '-A', '/mnt/svc'])).stdout).toBe('')
  })

  it("mount as atomic's test_system_containers_mount.sh: --live is refused, --shared gives the same read-only view (no SELinux here)", async () => {
    const live = await run(['mount', '--live', 'svc', '/mnt/svc'])
    expect(live.code).toBe(2)
    expect(live.stderr).toMatch(/do not support --live/)
    const m = await run(['mount', '--shared', 'svc', '/mnt/svc'])
    expect(m.stderr).not.toMatch(/^error:/m)
    expect(m.code).toBe(0)
    expect(m.stdout).toContain('read-only, shared')
    expect((await env.box.exec(['cat', '/mnt/svc/etc/svc-version'])).stdout).toBe('v1\n')
    expect((await env.box.exec(['touch', '/mnt/svc/etc/x'])).code).not.toBe(0)
    expect((await run(['umount', '/mnt/svc'])).code).toBe(0)
    expect((await env.box.exec(['ls', '-A', '/mnt/svc'])).stdout).toBe('')
  })

  it('uninstall leaves nothing running', async () => {
    const r = await run(['uninstall', 'svc'])
    expect(r.code).toBe(0)
    expect((await env.box.exec(['runc', 'list', '-q'])).stdout.trim()).toBe('')
  })
})
