import { describe, expect, it } from 'vitest'
import { ContentError } from '../../src/errors'
import { bindMountSources, checkRuntimeConfig } from '../../src/runtime/config-check'

function base(): Record<string, any> {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      args: ['sh'],
      capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
    },
    root: { path: 'rootfs', readonly: true },
    mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
    linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }] },
  }
}
const check = (spec: unknown, privileged?: boolean) => checkRuntimeConfig(JSON.stringify(spec), { privileged })

function thrown(fn: () => unknown): any {
  try {
    fn()
  } catch (e) {
    return e
  }
  throw new Error('expected a throw')
}

describe('checkRuntimeConfig: hard requirements', () => {
  it('accepts a minimal system-container config without findings', () => {
    const r = check(base())
    expect(r.warnings).toEqual([])
    expect(r.findings).toEqual([])
    expect(r.spec.process.args).toEqual(['sh'])
  })

  it('invalid JSON names the position', () => {
    const e = thrown(() => checkRuntimeConfig('{\n  "a": 1,\n}'))
    expect(e).toBeInstanceOf(ContentError)
    expect(e.code).toBe('config.invalid-json')
    expect(e.data).toEqual({ position: 12, line: 3, column: 1 })
    expect(e.message).toContain('line 3, column 1')
    expect(thrown(() => checkRuntimeConfig('')).code).toBe('config.invalid-json')
  })

  it.each<[string, (s: Record<string, any>) => unknown, string]>([
    ['not an object', () => ({ replaceWith: [] }), 'config.invalid'],
    ['no root', (s) => delete s.root, 'config.invalid'],
    ['root.path elsewhere', (s) => (s.root.path = '/'), 'config.root-path'],
    ['root writable', (s) => (s.root.readonly = false), 'config.root-not-readonly'],
    ['root.readonly absent', (s) => delete s.root.readonly, 'config.root-not-readonly'],
    ['no process', (s) => delete s.process, 'config.invalid'],
    ['empty args', (s) => (s.process.args = []), 'config.no-args'],
    ['args not strings', (s) => (s.process.args = ['sh', 1]), 'config.no-args'],
    ['no args', (s) => delete s.process.args, 'config.no-args'],
    ['mounts not a list', (s) => (s.mounts = {}), 'config.invalid'],
    ['mount options not strings', (s) => (s.mounts[0].options = 'ro'), 'config.invalid'],
    ['namespaces malformed', (s) => (s.linux.namespaces = [{}]), 'config.invalid'],
    ['capabilities malformed', (s) => (s.process.capabilities.bounding = 'CAP_KILL'), 'config.invalid'],
  ])('%s -> %s', (_what, mutate, code) => {
    let spec: unknown = base()
    const replaced = mutate(spec as Record<string, any>) as { replaceWith?: unknown } | undefined
    if (replaced && typeof replaced === 'object' && 'replaceWith' in replaced) spec = replaced.replaceWith
    const e = thrown(() => check(spec))
    expect(e).toBeInstanceOf(ContentError)
    expect(e.code).toBe(code)
    // Hard requirements hold for privileged containers too.
    expect(thrown(() => check(spec, true)).code).toBe(code)
  })
})

describe('checkRuntimeConfig: findings', () => {
  it.each<[string, (s: Record<string, any>) => void, string, string]>([
    ['missing pid namespace', (s) => s.linux.namespaces.splice(0, 1), 'config.host-namespace', 'no pid namespace'],
    ['missing mount namespace', (s) => s.linux.namespaces.splice(3, 1), 'config.host-namespace', 'no mount namespace'],
    ['no linux section', (s) => delete s.linux, 'config.host-namespace', 'no pid namespace'],
    ['pid namespace joined by path', (s) => (s.linux.namespaces[0].path = '/proc/1/ns/pid'), 'config.host-namespace', 'joins /proc/1/ns/pid'],
    ['extra capabilities', (s) => s.process.capabilities.bounding.push('CAP_SYS_ADMIN', 'CAP_NET_ADMIN'), 'config.extra-capabilities', 'capability CAP_SYS_ADMIN'],
    ['rw bind of /', (s) => s.mounts.push({ destination: '/host', type: 'bind', source: '/', options: ['rbind', 'rw'] }), 'config.privileged-mount', "host's / at /host"],
    ['rw bind of /dev/ (via options)', (s) => s.mounts.push({ destination: '/dev', source: '//dev/', options: ['bind'] }), 'config.privileged-mount', "host's /dev at /dev"],
    ['all devices', (s) => (s.linux.resources = { devices: [{ allow: true, access: 'rwm' }] }), 'config.all-devices', 'all host devices'],
    ['hooks', (s) => (s.hooks = { prestart: [{ path: '/bin/true' }] }), 'config.hooks', 'on the host as root'],
  ])('%s', (_what, mutate, code, text) => {
    const spec = base()
    mutate(spec)
    const r = check(spec)
    expect(r.findings.map((f) => f.code)).toContain(code)
    expect(r.warnings.join('\n')).toContain(text)
    // privileged: no privilege findings.
    expect(check(spec, true).findings).toEqual([])
  })

  it('no network or uts namespace is expected (host network and hostname), own directories are fine; a ro bind of / is asked', () => {
    const spec = base()
    spec.linux.namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'mount' }]
    spec.mounts.push({ destination: '/var/lib/etcd', type: 'bind', source: '/var/lib/etcd', options: ['rbind', 'rw'] })
    expect(check(spec).findings).toEqual([])
    spec.mounts.push({ destination: '/host', type: 'bind', source: '/', options: ['rbind', 'ro'] })
    expect(check(spec).findings.map((f) => f.grant)).toEqual(['bind:/'])
  })

  it('a terminal is reported even when privileged', () => {
    const spec = base()
    spec.process.terminal = true
    expect(check(spec, true).findings.map((f) => f.code)).toEqual(['config.terminal'])
  })
})

describe('bindMountSources', () => {
  it('lists the sources of bind mounts', () => {
    const spec = base()
    spec.mounts.push({ destination: '/a', type: 'bind', source: '/srv/a', options: ['rbind', 'ro'] })
    spec.mounts.push({ destination: '/b', type: 'none', source: '/srv/b', options: ['bind'] })
    expect(bindMountSources(check(spec).spec)).toEqual(['/srv/a', '/srv/b'])
  })
})
