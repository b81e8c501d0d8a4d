/**
 * A real container engine as a system container: Docker Engine (dockerd 20.10
 * from Debian's docker.io, its containerd from Debian's containerd; image
 * built by harness/daemons/engine.ts) installed by the built CLI from an OCI
 * layout into a throwaway systemd (systemd-nspawn), run by runc, ordered
 * after a flannel stand-in and taking its bridge subnet and MTU from
 * flannel's /run/flannel/subnet.env.
 *
 * The flannel stand-in is a oneshot unit with RemainAfterExit that writes
 * subnet.env the way flanneld does (a random 10.40.N.1/24, so a subnet baked
 * into the image could not pass). The subnet is checked through the engine's
 * own answer over its socket (`docker network inspect bridge`, with the
 * docker CLI of the same package run inside the throwaway systemd), and
 * against the kernel (docker0's address).
 */
import { grantFlagsFrom } from '../helpers/grant-flags'
import { resolve, join } from 'node:path'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bootSystemd, systemdSkipReason, type SystemdContainer } from '../../harness/daemons/deps'
import { buildEngineImage, engineDebRoot, engineMissing } from '../../harness/daemons/engine'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()
const WORK = '/var/tmp/sysctr-engine'
const DEBS = '/opt/engine-debs'
const SOCKET = 'unix:///run/engine/docker.sock'
const N = 1 + Math.floor(Math.random() * 250)
const SUBNET_ENV = `FLANNEL_NETWORK=10.40.0.0/16\nFLANNEL_SUBNET=10.40.${N}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`

const FLANNEL_STANDIN = `[Unit]
Description=flannel stand-in: writes /run/flannel/subnet.env as flanneld does
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mkdir -p /run/flannel
ExecStart=/bin/cp /etc/flannel-standin/subnet.env /run/flannel/subnet.env
ExecStopPost=/bin/rm -f /run/flannel/subnet.env
`

