/**
 * Grants (src/runtime/grants.ts) through checkRuntimeConfig/refusePrivileged:
 * configs written here in the shapes of Project Atomic's published system
 * containers (rendered, as install checks them; not copies) ask exactly the
 * listed ITEMs beyond the default grant; granting every printed ITEM passes,
 * leaving one out is refused naming it; bad ITEMs are usage errors.
 */
import { describe, expect, it } from 'vitest'
import { ContentError, UsageError } from '../../src/errors'
import { checkRuntimeConfig, refusePrivileged, type RuntimeSpec } from '../../src/runtime/config-check'
import { DEFAULT_CAPABILITIES, DEFAULT_GRANT, describeHostAsks, formatGrant, grantCovers, parseGrant, serviceIdentity } from '../../src/runtime/grants'

const sets = (caps: string[]) => ({ bounding: caps, permitted: caps, inheritable: caps, effective: caps, ambient: caps })
const RUNC_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']
const bind = (source: string, destination: string, ...options: string[]) => ({ type: 'bind', source, destination, options: ['rbind', ...options] })

/** The kernel filesystems Atomic's images mount (runc spec's defaults of the time). */
function standardMounts(devTmpfs = true): RuntimeSpec['mounts'] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc' },
    ...(devTmpfs ? [{ destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] }] : []),
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
  ]
}

/** hello-world: runtime-spec 0.3.0, capabilities and rlimits under linux, pid/ipc/mount namespaces. */
function helloWorld(): Record<string, unknown> {
  return {
    ociVersion: '0.3.0',
    platform: { os: 'linux', arch: 'amd64' },
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/usr/bin/run.sh'], env: ['PORT=8081', 'PATH=/usr/bin:/bin'], cwd: '/' },
    root: { path: 'rootfs', readonly: true },
    mounts: standardMounts(),
    hooks: {},
    linux: {
      capabilities: RUNC_CAPS,
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'mount' }],
    },
  }
}

/**
 * atomic's own integration-test image (atomic-test-system, NAME=test-system): hello-world's
 * shape plus a read-write bind of ${RUN_DIRECTORY}/${NAME} at /var/run; pid, ipc and mount
 * namespaces only (the host's uts and network), as every Atomic example.
 */
function atomicTestSystem(): Record<string, unknown> {
  const h = helloWorld()
  return { ...h, mounts: [...standardMounts()!, { type: 'bind', source: '/run/test-system', destination: '/var/run/', options: ['rbind', 'rw', 'mode=755'] }] }
}

/** etcd (NAME=etcd): 1.0.0, DAC_READ_SEARCH, its state/run/conf directories and resolv.conf, host network and uts. */
function etcd(name = 'etcd'): Record<string, unknown> {
  return {
    ociVersion: '1.0.0',
    platform: { os: 'linux', arch: 'amd64' },
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/usr/bin/etcd-env.sh', '/usr/bin/etcd'],
      env: [`NAME=${name}`, 'ETCD_NAME=default'],
      cwd: '/',
      capabilities: sets(['CAP_DAC_READ_SEARCH', ...RUNC_CAPS]),
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
    },
    root: { path: 'rootfs', readonly: true },
    mounts: [
      ...standardMounts()!,
      bind(`/var/lib/etcd/${name}.etcd`, '/var/lib/etcd', 'rw', 'mode=755'),
      bind(`/run/${name}`, '/var/run/etcd', 'rw', 'mode=755'),
      bind('/etc/resolv.conf', '/etc/resolv.conf', 'ro', 'rprivate'),
      bind(`/etc/${name}`, '/etc/etcd/', 'ro', 'rprivate'),
    ],
    linux: { resources: { devices: [{ allow: false, access: 'rwm' }] }, namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'mount' }], devices: null, apparmorProfile: '' },
  }
}

