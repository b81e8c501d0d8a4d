/**
 * Images in the shapes of Project Atomic's system containers
 * (harness/daemons/atomic-images.ts), installed by the built CLI into one
 * throwaway systemd and run by runc:
 * - hello-world as Atomic shipped it (runtime-spec 0.x config, `runc start`
 *   unit, no manifest): installs with no --grant and serves;
 * - a container whose PID 1 ignores SIGTERM: `systemctl stop` ends after
 *   STOP_TIMEOUT, not systemd's 90 s;
 * - socket activation: NAME.socket listens after install, the service is not
 *   running until a connection comes, which is answered through the passed
 *   socket with LISTEN_FDS/LISTEN_PID right for the process inside.
 */
import { promises as fsp, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bootSystemd, systemdSkipReason, type SystemdContainer } from '../../harness/daemons/deps'
import { ATOMIC_VARIABLES, buildAtomicImages } from '../../harness/daemons/atomic-images'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()
const WORK = '/var/tmp/sysctr-atomic'
const image = (tag: string) => `oci:${WORK}/oci:${tag}`
/** crun loads an eBPF device filter for a config with device rules, raising RLIMIT_MEMLOCK first: that needs CAP_SYS_RESOURCE. */
const crunCanFilterDevices = ((BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`) >> 24n) & 1n) === 1n

describe.skipIf(skip !== undefined)(`Atomic-shaped images${skip ? `: skipped, ${skip}` : ''}`, () => {
  let box: SystemdContainer
  let workDir: string
  const sysctr = (args: string[]) => box.exec(['/opt/sysctr/bin/sysctr', ...args], { timeoutMs: 120_000 })
  const show = async (unit: string, prop: string) => (await box.exec(['systemctl', 'show', '-p', prop, '--value', unit])).stdout.trim()

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first')
    })
    workDir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-atomic-'))
    await buildAtomicImages(join(workDir, 'oci'))
    box = await bootSystemd({ name: 'sysctr-atomic', repo, binds: [{ host: join(workDir, 'oci'), container: `${WORK}/oci`, readOnly: true }] })
  }, 180_000)
  afterAll(async () => {
    await box?.stop()
    if (workDir) await fsp.rm(workDir, { recursive: true, force: true })
  })

  it('hello-world as Atomic shipped it installs with no --grant (its runc start unit written as runc run) and serves', async () => {
    const r = await sysctr(['install', '--system', '--name', 'hello-world', '--set', 'PORT=8081', '--set', 'RECEIVER=sysctr', image('hello-world')])
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
    expect(r.stderr).toMatch(/runc 0\.x's create-and-run/)
    const unit = await fsp.readFile(box.hostPath('/etc/systemd/system/hello-world.service'), 'utf8')
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/runc run --no-new-keyring --bundle \/var\/lib\/sysctr\/containers\/hello-world\.0 hello-world$/m)
    expect(unit).toMatch(/^ExecStop=\/bin\/runc kill "hello-world" KILL$/m)
    // The 0.x config is written in today's shape: capabilities and rlimits under process.
    const cfg = JSON.parse(await fsp.readFile(box.hostPath('/var/lib/sysctr/containers/hello-world.0/config.json'), 'utf8'))
    expect(cfg.ociVersion).toBe('1.0.0')
    expect(cfg.process.capabilities.bounding).toEqual(['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'])
    expect(cfg.process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }])
    const start = await box.exec(['systemctl', 'start', 'hello-world.service'], { timeoutMs: 60_000 })
    expect(start.code).toBe(0)
    let body = ''
    for (let i = 0; i < 50 && !body.includes('Hi'); i++) {
      body = (await box.exec(['curl', '-s', '--max-time', '2', 'http://127.0.0.1:8081/'])).stdout
      if (!body.includes('Hi')) await new Promise((res) => setTimeout(res, 100))
    }
    expect(body.trim()).toBe('Hi sysctr')
    const info = await sysctr(['images', 'info', image('hello-world')])
    expect(info.stdout).toContain('install needs no --grant')
    const un = await sysctr(['uninstall', 'hello-world'])
    expect(un.code).toBe(0)
  })

  it.skipIf(!crunCanFilterDevices)(`hello-world as Atomic shipped it also runs under crun (--runtime), from the same translated config${crunCanFilterDevices ? '' : ': skipped, this machine has no CAP_SYS_RESOURCE, which crun needs to raise RLIMIT_MEMLOCK for the eBPF device filter of a config with device rules'}`, async () => {
    const r = await sysctr(['install', '--system', '--runtime', '/usr/bin/crun', '--name', 'hello-crun', '--set', 'PORT=8082', '--set', 'RECEIVER=crun', image('hello-world')])
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
    expect(await fsp.readFile(box.hostPath('/etc/systemd/system/hello-crun.service'), 'utf8')).toMatch(/^ExecStart=\/usr\/bin\/crun run /m)
    expect((await box.exec(['systemctl', 'start', 'hello-crun.service'], { timeoutMs: 60_000 })).code).toBe(0)
    let body = ''
    for (let i = 0; i < 50 && !body.includes('Hi'); i++) {
      body = (await box.exec(['curl', '-s', '--max-time', '2', 'http://127.0.0.1:8082/'])).stdout
      if (!body.includes('Hi')) await new Promise((res) => setTimeout(res, 100))
    }
    const journal = body.includes('Hi') ? '' : (await box.exec(['journalctl', '-u', 'hello-crun.service', '--no-pager', '-n', '30'])).stdout
    expect({ body: body.trim(), journal }).toEqual({ body: 'Hi crun', journal: '' })
    expect((await sysctr(['uninstall', 'hello-crun'])).code).toBe(0)
  })

  it('every variable Atomic set renders with Atomic\'s value (host file from renameFiles + installedFilesTemplate, noContainerService, tmpfiles)', async () => {
    const r = await sysctr(['install', '--system', '--name', 'vars', image('all-vars')])
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
    const env = Object.fromEntries(
      (await fsp.readFile(box.hostPath('/etc/vars/atomic.env'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    )
    expect(Object.keys(env)).toEqual([...ATOMIC_VARIABLES])
    const info = JSON.parse(await fsp.readFile(box.hostPath('/var/lib/sysctr/containers/vars.0/info.json'), 'utf8'))
    const destdir = '/var/lib/sysctr/containers/vars.0'
    expect(env).toMatchObject({
      NAME: 'vars',
      DESTDIR: destdir,
      EXEC_START: `/usr/bin/runc run --no-new-keyring --bundle ${destdir} vars`,
      EXEC_STOP: '/usr/bin/runc kill vars',
      EXEC_STARTPRE: '-/usr/bin/runc delete --force vars',
      EXEC_STOPPOST: '-/usr/bin/runc delete --force vars',
      HOST_UID: '0',
      HOST_GID: '0',
      IMAGE_NAME: image('all-vars'),
      IMAGE_ID: info.manifestDigest.replace(/^sha256:/, ''),
      RUN_DIRECTORY: '/run',
      STATE_DIRECTORY: '/var/lib',
      CONF_DIRECTORY: '/etc',
      PIDFILE: '/run/container-vars.pid',
      UUID: info.values.UUID,
      RUNTIME: '/usr/bin/runc',
      ATOMIC: '/opt/sysctr/bin/sysctr',
      ADDTL_MOUNTS: '',
      STOP_TIMEOUT: '10',
      GREETING: 'hello from the manifest',
    })
    expect(env.UUID).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(env.ALL_PROCESS_CAPABILITIES).toMatch(/^"CAP_CHOWN", "CAP_DAC_OVERRIDE", .*"CAP_SYS_ADMIN"/)
    // noContainerService: no unit; the tmpfiles entry is written and applied.
    await expect(fsp.access(box.hostPath('/etc/systemd/system/vars.service'))).rejects.toThrow()
    expect((await fsp.stat(box.hostPath('/run/vars'))).isDirectory()).toBe(true)
    expect((await sysctr(['uninstall', 'vars'])).code).toBe(0)
    await expect(fsp.access(box.hostPath('/etc/vars/atomic.env'))).rejects.toThrow()
    await expect(fsp.access(box.hostPath('/run/vars'))).rejects.toThrow()
  })

  it('a container whose PID 1 ignores SIGTERM is stopped after STOP_TIMEOUT, and nothing of it is left', async () => {
    const r = await sysctr(['install', '--system', '--now', '--name', 'stubborn', '--set', 'STOP_TIMEOUT=3', image('stubborn')])
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
    const unit = await fsp.readFile(box.hostPath('/etc/systemd/system/stubborn.service'), 'utf8')
    expect(unit).toMatch(/^TimeoutStopSec=3s$/m)
    expect(await show('stubborn.service', 'ActiveState')).toBe('active')
    const t0 = Date.now()
    const stop = await box.exec(['systemctl', 'stop', 'stubborn.service'], { timeoutMs: 120_000 })
    const took = Date.now() - t0
    expect(stop.code).toBe(0)
    // Without the timeout systemd waits its default 90 s; with it, about STOP_TIMEOUT seconds.
    expect(took).toBeLessThan(30_000)
    expect(await show('stubborn.service', 'ActiveState')).not.toBe('active')
    const list = await box.exec(['runc', 'list', '-q'])
    expect(list.stdout.split('\n')).not.toContain('stubborn')
    expect((await sysctr(['uninstall', 'stubborn'])).code).toBe(0)
  })

  it('socket activation: after install only NAME.socket listens; a connection starts the service and is answered through the passed socket', async () => {
    const r = await sysctr(['install', '--system', '--now', '--name', 'echo', image('echo-socket')])
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
    expect(await fsp.readFile(box.hostPath('/etc/systemd/system/echo.socket'), 'utf8')).toMatch(/^ListenStream=127\.0\.0\.1:9311$/m)
    expect(await show('echo.socket', 'UnitFileState')).toBe('enabled')
    expect(await show('echo.socket', 'ActiveState')).toBe('active')
    expect(await show('echo.service', 'ActiveState')).toBe('inactive')
    const answer = await box.exec(['curl', '-s', '--max-time', '10', 'telnet://127.0.0.1:9311'], { timeoutMs: 30_000 })
    // runc hands the container the socket as fd 3 and sets LISTEN_FDS / LISTEN_PID for its PID 1.
    expect(answer.stdout.trim()).toBe('hello through the passed socket LISTEN_FDS=1 LISTEN_PID=1 pid=1')
    expect(await show('echo.service', 'ActiveState')).toBe('active')
    expect((await fsp.stat(box.hostPath('/run/echo'))).isDirectory()).toBe(true) // RuntimeDirectory=
    const un = await sysctr(['uninstall', 'echo'])
    await expect(fsp.access(box.hostPath('/var/tmp/echo.stopped'))).resolves.toBeUndefined() // ExecStopPost= on the host
    expect(un.code).toBe(0)
    expect(await show('echo.socket', 'ActiveState')).toBe('inactive')
    await expect(fsp.access(box.hostPath('/etc/systemd/system/echo.socket'))).rejects.toThrow()
  })
})
