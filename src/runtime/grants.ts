/**
 * Grants: what a container's config.json may ask of the host beyond the
 * default, one `--grant ITEM` per thing asked.
 *
 * The default grant (DEFAULT_GRANT, no flag needed) is a container engine's
 * default: containers.conf `default_capabilities` plus CAP_AUDIT_WRITE (runc
 * spec's and Docker's default, which Atomic's images all list); its own pid,
 * ipc and mount namespaces (the host's network, uts, cgroup, user and time
 * namespaces may be shared: a missing one is not asked); the standard devices
 * runc creates; bind mounts of the service's own directories only (see
 * isOwnPath), read-only binds of /etc/resolv.conf, /etc/hosts and
 * /etc/localtime, and the logging/readiness sockets; the filesystems runc's
 * default spec mounts (proc, sysfs, tmpfs, devpts, mqueue, cgroup, cgroup2);
 * no hooks.
 *
 * ITEM syntax (parseGrant; a bad ITEM is a UsageError `grant.invalid` naming it):
 *   cap:NAME            a capability, e.g. cap:NET_ADMIN (CAP_ prefix and case optional)
 *   ns:TYPE             the container need not have its own TYPE namespace (pid, ipc,
 *                       mount, network, uts, user, cgroup, time; net and mnt accepted):
 *                       it may share the host's, or join one by path
 *   ns:TYPE=PATH        join exactly the namespace at PATH, e.g. ns:network=/run/netns/blue
 *   bind:PATH           a read-only bind of the host's PATH or anything below it
 *   bind:PATH:rw        the same, read-write (covers read-only too)
 *   device:all          every host device (a device cgroup rule allowing all)
 *   device:T:MAJ:MIN    one device rule or node, T = c, b or a, MAJ/MIN a number or *
 *                       (device:c:10:* covers device:c:10:200)
 *   hook:STAGE          OCI hooks of one stage: prestart, createRuntime,
 *                       createContainer, startContainer, poststart, poststop
 *   mount:TYPE          a mount of filesystem type TYPE beyond the default ones, e.g. mount:overlay
 * `--privileged` grants everything.
 *
 * Invariants:
 * - askedGrants prints each item in the form parseGrant reads back, so granting
 *   every printed item makes the check pass, and leaving one out names it again.
 * - Bind sources are compared after lexical normalisation (`//`, `.`, `..`,
 *   a trailing `/`; /var/run read as /run), as the kernel would resolve them.
 */
import { ContentError, UsageError } from '../errors'
import { LINUX_CAPABILITIES } from './capabilities'
import type { ConfigFindingCode, RuntimeSpec } from './config-check'

export type Grant =
  | { kind: 'cap'; cap: string }
  | { kind: 'ns'; type: NamespaceType; path?: string }
  | { kind: 'bind'; path: string; rw: boolean }
  | { kind: 'device'; all: true }
  | { kind: 'device'; all?: false; type: 'a' | 'c' | 'b'; major: number | '*'; minor: number | '*' }
  | { kind: 'hook'; stage: HookStage }
  | { kind: 'mount'; type: string }

export type NamespaceType = 'pid' | 'ipc' | 'mount' | 'network' | 'uts' | 'user' | 'cgroup' | 'time'
export type HookStage = 'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop'

const NAMESPACE_TYPES: readonly NamespaceType[] = ['pid', 'ipc', 'mount', 'network', 'uts', 'user', 'cgroup', 'time']
const NAMESPACE_ALIASES: Record<string, NamespaceType> = { net: 'network', mnt: 'mount' }
const HOOK_STAGES: readonly HookStage[] = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop']

