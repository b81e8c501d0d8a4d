/**
 * The whole chain on real daemons, in one throwaway systemd, across a
 * reboot: Debian's etcd 3.4, the flannel stand-in on the real etcdctl and
 * Debian's dockerd 20.10 (images from harness/daemons, built into OCI
 * layouts bound into the box), each installed by the built CLI with exactly
 * the `--grant` flags its refusal printed, run by runc.
 *
 * The box boots a persistent root (`-D DIR`, the host's /usr bound
 * read-only, a writable empty /usr/local for etcd's host etcdctl) instead of
 * the usual volatile one, so that a second boot of the same DIR is a reboot:
 * /etc (units, enablement, machine id), /var/lib/sysctr and the daemons'
 * state dirs survive it, /run does not. The machine id is written before the
 * first boot so flannel's lease (keyed by it) is the same machine's after.
 */
import { randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bootSystemd, makeBootableRoot, type SystemdContainer } from '../../harness/nspawn'
import { engineDebRoot } from '../../harness/daemons/engine'
import {
  buildRealImages,
  DEBS_IN_CONTAINER,
  ENGINE_SOCKET,
  ETCDCTL,
  FLANNEL_NETWORK_CONFIG,
  FLANNEL_NETWORK_KEY,
  REAL_IMAGES,
  realSkipReason,
} from '../../harness/demo/real-env'
import { connectSystemd } from '../../src/systemd/dbus-systemd'
import type { Systemd, UnitState } from '../../src/systemd/systemd'
import { grantFlagsFrom } from '../helpers/grant-flags'

const repo = resolve(__dirname, '..', '..')
const skip = realSkipReason()
const WORK = '/var/tmp/sysctr-chain'

async function makeChainRoot(dir: string): Promise<void> {
  await makeBootableRoot(dir, { machineId: true })
  // etcd's config binds the host's /etc/resolv.conf (as Atomic's did).
  await fsp.writeFile(join(dir, 'etc/resolv.conf'), 'nameserver 127.0.0.53\n')
}

