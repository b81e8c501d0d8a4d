/**
 * Real daemons from Debian's packages as system containers: etcd 3.4
 * (etcd-server, etcd-client) and a flannel stand-in on the real etcdctl,
 * images built by harness/daemons into an OCI layout bound into one
 * throwaway systemd (nspawn), installed by the built CLI from `oci:`, run by
 * runc. Readiness is the daemons' own sd_notify through runc's notify proxy.
 */
import { grantFlagsFrom } from '../helpers/grant-flags'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bootSystemd, systemdSkipReason, type SystemdContainer } from '../../harness/daemons/deps'
import { daemonsSkipReason } from '../../harness/daemons/debs'
import { buildDaemonImages } from '../../harness/daemons/images'
import { connectSystemd } from '../../src/systemd/dbus-systemd'
import type { Systemd } from '../../src/systemd/systemd'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason() ?? daemonsSkipReason()
const WORK = '/var/tmp/sysctr-daemons'
const ETCD = `oci:${WORK}/oci:etcd`
const FLANNEL = `oci:${WORK}/oci:flannel`

describe.skipIf(skip !== undefined)(`real daemons: Debian's etcd and a flannel stand-in under sysctr${skip ? `: skipped, ${skip}` : ''}`, () => {
  let box: SystemdContainer
  let systemd: Systemd
  let workDir: string
  const sysctr = (args: string[]) => box.exec(['/opt/sysctr/bin/sysctr', ...args], { timeoutMs: 120_000 })
  const etcdctl = (args: string[]) => box.exec(['/usr/local/bin/etcdctl', '--dial-timeout=2s', ...args], { env: { ETCDCTL_API: '3' } })
  const state = async (unit: string) => (await systemd.unitState(unit)).activeState

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first')
    })
    workDir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-daemons-'))
    await buildDaemonImages(join(workDir, 'oci'))
    // The box's /usr is the host's, read-only: give it a writable, empty /usr/local for hostfs files.
    await fsp.mkdir(join(workDir, 'usr-local', 'bin'), { recursive: true })
    box = await bootSystemd({
      name: 'sysctr-daemons',
      repo,
      binds: [
        { host: join(workDir, 'oci'), container: `${WORK}/oci`, readOnly: true },
        { host: join(workDir, 'usr-local'), container: '/usr/local' },
      ],
    })
    systemd = await connectSystemd({ busAddress: box.busAddress })
    // etcd's config binds the host's /etc/resolv.conf (as Atomic's did); the volatile box has none.
    await box.exec(['sh', '-c', 'test -e /etc/resolv.conf || echo "nameserver 127.0.0.53" > /etc/resolv.conf'])
  })
  afterAll(async () => {
    await systemd?.close()
    await box?.stop()
    if (workDir) await fsp.rm(workDir, { recursive: true, force: true })
  })

  let etcdGrants: string[] = []
  it('refuses etcd (exit 6) naming exactly what Atomic\'s etcd config asks beyond the default grant, with the flag to paste', async () => {
    const r = await sysctr(['install', '--system', '--name', 'etcd', ETCD])
    expect(r.code).toBe(6)
    expect(r.stderr).toMatch(/^error: .*config\.json asks for more of the host/m)
    expect(r.stderr).toMatch(/CAP_DAC_READ_SEARCH/)
    // The host's uts and network namespaces, its own directories and a read-only /etc/resolv.conf are in the default grant.
    expect(r.stderr).not.toMatch(/uts namespace/)
    etcdGrants = grantFlagsFrom(r.stderr)
    expect(etcdGrants).toEqual(['--grant', 'cap:DAC_READ_SEARCH'])
    expect(r.stderr).not.toMatch(/\n\s+at /)
    await expect(fsp.access(box.hostPath('/etc/systemd/system/etcd.service'))).rejects.toThrow()
  })

  it('installs etcd with the printed --grant: unit, tmpfiles dirs, config on the host network, etcdctl on the host', async () => {
    const r = await sysctr(['install', '--system', ...etcdGrants, '--name', 'etcd', ETCD])
    expect(r.stderr).not.toMatch(/^error:/m)
    expect(r.code).toBe(0)
    const unit = await fsp.readFile(box.hostPath('/etc/systemd/system/etcd.service'), 'utf8')
    expect(unit).toMatch(/^Type=notify$/m)
    expect(unit).toMatch(/^ExecStart=\/usr\/s?bin\/runc run /m) // NOTIFY_SOCKET reaches runc: it proxies etcd's READY=1
    const cfg = JSON.parse(await fsp.readFile(box.hostPath('/var/lib/sysctr/containers/etcd.0/config.json'), 'utf8'))
    expect(cfg.linux.namespaces.map((n: { type: string }) => n.type).sort()).toEqual(['ipc', 'mount', 'pid'])
    expect(cfg.process.env).toContain('ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:2379')
    expect(cfg.process.env).toContain('ETCD_INITIAL_CLUSTER=etcd=http://127.0.0.1:2380')
    expect(cfg.mounts).toContainEqual(expect.objectContaining({ source: '/var/lib/etcd', destination: '/var/lib/etcd' }))
    expect((await fsp.stat(box.hostPath('/var/lib/etcd'))).mode & 0o777).toBe(0o700)
    const ctl = await fsp.stat(box.hostPath('/usr/local/bin/etcdctl'))
    expect(ctl.mode & 0o111).not.toBe(0)
  })

  it('starts etcd: active once etcd itself notified; a key written through the host etcdctl reads back', async () => {
    const r = await box.exec(['systemctl', 'start', 'etcd.service'], { timeoutMs: 60_000 })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(await state('etcd.service')).toBe('active')
    const put = await etcdctl(['put', '/sysctr/hello', 'world'])
    expect(put.stderr).toBe('')
    expect(put.stdout.trim()).toBe('OK')
    const get = await etcdctl(['get', '--print-value-only', '/sysctr/hello'])
    expect(get.stdout.trim()).toBe('world')
    // The data landed on the host, in the state directory bound at /var/lib/etcd.
    await expect(fsp.access(box.hostPath('/var/lib/etcd/member/wal'))).resolves.toBeUndefined()
  })

  it('flannel leases a subnet of the network from etcd and writes /run/flannel/subnet.env on the host', async () => {
    const put = await etcdctl(['put', '/atomic.io/network/config', '{"Network":"10.40.0.0/16","SubnetLen":24}'])
    expect(put.stdout.trim()).toBe('OK')
    // Someone else already holds the first subnet: flannel must take the next free one.
    await etcdctl(['put', '/atomic.io/network/subnets/10.40.1.0-24', '{"PublicIP":"192.0.2.1"}'])
    // The stand-in asks one thing beyond the default grant: the host's machine id (to name the host in its lease).
    const refused = await sysctr(['install', '--system', '--name', 'flannel', FLANNEL])
    expect(refused.code).toBe(6)
    expect(grantFlagsFrom(refused.stderr)).toEqual(['--grant', 'bind:/etc/machine-id'])
    const r = await sysctr(['install', '--system', ...grantFlagsFrom(refused.stderr), '--name', 'flannel', FLANNEL])
    expect(r.stderr).not.toMatch(/^error:/m)
    expect(r.code).toBe(0)
    const start = await box.exec(['systemctl', 'start', 'flannel.service'], { timeoutMs: 60_000 })
    expect(start.stderr).toBe('')
    expect(start.code).toBe(0)
    expect(await state('flannel.service')).toBe('active')
    const env = await fsp.readFile(box.hostPath('/run/flannel/subnet.env'), 'utf8')
    expect(env).toContain('FLANNEL_NETWORK=10.40.0.0/16\n')
    expect(env).toContain('FLANNEL_SUBNET=10.40.2.1/24\n')
    expect(env).toContain('FLANNEL_MTU=1450\n')
    expect(env).toContain('FLANNEL_IPMASQ=false\n')
    const lease = await etcdctl(['get', '--print-value-only', '/atomic.io/network/subnets/10.40.2.0-24'])
    const machineId = (await fsp.readFile(box.hostPath('/etc/machine-id'), 'utf8')).trim()
    expect(JSON.parse(lease.stdout)).toMatchObject({ PublicIP: expect.any(String), MachineID: machineId })
  })

  it('stopping etcd stops flannel (Requires=)', async () => {
    const r = await box.exec(['systemctl', 'stop', 'etcd.service'], { timeoutMs: 60_000 })
    expect(r.code).toBe(0)
    expect(await state('etcd.service')).toBe('inactive')
    expect(await state('flannel.service')).toBe('inactive')
  })

  it('with etcd down, flannel fails to start and systemd shows it failed', async () => {
    // ignore-requirements: start flannel alone (Requires= would start etcd first).
    const r = await box.exec(['systemctl', 'start', '--job-mode=ignore-requirements', 'flannel.service'], { timeoutMs: 60_000 })
    expect(r.code).not.toBe(0)
    const s = await systemd.unitState('flannel.service')
    expect(s.activeState).toBe('failed')
    expect(s.result).toBe('exit-code')
    await expect(fsp.access(box.hostPath('/run/flannel/subnet.env'))).rejects.toThrow()
  })

  it('after etcd is back, flannel starts again and keeps its lease', async () => {
    const r = await box.exec(['systemctl', 'start', 'flannel.service'], { timeoutMs: 60_000 })
    expect(r.code).toBe(0)
    expect(await state('etcd.service')).toBe('active')
    expect(await state('flannel.service')).toBe('active')
    expect(await fsp.readFile(box.hostPath('/run/flannel/subnet.env'), 'utf8')).toContain('FLANNEL_SUBNET=10.40.2.1/24\n')
    const keys = await etcdctl(['get', '--prefix', '--keys-only', '/atomic.io/network/subnets/'])
    expect(keys.stdout.split('\n').filter(Boolean).sort()).toEqual(['/atomic.io/network/subnets/10.40.1.0-24', '/atomic.io/network/subnets/10.40.2.0-24'])
  })

  it('uninstall removes both units, the host etcdctl and the empty directories etcd\'s tmpfiles entry made (its data stays)', async () => {
    expect((await fsp.stat(box.hostPath('/etc/etcd'))).isDirectory()).toBe(true)
    for (const name of ['flannel', 'etcd']) {
      const r = await sysctr(['uninstall', name])
      expect({ name, code: r.code }).toEqual({ name, code: 0 })
      expect((await systemd.unitState(`${name}.service`)).loadState).toBe('not-found')
    }
    await expect(fsp.access(box.hostPath('/usr/local/bin/etcdctl'))).rejects.toThrow()
    await expect(fsp.access(box.hostPath('/etc/etcd'))).rejects.toThrow()
    await expect(fsp.access(box.hostPath('/run/etcd'))).rejects.toThrow()
    // Not empty: etcd's data is the operator's, never removed by uninstall.
    await expect(fsp.access(box.hostPath('/var/lib/etcd/member'))).resolves.toBeUndefined()
  })
})