/** containers.conf default_capabilities, plus CAP_AUDIT_WRITE (runc spec's and Docker's default). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_AUDIT_WRITE',
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_NET_BIND_SERVICE',
  'CAP_SETFCAP',
  'CAP_SETGID',
  'CAP_SETPCAP',
  'CAP_SETUID',
  'CAP_SYS_CHROOT',
]
/** Namespaces a system container must have of its own. */
export const REQUIRED_NAMESPACES: readonly NamespaceType[] = ['pid', 'ipc', 'mount']
/** Bind sources allowed whatever else the rules say: logging and sd_notify readiness. */
export const ALLOWED_BIND_SOURCES: readonly string[] = ['/run/systemd/notify', '/run/systemd/journal/socket', '/run/systemd/journal/stdout', '/run/systemd/journal/dev-log', '/dev/log']
/** Host files a container may bind read-only (name resolution and time zone, as Atomic's images do). */
export const READ_ONLY_BIND_SOURCES: readonly string[] = ['/etc/resolv.conf', '/etc/hosts', '/etc/localtime']
/** Filesystem types of runc's default spec (and Atomic's images), besides bind mounts. */
export const DEFAULT_MOUNT_TYPES: readonly string[] = ['proc', 'sysfs', 'tmpfs', 'devpts', 'mqueue', 'cgroup', 'cgroup2']
/**
 * The devices runc always creates (null, zero, full, random, urandom, tty,
 * console, ptmx, pts): an allow rule or node for one of them asks nothing.
 */
export const STANDARD_DEVICES: readonly { type: 'c'; major: number; minor: number | '*'; path: string }[] = [
  { type: 'c', major: 1, minor: 3, path: '/dev/null' },
  { type: 'c', major: 1, minor: 5, path: '/dev/zero' },
  { type: 'c', major: 1, minor: 7, path: '/dev/full' },
  { type: 'c', major: 1, minor: 8, path: '/dev/random' },
  { type: 'c', major: 1, minor: 9, path: '/dev/urandom' },
  { type: 'c', major: 5, minor: 0, path: '/dev/tty' },
  { type: 'c', major: 5, minor: 1, path: '/dev/console' },
  { type: 'c', major: 5, minor: 2, path: '/dev/ptmx' },
  { type: 'c', major: 136, minor: '*', path: '/dev/pts/*' },
]
/** Directories under which a service has its own directory, named after it (see isOwnPath). */
export const OWN_DIRECTORY_PARENTS = { run: '/run', state: '/var/lib', conf: '/etc', log: '/var/log', cache: '/var/cache' } as const
/**
 * Names that are never a service's own directory, whatever the container or
 * image is called: they hold the host's or another engine's state.
 */
export const RESERVED_NAMES: readonly string[] = [
  'systemd', 'sysctr', 'containers', 'docker', 'containerd', 'crio', 'podman', 'runc', 'crun', 'lxc', 'libvirt', 'machines',
  'dbus', 'ssh', 'sudoers.d', 'pam.d', 'security', 'sysconfig', 'default', 'kubernetes', 'kubelet', 'cni', 'pki', 'ssl',
  'lock', 'user', 'log', 'lib', 'cache', 'tmpfiles.d', 'cron.d', 'udev', 'polkit-1', 'apt', 'dpkg', 'rpm', 'yum', 'dnf',
  'ostree', 'selinux', 'apparmor.d', 'audit', 'netns', 'secrets', 'NetworkManager', 'modprobe.d', 'sysctl.d', 'journal',
  // host files and directories a service named like them must not own
  'passwd', 'shadow', 'group', 'gshadow', 'sudoers', 'sudo', 'hosts', 'hostname', 'resolv.conf', 'localtime', 'machine-id',
  'fstab', 'crontab', 'environment', 'profile', 'profile.d', 'bashrc', 'ld.so.preload', 'ld.so.conf', 'ld.so.conf.d',
  'nsswitch.conf', 'login.defs', 'init.d', 'rc.local', 'os-release', 'modules', 'modules-load.d', 'utmp', 'initctl',
  'mount', 'nologin', 'sss', 'alternatives', 'X11', 'xdg',
]

/** The default grant as data (README, `images info`). */
export const DEFAULT_GRANT = {
  capabilities: DEFAULT_CAPABILITIES,
  ownNamespaces: REQUIRED_NAMESPACES,
  hostNamespacesAllowed: NAMESPACE_TYPES.filter((t) => !REQUIRED_NAMESPACES.includes(t)),
  devices: STANDARD_DEVICES.map((d) => d.path),
  binds: {
    ownDirectories: Object.values(OWN_DIRECTORY_PARENTS).map((p) => `${p}/NAME`),
    readOnly: READ_ONLY_BIND_SOURCES,
    loggingAndReadiness: ALLOWED_BIND_SOURCES,
  },
  mountTypes: DEFAULT_MOUNT_TYPES,
  hooks: [] as readonly string[],
} as const