/** flannel as the issue describes it: host PID namespace, NET_ADMIN, the host's /dev, all devices. */
function flannel(): Record<string, unknown> {
  return {
    ociVersion: '1.0.0',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/usr/bin/flanneld-run.sh'], env: ['NAME=flannel'], cwd: '/', capabilities: sets([...RUNC_CAPS, 'CAP_NET_ADMIN']), noNewPrivileges: false },
    root: { path: 'rootfs', readonly: true },
    hostname: 'flannel',
    mounts: [...standardMounts(false)!, bind('/dev', '/dev', 'rw', 'mode=755'), bind('/run/flannel', '/run/flannel', 'rw', 'rprivate'), bind('/etc/resolv.conf', '/etc/resolv.conf', 'ro')],
    hooks: {},
    linux: {
      resources: { devices: [{ allow: true, access: 'rwm' }] },
      namespaces: [{ type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/kcore'],
      readonlyPaths: ['/proc/bus'],
    },
  }
}

/** flannel as published also keeps DAC_READ_SEARCH and writes docker's drop-in directory and its sysconfig files. */
function flannelPublished(): Record<string, unknown> {
  const s = flannel() as { process: { capabilities: unknown }; mounts: unknown[] }
  s.process.capabilities = sets(['CAP_DAC_READ_SEARCH', ...RUNC_CAPS, 'CAP_NET_ADMIN'])
  s.mounts.push(
    bind('/etc/systemd/system/docker.service.d', '/etc/systemd/system/docker.service.d', 'rw'),
    bind('/etc/sysconfig/flanneld', '/etc/sysconfig/flanneld', 'rw'),
    bind('/etc/flanneld', '/etc/flanneld', 'rw'),
  )
  return s
}

/** docker: only a mount namespace, nearly every capability, the host's system directories read-write, all devices. */
function docker(): Record<string, unknown> {
  return {
    ociVersion: '1.0.0',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/usr/bin/init.sh'],
      cwd: '/',
      capabilities: ['CAP_CHOWN', 'CAP_FOWNER', 'CAP_KILL', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_MKNOD', 'CAP_DAC_OVERRIDE'],
      noNewPrivileges: false,
    },
    root: { path: 'rootfs', readonly: true },
    mounts: [
      bind('/dev', '/dev', 'shared', 'rw'),
      bind('/sys', '/sys', 'shared', 'rw'),
      { destination: '/proc', type: 'proc', source: 'proc' },
      bind('/var/run', '/var/run', 'rshared', 'rw'),
      bind('/var/lib', '/var/lib', 'shared', 'rw'),
      bind('/etc', '/etc', 'rw', 'shared'),
      bind('/lib/modules', '/lib/modules', 'rw'),
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
      bind('/usr/share/rhel', '/usr/share/rhel', 'ro'),
    ],
    hooks: {},
    linux: { rootfsPropagation: 'rslave', resources: { devices: [{ allow: true, access: 'rwm' }] }, namespaces: [{ type: 'mount' }] },
  }
}

/** An image asking for the whole default grant and nothing more. */
function defaultsOnly(): Record<string, unknown> {
  return {
    ociVersion: '1.0.2',
    process: { args: ['/bin/true'], capabilities: sets([...DEFAULT_CAPABILITIES]) },
    root: { path: 'rootfs', readonly: true },
    mounts: [
      ...standardMounts()!,
      bind('/etc/hosts', '/etc/hosts', 'ro'),
      bind('/etc/localtime', '/etc/localtime', 'ro'),
      bind('/var/log/svc', '/var/log/svc', 'rw'),
      bind('/var/cache/svc', '/var/cache/svc', 'rw'),
      bind('/run/systemd/notify', '/run/systemd/notify'),
    ],
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'mount' }],
      resources: { devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, { allow: true, type: 'c', major: 136, access: 'rwm' }] },
    },
  }
}

const check = (spec: unknown, opts: Parameters<typeof checkRuntimeConfig>[1] = {}) => checkRuntimeConfig(JSON.stringify(spec, null, 2), opts)

function refusal(fn: () => unknown): ContentError {
  try {
    fn()
  } catch (e) {
    if (e instanceof ContentError) return e
    throw e
  }
  throw new Error('expected a refusal')
}

const cases: [string, () => Record<string, unknown>, string[], string[]][] = [
  ['hello-world', helloWorld, ['hello-world'], []],
  ['atomic-test-system (host uts and network)', atomicTestSystem, ['test-system'], []],
  ['etcd', () => etcd(), ['etcd'], ['cap:DAC_READ_SEARCH']],
  ['flannel', flannel, ['flannel'], ['ns:pid', 'cap:NET_ADMIN', 'bind:/dev:rw', 'device:all']],
  [
    'flannel as published',
    flannelPublished,
    ['flannel'],
    ['ns:pid', 'cap:DAC_READ_SEARCH', 'cap:NET_ADMIN', 'bind:/dev:rw', 'bind:/etc/systemd/system/docker.service.d:rw', 'bind:/etc/sysconfig/flanneld:rw', 'bind:/etc/flanneld:rw', 'device:all'],
  ],
  [
    'docker',
    docker,
    ['docker'],
    ['ns:pid', 'ns:ipc', 'cap:MKNOD', 'cap:NET_ADMIN', 'cap:SYS_ADMIN', 'bind:/dev:rw', 'bind:/sys:rw', 'bind:/run:rw', 'bind:/var/lib:rw', 'bind:/etc:rw', 'bind:/lib/modules:rw', 'bind:/usr/share/rhel', 'device:all'],
  ],
  ['the default grant only', defaultsOnly, ['svc'], []],
]

