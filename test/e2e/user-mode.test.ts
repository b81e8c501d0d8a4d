/**
 * `--user` end to end, with no root in the path: inside a throwaway systemd
 * (a persistent root, so a second boot of it is a reboot), a user alice with
 * /etc/subuid and /etc/subgid ranges and lingering enabled installs the demo
 * images from the registry inside the box with the built CLI, as herself
 * (runuser with her XDG_RUNTIME_DIR and user bus), under her own systemd;
 * runc runs them rootless. A second user, bob (no ranges), cannot see or
 * change alice's store or units. Unit states and start order are read from
 * alice's user manager over D-Bus (dist/systemd/dbus-systemd.js, run as alice
 * inside the box: the user bus admits only its owner).
 *
 * The install times as a user and as root (the same images, the same box)
 * are printed for the record, not asserted.
 */
import { randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bootSystemd, makeBootableRoot, systemdSkipReason, type SystemdContainer } from '../../harness/nspawn'
import { buildDemoImages, DEMO_IMAGES } from '../../harness/demo/images'
import { registryConfig } from '../../harness/registry-config'
import { waitFor } from '../../harness/demo-env'
import { buildUpdateImages } from '../helpers/update-images'
import { busyboxLayer } from '../helpers/busybox-layer'
import { writeOciLayout } from '../../harness/oci-layout-writer'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()
const WORK = '/var/tmp/sysctr-work'
const ALICE = { name: 'alice', uid: 2001, subStart: 100000, subCount: 65536 }
const BOB = { name: 'bob', uid: 2002 }
const HOME = '/home/alice'
const DATA = `${HOME}/.local/share/sysctr`
const UNITS = `${HOME}/.config/systemd/user`

/**
 * `owners`: a static /exports/config.json whose process (uid 0) asks for CAP_NET_ADMIN, beyond
 * the default grant; a file of uid 1000 mode 0600 and a setuid binary, to show what a user's
 * checkout keeps of them.
 */
async function buildOwnersImage(dir: string): Promise<void> {
  const base = await busyboxLayer('/bin/busybox', ['sh', 'sleep', 'cat', 'id', 'stat', 'ls'])
  const config = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/bin/sh', '-c', 'while true; do sleep 1; done'],
      env: ['PATH=/bin'],
      cwd: '/',
      capabilities: { bounding: ['CAP_NET_ADMIN', 'CAP_KILL'], effective: ['CAP_NET_ADMIN', 'CAP_KILL'], permitted: ['CAP_NET_ADMIN', 'CAP_KILL'] },
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }] },
  }
  await writeOciLayout(dir, [
    {
      tag: 'owners',
      layers: [
        base,
        [
          { path: 'etc/', type: 'directory' },
          { path: 'etc/secret', content: 'only for 1000\n', mode: 0o600, uid: 1000, gid: 1000 },
          { path: 'bin/suid', content: '#!/bin/sh\nid\n', mode: 0o4755 },
          { path: 'exports/', type: 'directory' },
          { path: 'exports/config.json', content: JSON.stringify(config, null, 2) },
        ],
      ],
    },
  ])
}

async function makeUserRoot(dir: string): Promise<void> {
  await makeBootableRoot(dir, { machineId: true })
  for (const f of ['etc/subuid', 'etc/subgid']) await fsp.writeFile(join(dir, f), '')
  // user@.service opens a PAM session (Debian keeps its PAM config in /etc, which starts empty here).
  await fsp.cp('/etc/pam.d', join(dir, 'etc/pam.d'), { recursive: true })
  await fsp.cp('/etc/security', join(dir, 'etc/security'), { recursive: true }).catch(() => undefined)
}

interface StateJson {
  activeState: string
  unitFileState: string
  loadState: string
  mainPid?: number
  activeEnter: string
  inactiveExit: string
}