// ---------------------------------------------------------------------------
// Parsing and formatting ITEMs

function badItem(item: string, why: string): UsageError {
  return new UsageError('grant.invalid', `invalid --grant ${JSON.stringify(item)}: ${why}`, {
    hint: 'use e.g. --grant cap:NET_ADMIN, --grant ns:pid, --grant bind:/dev, --grant bind:/var/lib/x:rw, --grant device:all, --grant device:c:10:200, --grant hook:prestart, --grant mount:overlay',
    data: { item },
  })
}

/** Lexically normalise an absolute host path: collapse `//` and `.`, resolve `..`, drop a trailing `/`, read /var/run as /run. */
export function normaliseHostPath(p: string): string {
  const parts: string[] = []
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue
    if (c === '..') parts.pop()
    else parts.push(c)
  }
  let out = `/${parts.join('/')}`
  if (out === '/var/run' || out.startsWith('/var/run/')) out = `/run${out.slice('/var/run'.length)}`
  return out
}

function parseCap(item: string, name: string): Grant {
  const upper = name.toUpperCase()
  const cap = upper.startsWith('CAP_') ? upper : `CAP_${upper}`
  if (!LINUX_CAPABILITIES.includes(cap)) throw badItem(item, `${name} is not a Linux capability (see capabilities(7))`)
  return { kind: 'cap', cap }
}

function parseDeviceNumber(item: string, s: string): number | '*' {
  if (s === '*') return '*'
  if (!/^\d{1,10}$/.test(s)) throw badItem(item, `${JSON.stringify(s)} is not a device number or *`)
  return Number(s)
}

/** Parse one `--grant` ITEM (syntax in the module comment). */
export function parseGrant(item: string): Grant {
  const colon = item.indexOf(':')
  if (colon < 0) throw badItem(item, 'expected KIND:VALUE (cap, ns, bind, device, hook or mount)')
  const kind = item.slice(0, colon)
  const rest = item.slice(colon + 1)
  if (rest === '') throw badItem(item, `nothing after ${kind}:`)
  switch (kind) {
    case 'cap':
      return parseCap(item, rest)
    case 'ns': {
      const eq = rest.indexOf('=')
      const name = eq < 0 ? rest : rest.slice(0, eq)
      const type = (NAMESPACE_ALIASES[name] ?? name) as NamespaceType
      if (!NAMESPACE_TYPES.includes(type)) throw badItem(item, `${JSON.stringify(name)} is not a namespace type (${NAMESPACE_TYPES.join(', ')})`)
      if (eq < 0) return { kind: 'ns', type }
      const path = rest.slice(eq + 1)
      if (!path.startsWith('/')) throw badItem(item, 'the namespace path must be absolute')
      return { kind: 'ns', type, path: normaliseHostPath(path) }
    }
    case 'bind': {
      let path = rest
      let rw = false
      if (path.endsWith(':rw')) {
        rw = true
        path = path.slice(0, -3)
      } else if (path.endsWith(':ro')) path = path.slice(0, -3)
      if (!path.startsWith('/')) throw badItem(item, 'the bind source must be an absolute host path')
      return { kind: 'bind', path: normaliseHostPath(path), rw }
    }
    case 'device': {
      if (rest === 'all') return { kind: 'device', all: true }
      const parts = rest.split(':')
      if (parts.length !== 3 || !['a', 'c', 'b'].includes(parts[0])) throw badItem(item, 'expected device:all or device:TYPE:MAJOR:MINOR (TYPE c, b or a; * for any number)')
      const g: Grant = { kind: 'device', type: parts[0] as 'a' | 'c' | 'b', major: parseDeviceNumber(item, parts[1]), minor: parseDeviceNumber(item, parts[2]) }
      return g.type === 'a' && g.major === '*' && g.minor === '*' ? { kind: 'device', all: true } : g
    }
    case 'hook': {
      const stage = HOOK_STAGES.find((s) => s.toLowerCase() === rest.toLowerCase())
      if (!stage) throw badItem(item, `${JSON.stringify(rest)} is not an OCI hook stage (${HOOK_STAGES.join(', ')})`)
      return { kind: 'hook', stage }
    }
    case 'mount':
      if (!/^[A-Za-z0-9_.+-]+$/.test(rest)) throw badItem(item, `${JSON.stringify(rest)} is not a filesystem type`)
      return { kind: 'mount', type: rest }
    default:
      throw badItem(item, `unknown kind ${JSON.stringify(kind)} (cap, ns, bind, device, hook or mount)`)
  }
}

