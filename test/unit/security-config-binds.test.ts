/**
 * The bind-mount rule of runtime/config-check.ts (isPrivilegedBind), and that
 * refusePrivileged refuses what install refuses and passes the demo images'
 * and the default template's configs.
 */
import { describe, expect, it } from 'vitest'
import { checkRuntimeConfig, isPrivilegedBind, refusePrivileged } from '../../src/runtime/config-check'

describe('security: privileged bind mounts', () => {
  const privileged: [string, boolean][] = [
    ['/', false],
    ['/etc', false],
    ['//usr/', false],
    ['/var', false],
    ['/run', false],
    ['/var/run', false],
    ['/proc/sys/kernel', false],
    ['/sys/fs/cgroup', false],
    ['/boot/efi', false],
    ['/var/lib/sysctr/store', false],
    ['/var/lib/docker', false],
    ['/run/x/../../etc', false],
    // privileged even read-only
    ['/dev', true],
    ['/dev/mem', true],
    ['/dev/sda', true],
    ['/var/run/docker.sock', true],
    ['/run/docker.sock', true],
    ['/run/containerd/containerd.sock', true],
    ['/run/podman/podman.sock', true],
    ['/run/dbus/system_bus_socket', true],
    ['/run/systemd/private', true],
    ['/srv/app/control.sock', true],
  ]
  for (const [source, ro] of privileged) {
    it(`${source}${ro ? ' (even read-only)' : ' read-write'} is privileged`, () => {
      expect(isPrivilegedBind(source, ro)).toBeDefined()
      // Not one of the service's own directories: beyond the default grant read-only too.
      expect(isPrivilegedBind(source, true)).toBeDefined()
      expect(isPrivilegedBind(source, ro, { names: ['svc'] })).toBeDefined()
    })
  }
  const allowed = ['/run/systemd/notify', '/var/run/systemd/notify', '/run/systemd/journal/socket', '/run/systemd/journal/dev-log', '/dev/log', '/run/sysctr-demo', '/run/etcd', '/var/lib/etcd']
  for (const source of allowed) {
    it(`${source} read-write is allowed`, () => {
      expect(isPrivilegedBind(source, false)).toBeUndefined()
    })
  }
  // Own directories are named after the service: with names, exactly those; without, /etc/X is not one.
  it('/etc/myapp is the own directory of myapp only; /srv/data is nobody\'s', () => {
    expect(isPrivilegedBind('/etc/myapp', false, { names: ['myapp'] })).toBeUndefined()
    expect(isPrivilegedBind('/etc/myapp', false, { names: ['other'] })).toBe('read-write')
    expect(isPrivilegedBind('/etc/myapp', false)).toBe('read-write')
    expect(isPrivilegedBind('/srv/data', false, { names: ['data'] })).toBe('read-write')
    expect(isPrivilegedBind('/srv/data', false, { names: ['data'], stateDirectory: '/srv' })).toBeUndefined()
  })

  it('refusePrivileged names every offending field; privileged: true passes', () => {
    const spec = {
      process: { args: ['/bin/true'], capabilities: { bounding: ['CAP_SYS_ADMIN'] } },
      root: { path: 'rootfs', readonly: true },
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/s', type: 'bind', source: '/run/docker.sock', options: ['bind', 'ro'] },
        { destination: '/dev/log', type: 'bind', source: '/run/systemd/notify', options: ['bind'] },
      ],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }] },
    }
    const text = JSON.stringify(spec)
    let err: unknown
    try {
      refusePrivileged(checkRuntimeConfig(text))
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ code: 'config.privileged', exitCode: 6, data: { fields: ['process.capabilities', 'mounts[1]'] } })
    expect(() => refusePrivileged(checkRuntimeConfig(text, { privileged: true }))).not.toThrow()
  })

  it('a terminal alone is not refused (a warning)', () => {
    const spec = {
      process: { terminal: true, args: ['/bin/true'] },
      root: { path: 'rootfs', readonly: true },
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }] },
    }
    const checked = checkRuntimeConfig(JSON.stringify(spec))
    expect(checked.warnings.length).toBe(1)
    expect(() => refusePrivileged(checked)).not.toThrow()
  })
})
