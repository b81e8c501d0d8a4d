/**
 * Kill points around the D-Bus steps, under a real systemd: the built CLI is
 * SIGKILLed at a named step (SYSCTR_KILL_AT, deployment/switch.ts
 * killPoint), then the next command on the name must bring the host to the
 * old or the new state before anything else, and say so. Checked on files,
 * links, enablement and what runc runs (its bundle), not on log lines.
 */
import { resolve } from 'node:path'
import { promises as fsp } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDemoEnvironment, type DemoEnvironment } from '../../harness/demo-env'
import { systemdSkipReason } from '../../harness/nspawn'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()

describe.skipIf(skip !== undefined)(`kill points under real systemd${skip ? `: skipped, ${skip}` : ''}`, () => {
  let env: DemoEnvironment
  const killedAt = (point: string, args: string[]) =>
    env.box.exec(['/opt/sysctr/bin/sysctr', ...args], { env: { SYSCTR_KILL_AT: point }, timeoutMs: 120_000 })
  const show = async (unit: string, prop: string) => (await env.box.exec(['systemctl', 'show', '-p', prop, '--value', unit])).stdout.trim()
  const link = (name: string) => fsp.readlink(env.box.hostPath(`/var/lib/sysctr/containers/${name}`)).catch(() => null)
  const bundle = async (name: string) => JSON.parse((await env.box.exec(['runc', 'state', name])).stdout || '{}').bundle as string | undefined

  beforeAll(async () => {
    env = await startDemoEnvironment({ repo })
  }, 180_000)
  afterAll(async () => {
    await env?.stop()
  })

  it('install killed after reload and enable (switch:systemd): the next install undoes it and installs whole, enabled', async () => {
    const killed = await killedAt('switch:systemd', ['install', '--system', '--tls-verify=false', env.images.etcd!])
    expect(killed.code).not.toBe(0)
    // The kill left the unit written and enabled, with its journal: the rerun replays it first, then installs.
    const r = await env.sysctr(['install', '--system', '--tls-verify=false', env.images.etcd!])
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
    expect(r.stderr).toMatch(/an interrupted operation on etcd was rolled back/)
    expect(await link('etcd')).toBe('etcd.0')
    expect(await show('etcd.service', 'UnitFileState')).toBe('enabled')
    expect((await env.box.exec(['systemctl', 'start', 'etcd.service'], { timeoutMs: 60_000 })).code).toBe(0)
    expect(await show('etcd.service', 'ActiveState')).toBe('active')
  })

  it('update killed after the restart on the new deployment (update:restarted): the next command on the name puts etcd back on etcd.0 and restarts it there', async () => {
    expect(await bundle('etcd')).toBe('/var/lib/sysctr/containers/etcd.0')
    const killed = await killedAt('update:restarted', ['containers', 'update', 'etcd', '--tls-verify=false', '--set', 'READY_DELAY=1'])
    expect(killed.code).not.toBe(0)
    // Killed with the new deployment running and its journal still there.
    expect(await link('etcd')).toBe('etcd.1')
    expect(await bundle('etcd')).toBe('/var/lib/sysctr/containers/etcd.1')
    const r = await env.sysctr(['install', '--system', '--tls-verify=false', env.images.etcd!])
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
    expect(r.stderr).toMatch(/an interrupted operation on etcd was rolled back \(active: etcd\.0/)
    expect(await link('etcd')).toBe('etcd.0')
    const unit = await fsp.readFile(env.box.hostPath('/etc/systemd/system/etcd.service'), 'utf8')
    expect(unit).toMatch(/^WorkingDirectory=\/var\/lib\/sysctr\/containers\/etcd\.0$/m)
    expect(await show('etcd.service', 'ActiveState')).toBe('active')
    expect(await bundle('etcd')).toBe('/var/lib/sysctr/containers/etcd.0')
    await expect(fsp.access(env.box.hostPath('/var/lib/sysctr/containers/etcd.1'))).rejects.toThrow()
    // And the update, run again, completes.
    const u = await env.sysctr(['containers', 'update', 'etcd', '--tls-verify=false', '--set', 'READY_DELAY=1'])
    expect({ code: u.code, stderr: u.stderr }).toMatchObject({ code: 0 })
    expect(await bundle('etcd')).toBe('/var/lib/sysctr/containers/etcd.1')
    expect((await env.sysctr(['uninstall', 'etcd'])).code).toBe(0)
  })
})