/** Parse every `--grant` flag; the first bad one is a UsageError naming it. */
export function parseGrants(items: readonly string[]): Grant[] {
  return items.map(parseGrant)
}

/** The canonical ITEM for a grant (what parseGrant reads back). */
export function formatGrant(g: Grant): string {
  switch (g.kind) {
    case 'cap':
      return `cap:${g.cap.replace(/^CAP_/, '')}`
    case 'ns':
      return g.path ? `ns:${g.type}=${g.path}` : `ns:${g.type}`
    case 'bind':
      return `bind:${g.path}${g.rw ? ':rw' : ''}`
    case 'device':
      return g.all ? 'device:all' : `device:${g.type}:${g.major}:${g.minor}`
    case 'hook':
      return `hook:${g.stage}`
    case 'mount':
      return `mount:${g.type}`
  }
}

const isUnder = (p: string, dir: string): boolean => p === dir || dir === '/' || p.startsWith(`${dir}/`)
const numberCovers = (granted: number | '*', asked: number | '*'): boolean => granted === '*' || granted === asked

/** Whether `granted` allows what `asked` asks. */
export function grantCovers(granted: Grant, asked: Grant): boolean {
  if (granted.kind !== asked.kind) return false
  switch (asked.kind) {
    case 'cap':
      return (granted as typeof asked).cap === asked.cap
    case 'ns': {
      const g = granted as typeof asked
      return g.type === asked.type && (g.path === undefined || g.path === asked.path)
    }
    case 'bind': {
      const g = granted as typeof asked
      return isUnder(asked.path, g.path) && (g.rw || !asked.rw)
    }
    case 'device': {
      const g = granted as Extract<Grant, { kind: 'device' }>
      if (g.all) return true
      if (asked.all) return false
      return (g.type === 'a' || g.type === asked.type) && numberCovers(g.major, asked.major) && numberCovers(g.minor, asked.minor)
    }
    case 'hook':
      return (granted as typeof asked).stage === asked.stage
    case 'mount':
      return (granted as typeof asked).type === asked.type
  }
}

// ---------------------------------------------------------------------------
// What a config asks

/** Who the service is, for its own directories (see isOwnPath). */
export interface ServiceIdentity {
  /**
   * The names its own directories may have: the container name and the
   * image's last path component (Atomic's etcd binds /var/lib/etcd/NAME.etcd).
   * Without names (callers that do not say), the own directories are
   * DIR/X for any X not reserved, under /run, /var/lib, /var/log and
   * /var/cache only (not /etc), and never a socket or device path: weaker,
   * so pass the names.
   */
  names?: readonly string[]
  /** RUN_DIRECTORY, STATE_DIRECTORY and CONF_DIRECTORY as rendered (defaults /run, /var/lib, /etc). */
  runDirectory?: string
  stateDirectory?: string
  confDirectory?: string
}

/**
 * The identity install, update and dry run pass: the container name and the
 * image's last path component (tag and digest dropped: `registry/f27/etcd:1`
 * -> `etcd`), and the rendered directories (`values` as resolved).
 */
export function serviceIdentity(name: string, imageName: string | undefined, values: Record<string, string> = {}): ServiceIdentity {
  const names = [name]
  if (imageName) {
    const noDigest = imageName.split('@')[0]
    const last = noDigest.slice(noDigest.lastIndexOf('/') + 1).split(':')[0]
    if (last !== '' && last !== name) names.push(last)
  }
  return { names, runDirectory: values.RUN_DIRECTORY, stateDirectory: values.STATE_DIRECTORY, confDirectory: values.CONF_DIRECTORY }
}

/** A thing a config asks beyond the default grant, and the ITEM that grants it. */
export interface AskedGrant {
  code: ConfigFindingCode
  /** The spec field, e.g. `linux.namespaces`, `mounts[7]`. */
  field: string
  message: string
  /** The `--grant` ITEM that allows exactly this. */
  grant: string
}