describe('grants: what Atomic-shaped images ask beyond the default', () => {
  for (const [what, make, names, items] of cases) {
    describe(what, () => {
      it(items.length === 0 ? 'asks nothing: installs with no flag' : `asks exactly ${items.join(' ')}`, () => {
        const checked = check(make(), { names })
        expect(checked.findings.map((f) => f.grant)).toEqual(items)
        expect(checked.asked.map((a) => a.grant)).toEqual(items)
        if (items.length === 0) expect(() => refusePrivileged(checked)).not.toThrow()
      })

      if (items.length === 0) return

      it('is refused with config.privileged (exit 6): one line per item, the flags ready to paste', () => {
        const e = refusal(() => refusePrivileged(check(make(), { names })))
        expect({ code: e.code, exitCode: e.exitCode }).toEqual({ code: 'config.privileged', exitCode: 6 })
        expect(e.data?.grants).toEqual(items)
        const lines = e.message.split('\n')
        expect(lines.length).toBe(1 + items.length)
        for (const item of items) expect(lines.some((l) => l.endsWith(`(--grant ${item})`))).toBe(true)
        expect(e.hint).toContain(items.map((i) => `--grant ${i}`).join(' '))
        expect(e.hint).toContain('--privileged')
      })

      it('granting every printed item passes; --privileged passes', () => {
        const e = refusal(() => refusePrivileged(check(make(), { names })))
        const printed = e.data?.grants as string[]
        const granted = check(make(), { names, grants: printed })
        expect(granted.findings).toEqual([])
        expect(granted.unusedGrants).toEqual([])
        expect(() => refusePrivileged(granted)).not.toThrow()
        expect(() => refusePrivileged(check(make(), { names, privileged: true }))).not.toThrow()
      })

      it('leaving any one item out is refused naming exactly that item', () => {
        for (const left of items) {
          const e = refusal(() => refusePrivileged(check(make(), { names, grants: items.filter((i) => i !== left) })))
          expect(e.data?.grants).toEqual([left])
          expect(e.message).toContain(`--grant ${left}`)
          if (items.length > 1) expect(e.message).toContain('in addition to the grants given')
        }
      })
    })
  }
})

describe('grants: own directories', () => {
  it('etcd installed as etcd-2 keeps /var/lib/etcd/etcd-2.etcd as its own when the image name etcd is passed', () => {
    expect(check(etcd('etcd-2'), { names: ['etcd-2', 'etcd'] }).findings.map((f) => f.grant)).toEqual(['cap:DAC_READ_SEARCH'])
    expect(check(etcd('etcd-2'), { names: ['etcd-2'] }).findings.map((f) => f.grant)).toEqual(['cap:DAC_READ_SEARCH', 'bind:/var/lib/etcd/etcd-2.etcd:rw'])
  })

  it('serviceIdentity: the container name, the image\'s last path component, the rendered directories', () => {
    expect(serviceIdentity('etcd-2', 'registry.example/f27/etcd:latest@sha256:ab', { STATE_DIRECTORY: '/srv' })).toEqual({ names: ['etcd-2', 'etcd'], runDirectory: undefined, stateDirectory: '/srv', confDirectory: undefined })
    expect(serviceIdentity('etcd', 'localhost:5000/etcd').names).toEqual(['etcd'])
    expect(check(etcd('etcd-2'), serviceIdentity('etcd-2', 'registry.example/f27/etcd:latest')).findings.map((f) => f.grant)).toEqual(['cap:DAC_READ_SEARCH'])
  })

  it('an image named after a host file does not own it', () => {
    const s = defaultsOnly() as { mounts: unknown[] }
    s.mounts.push(bind('/etc/shadow', '/etc/shadow', 'rw'), bind('/etc/passwd', '/etc/passwd', 'ro'))
    expect(check(s, serviceIdentity('svc', 'evil/shadow')).findings.map((f) => f.grant)).toEqual(['bind:/etc/shadow:rw', 'bind:/etc/passwd'])
  })

  it('without names /etc/NAME is not recognised (pass the names)', () => {
    expect(check(etcd()).findings.map((f) => f.grant)).toEqual(['cap:DAC_READ_SEARCH', 'bind:/etc/etcd'])
  })

  it('a reserved name is never an own directory', () => {
    const s = etcd('systemd')
    expect(check(s, { names: ['systemd'] }).findings.map((f) => f.grant)).toEqual([
      'cap:DAC_READ_SEARCH',
      'bind:/var/lib/etcd/systemd.etcd:rw',
      'bind:/run/systemd:rw',
      'bind:/etc/systemd',
    ])
  })

  it('a RUN_DIRECTORY or STATE_DIRECTORY set elsewhere moves the own directories with it', () => {
    const s = etcd() as { mounts: { source?: string }[] }
    s.mounts[7].source = '/srv/state/etcd/etcd.etcd'
    expect(check(s, { names: ['etcd'] }).findings.map((f) => f.grant)).toContain('bind:/srv/state/etcd/etcd.etcd:rw')
    expect(check(s, { names: ['etcd'], stateDirectory: '/srv/state' }).findings.map((f) => f.grant)).toEqual(['cap:DAC_READ_SEARCH'])
  })

  it('/etc/resolv.conf read-write is asked; .. in a source is resolved', () => {
    const s = etcd() as { mounts: { source?: string; options?: string[] }[] }
    s.mounts[9].options = ['rbind', 'rw']
    s.mounts[8].source = '/run/etcd/../../etc'
    expect(check(s, { names: ['etcd'] }).findings.map((f) => f.grant)).toEqual(['cap:DAC_READ_SEARCH', 'bind:/etc:rw', 'bind:/etc/resolv.conf:rw'])
  })
})