describe.skipIf(skip !== undefined)(`install --user end to end (rootless, the user's systemd, a reboot)${skip ? `: skipped, ${skip}` : ''}`, () => {
  let work: string
  let root: string
  let box: SystemdContainer | undefined
  let registry: string
  const images: Record<string, string> = {}
  const times: Record<string, number> = {}

  const boot = async () => {
    box = await bootSystemd({
      name: 'sysctr-user',
      repo,
      directory: root,
      binds: [
        { host: '/usr', container: '/usr', readOnly: true },
        { host: join(work, 'images'), container: WORK },
      ],
      bootTimeoutMs: 120_000,
    })
  }
  const sh = (argv: string[], timeoutMs = 60_000) => box!.exec(argv, { timeoutMs })
  const must = async (argv: string[]) => {
    const r = await sh(argv, 120_000)
    if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr}`)
    return r.stdout
  }
  /** argv as USER, in the user's session environment (what a login or `machinectl shell` gives). */
  const as = (user: { name: string; uid: number }, argv: string[], timeoutMs = 120_000) =>
    box!.exec(
      [
        'runuser', '-u', user.name, '--', 'env', `HOME=/home/${user.name}`, `USER=${user.name}`, `XDG_RUNTIME_DIR=/run/user/${user.uid}`,
        `DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/${user.uid}/bus`, ...argv,
      ],
      { timeoutMs },
    )
  const sysctr = (user: { name: string; uid: number }, args: string[]) => as(user, ['/opt/sysctr/bin/sysctr', ...args])
  /** Unit states from alice's user manager, over D-Bus with sysctr's own client. */
  const userStates = async (units: string[]): Promise<Record<string, StateJson>> => {
    const script = `
      const { connectSystemd } = require('/opt/sysctr/dist/systemd/dbus-systemd');
      (async () => {
        const s = await connectSystemd({ busAddress: process.env.DBUS_SESSION_BUS_ADDRESS });
        const out = {};
        for (const u of ${JSON.stringify(units)}) {
          const st = await s.unitState(u);
          out[u] = { activeState: st.activeState, unitFileState: st.unitFileState, loadState: st.loadState, mainPid: st.mainPid,
            activeEnter: String(st.activeEnterTimestampMonotonic), inactiveExit: String(st.inactiveExitTimestampMonotonic) };
        }
        await s.close();
        process.stdout.write(JSON.stringify(out));
      })().catch((e) => { console.error(e); process.exit(1) });`
    const r = await as(ALICE, ['node', '-e', script])
    if (r.code !== 0) throw new Error(`reading alice's unit states: ${r.stderr}`)
    return JSON.parse(r.stdout) as Record<string, StateJson>
  }
  const journal = async () => (await as(ALICE, ['journalctl', '--user', '-b', '--no-pager', '-n', '40'])).stdout
  const expectInOrder = (st: Record<string, StateJson>, log: string) => {
    for (const n of DEMO_IMAGES) expect(st[`${n}.service`]!.activeState, `${n}\n${log}`).toBe('active')
    expect(BigInt(st['etcd.service']!.activeEnter)).toBeLessThanOrEqual(BigInt(st['flannel.service']!.inactiveExit))
    expect(BigInt(st['flannel.service']!.activeEnter)).toBeLessThanOrEqual(BigInt(st['engine.service']!.inactiveExit))
  }

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
    })
    work = await fsp.mkdtemp(join(tmpdir(), 'sysctr-user-'))
    root = join(work, 'root')
    await buildDemoImages(join(work, 'images', 'oci'))
    await buildUpdateImages(join(work, 'images', 'oci-svc'), { tmpfiles: 'd ${RUN_DIRECTORY}/svc-$NAME 0755 root root -\n' })
    await buildOwnersImage(join(work, 'images', 'oci-owners'))
    await fsp.mkdir(join(work, 'images', 'registry', 'data'), { recursive: true })
    await makeUserRoot(root)
    await boot()
    const port = 5000 + Math.floor(Math.random() * 1000)
    registry = `127.0.0.1:${port}`
    await fsp.writeFile(join(work, 'images', 'registry', 'config.yml'), registryConfig({ addr: registry, storageDir: `${WORK}/registry/data` }))
    await must(['systemd-run', '--quiet', '--unit=sysctr-test-registry', '/usr/bin/docker-registry', 'serve', `${WORK}/registry/config.yml`])
    await waitFor(async () => (await sh(['curl', '-fsS', '-o', '/dev/null', `http://${registry}/v2/`])).code === 0, 20_000, 'the registry to answer')
    for (const n of DEMO_IMAGES) {
      images[n] = `${registry}/demo/${n}:latest`
      await must(['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${WORK}/oci:${n}`, `docker://${images[n]}`])
    }
    images.owners = `${registry}/demo/owners:latest`
    await must(['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${WORK}/oci-owners:owners`, `docker://${images.owners}`])
    // alice: subordinate ranges and lingering (her manager runs without a login, and from boot on).
    await must(['useradd', '-m', '-u', String(ALICE.uid), ALICE.name])
    await must(['useradd', '-m', '-u', String(BOB.uid), BOB.name])
    // useradd gives every new user a range when /etc/subuid exists: bob is to have none.
    await must(['sed', '-i', '/^bob:/d', '/etc/subuid', '/etc/subgid'])
    await must(['usermod', '--add-subuids', `${ALICE.subStart}-${ALICE.subStart + ALICE.subCount - 1}`, '--add-subgids', `${ALICE.subStart}-${ALICE.subStart + ALICE.subCount - 1}`, ALICE.name])
    for (const u of [ALICE, BOB]) {
      await must(['loginctl', 'enable-linger', u.name])
      await waitFor(async () => (await sh(['systemctl', 'is-active', `user@${u.uid}.service`])).stdout.trim() === 'active', 30_000, `user@${u.uid}.service`)
    }
  }, 240_000)
  afterAll(async () => {
    await box?.stop()
    if (work) await fsp.rm(work, { recursive: true, force: true })
  })

  it('alice installs etcd, flannel and engine with --user: units in her systemd, enabled for default.target, a rootless config', async () => {
    for (const n of DEMO_IMAGES) {
      const t0 = Date.now()
      const r = await sysctr(ALICE, ['install', '--user', '--tls-verify=false', images[n]!])
      times[`user:${n}`] = Date.now() - t0
      expect({ n, code: r.code, stderr: r.stderr }).toEqual({ n, code: 0, stderr: expect.not.stringMatching(/^error:/m) })
      expect(r.stdout).toContain(`installed ${n}`)
      expect(r.stdout).toContain(`deployment: ${n}.0 (${DATA}/containers/${n}.0)`)
    }
    const st = await userStates(DEMO_IMAGES.map((n) => `${n}.service`))
    for (const n of DEMO_IMAGES) expect(st[`${n}.service`]).toMatchObject({ loadState: 'loaded', unitFileState: 'enabled', activeState: 'inactive' })
    const unit = await fsp.readFile(box!.hostPath(`${UNITS}/etcd.service`), 'utf8')
    expect(unit).toContain(`--bundle ${DATA}/containers/etcd.0 etcd`)
    expect(unit).toMatch(/^WantedBy=default\.target$/m)
    expect(unit).not.toContain('multi-user.target')
    // Her manager does not apply user-tmpfiles.d at its start (not enabled on Debian): the unit does, first.
    const pre = unit.split('\n').filter((l) => l.startsWith('ExecStartPre='))
    expect(pre[0]).toBe(`ExecStartPre=/usr/bin/systemd-tmpfiles --user --create ${HOME}/.config/user-tmpfiles.d/etcd.conf`)
    expect(await fsp.readlink(box!.hostPath(`${UNITS}/default.target.wants/etcd.service`))).toBe(`${UNITS}/etcd.service`)
    // Nothing of it belongs to root; the state dir is alice's alone.
    for (const p of [DATA, `${DATA}/store`, `${DATA}/containers/etcd.0/rootfs/bin/busybox`, `${UNITS}/etcd.service`, `${HOME}/.config/user-tmpfiles.d/etcd.conf`]) {
      expect((await fsp.lstat(box!.hostPath(p))).uid, p).toBe(ALICE.uid)
    }
    expect((await fsp.stat(box!.hostPath(DATA))).mode & 0o777).toBe(0o700)
    // The tmpfiles entry is in her terms: her runtime dir, her own files.
    expect(await fsp.readFile(box!.hostPath(`${HOME}/.config/user-tmpfiles.d/etcd.conf`), 'utf8')).toBe(`d /run/user/${ALICE.uid}/etcd 0755 - - -\n`)
    const cfg = JSON.parse(await fsp.readFile(box!.hostPath(`${DATA}/containers/etcd.0/config.json`), 'utf8'))
    expect(cfg.linux.namespaces).toContainEqual({ type: 'user' })
    expect(cfg.linux.uidMappings).toEqual([
      { containerID: 0, hostID: ALICE.uid, size: 1 },
      { containerID: 1, hostID: ALICE.subStart, size: ALICE.subCount },
    ])
    expect(cfg.linux.gidMappings[1]).toEqual({ containerID: 1, hostID: ALICE.subStart, size: ALICE.subCount })
    expect(cfg.linux.cgroupsPath).toBe(`/user.slice/user-${ALICE.uid}.slice/user@${ALICE.uid}.service/app.slice/etcd.service/container`)
    expect(cfg.mounts).toContainEqual({ destination: '/dev/log', type: 'bind', source: `/run/user/${ALICE.uid}/systemd/notify`, options: ['bind'] })
    expect(cfg.mounts.find((m: { destination: string }) => m.destination === '/sys')).toMatchObject({ type: 'none', source: '/sys' })
    // The store keeps the image's owners and modes as metadata: the object is alice's, its xattr says root's.
    const meta = await sh(['getfattr', '--only-values', '-n', 'user.sysctr.meta', `${DATA}/containers/etcd.0/rootfs/bin/busybox`])
    expect(meta.code).toBe(0)
    expect(JSON.parse(meta.stdout)).toMatchObject({ uid: 0, gid: 0, mode: 0o755 })
  })

  it('the same images as root (--system), for the record: install times user vs root', async () => {
    for (const n of DEMO_IMAGES) {
      const t0 = Date.now()
      const r = await sh(['/opt/sysctr/bin/sysctr', 'install', '--system', '--tls-verify=false', images[n]!], 120_000)
      times[`root:${n}`] = Date.now() - t0
      expect(r.code).toBe(0)
    }
    for (const n of DEMO_IMAGES) expect((await sh(['/opt/sysctr/bin/sysctr', 'uninstall', n])).code).toBe(0)
    // A root store and a user store are separate: root's knows nothing of alice's containers.
    expect((await sh(['/opt/sysctr/bin/sysctr', 'containers', 'list'])).stdout).toContain('no containers installed')
    console.log(`install times (ms; each image once, into a store that starts empty; registry in the box): ${JSON.stringify(times)}`)
  })

  it("systemctl --user start engine starts etcd, flannel, engine in dependency order; rootless, read-only, as alice's uid on the host", async () => {
    const r = await as(ALICE, ['systemctl', '--user', 'start', 'engine.service'])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const st = await userStates(DEMO_IMAGES.map((n) => `${n}.service`))
    expectInOrder(st, await journal())
    // runc (rootless: its state in alice's runtime dir) lists them as hers.
    let list: { id: string; pid: number; status: string; owner: string }[] = []
    await waitFor(async () => {
      const l = await as(ALICE, ['runc', 'list', '--format', 'json'])
      list = JSON.parse(l.stdout || '[]') ?? []
      return DEMO_IMAGES.every((n) => list.some((c) => c.id === n && c.status === 'running'))
    }, 20_000, 'runc to list the three containers')
    for (const n of DEMO_IMAGES) {
      const c = list.find((x) => x.id === n)!
      expect(c.owner).toBe(ALICE.name)
      // The container's init is root inside, alice on the host.
      const status = await fsp.readFile(box!.hostPath(`/proc/${c.pid}/status`), 'utf8')
      expect(status).toMatch(new RegExp(`^Uid:\\s+${ALICE.uid}\\s+${ALICE.uid}\\s+${ALICE.uid}\\s+${ALICE.uid}$`, 'm'))
      expect(await fsp.readFile(box!.hostPath(`/proc/${c.pid}/uid_map`), 'utf8')).toMatch(new RegExp(`^\\s*0\\s+${ALICE.uid}\\s+1\\n\\s*1\\s+${ALICE.subStart}\\s+${ALICE.subCount}\\n$`))
      // ... and runs in the unit's own cgroup in alice's manager.
      const cg = await sh(['cat', `/sys/fs/cgroup/user.slice/user-${ALICE.uid}.slice/user@${ALICE.uid}.service/app.slice/${n}.service/container/cgroup.procs`])
      expect(cg.stdout.split('\n')).toContain(String(c.pid))
    }
    // No capability beyond the user's on the host: the container's effective set is in its own namespace.
    const w = await as(ALICE, ['runc', 'exec', 'etcd', '/bin/touch', '/x'])
    expect(w.code).not.toBe(0)
    expect(w.stderr).toMatch(/Read-only file system/)
    expect(await journal()).toMatch(/etcd: root filesystem is read-only/)
    // A uid of alice's range: the container's uid 1000 is 100999 on the host.
    const id = await as(ALICE, ['runc', 'exec', '--user', '1000:1000', 'etcd', '/bin/sh', '-c', 'sleep 30 >/dev/null 2>&1 &'])
    expect(id.code).toBe(0)
    const ps = await sh(['ps', '-o', 'uid=', '-C', 'sleep'])
    expect(ps.stdout.split('\n').map((l) => l.trim())).toContain(String(ALICE.subStart + 999))
  })

  it('bob cannot see or change alice\'s store, deployments or units; his --user is his own', async () => {
    for (const p of [DATA, `${DATA}/store`, UNITS]) {
      const r = await as(BOB, ['ls', p])
      expect({ p, code: r.code }).toEqual({ p, code: 2 })
      expect(r.stderr).toMatch(/Permission denied/)
    }
    const edit = await as(BOB, ['sh', '-c', `echo x > ${UNITS}/etcd.service`])
    expect(edit.code).not.toBe(0)
    const rm = await as(BOB, ['rm', '-rf', `${DATA}/containers`])
    expect(rm.code).not.toBe(0)
    const list = await sysctr(BOB, ['containers', 'list', '--user'])
    expect(list.code).toBe(0)
    expect(list.stdout).toContain('no containers installed')
    const un = await sysctr(BOB, ['uninstall', '--user', 'etcd'])
    expect(un.code).toBe(3)
    expect(un.stderr).toMatch(/^error: uninstalling etcd: no container named etcd is installed/m)
    // bob has no subordinate ranges: his install maps his uid alone, and an image running as another uid is refused.
    const b = await sysctr(BOB, ['install', '--user', '--tls-verify=false', '--name', 'bob-etcd', images.etcd!])
    expect(b.code).toBe(0)
    const cfg = JSON.parse((await as(BOB, ['cat', `/home/bob/.local/share/sysctr/containers/bob-etcd.0/config.json`])).stdout)
    expect(cfg.linux.uidMappings).toEqual([{ containerID: 0, hostID: BOB.uid, size: 1 }])
    expect((await sysctr(BOB, ['uninstall', '--user', 'bob-etcd'])).code).toBe(0)
    expect((await userStates(['etcd.service']))['etcd.service']!.activeState).toBe('active')
    // Not even root writes into alice's store: its objects would be root's, among hers.
    const root = await box!.exec(['/opt/sysctr/bin/sysctr', 'images', 'prune'], { env: { SYSCTR_STATE_DIR: DATA } })
    expect(root.code).toBe(7)
    expect(root.stderr).toMatch(new RegExp(`^error: .*store ${DATA}/store belongs to uid ${ALICE.uid}, not to this process \\(uid 0\\)`, 'm'))
  })

  it('--dry-run --user shows the user\'s files and changes nothing; --now under crun (rootless) starts and reports the job', async () => {
    const before = await as(ALICE, ['find', `${HOME}/.config`, `${DATA}/containers`])
    const dry = await sysctr(ALICE, ['install', '--user', '--tls-verify=false', '--dry-run', '--name', 'etcd-dry', images.etcd!])
    expect({ code: dry.code, stderr: dry.stderr }).toEqual({ code: 0, stderr: expect.not.stringMatching(/^error:/m) })
    expect(dry.stdout).toContain(`${UNITS}/etcd-dry.service`)
    expect(dry.stdout).toContain('WantedBy=default.target')
    expect((await as(ALICE, ['find', `${HOME}/.config`, `${DATA}/containers`])).stdout).toBe(before.stdout)
    const r = await sysctr(ALICE, ['install', '--user', '--tls-verify=false', '--runtime', '/usr/bin/crun', '--name', 'etcd-crun', '--now', images.etcd!])
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.not.stringMatching(/^error:/m) })
    expect(r.stdout).toContain('started: done')
    expect((await userStates(['etcd-crun.service']))['etcd-crun.service']!.activeState).toBe('active')
    // crun exec joins the container's cgroup, which a user can do only from inside her manager's tree (cgroup v2
    // delegation: the common ancestor must be hers), so it runs as a transient unit of hers; runc only warns.
    const w = await as(ALICE, ['systemd-run', '--user', '--quiet', '--wait', '--pipe', 'crun', 'exec', 'etcd-crun', '/bin/touch', '/x'])
    expect(w.code).not.toBe(0)
    expect(w.stderr).toMatch(/Read-only file system/)
    expect((await sysctr(ALICE, ['uninstall', '--user', 'etcd-crun'])).code).toBe(0)
  })

  it('the privilege check holds for a user (refused without --grant, exit 6); the checkout keeps image owners only as metadata', async () => {
    const refused = await sysctr(ALICE, ['install', '--user', '--tls-verify=false', images.owners!])
    expect(refused.code).toBe(6)
    expect(refused.stderr).toMatch(/--grant cap:NET_ADMIN/)
    const ok = await sysctr(ALICE, ['install', '--user', '--tls-verify=false', '--grant', 'cap:NET_ADMIN', '--now', images.owners!])
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: expect.not.stringMatching(/^error:/m) })
    const rootfs = `${DATA}/containers/owners.0/rootfs`
    // On disk: alice's, the setuid bit dropped; the image's owner and mode are in the store's metadata.
    const secret = await fsp.stat(box!.hostPath(`${rootfs}/etc/secret`))
    expect({ uid: secret.uid, mode: secret.mode & 0o7777 }).toEqual({ uid: ALICE.uid, mode: 0o600 })
    expect((await fsp.stat(box!.hostPath(`${rootfs}/bin/suid`))).mode & 0o7777).toBe(0o755)
    const meta = await sh(['getfattr', '--only-values', '-n', 'user.sysctr.meta', `${rootfs}/etc/secret`])
    expect(JSON.parse(meta.stdout)).toMatchObject({ uid: 1000, gid: 1000, mode: 0o600 })
    expect(JSON.parse((await sh(['getfattr', '--only-values', '-n', 'user.sysctr.meta', `${rootfs}/bin/suid`])).stdout)).toMatchObject({ mode: 0o4755 })
    // Inside: root's (the user), so root reads it and uid 1000 does not (README "what rootless cannot do").
    // (The default unit is Type=simple: started once runc runs, maybe before the container does.)
    await waitFor(async () => (await as(ALICE, ['runc', 'state', 'owners'])).stdout.includes('"running"'), 20_000, 'the owners container to run')
    const asRoot = await as(ALICE, ['runc', 'exec', 'owners', '/bin/cat', '/etc/secret'])
    expect(asRoot.stdout, asRoot.stderr).toBe('only for 1000\n')
    const owner = await as(ALICE, ['runc', 'exec', 'owners', '/bin/stat', '-c', '%u %a', '/etc/secret'])
    expect(owner.stdout.trim()).toBe('0 600')
    const as1000 = await as(ALICE, ['runc', 'exec', '--user', '1000:1000', 'owners', '/bin/cat', '/etc/secret'])
    expect(as1000.code).not.toBe(0)
    expect(as1000.stderr).toMatch(/Permission denied/)
    expect((await sysctr(ALICE, ['uninstall', '--user', 'owners'])).code).toBe(0)
  })

  it('update and rollback as alice: v1 -> v2 -> back to v1, each running', async () => {
    const ref = `${registry}/demo/svc:latest`
    const publish = (v: string) => must(['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${WORK}/oci-svc:svc-${v}`, `docker://${ref}`])
    const version = async () => (await as(ALICE, ['runc', 'exec', 'svc', 'cat', '/etc/svc-version'])).stdout.trim()
    await publish('v1')
    const i = await sysctr(ALICE, ['install', '--user', '--tls-verify=false', '--now', ref])
    expect({ code: i.code, stderr: i.stderr }).toEqual({ code: 0, stderr: expect.not.stringMatching(/^error:/m) })
    expect(await version()).toBe('v1')
    await publish('v2')
    const u = await sysctr(ALICE, ['containers', 'update', '--user', '--tls-verify=false', 'svc'])
    expect({ code: u.code, stderr: u.stderr }).toEqual({ code: 0, stderr: expect.not.stringMatching(/^error:/m) })
    expect(await version()).toBe('v2')
    expect(await fsp.readlink(box!.hostPath(`${DATA}/containers/svc`))).toBe('svc.1')
    const rb = await sysctr(ALICE, ['containers', 'rollback', '--user', 'svc'])
    expect(rb.code).toBe(0)
    expect(await version()).toBe('v1')
    expect(await fsp.readlink(box!.hostPath(`${DATA}/containers/svc`))).toBe('svc.0')
    // v3 exits before it is ready: the update rolls back by itself (exit 8), v1 runs on.
    await publish('v3')
    const bad = await sysctr(ALICE, ['containers', 'update', '--user', '--tls-verify=false', 'svc'])
    expect(bad.code).toBe(8)
    expect(await version()).toBe('v1')
    expect((await sysctr(ALICE, ['uninstall', '--user', 'svc'])).code).toBe(0)
  })

  it("a system path in a user's tmpfiles entry is refused before anything changes (exit 6), naming it", async () => {
    await must(['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${WORK}/oci-svc:svc-v1`, `docker://${registry}/demo/svc:latest`])
    const before = await as(ALICE, ['find', `${HOME}/.config`, `${DATA}/containers`])
    const r = await sysctr(ALICE, ['install', '--user', '--tls-verify=false', '--set', 'RUN_DIRECTORY=/run', '--name', 'svc2', `${registry}/demo/svc:latest`])
    expect(r.code).toBe(6)
    expect(r.stderr).toMatch(/^error: installing svc2: .*creates \/run\/svc-svc2/m)
    expect(r.stderr).not.toMatch(/\n\s+at /)
    expect((await as(ALICE, ['find', `${HOME}/.config`, `${DATA}/containers`])).stdout).toBe(before.stdout)
  })

  it('a --user install killed in the middle of its switch is undone by the next one (the journal), then installs', async () => {
    const killed = await as(ALICE, ['env', 'SYSCTR_KILL_AT=switch:link', '/opt/sysctr/bin/sysctr', 'install', '--user', '--tls-verify=false', '--name', 'etcd-k', images.etcd!])
    expect(killed.code).not.toBe(0)
    expect((await fsp.readdir(box!.hostPath(`${DATA}/containers`))).filter((e) => e.includes('etcd-k'))).toContain('.etcd-k.journal')
    const again = await sysctr(ALICE, ['install', '--user', '--tls-verify=false', '--name', 'etcd-k', images.etcd!])
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: expect.stringMatching(/etcd-k/) })
    expect((await fsp.readdir(box!.hostPath(`${DATA}/containers`))).filter((e) => e.includes('etcd-k')).sort()).toEqual(['etcd-k', 'etcd-k.0'])
    expect((await userStates(['etcd-k.service']))['etcd-k.service']!.unitFileState).toBe('enabled')
    expect((await sysctr(ALICE, ['uninstall', '--user', 'etcd-k'])).code).toBe(0)
  })

  it("a reboot starts alice's enabled containers from her lingering manager, in order, without a login", async () => {
    await box!.stop()
    box = undefined
    await boot()
    await waitFor(async () => (await sh(['systemctl', 'is-active', `user@${ALICE.uid}.service`])).stdout.trim() === 'active', 60_000, "alice's manager")
    let st: Record<string, StateJson> = {}
    await waitFor(async () => {
      st = await userStates(DEMO_IMAGES.map((n) => `${n}.service`))
      return DEMO_IMAGES.every((n) => st[`${n}.service`]!.activeState === 'active')
    }, 60_000, "alice's containers to be active after the reboot").catch(async (err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(st)}\n${await journal()}`)
    })
    expectInOrder(st, await journal())
    const sessions = await sh(['loginctl', 'list-sessions', '--no-legend'])
    expect(sessions.stdout.trim()).toBe('')
  }, 180_000)

  it('uninstall as alice leaves nothing of sysctr in her dirs; images delete and prune empty her store', async () => {
    for (const n of [...DEMO_IMAGES].reverse()) {
      const r = await sysctr(ALICE, ['uninstall', '--user', n])
      expect({ n, code: r.code, stderr: r.stderr }).toEqual({ n, code: 0, stderr: expect.not.stringMatching(/^error:/m) })
    }
    const st = await userStates(DEMO_IMAGES.map((n) => `${n}.service`))
    for (const n of DEMO_IMAGES) expect(st[`${n}.service`]).toMatchObject({ activeState: 'inactive', loadState: 'not-found' })
    const left = await as(ALICE, ['find', `${HOME}/.config`, `${DATA}/containers`, '!', '-type', 'd'])
    expect(left.stdout).toBe('')
    const fsck = await sysctr(ALICE, ['fsck', '--user'])
    expect(fsck.code).toBe(0)
    // fsck checks each object against the image metadata kept in its xattr: a changed owner there is found.
    const obj = (await as(ALICE, ['sh', '-c', `find ${DATA}/store/objects -name '*.file' | head -1`])).stdout.trim()
    const forged = Buffer.from(JSON.stringify({ mode: 0o755, uid: 1000, gid: 0 })).toString('base64')
    expect((await as(ALICE, ['setfattr', '-n', 'user.sysctr.meta', '-v', `0s${forged}`, obj])).code).toBe(0)
    const bad = await sysctr(ALICE, ['fsck', '--user'])
    expect(bad.code).not.toBe(0)
    expect(bad.stdout + bad.stderr).toMatch(/uid 1000/)
    for (const ref of [...Object.values(images), `${registry}/demo/svc:latest`]) await sysctr(ALICE, ['images', 'delete', '--user', ref])
    const prune = await sysctr(ALICE, ['images', 'prune', '--user'])
    expect(prune.code).toBe(0)
    const objects = await as(ALICE, ['find', `${DATA}/store/objects`, '-type', 'f'])
    expect(objects.stdout).toBe('')
  })
})
