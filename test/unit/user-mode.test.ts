/**
 * The pure parts of --user: subordinate ranges, the rootless runtime config,
 * the unit and tmpfiles adaptation, the bare-user object metadata, and the
 * CLI's refusals (the built CLI, as root, as a user runs it).
 */
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { subordinateRange } from '../../src/ops/user-context'
import { rootlessConfig } from '../../src/runtime/rootless'
import { adaptTmpfilesForUser, adaptUnitForUser } from '../../src/systemd/user-unit'
import { fileObjectMeta, META_XATTR, userDirMode, userFileMode } from '../../src/store/ownership'
import { fileObjectHeader } from '../../src/store/canonical'
import { keepContainerInService, userManager } from '../../src/runtime/cgroup'
import { UnitFile } from '../../src/systemd/unit-file'
import type { UserMode } from '../../src/ops/context'

const alice: UserMode = {
  uid: 2001,
  gid: 2001,
  userName: 'alice',
  runtimeDir: '/run/user/2001',
  dataHome: '/home/alice/.local/share',
  configHome: '/home/alice/.config',
  subuid: { start: 100000, count: 65536 },
  subgid: { start: 100000, count: 65536 },
}
const { subuid: _u, subgid: _g, ...bob } = { ...alice, uid: 2002, gid: 2002, userName: 'bob' }

const spec = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    ociVersion: '1.0.2',
    process: { user: { uid: 0, gid: 0 }, args: ['/bin/sh'] },
    root: { path: 'rootfs', readonly: true },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'newinstance', 'mode=0620', 'gid=5'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/dev/log', type: 'bind', source: '/run/systemd/notify', options: ['bind'] },
    ],
    linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }], resources: { devices: [{ allow: false, access: 'rwm' }] } },
    ...extra,
  })

describe('subordinate ranges (/etc/subuid)', () => {
  it('finds the first range of the user, by name or uid; none for others or malformed lines', () => {
    const text = 'bob:200000:65536\nalice:100000:65536\nalice:300000:10\n2003:400000:5\nbad:x:1\n'
    expect(subordinateRange(text, 'alice', 2001)).toEqual({ start: 100000, count: 65536 })
    expect(subordinateRange(text, 'carol', 2003)).toEqual({ start: 400000, count: 5 })
    expect(subordinateRange(text, 'bad', 9)).toBeUndefined()
    expect(subordinateRange(text, 'dave', 2004)).toBeUndefined()
  })
})

describe('rootlessConfig', () => {
  it('adds a user namespace mapping the user to 0 and the range to 1.., binds /sys, keeps gid=5 when mapped, drops cgroup resources, uses the user manager\'s notify socket', () => {
    const out = JSON.parse(rootlessConfig(spec(), alice, 'etcd').configJson)
    expect(out.linux.namespaces).toEqual([{ type: 'pid' }, { type: 'mount' }, { type: 'user' }])
    expect(out.linux.uidMappings).toEqual([
      { containerID: 0, hostID: 2001, size: 1 },
      { containerID: 1, hostID: 100000, size: 65536 },
    ])
    expect(out.linux.gidMappings).toEqual([
      { containerID: 0, hostID: 2001, size: 1 },
      { containerID: 1, hostID: 100000, size: 65536 },
    ])
    expect(out.linux.resources).toBeUndefined()
    expect(out.mounts[2]).toEqual({ destination: '/sys', type: 'none', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] })
    expect(out.mounts[1].options).toContain('gid=5')
    expect(out.mounts[3].source).toBe('/run/user/2001/systemd/notify')
    expect(out.root).toEqual({ path: 'rootfs', readonly: true })
  })

  it('without ranges maps the user alone and drops devpts gid=; a process uid outside the mapping is refused with the usermod hint', () => {
    const out = JSON.parse(rootlessConfig(spec(), bob, 'etcd').configJson)
    expect(out.linux.uidMappings).toEqual([{ containerID: 0, hostID: 2002, size: 1 }])
    expect(out.mounts[1].options).not.toContain('gid=5')
    const as1000 = spec({ process: { user: { uid: 1000, gid: 1000 }, args: ['/bin/sh'] } })
    expect(() => rootlessConfig(as1000, bob, 'web')).toThrow(/runs its process as uid 1000, which bob's user namespace does not map \(0-0\)/)
    try {
      rootlessConfig(as1000, bob, 'web')
    } catch (err) {
      expect((err as { code: string; exitCode: number; hint: string }).code).toBe('config.rootless-unmapped')
      expect((err as { exitCode: number }).exitCode).toBe(6)
      expect((err as { hint: string }).hint).toMatch(/usermod --add-subuids .* bob/)
    }
    // With alice's range, uid 1000 is mapped (host 100999).
    expect(() => rootlessConfig(as1000, alice, 'web')).not.toThrow()
  })

  it('refuses to join an existing user namespace; warns when real resource limits are dropped', () => {
    const joins = spec({ linux: { namespaces: [{ type: 'user', path: '/proc/1/ns/user' }] } })
    expect(() => rootlessConfig(joins, alice, 'x')).toThrow(/joins an existing user namespace/)
    const limited = spec({ linux: { namespaces: [], resources: { memory: { limit: 1 }, devices: [] } } })
    expect(rootlessConfig(limited, alice, 'x').warnings).toEqual(['config.json: resource limits (memory) are dropped: a user\'s runtime cannot set them'])
  })

  it('a delegated user unit keeps the container in its cgroup under user@UID.service, app.slice by default', () => {
    const unit = UnitFile.parse('[Service]\nDelegate=yes\n', 'etcd.service')
    const out = JSON.parse(keepContainerInService(spec(), 'etcd', unit, userManager(2001)))
    expect(out.linux.cgroupsPath).toBe('/user.slice/user-2001.slice/user@2001.service/app.slice/etcd.service/container')
    const sliced = UnitFile.parse('[Service]\nDelegate=yes\nSlice=web-x.slice\n', 'etcd.service')
    expect(JSON.parse(keepContainerInService(spec(), 'etcd', sliced, userManager(2001))).linux.cgroupsPath).toBe(
      '/user.slice/user-2001.slice/user@2001.service/web.slice/web-x.slice/etcd.service/container',
    )
  })
})