describe('grants: ITEM syntax', () => {
  it.each([
    ['cap:net_admin', 'cap:NET_ADMIN'],
    ['cap:CAP_SYS_ADMIN', 'cap:SYS_ADMIN'],
    ['ns:net', 'ns:network'],
    ['ns:mnt=/proc/1/ns/mnt', 'ns:mount=/proc/1/ns/mnt'],
    ['bind://var/run/docker.sock', 'bind:/run/docker.sock'],
    ['bind:/var/lib/x/:rw', 'bind:/var/lib/x:rw'],
    ['bind:/srv:ro', 'bind:/srv'],
    ['device:c:10:200', 'device:c:10:200'],
    ['device:a:*:*', 'device:all'],
    ['hook:PRESTART', 'hook:prestart'],
    ['mount:overlay', 'mount:overlay'],
  ])('%s reads as %s', (item, canonical) => {
    expect(formatGrant(parseGrant(item))).toBe(canonical)
  })

  it.each(['cap:NOPE', 'cap', 'cap:', 'ns:foo', 'ns:pid=relative', 'bind:relative', 'device:x:1:2', 'device:c:1', 'device:c:one:2', 'hook:later', 'mount:a b', 'frob:x'])('%s is a usage error naming it', (item) => {
    let err: unknown
    try {
      check(etcd(), { grants: ['cap:NET_ADMIN', item] })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(UsageError)
    expect(err).toMatchObject({ code: 'grant.invalid', exitCode: 2, data: { item } })
    expect((err as Error).message).toContain(JSON.stringify(item))
  })

  it.each<[string, string, boolean]>([
    ['bind:/dev', 'bind:/dev/net/tun', true],
    ['bind:/dev', 'bind:/dev:rw', false],
    ['bind:/dev:rw', 'bind:/dev/fuse', true],
    ['bind:/dev', 'bind:/devices', false],
    ['device:c:10:*', 'device:c:10:200', true],
    ['device:c:10:200', 'device:all', false],
    ['device:all', 'device:b:8:0', true],
    ['device:a:8:*', 'device:b:8:1', true],
    ['ns:pid', 'ns:pid=/proc/1/ns/pid', true],
    ['ns:pid=/proc/1/ns/pid', 'ns:pid', false],
    ['cap:NET_ADMIN', 'cap:NET_RAW', false],
  ])('%s covers %s: %s', (granted, asked, covers) => {
    expect(grantCovers(parseGrant(granted), parseGrant(asked))).toBe(covers)
  })

  it('a grant the config does not need is reported as unused', () => {
    expect(check(etcd(), { names: ['etcd'], grants: ['cap:DAC_READ_SEARCH', 'cap:NET_ADMIN', 'bind:/srv'] }).unusedGrants).toEqual(['cap:NET_ADMIN', 'bind:/srv'])
  })
})

describe('grants: other things asked', () => {
  it('hooks by stage, device rules and nodes, other filesystems, namespaces joined by path', () => {
    const s = etcd() as Record<string, any>
    s.hooks = { prestart: [{ path: '/usr/bin/x' }], poststop: [] , createRuntime: [{ path: '/usr/bin/y' }] }
    s.linux.resources.devices.push({ allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' })
    s.linux.devices = [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229 }, { path: '/dev/null', type: 'c', major: 1, minor: 3 }]
    s.mounts.push({ destination: '/mnt', type: 'ext4', source: '/dev/sda1' })
    s.linux.namespaces.push({ type: 'network', path: '/run/netns/blue' })
    expect(check(s, { names: ['etcd'] }).findings.map((f) => f.grant)).toEqual([
      'ns:network=/run/netns/blue',
      'cap:DAC_READ_SEARCH',
      'mount:ext4',
      'device:c:10:200',
      'device:c:10:229',
      'hook:prestart',
      'hook:createRuntime',
    ])
  })

  it('a hostname without a uts namespace of its own is refused (runc would refuse it at start)', () => {
    const s = flannel() as Record<string, any>
    s.linux.namespaces = s.linux.namespaces.filter((n: { type: string }) => n.type !== 'uts')
    expect(() => check(s, { privileged: true })).toThrow(expect.objectContaining({ code: 'config.hostname-without-uts', exitCode: 6 }))
  })

  it('a relative bind source is refused', () => {
    const s = etcd() as Record<string, any>
    s.mounts.push(bind('rootfs/..', '/bundle', 'ro'))
    expect(() => check(s, { privileged: true })).toThrow(expect.objectContaining({ code: 'config.bind-source' }))
  })
})

describe('grants: legacy runtime-spec shapes are translated before the check', () => {
  it("hello-world's 0.3.0 shape: version, linux.capabilities and linux.rlimits", () => {
    const checked = check(helloWorld(), { names: ['hello-world'] })
    expect(checked.legacy.length).toBe(3)
    expect(checked.warnings).toEqual(checked.legacy)
    const written = JSON.parse(checked.configJson)
    expect(written.ociVersion).toBe('1.0.0')
    expect(written.process.capabilities).toEqual(sets(RUNC_CAPS))
    expect(written.process.rlimits).toEqual([{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }])
    expect(written.linux.capabilities).toBeUndefined()
    expect(written.linux.rlimits).toBeUndefined()
  })

  it('a capability list in process (before 1.0.0) becomes all five sets, and is checked as such', () => {
    const checked = check(docker(), { privileged: true })
    expect(checked.spec.process.capabilities?.ambient).toContain('CAP_SYS_ADMIN')
    expect(checked.asked.map((a) => a.grant)).toContain('cap:SYS_ADMIN')
  })

  it('a current config is passed through as written', () => {
    const text = JSON.stringify(etcd(), null, 2)
    const checked = checkRuntimeConfig(text, { names: ['etcd'] })
    expect(checked.legacy).toEqual([])
    expect(checked.configJson).toBe(text)
  })
})

describe('grants: describing what an image asks', () => {
  it('etcd: its namespaces, capabilities, binds and the one flag it needs', () => {
    const spec = check(etcd(), { privileged: true }).spec
    const asks = describeHostAsks(spec, { names: ['etcd'] })
    expect(asks.flags).toEqual(['--grant cap:DAC_READ_SEARCH'])
    expect(asks.ownNamespaces).toEqual(['pid', 'ipc', 'mount'])
    expect(asks.sharedNamespaces).toEqual(['network', 'uts', 'user', 'cgroup', 'time'])
    expect(asks.binds.filter((b) => b.beyondDefault)).toEqual([])
    expect(asks.binds.map((b) => b.source)).toEqual(['/var/lib/etcd/etcd.etcd', '/run/etcd', '/etc/resolv.conf', '/etc/etcd'])
    expect(asks.capabilities).toEqual(['CAP_AUDIT_WRITE', 'CAP_DAC_READ_SEARCH', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'])
  })

  it('the default grant as data', () => {
    expect(DEFAULT_GRANT.capabilities).toHaveLength(12)
    expect(DEFAULT_GRANT.ownNamespaces).toEqual(['pid', 'ipc', 'mount'])
    expect(DEFAULT_GRANT.hostNamespacesAllowed).toContain('network')
    expect(DEFAULT_GRANT.binds.readOnly).toEqual(['/etc/resolv.conf', '/etc/hosts', '/etc/localtime'])
  })
})