describe.skipIf(skip !== undefined)(`a real container engine (dockerd) as a system container after flannel${skip ? `: skipped, ${skip}` : ''}`, () => {
  let box: SystemdContainer
  let workDir: string
  const sysctr = (args: string[]) => box.exec(['/opt/sysctr/bin/sysctr', ...args], { timeoutMs: 120_000 })
  const docker = (args: string[]) => box.exec([`${DEBS}/usr/bin/docker`, '--host', SOCKET, ...args])
  const state = async (unit: string) => (await box.exec(['systemctl', 'show', '-p', 'ActiveState', '--value', unit])).stdout.trim()
  const read = (p: string) => fsp.readFile(box.hostPath(p), 'utf8')
  const monotonic = async (unit: string, prop: string) => BigInt((await box.exec(['systemctl', 'show', '-p', prop, '--value', unit])).stdout.trim())

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
    })
    const missing = engineMissing()
    if (missing) throw new Error(missing)
    workDir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-engine-'))
    await buildEngineImage(join(workDir, 'oci'))
    box = await bootSystemd({
      repo,
      binds: [
        { host: workDir, container: WORK },
        { host: engineDebRoot(), container: DEBS, readOnly: true },
      ],
    })
    await fsp.mkdir(box.hostPath('/etc/flannel-standin'), { recursive: true })
    await fsp.writeFile(box.hostPath('/etc/flannel-standin/subnet.env'), SUBNET_ENV)
    await fsp.writeFile(box.hostPath('/etc/systemd/system/flannel.service'), FLANNEL_STANDIN)
    expect((await box.exec(['systemctl', 'daemon-reload'])).code).toBe(0)
  }, 180_000)
  afterAll(async () => {
    await box?.stop()
    if (workDir) await fsp.rm(workDir, { recursive: true, force: true })
  })

  it('install refuses the image (exit 6) printing the --grant flags it needs; with exactly those it writes a unit after flannel and a config.json with the host network', async () => {
    const refused = await sysctr(['install', '--system', '--name', 'engine', `oci:${WORK}/oci:engine`])
    expect(refused.code).toBe(6)
    expect(refused.stderr).toMatch(/^error: installing engine: .*config\.json asks for more of the host/im)
    expect(refused.stderr).not.toMatch(/\n\s+at /)
    const grants = grantFlagsFrom(refused.stderr)
    // What a container engine asks beyond the default grant: capabilities, the host's /sys read-write, every device.
    expect(grants).toEqual(expect.arrayContaining(['cap:SYS_ADMIN', 'cap:NET_ADMIN', 'bind:/sys:rw', 'device:all']))

    const r = await sysctr(['install', '--system', ...grants, '--name', 'engine', `oci:${WORK}/oci:engine`])
    expect(r.stderr).not.toMatch(/^error:/m)
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('installed engine')
    const unit = await read('/etc/systemd/system/engine.service')
    expect(unit).toMatch(/^Requires=flannel\.service$/m)
    expect(unit).toMatch(/^After=.*\bflannel\.service\b/m)
    expect(unit).toMatch(/^EnvironmentFile=\/run\/flannel\/subnet\.env$/m)
    expect(unit).toMatch(/^Type=notify$/m)
    expect(unit).toContain('"bip": "${FLANNEL_SUBNET}"')
    const cfg = JSON.parse(await read('/var/lib/sysctr/containers/engine.0/config.json'))
    expect(cfg.root).toEqual({ path: 'rootfs', readonly: true })
    expect(cfg.linux.namespaces.map((n: { type: string }) => n.type).sort()).toEqual(['ipc', 'mount', 'pid', 'uts'])
    expect(cfg.process.capabilities.bounding).toEqual(expect.arrayContaining(['CAP_SYS_ADMIN', 'CAP_NET_ADMIN']))
    const binds = Object.fromEntries(cfg.mounts.filter((m: { type: string }) => m.type === 'bind').map((m: { destination: string; source: string }) => [m.destination, m.source]))
    expect(binds).toEqual({ '/sys': '/sys', '/run/docker': '/run/engine', '/var/lib/docker': '/var/lib/engine', '/etc/docker': '/etc/engine' })
    expect((await fsp.stat(box.hostPath('/run/engine'))).isDirectory()).toBe(true) // tmpfiles applied
  })

  it('systemctl start engine starts flannel first; dockerd answers over its socket and its bridge is on flannel\'s subnet with its MTU', async () => {
    expect(await state('flannel.service')).toBe('inactive')
    const start = await box.exec(['systemctl', 'start', 'engine.service'], { timeoutMs: 60_000 })
    const journal = start.code === 0 ? '' : (await box.exec(['journalctl', '--no-pager', '-n', '40', '-u', 'engine.service'])).stdout
    expect(start.stderr, journal).toBe('')
    expect(start.code).toBe(0)
    expect(await state('flannel.service')).toBe('active')
    expect(await state('engine.service')).toBe('active')
    // After=: flannel was active (subnet.env written) before the engine left "inactive".
    expect(await monotonic('flannel.service', 'ActiveEnterTimestampMonotonic')).toBeLessThanOrEqual(await monotonic('engine.service', 'InactiveExitTimestampMonotonic'))
    // The unit rendered dockerd's config from flannel's environment at start.
    expect(JSON.parse(await read('/run/engine/daemon.json'))).toEqual({ bip: `10.40.${N}.1/24`, mtu: 1450 })

    const v = await docker(['version', '--format', '{{.Server.Version}}'])
    expect(v.stderr).toBe('')
    expect(v.stdout.trim()).toMatch(/^20\.10\./)

    const env = Object.fromEntries((await read('/run/flannel/subnet.env')).trim().split('\n').map((l) => l.split('=', 2)))
    expect(env.FLANNEL_SUBNET).toBe(`10.40.${N}.1/24`)
    const net = await docker(['network', 'inspect', 'bridge', '--format', '{{json .IPAM.Config}} {{index .Options "com.docker.network.driver.mtu"}}'])
    expect(net.code).toBe(0)
    const [ipam, mtu] = net.stdout.trim().split(' ')
    expect(JSON.parse(ipam)).toEqual([{ Subnet: `10.40.${N}.0/24`, Gateway: `10.40.${N}.1` }])
    expect(`${JSON.parse(ipam)[0].Gateway}/24`).toBe(env.FLANNEL_SUBNET)
    expect(mtu).toBe(env.FLANNEL_MTU)
    // The kernel agrees: docker0, in the host's network namespace, has flannel's address.
    const addr = await box.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'docker0'])
    expect(addr.stdout).toContain(`inet ${env.FLANNEL_SUBNET} `)
  })

  it('systemctl stop flannel stops the engine (Requires=): the socket no longer answers', async () => {
    expect(await state('engine.service')).toBe('active')
    const stop = await box.exec(['systemctl', 'stop', 'flannel.service'], { timeoutMs: 60_000 })
    expect(stop.code).toBe(0)
    expect(await state('flannel.service')).toBe('inactive')
    expect(await state('engine.service')).toBe('inactive')
    const v = await docker(['version', '--format', '{{.Server.Version}}'])
    expect(v.code).not.toBe(0)
    // runc's state is gone too (ExecStopPost: runc delete).
    expect((await box.exec(['runc', 'state', 'engine'])).code).not.toBe(0)
  })
})