describe('unit and tmpfiles for the user manager', () => {
  it('[Install] multi-user/graphical.target become default.target; other targets and sections stay; the tmpfiles entry is applied first', () => {
    const text = '[Unit]\nWants=multi-user.target\n\n[Service]\nExecStart=/bin/x\n\n[Install]\nWantedBy=multi-user.target sockets.target\nRequiredBy=graphical.target\n'
    const out = adaptUnitForUser(text, { tmpfiles: '/home/a b/.config/user-tmpfiles.d/x.conf' }).text
    expect(out).toBe(
      '[Unit]\nWants=multi-user.target\n\n[Service]\nExecStartPre=/usr/bin/systemd-tmpfiles --user --create "/home/a b/.config/user-tmpfiles.d/x.conf"\nExecStart=/bin/x\n\n[Install]\nWantedBy=default.target sockets.target\nRequiredBy=default.target\n',
    )
  })

  it('tmpfiles: root owners become the user (-), other owners too with a warning; paths outside the user\'s dirs are named', () => {
    const t = adaptTmpfilesForUser('# c\nd /run/user/2001/etcd 0755 root root -\nd /run/user/2001/w 0750 www-data 0 -\nd /run/etcd 0755 - - -\n', ['/run/user/2001'])
    expect(t.text).toBe('# c\nd /run/user/2001/etcd 0755 - - -\nd /run/user/2001/w 0750 - - -\nd /run/etcd 0755 - - -\n')
    expect(t.warnings).toEqual(['tmpfiles entry /run/user/2001/w: user www-data cannot be set by a user; the calling user owns it (root inside the container)'])
    expect(t.outside).toEqual(['/run/etcd'])
    expect(adaptTmpfilesForUser('d /run/user/20011/x - - - -\n', ['/run/user/2001']).outside).toEqual(['/run/user/20011/x'])
  })
})

describe('bare-user object metadata (store/ownership.ts)', () => {
  it('bare-user reads the image metadata from the xattr (the same header, so the same object name, as bare); bare from the file, whatever its xattrs', () => {
    const image = { mode: 0o4755, uid: 0, gid: 0, xattrs: { 'security.capability': 'AQID' } }
    const rec = Buffer.from(JSON.stringify(image)).toString('base64')
    const m = fileObjectMeta({ mode: 0o100755, uid: 2001, gid: 2001 }, { [META_XATTR]: rec }, 'ab.file', 'bare-user')
    expect(m).toEqual(image)
    expect(fileObjectHeader(m)).toEqual(fileObjectHeader(image))
    // An image's own xattr of that name in a root store is just an xattr.
    expect(fileObjectMeta({ mode: 0o100644, uid: 5, gid: 6 }, { [META_XATTR]: rec }, 'ab.file', 'bare')).toEqual({ mode: 0o644, uid: 5, gid: 6, xattrs: { [META_XATTR]: rec } })
    for (const x of [{}, { [META_XATTR]: Buffer.from('{"mode":"x"}').toString('base64') }] as Record<string, string>[]) {
      expect(() => fileObjectMeta({ mode: 0o100644, uid: 5, gid: 6 }, x, 'ab.file', 'bare-user')).toThrow(/file object ab\.file: its user\.sysctr\.meta xattr is not valid metadata/)
    }
  })

  it('on disk a user file keeps its permission bits, owner-readable, never setuid; a directory is always the user\'s to enter and remove', () => {
    expect(userFileMode(0o4755).toString(8)).toBe('755')
    expect(userFileMode(0o000).toString(8)).toBe('400')
    expect(userDirMode(0o555).toString(8)).toBe('755')
    expect(userDirMode(0o1777).toString(8)).toBe('777')
  })
})

describe('the CLI refuses what --user cannot do (exit 2, one line and a hint)', () => {
  const cli = resolve(__dirname, '..', '..', 'bin', 'sysctr')
  const run = (args: string[]) => spawnSync(cli, args, { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: '/run/user/0' } })
  it.skipIf(process.getuid?.() !== 0)('--user as root, --user with --system, --user with --root', () => {
    const asRoot = run(['install', '--user', 'example.com/etcd'])
    expect(asRoot.status).toBe(2)
    expect(asRoot.stderr).toMatch(/^error: --user installs rootless containers for a non-root user; root installs system containers$/m)
    expect(asRoot.stderr).toMatch(/^hint: /m)
    const both = run(['install', '--user', '--system', 'example.com/etcd'])
    expect(both.status).toBe(2)
    expect(both.stderr).toMatch(/--system and --user cannot be used together/)
    const root = run(['uninstall', '--user', '--root', '/tmp/x', 'etcd'])
    expect(root.status).toBe(2)
    expect(root.stderr).toMatch(/--root and --user cannot be used together/)
    expect(asRoot.stderr + both.stderr + root.stderr).not.toMatch(/\n\s+at /)
  })
})
