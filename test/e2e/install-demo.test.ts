/**
 * End to end against the real parts: the demo images pushed to Debian's
 * docker-registry, installed by the built CLI (`bin/sysctr`) inside a real
 * systemd booted with systemd-nspawn, run by runc. One container for the
 * whole file. Order and states are read from systemd over D-Bus.
 */
import { resolve } from 'node:path'
import { promises as fsp } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDemoEnvironment, DemoEnvironment, waitFor } from '../../harness/demo-env'
import { connectSystemd } from '../../src/systemd/dbus-systemd'
import type { Systemd } from '../../src/systemd/systemd'
import { systemdSkipReason } from '../../harness/nspawn'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()

describe.skipIf(skip !== undefined)(`install --system end to end (real registry, systemd, runc)${skip ? `: skipped, ${skip}` : ''}`, () => {
  let env: DemoEnvironment
  let systemd: Systemd

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
    })
    env = await startDemoEnvironment({ repo })
    systemd = await connectSystemd({ busAddress: env.box.busAddress })
  })
  afterAll(async () => {
    await systemd?.close()
    await env?.stop()
  })

  const storeObjects = async () => {
    const r = await env.box.exec(['sh', '-c', 'find /var/lib/sysctr/store/objects -name "*.file" | wc -l'])
    return Number(r.stdout.trim())
  }

  it('installs etcd, flannel and engine from the registry: units written, enabled, not started', async () => {
    for (const name of ['etcd', 'flannel', 'engine']) {
      const r = await env.sysctr(['install', '--system', '--tls-verify=false', env.images[name]])
      expect(r.stderr).not.toMatch(/^error:/m)
      expect(r.code).toBe(0)
      expect(r.stdout).toContain(`installed ${name}`)
      const s = await systemd.unitState(`${name}.service`)
      expect(s.loadState).toBe('loaded')
      expect(s.unitFileState).toBe('enabled')
      expect(s.activeState).toBe('inactive')
    }
    // Legacy template rendered (etcd), $$ became $; Handlebars rendered (flannel).
    const etcdUnit = await fsp.readFile(env.box.hostPath('/etc/systemd/system/etcd.service'), 'utf8')
    expect(etcdUnit).toContain('ExecStart=/usr/bin/env -u NOTIFY_SOCKET /usr/bin/runc run --no-new-keyring --bundle /var/lib/sysctr/containers/etcd.0 etcd')
    expect(etcdUnit).toContain('$HOME')
    expect(etcdUnit).not.toContain('$$')
    const flannelUnit = await fsp.readFile(env.box.hostPath('/etc/systemd/system/flannel.service'), 'utf8')
    expect(flannelUnit).toContain('Requires=etcd.service')
    expect(flannelUnit).not.toContain('{{')
    // The deployment: active link -> NAME.0, record, config with a read-only root.
    expect(await fsp.readlink(env.box.hostPath('/var/lib/sysctr/containers/etcd'))).toBe('etcd.0')
    const cfg = JSON.parse(await fsp.readFile(env.box.hostPath('/var/lib/sysctr/containers/etcd.0/config.json'), 'utf8'))
    expect(cfg.root).toEqual({ path: 'rootfs', readonly: true })
    const info = JSON.parse(await fsp.readFile(env.box.hostPath('/var/lib/sysctr/containers/etcd.0/info.json'), 'utf8'))
    expect(info.image).toBe(env.images.etcd)
    expect(info.manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/)
    expect(info.values.READY_DELAY).toBe('2')
  })

  it('systemctl start engine.service starts etcd, then flannel, then engine, each after the one before is active', async () => {
    const r = await env.box.exec(['systemctl', 'start', 'engine.service'], { timeoutMs: 120_000 })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const st = Object.fromEntries(
      await Promise.all(['etcd', 'flannel', 'engine'].map(async (n) => [n, await systemd.unitState(`${n}.service`)] as const)),
    )
    for (const n of ['etcd', 'flannel', 'engine']) expect(st[n].activeState).toBe('active')
    // flannel left "inactive" only after etcd was active (Type=notify: active = READY=1 received).
    expect(st.etcd.activeEnterTimestampMonotonic).toBeLessThanOrEqual(st.flannel.inactiveExitTimestampMonotonic)
    expect(st.flannel.activeEnterTimestampMonotonic).toBeLessThanOrEqual(st.engine.inactiveExitTimestampMonotonic)
    // etcd is Type=notify with READY_DELAY=2: it took about that long to become active.
    expect(st.etcd.activeEnterTimestampMonotonic - st.etcd.inactiveExitTimestampMonotonic).toBeGreaterThanOrEqual(1_500_000n)
    // No sysctr process stays: systemd runs runc directly.
    const ps = await env.box.exec(['sh', '-c', 'ps -eo args | grep -c "[s]ysctr/bin/sysctr" || true'])
    expect(ps.stdout.trim()).toBe('0')
  })

  it('a runc process is really what runs each unit: its MainPID is `runc run NAME`, and the container runc lists as running is in the unit\'s cgroup', async () => {
    // engine is Type=simple: systemctl start returns once runc is exec'd, before runc has created the
    // container. Wait (bounded) until runc lists all three as running.
    let containers: { id: string; pid: number; status: string }[] = []
    for (let i = 0; i < 100; i++) {
      const list = await env.box.exec(['runc', 'list', '--format', 'json'])
      expect(list.code).toBe(0)
      containers = JSON.parse(list.stdout || '[]') ?? []
      if (['etcd', 'flannel', 'engine'].every((n) => containers.some((c) => c.id === n && c.status === 'running'))) break
      await new Promise((r) => setTimeout(r, 100))
    }
    const read = async (file: string) => (await env.box.exec(['cat', file])).stdout
    const runcBinary = (await env.box.exec(['readlink', '-f', '/usr/bin/runc'])).stdout.trim() // /usr/sbin/runc on Debian
    for (const name of ['etcd', 'flannel', 'engine']) {
      const s = await systemd.unitState(`${name}.service`)
      expect(s.mainPid).toBeGreaterThan(0)
      const pid = s.mainPid!
      // The unit's main process is runc itself (env exec'd it), running this container.
      expect((await env.box.exec(['readlink', `/proc/${pid}/exe`])).stdout.trim()).toBe(runcBinary)
      const argv = (await read(`/proc/${pid}/cmdline`)).split('\0').filter((a) => a !== '')
      expect(argv.slice(0, 2)).toEqual(['/usr/bin/runc', 'run'])
      expect(argv.at(-1)).toBe(name)
      const cgroup = `/sys/fs/cgroup/system.slice/${name}.service`
      expect((await read(`${cgroup}/cgroup.procs`)).split('\n')).toContain(String(pid))
      // runc lists the container as running; its init and every process of it are in the unit's cgroup.
      const c = containers.find((x) => x.id === name)
      expect(c).toMatchObject({ id: name, status: 'running' })
      const inContainer = (await read(`${cgroup}/container/cgroup.procs`)).split('\n').filter((l) => l !== '')
      expect(inContainer).toContain(String(c!.pid))
      const runcPs = await env.box.exec(['runc', 'ps', '--format', 'json', name])
      expect(runcPs.code).toBe(0)
      expect((JSON.parse(runcPs.stdout) as number[]).map(String).sort()).toEqual([...inContainer].sort())
    }
  })

  it('runs the container from a read-only root: a write inside fails', async () => {
    const w = await env.box.exec(['runc', 'exec', 'etcd', '/bin/touch', '/x'])
    expect(w.code).not.toBe(0)
    expect(w.stderr).toMatch(/Read-only file system/)
    // The container runs inside the service's own cgroup.
    const cg = await env.box.exec(['sh', '-c', 'cat /sys/fs/cgroup/system.slice/etcd.service/container/cgroup.procs | wc -l'])
    expect(Number(cg.stdout.trim())).toBeGreaterThan(0)
  })

  it('installing the same name again with the same image is a no-op; with another image a conflict (exit 4), nothing changed', async () => {
    const before = await fsp.readFile(env.box.hostPath('/etc/systemd/system/etcd.service'), 'utf8')
    const same = await env.sysctr(['install', '--system', '--tls-verify=false', env.images.etcd])
    expect(same.code).toBe(0)
    expect(same.stdout).toContain('nothing changed')
    const other = await env.sysctr(['install', '--system', '--tls-verify=false', '--name', 'etcd', env.images.flannel])
    expect(other.code).toBe(4)
    expect(other.stderr).toMatch(/^error: installing etcd: a container named etcd is already installed/m)
    expect(other.stderr).not.toMatch(/\n\s+at /) // no stack trace
    expect(await fsp.readFile(env.box.hostPath('/etc/systemd/system/etcd.service'), 'utf8')).toBe(before)
    expect((await systemd.unitState('etcd.service')).activeState).toBe('active')
  })

  it('a second install of the same image under another name adds no file objects to the store', async () => {
    const before = await storeObjects()
    expect(before).toBeGreaterThan(0)
    const r = await env.sysctr(['install', '--system', '--tls-verify=false', '--name', 'etcd-copy', '--now', env.images.etcd])
    expect(r.stderr).not.toMatch(/^error:/m)
    expect(r.code).toBe(0)
    expect(await storeObjects()).toBe(before)
    // The checkouts share inodes with the store: busybox is one inode in both deployments.
    const a = await fsp.stat(env.box.hostPath('/var/lib/sysctr/containers/etcd.0/rootfs/bin/busybox'))
    const b = await fsp.stat(env.box.hostPath('/var/lib/sysctr/containers/etcd-copy.0/rootfs/bin/busybox'))
    expect(a.ino).toBe(b.ino)
    expect((await systemd.unitState('etcd-copy.service')).activeState).toBe('active')
  })

  it('runs under crun too (--runtime): ready, in the unit\'s cgroup, stops cleanly', async () => {
    const r = await env.sysctr(['install', '--system', '--tls-verify=false', '--name', 'etcd-crun', '--runtime', '/usr/bin/crun', '--now', env.images.etcd])
    expect(r.stderr).not.toMatch(/^error:/m)
    expect(r.code).toBe(0)
    const unit = await fsp.readFile(env.box.hostPath('/etc/systemd/system/etcd-crun.service'), 'utf8')
    expect(unit).toContain('/usr/bin/crun run --no-new-keyring --bundle /var/lib/sysctr/containers/etcd-crun.0 etcd-crun')
    expect((await systemd.unitState('etcd-crun.service')).activeState).toBe('active')
    const w = await env.box.exec(['crun', 'exec', 'etcd-crun', '/bin/touch', '/x'])
    expect(w.code).not.toBe(0)
    await systemd.stopUnit('etcd-crun.service')
    const s = await systemd.unitState('etcd-crun.service')
    expect(s.activeState).toBe('inactive')
    expect(s.result).toBe('success')
  })

  it('--now reports a unit that fails to start with its name and result (exit 8)', async () => {
    // etcd's unit is Type=notify: with a runtime that exits at once, READY=1 never comes and the job fails.
    const r = await env.sysctr([
      'install', '--system', '--tls-verify=false', '--name', 'broken', '--now', '--runtime', '/bin/false', env.images.etcd,
    ])
    expect(r.code).toBe(8)
    expect(r.stderr).toMatch(/broken\.service/)
    expect(r.stderr).toMatch(/failed/)
    await env.sysctr(['uninstall', 'broken'])
  })

  it('uninstall stops and disables, and leaves no unit, tmpfiles entry or deployment; the image stays in the store', async () => {
    const objects = await storeObjects()
    for (const name of ['etcd-crun', 'etcd-copy', 'engine', 'flannel', 'etcd']) {
      const r = await env.sysctr(['uninstall', name])
      expect({ name, code: r.code, stderr: r.stderr }).toEqual({ name, code: 0, stderr: expect.not.stringMatching(/^error:/m) })
      const s = await systemd.unitState(`${name}.service`)
      expect(s.activeState).toBe('inactive')
      expect(s.loadState).toBe('not-found')
      await expect(fsp.access(env.box.hostPath(`/etc/systemd/system/${name}.service`))).rejects.toThrow()
      await expect(fsp.access(env.box.hostPath(`/etc/tmpfiles.d/${name}.conf`))).rejects.toThrow()
      await expect(fsp.access(env.box.hostPath(`/etc/systemd/system/multi-user.target.wants/${name}.service`))).rejects.toThrow()
    }
    expect(await fsp.readdir(env.box.hostPath('/var/lib/sysctr/containers'))).toEqual([])
    expect(await storeObjects()).toBe(objects)
    const again = await env.sysctr(['uninstall', 'etcd'])
    expect(again.code).toBe(3)
    expect(again.stderr).toMatch(/^error: uninstalling etcd: no container named etcd is installed/m)
  })

  it('nothing is left running after uninstall: runc lists no container, no runc process runs, no unit cgroup stays', async () => {
    await waitFor(async () => (await env.box.exec(['runc', 'list', '-q'])).stdout.trim() === '', 10_000, 'runc list to be empty')
    const ps = await env.box.exec(['ps', '-eo', 'comm='])
    expect(ps.stdout.split('\n').filter((c) => /^(runc|crun)$/.test(c.trim()))).toEqual([])
    for (const name of ['etcd', 'flannel', 'engine', 'etcd-copy', 'etcd-crun']) {
      await expect(fsp.access(env.box.hostPath(`/sys/fs/cgroup/system.slice/${name}.service`))).rejects.toThrow()
    }
  })
})