/** A daemon's control socket or a device node: privileged even read-only. */
function isSocketOrDevice(p: string): boolean {
  return ['/dev', '/run/dbus', '/run/containerd', '/run/podman', '/run/crio', '/run/runc', '/run/systemd'].some((d) => isUnder(p, d)) || /^\/run\/docker/.test(p) || p.endsWith('.sock')
}

function ownParents(id: ServiceIdentity): string[] {
  const dirs = [id.runDirectory, id.stateDirectory, id.confDirectory].filter((d): d is string => typeof d === 'string' && d.startsWith('/')).map(normaliseHostPath)
  return [...new Set([...Object.values(OWN_DIRECTORY_PARENTS), ...dirs])].filter((d) => d !== '/')
}

/**
 * Whether host path `p` (normalised) is in one of the service's own
 * directories: PARENT/X or below, PARENT one of /run, /var/lib, /etc,
 * /var/log, /var/cache (or the rendered RUN/STATE/CONF_DIRECTORY), X one of
 * `id.names` and not in RESERVED_NAMES. The weaker rule without names is in
 * ServiceIdentity.
 */
export function isOwnPath(p: string, id: ServiceIdentity = {}): boolean {
  if (id.names === undefined) {
    if (isSocketOrDevice(p)) return false
    return ['/run', '/var/lib', '/var/log', '/var/cache'].some((parent) => {
      if (!p.startsWith(`${parent}/`)) return false
      const x = p.slice(parent.length + 1).split('/')[0]
      return x !== '' && !RESERVED_NAMES.includes(x)
    })
  }
  const names = id.names.filter((n) => n !== '' && n !== '.' && n !== '..' && !n.includes('/') && !RESERVED_NAMES.includes(n))
  return ownParents(id).some((parent) => names.some((n) => isUnder(p, `${parent}/${n}`)))
}

/**
 * Why a bind of host path `source` is beyond the default grant, or undefined
 * when it is not. The rule is in the module comment.
 */
