/**
 * status, logs, containers inspect and the needs-root check against the real
 * parts: the demo etcd image from Debian's docker-registry, installed and
 * started by the built CLI inside a real systemd (systemd-nspawn), run by
 * runc; the unit's state read by sysctr over D-Bus and the journal by
 * journalctl. One container for the whole file.
 */
import { resolve } from 'node:path'
import { promises as fsp } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDemoEnvironment, DemoEnvironment, waitFor } from '../../harness/demo-env'
import { systemdSkipReason } from '../../harness/nspawn'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()

describe.skipIf(skip !== undefined)(`status, logs, containers inspect (real registry, systemd, runc)${skip ? `: skipped, ${skip}` : ''}`, () => {
  let env: DemoEnvironment
  let digest: string

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/commands/status.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
    })
    env = await startDemoEnvironment({ repo })
    const r = await env.sysctr(['install', '--system', '--tls-verify=false', '--now', env.images.etcd])
    expect(r.stderr).not.toMatch(/^error:/m)
    expect(r.code).toBe(0)
    digest = JSON.parse(await fsp.readFile(env.box.hostPath('/var/lib/sysctr/containers/etcd.0/info.json'), 'utf8')).manifestDigest
    await waitFor(async () => (await env.box.exec(['systemctl', 'is-active', 'etcd.service'])).stdout.trim() === 'active', 30_000, 'etcd.service active')
  })
  afterAll(async () => {
    await env?.stop()
  })

  it('status NAME: unit state from systemd, deployment, image, digest, grants, last result', async () => {
    const r = await env.sysctr(['status', 'etcd'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.split('\n')
    expect(lines[0]).toBe('etcd: active (running)')
    expect(r.stdout).toContain('  unit:       etcd.service (loaded, enabled)')
    expect(r.stdout).toMatch(/^ {2}main pid: {3}\d+$/m)
    expect(r.stdout).toContain('  last result: success')
    expect(r.stdout).toContain('  deployment: etcd.0\n')
    expect(r.stdout).toContain(`  image:      ${env.images.etcd}\n`)
    expect(r.stdout).toContain(`  digest:     ${digest}\n`)
    expect(r.stdout).toContain('  granted:    the default grant only')
    const j = await env.sysctr(['status', 'etcd', '--json'])
    expect(j.code).toBe(0)
    const s = JSON.parse(j.stdout)
    expect(s).toMatchObject({ name: 'etcd', unit: 'etcd.service', deployment: 'etcd.0', image: env.images.etcd, manifestDigest: digest, privileged: false, grants: [] })
    expect(s.state).toMatchObject({ loadState: 'loaded', activeState: 'active', subState: 'running', unitFileState: 'enabled', result: 'success' })
    // The main PID systemd reports is alive in the box.
    expect((await env.box.exec(['kill', '-0', String(s.state.mainPid)])).code).toBe(0)
  })

  it('status of a stopped unit says inactive; of an unknown name exit 3', async () => {
    expect((await env.box.exec(['systemctl', 'stop', 'etcd.service'], { timeoutMs: 60_000 })).code).toBe(0)
    const j = JSON.parse((await env.sysctr(['status', 'etcd', '--json'])).stdout)
    expect(j.state).toMatchObject({ activeState: 'inactive', subState: 'dead' })
    expect(j.state.mainPid).toBeUndefined()
    expect((await env.box.exec(['systemctl', 'start', 'etcd.service'], { timeoutMs: 60_000 })).code).toBe(0)
    const none = await env.sysctr(['status', 'nosuch'])
    expect(none.code).toBe(3)
    expect(none.stdout).toBe('')
    expect(none.stderr).toBe('error: no container named nosuch is installed\nhint: sysctr containers list shows what is installed\n')
  })

  it('containers inspect NAME --json: values, the rendered files as on disk, the unit in use, config.json', async () => {
    const r = await env.sysctr(['containers', 'inspect', 'etcd', '--json'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const i = JSON.parse(r.stdout)
    expect(i).toMatchObject({ name: 'etcd', deployment: 'etcd.0', deploymentDir: '/var/lib/sysctr/containers/etcd.0', manifestDigest: digest })
    expect(i.values.READY_DELAY).toBe('2')
    expect(i.values.NAME).toBe('etcd')
    expect(i.config.root).toEqual({ path: 'rootfs', readonly: true })
    const unit = i.files.find((f: { role: string }) => f.role === 'unit')
    expect(unit.path).toBe('/etc/systemd/system/etcd.service')
    expect(unit.text).toBe(await fsp.readFile(env.box.hostPath('/etc/systemd/system/etcd.service'), 'utf8'))
    expect(unit.modified).toBe(false)
    // A file changed behind sysctr's back is reported as changed.
    const path = env.box.hostPath('/etc/systemd/system/etcd.service')
    const before = await fsp.readFile(path, 'utf8')
    await fsp.appendFile(path, '# edited by hand\n')
    try {
      const after = JSON.parse((await env.sysctr(['containers', 'inspect', 'etcd', '--json'])).stdout)
      expect(after.files.find((f: { role: string }) => f.role === 'unit').modified).toBe(true)
      const human = await env.sysctr(['containers', 'inspect', 'etcd'])
      expect(human.stdout).toContain('    unit /etc/systemd/system/etcd.service (changed since sysctr wrote it)')
    } finally {
      await fsp.writeFile(path, before)
    }
  })

  it('logs NAME: the unit\'s journal (-n), and -f follows new entries until signalled', async () => {
    const r = await env.sysctr(['logs', '-n', '100', 'etcd'])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('etcd: starting, ready in 2s')
    // --json: journalctl -o json, one object per entry, all of the unit.
    const j = await env.sysctr(['logs', '--json', '-n', '100', 'etcd'])
    expect(j.code).toBe(0)
    const entries = j.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { MESSAGE?: unknown; _SYSTEMD_UNIT?: string; UNIT?: string })
    expect(entries.some((e) => e.MESSAGE === 'etcd: starting, ready in 2s' && e._SYSTEMD_UNIT === 'etcd.service')).toBe(true)
    // -n 0 -f: only entries written after it started; a restart writes new ones.
    const f = await env.box.exec(
      ['sh', '-c', 'timeout -s TERM 10 /opt/sysctr/bin/sysctr logs -f -n 0 etcd > /tmp/follow.out 2>&1 & sleep 2; systemctl restart etcd.service; wait; cat /tmp/follow.out'],
      { timeoutMs: 60_000 },
    )
    expect(f.stdout).toContain('etcd: starting, ready in 2s')
    expect(f.stdout).not.toMatch(/^error:/m)
    const none = await env.sysctr(['logs', 'nosuch'])
    expect(none.code).toBe(3)
  })

  it('as a non-root user with containers installed: containers list and ps say they need root (exit 7), not "no containers"', async () => {
    for (const cmd of [['containers', 'list'], ['ps'], ['status', 'etcd']]) {
      const r = await env.box.exec(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'env', 'HOME=/tmp', '/opt/sysctr/bin/sysctr', ...cmd])
      expect(r.code, cmd.join(' ')).toBe(7)
      expect(r.stdout).toBe('')
      expect(r.stderr.split('\n')[0]).toMatch(/^error: sysctr (containers list|status) needs root \(or --user for your own containers, or --root DIR\)$/)
      expect(r.stderr).not.toContain('no containers installed')
    }
    // As root the same listing shows etcd (ps is containers list).
    const ps = await env.sysctr(['ps'])
    expect(ps.code).toBe(0)
    expect(ps.stdout).toMatch(/^etcd +/m)
  })
})