describe.skipIf(skip !== undefined)(`etcd -> flannel -> engine on real daemons, across a reboot${skip ? `: skipped, ${skip}` : ''}`, () => {
  let work: string
  let root: string
  let box: SystemdContainer | undefined
  let systemd: Systemd | undefined
  const layouts: Record<string, string> = {}

  const boot = async () => {
    box = await bootSystemd({
      name: 'sysctr-chain',
      repo,
      directory: root,
      binds: [
        { host: '/usr', container: '/usr', readOnly: true },
        { host: join(work, 'usr-local'), container: '/usr/local' },
        { host: join(work, 'images'), container: WORK, readOnly: true },
        { host: engineDebRoot(), container: DEBS_IN_CONTAINER, readOnly: true },
      ],
      bootTimeoutMs: 120_000,
    })
    systemd = await connectSystemd({ busAddress: box.busAddress })
  }
  const shutdown = async () => {
    await systemd?.close()
    systemd = undefined
    await box?.stop()
    box = undefined
  }
  const sh = (argv: string[], timeoutMs = 60_000) => box!.exec(argv, { timeoutMs })
  const sysctr = (args: string[]) => box!.exec(['/opt/sysctr/bin/sysctr', ...args], { timeoutMs: 120_000 })
  const etcdctl = (args: string[]) => box!.exec([ETCDCTL, '--dial-timeout=2s', ...args], { env: { ETCDCTL_API: '3' } })
  const docker = (args: string[]) => box!.exec([`${DEBS_IN_CONTAINER}/usr/bin/docker`, '--host', ENGINE_SOCKET, ...args])
  const journal = async () => (await sh(['journalctl', '-b', '--no-pager', '-n', '60', '-o', 'short-monotonic', '-u', 'etcd', '-u', 'flannel', '-u', 'engine'])).stdout
  const states = async () => {
    const st: Record<string, UnitState> = {}
    for (const n of REAL_IMAGES) st[n] = await systemd!.unitState(`${n}.service`)
    return st
  }
  const expectDependencyOrder = (st: Record<string, UnitState>, log: string) => {
    for (const n of REAL_IMAGES) expect(st[n]!.activeState, `${n}\n${log}`).toBe('active')
    // After=: each was active before the next one even left "inactive".
    expect(st.etcd!.activeEnterTimestampMonotonic, log).toBeLessThanOrEqual(st.flannel!.inactiveExitTimestampMonotonic)
    expect(st.flannel!.activeEnterTimestampMonotonic, log).toBeLessThanOrEqual(st.engine!.inactiveExitTimestampMonotonic)
  }
  const bridgeAndLease = async () => {
    const env = Object.fromEntries((await fsp.readFile(box!.hostPath('/run/flannel/subnet.env'), 'utf8')).trim().split('\n').map((l) => l.split('=', 2)))
    const net = await docker(['network', 'inspect', 'bridge', '--format', '{{json .IPAM.Config}}'])
    expect(net.stderr).toBe('')
    return { lease: env.FLANNEL_SUBNET as string, ipam: JSON.parse(net.stdout) as Array<{ Subnet: string; Gateway: string }> }
  }

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
    })
    work = await fsp.mkdtemp(join(tmpdir(), 'sysctr-chain-'))
    root = join(work, 'root')
    Object.assign(layouts, await buildRealImages(join(work, 'images')))
    await fsp.mkdir(join(work, 'usr-local', 'bin'), { recursive: true })
    await makeChainRoot(root)
    await boot()
  }, 180_000)
  afterAll(async () => {
    await shutdown()
    if (work) await fsp.rm(work, { recursive: true, force: true })
  })

  it('installs etcd, flannel and engine, each refused first (exit 6) and then installed with exactly the --grant flags it printed', async () => {
    for (const name of REAL_IMAGES) {
      const ref = `oci:${WORK}/${layouts[name]}:${name}`
      const refused = await sysctr(['install', '--system', '--name', name, ref])
      expect({ name, code: refused.code }).toEqual({ name, code: 6 })
      const grants = grantFlagsFrom(refused.stderr)
      expect(grants.length, refused.stderr).toBeGreaterThan(0)
      const r = await sysctr(['install', '--system', ...grants, '--name', name, ref])
      expect(r.stderr).not.toMatch(/^error:/m)
      expect({ name, code: r.code }).toEqual({ name, code: 0 })
      const s = await systemd!.unitState(`${name}.service`)
      expect({ name, unitFileState: s.unitFileState, activeState: s.activeState }).toEqual({ name, unitFileState: 'enabled', activeState: 'inactive' })
    }
  })

  it('systemctl start engine brings etcd, flannel and engine up from inactive, in dependency order', async () => {
    // flannel reads its network config at start: put it with etcd up once, then stop etcd again (the key is on disk).
    expect((await sh(['systemctl', 'start', 'etcd.service'])).code).toBe(0)
    expect((await etcdctl(['put', FLANNEL_NETWORK_KEY, FLANNEL_NETWORK_CONFIG])).stdout.trim()).toBe('OK')
    expect((await sh(['systemctl', 'stop', 'etcd.service'])).code).toBe(0)
    for (const [n, s] of Object.entries(await states())) expect({ n, state: s.activeState }).toEqual({ n, state: 'inactive' })

    const start = await sh(['systemctl', 'start', 'engine.service'])
    const log = start.code === 0 ? '' : await journal()
    expect(start.stderr, log).toBe('')
    expect(start.code).toBe(0)
    expectDependencyOrder(await states(), log)
  })

  it("the engine's bridge (its own answer over its socket) is flannel's lease from etcd", async () => {
    const { lease, ipam } = await bridgeAndLease()
    expect(lease).toMatch(/^10\.40\.\d+\.1\/24$/)
    const n = lease.split('.')[2]
    expect(ipam).toEqual([{ Subnet: `10.40.${n}.0/24`, Gateway: `10.40.${n}.1` }])
    const keys = await etcdctl(['get', '--prefix', '--keys-only', '/atomic.io/network/subnets/'])
    expect(keys.stdout.split('\n').filter(Boolean)).toEqual([`/atomic.io/network/subnets/10.40.${n}.0-24`])
  })

  it('systemctl stop etcd stops flannel and the engine (what requires it)', async () => {
    const stop = await sh(['systemctl', 'stop', 'etcd.service'])
    expect(stop.code).toBe(0)
    for (const [n, s] of Object.entries(await states())) expect({ n, state: s.activeState }).toEqual({ n, state: 'inactive' })
    expect((await docker(['version', '--format', '{{.Server.Version}}'])).code).not.toBe(0)
  })

  it('after a reboot of the box, multi-user.target brings the three up again in the same order, on the same lease', async () => {
    const before = await fsp.readFile(join(root, 'etc/machine-id'), 'utf8')
    await shutdown()
    await boot() // returns once systemd finished starting up (is-system-running --wait)
    expect(await fsp.readFile(box!.hostPath('/etc/machine-id'), 'utf8')).toBe(before)
    const wants = (await sh(['systemctl', 'show', '-p', 'Wants', '--value', 'multi-user.target'])).stdout.split(/\s+/)
    expect(wants).toEqual(expect.arrayContaining(REAL_IMAGES.map((n) => `${n}.service`)))
    const st = await states()
    const log = REAL_IMAGES.every((n) => st[n]!.activeState === 'active') ? '' : await journal()
    expectDependencyOrder(st, log)
    // Started by the boot: no job of ours, all within this boot's startup (before it finished).
    const finished = BigInt((await sh(['systemctl', 'show', '-p', 'FinishTimestampMonotonic', '--value'])).stdout.trim() || '0')
    expect(finished).toBeGreaterThan(0n)
    expect(st.engine!.activeEnterTimestampMonotonic).toBeLessThanOrEqual(finished)

    const { lease, ipam } = await bridgeAndLease()
    const n = lease.split('.')[2]
    expect(ipam).toEqual([{ Subnet: `10.40.${n}.0/24`, Gateway: `10.40.${n}.1` }])
    const keys = await etcdctl(['get', '--prefix', '--keys-only', '/atomic.io/network/subnets/'])
    expect(keys.stdout.split('\n').filter(Boolean)).toEqual([`/atomic.io/network/subnets/10.40.${n}.0-24`])
  })
})