export function isPrivilegedBind(source: string, readOnly: boolean, id: ServiceIdentity = {}): string | undefined {
  const p = normaliseHostPath(source)
  if (ALLOWED_BIND_SOURCES.includes(p)) return undefined
  if (readOnly && READ_ONLY_BIND_SOURCES.includes(p)) return undefined
  if (isOwnPath(p, id)) return undefined
  if (isSocketOrDevice(p)) return readOnly ? 'socket or device' : 'read-write socket or device'
  return readOnly ? 'read-only' : 'read-write'
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function isBindMount(m: { type?: string; options?: string[] }): boolean {
  const options = m.options ?? []
  return m.type === 'bind' || options.includes('bind') || options.includes('rbind')
}

function isStandardDevice(type: string | undefined, major: number | undefined, minor: number | undefined): boolean {
  return STANDARD_DEVICES.some((d) => type === d.type && major === d.major && (d.minor === '*' ? true : minor === d.minor))
}

/** Everything `spec` asks beyond the default grant, each with the ITEM that grants it (in spec order). */
export function askedGrants(spec: RuntimeSpec, id: ServiceIdentity = {}): AskedGrant[] {
  const asked: AskedGrant[] = []
  const namespaces = spec.linux?.namespaces ?? []
  for (const type of REQUIRED_NAMESPACES) {
    if (!namespaces.some((n) => (NAMESPACE_ALIASES[n.type] ?? n.type) === type)) {
      asked.push({ code: 'config.host-namespace', field: 'linux.namespaces', message: `no ${type} namespace: the container shares the host's`, grant: `ns:${type}` })
    }
  }
  for (const ns of namespaces) {
    if (typeof ns.path !== 'string' || ns.path === '') continue
    const type = (NAMESPACE_ALIASES[ns.type] ?? ns.type) as NamespaceType
    const grant = NAMESPACE_TYPES.includes(type) ? formatGrant({ kind: 'ns', type, path: normaliseHostPath(ns.path) }) : `ns:${ns.type}`
    asked.push({ code: 'config.host-namespace', field: 'linux.namespaces', message: `the ${ns.type} namespace joins ${ns.path} instead of a new one`, grant })
  }

  const extra = new Set<string>()
  for (const list of Object.values(spec.process.capabilities ?? {})) for (const c of list ?? []) if (!DEFAULT_CAPABILITIES.includes(c)) extra.add(c)
  for (const cap of [...extra].sort()) {
    asked.push({ code: 'config.extra-capabilities', field: 'process.capabilities', message: `capability ${cap} beyond the default set`, grant: `cap:${cap.replace(/^CAP_/, '')}` })
  }

  for (const [i, m] of (spec.mounts ?? []).entries()) {
    if (isBindMount(m)) {
      if (typeof m.source !== 'string') continue
      const readOnly = (m.options ?? []).includes('ro')
      const why = isPrivilegedBind(m.source, readOnly, id)
      if (!why) continue
      const source = normaliseHostPath(m.source)
      asked.push({ code: 'config.privileged-mount', field: `mounts[${i}]`, message: `${why} bind of the host's ${source} at ${m.destination}`, grant: formatGrant({ kind: 'bind', path: source, rw: !readOnly }) })
    } else if (typeof m.type === 'string' && m.type !== '' && m.type !== 'none' && !DEFAULT_MOUNT_TYPES.includes(m.type)) {
      asked.push({ code: 'config.mount-type', field: `mounts[${i}]`, message: `a ${m.type} mount${m.source ? ` of ${m.source}` : ''} at ${m.destination}`, grant: `mount:${m.type}` })
    }
  }

  for (const [i, d] of (spec.linux?.resources?.devices ?? []).entries()) {
    if (d.allow !== true) continue
    const type = d.type ?? 'a'
    if (type === 'a' && d.major === undefined && d.minor === undefined) {
      asked.push({ code: 'config.all-devices', field: `linux.resources.devices[${i}]`, message: 'all host devices are allowed', grant: 'device:all' })
    } else if (!isStandardDevice(type, d.major, d.minor)) {
      const g = formatGrant({ kind: 'device', type: type as 'a' | 'c' | 'b', major: d.major ?? '*', minor: d.minor ?? '*' })
      asked.push({ code: 'config.devices', field: `linux.resources.devices[${i}]`, message: `host device ${type} ${d.major ?? '*'}:${d.minor ?? '*'} is allowed`, grant: g })
    }
  }
  const nodes = spec.linux?.devices
  if (Array.isArray(nodes)) {
    for (const [i, d] of nodes.entries()) {
      if (!isObject(d) || d.type === 'p') continue
      const type = d.type === 'u' ? 'c' : (d.type as string)
      const major = typeof d.major === 'number' ? d.major : undefined
      const minor = typeof d.minor === 'number' ? d.minor : undefined
      if (isStandardDevice(type, major, minor)) continue
      const g = formatGrant({ kind: 'device', type: type === 'b' ? 'b' : 'c', major: major ?? '*', minor: minor ?? '*' })
      asked.push({ code: 'config.devices', field: `linux.devices[${i}]`, message: `device node ${String(d.path)} (${type} ${major ?? '?'}:${minor ?? '?'})`, grant: g })
    }
  }

  if (isObject(spec.hooks)) {
    for (const [stage, list] of Object.entries(spec.hooks)) {
      if (!Array.isArray(list) || list.length === 0) continue
      const known = HOOK_STAGES.find((s) => s.toLowerCase() === stage.toLowerCase())
      asked.push({ code: 'config.hooks', field: 'hooks', message: `${stage} hooks: OCI hooks run programs on the host as root`, grant: `hook:${known ?? stage}` })
    }
  }
  return asked
}

/**
 * What of `asked` the grants do not cover (all of it with no grants, none with
 * `privileged`). `granted` are ITEMs (parsed here: a bad one is a UsageError)
 * or parsed grants.
 */
export function missingGrants<T extends { grant: string }>(asked: readonly T[], granted: readonly (string | Grant)[], opts: { privileged?: boolean } = {}): T[] {
  if (opts.privileged) return []
  const grants = granted.map((g) => (typeof g === 'string' ? parseGrant(g) : g))
  return asked.filter((a) => {
    let want: Grant
    try {
      want = parseGrant(a.grant)
    } catch {
      return true // an item we cannot read back (e.g. an unknown capability): only --privileged covers it
    }
    return !grants.some((g) => grantCovers(g, want))
  })
}

/** ITEMs without those another one covers (e.g. `bind:/:rw` covers `bind:/etc`): the flags to paste, each one needed. */
export function minimalGrants(items: readonly string[]): string[] {
  const uniq = [...new Set(items)]
  const parsed = uniq.map((g) => {
    try {
      return parseGrant(g)
    } catch {
      return undefined
    }
  })
  return uniq.filter((g, i) => !uniq.some((o, j) => j !== i && parsed[i] && parsed[j] && grantCovers(parsed[j]!, parsed[i]!) && !(grantCovers(parsed[i]!, parsed[j]!) && j > i)))
}

/** The `--grant` flags that grant exactly `asked`, one per distinct ITEM, ready to paste. */
export function grantFlags(asked: readonly { grant: string }[]): string[] {
  return [...new Set(asked.map((a) => a.grant))].map((g) => `--grant ${/^[A-Za-z0-9_:./=*+@-]+$/.test(g) ? g : `'${g.replace(/'/g, `'\\''`)}'`}`)
}

/**
 * The refusal for an install (or update, or dry run) asked more than it was
 * granted: ContentError 'config.privileged' (exit 6), one line per thing
 * asked with its ITEM, and the flags that grant exactly that in the hint.
 */
export function grantRefusal(missing: readonly AskedGrant[], opts: { granted?: readonly string[] } = {}): ContentError {
  const lines = missing.map((m) => `  ${m.field}: ${m.message} (--grant ${m.grant})`)
  const needed = minimalGrants(missing.map((m) => m.grant))
  const flags = grantFlags(needed.map((grant) => ({ grant })))
  const more = (opts.granted ?? []).length > 0 ? ' in addition to the grants given' : ''
  return new ContentError('config.privileged', [`config.json asks for more of the host than a system container gets by default${more}:`, ...lines].join('\n'), {
    hint: `if you trust this image with that, add: ${flags.join(' ')} (or --privileged to grant everything)`,
    data: {
      fields: [...new Set(missing.map((m) => m.field))],
      grants: needed,
      findings: missing.map((m) => ({ code: m.code, field: m.field, message: m.message, grant: m.grant })),
    },
  })
}

/** What an image's config asks of the host, for `images info` and dry runs. */
export interface HostAsks {
  /** Everything beyond the default grant. */
  beyondDefault: AskedGrant[]
  /** The flags that grant exactly that (empty: installs with no flag). */
  flags: string[]
  capabilities: string[]
  /** Namespaces the container gets of its own; the others it shares with the host (or joins by path). */
  ownNamespaces: string[]
  sharedNamespaces: string[]
  binds: { source: string; destination: string; readOnly: boolean; beyondDefault: boolean }[]
  devices: string[]
  hooks: string[]
}

/** Describe what `spec` asks of the host (see HostAsks). */
export function describeHostAsks(spec: RuntimeSpec, id: ServiceIdentity = {}): HostAsks {
  const beyondDefault = askedGrants(spec, id)
  const namespaces = spec.linux?.namespaces ?? []
  const own = namespaces.filter((n) => !n.path).map((n) => NAMESPACE_ALIASES[n.type] ?? n.type)
  const caps = new Set<string>()
  for (const list of Object.values(spec.process.capabilities ?? {})) for (const c of list ?? []) caps.add(c)
  const binds = (spec.mounts ?? [])
    .filter((m) => isBindMount(m) && typeof m.source === 'string')
    .map((m) => {
      const readOnly = (m.options ?? []).includes('ro')
      return { source: normaliseHostPath(m.source as string), destination: m.destination, readOnly, beyondDefault: isPrivilegedBind(m.source as string, readOnly, id) !== undefined }
    })
  return {
    beyondDefault,
    flags: grantFlags(minimalGrants(beyondDefault.map((a) => a.grant)).map((grant) => ({ grant }))),
    capabilities: [...caps].sort(),
    ownNamespaces: [...new Set(own)],
    sharedNamespaces: NAMESPACE_TYPES.filter((t) => !own.includes(t)),
    binds,
    devices: beyondDefault.filter((a) => a.code === 'config.all-devices' || a.code === 'config.devices').map((a) => a.grant),
    hooks: beyondDefault.filter((a) => a.code === 'config.hooks').map((a) => a.grant),
  }
}
