/**
 * Validation of a rendered runc config.json (OCI runtime spec).
 *
 * Hard requirements (ContentError, whatever the options):
 * - valid JSON, an object, with `process` and `root`;
 * - root.path is "rootfs" and root.readonly is true (the checkout is shared
 *   with the store through hardlinks: the container must never write to it);
 * - process.args is a non-empty list of strings.
 *
 * Privilege findings (`privileged: true` silences them; install refuses a
 * config that has any with ContentError 'config.privileged' through
 * refusePrivileged, unless installed with --privileged): what gives the
 * container more of the host than runc's default spec does — a missing
 * pid/mount/ipc/uts namespace or one joined by path, capabilities beyond the
 * default set, privileged bind mounts (see isPrivilegedBind), all devices
 * allowed, OCI hooks (they run on the host as root). A terminal (which a
 * service does not have) is reported even when privileged, as a warning.
 * Each finding has a stable code.
 *
 * Bind mounts (source normalised, /var/run read as /run):
 * - privileged read-write: a host system directory itself (/, /etc, /usr,
 *   /var, /run, ...), or anything under /proc, /sys, /boot, or a container
 *   engine's state (/var/lib/sysctr, /var/lib/docker, /var/lib/containers);
 * - privileged even read-only (ro does not stop connect() on a socket nor a
 *   write to a device node): anything under /dev, a daemon's control socket
 *   (`*.sock`, /run/dbus, /run/docker*, /run/containerd, /run/podman,
 *   /run/crio, /run/runc, anything under /run/systemd);
 * - except the allow-list for logging and readiness: /run/systemd/notify,
 *   /run/systemd/journal/{socket,stdout,dev-log}, /dev/log.
 * Anything else (e.g. /run/NAME, /var/lib/NAME, /srv/...) is allowed.
 */
import { ContentError } from '../errors'

export interface RuntimeMount {
  destination: string
  type?: string
  source?: string
  options?: string[]
}

export interface RuntimeNamespace {
  type: string
  path?: string
}

export interface RuntimeCapabilities {
  bounding?: string[]
  effective?: string[]
  inheritable?: string[]
  permitted?: string[]
  ambient?: string[]
}

/** The parts of the OCI runtime spec sysctr reads; the rest is passed through untouched. */
export interface RuntimeSpec {
  ociVersion?: string
  process: {
    terminal?: boolean
    user?: { uid: number; gid: number; additionalGids?: number[] }
    args: string[]
    env?: string[]
    cwd?: string
    capabilities?: RuntimeCapabilities
    noNewPrivileges?: boolean
    [key: string]: unknown
  }
  root: { path: string; readonly?: boolean }
  hostname?: string
  mounts?: RuntimeMount[]
  hooks?: Record<string, unknown>
  linux?: {
    namespaces?: RuntimeNamespace[]
    resources?: { devices?: { allow: boolean; type?: string; major?: number; minor?: number; access?: string }[]; [key: string]: unknown }
    [key: string]: unknown
  }
  [key: string]: unknown
}

export type ConfigFindingCode =
  | 'config.host-namespace'
  | 'config.extra-capabilities'
  | 'config.privileged-mount'
  | 'config.all-devices'
  | 'config.hooks'
  | 'config.terminal'

export interface ConfigFinding {
  code: ConfigFindingCode
  /** The spec field, e.g. `linux.namespaces`, `mounts[7]`. */
  field: string
  message: string
}

export interface ConfigCheckResult {
  spec: RuntimeSpec
  /** The findings' messages, for printing. */
  warnings: string[]
  findings: ConfigFinding[]
}

/** runc spec's default capability set. */
export const DEFAULT_CAPABILITIES: readonly string[] = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']
/** Namespaces a system container keeps (the network one is shared with the host on purpose). */
export const REQUIRED_NAMESPACES: readonly string[] = ['pid', 'mount', 'ipc', 'uts']
/** Host directories whose read-write bind gives a container the host. */
export const PRIVILEGED_BIND_SOURCES: readonly string[] = ['/', '/dev', '/proc', '/sys', '/etc', '/boot', '/usr', '/var', '/run']

function invalid(message: string, data?: Record<string, unknown>): ContentError {
  return new ContentError('config.invalid', `config.json: ${message}`, { data })
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string')
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    const msg = (err as Error).message
    const pos = /position (\d+)/.exec(msg)
    let data: Record<string, unknown> = {}
    let where = ''
    if (pos) {
      const position = Number(pos[1])
      const before = text.slice(0, position)
      const line = before.split('\n').length
      const column = position - before.lastIndexOf('\n')
      data = { position, line, column }
      where = ` at line ${line}, column ${column}`
    }
    throw new ContentError('config.invalid-json', `config.json is not valid JSON${where}: ${msg}`, {
      cause: err,
      hint: 'a value inserted into a JSON string must go through {{X}} (escaped) or {{{json X}}} in a .hbs template',
      data,
    })
  }
}

/** Normalise a host path for comparison: collapse slashes, drop a trailing one. */
function normalisePath(p: string): string {
  const collapsed = p.replace(/\/+/g, '/')
  return collapsed.length > 1 ? collapsed.replace(/\/$/, '') : collapsed
}

/** Bind sources allowed whatever else the rules say: logging and sd_notify readiness. */
export const ALLOWED_BIND_SOURCES: readonly string[] = ['/run/systemd/notify', '/run/systemd/journal/socket', '/run/systemd/journal/stdout', '/run/systemd/journal/dev-log', '/dev/log']
/** Binds of or below these are privileged even read-only. */
const ALWAYS_PRIVILEGED_UNDER: readonly string[] = ['/dev', '/run/dbus', '/run/containerd', '/run/podman', '/run/crio', '/run/runc', '/run/systemd']
/** Read-write binds below these are privileged. */
const RW_PRIVILEGED_UNDER: readonly string[] = ['/proc', '/sys', '/boot', '/var/lib/sysctr', '/var/lib/docker', '/var/lib/containers']

const isUnder = (p: string, dir: string): boolean => p === dir || p.startsWith(`${dir}/`)

/**
 * Why a bind of host path `source` is privileged ('read-write' or 'socket/device'), or
 * undefined when it is allowed. The rule is in the module comment.
 */
export function isPrivilegedBind(source: string, readOnly: boolean): string | undefined {
  let p = normalisePath(source.startsWith('/') ? source : `/${source}`)
  // Lexical only: `..` in a source is resolved as the kernel would, so /run/x/../../etc is /etc.
  const parts: string[] = []
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue
    if (c === '..') parts.pop()
    else parts.push(c)
  }
  p = `/${parts.join('/')}`
  if (isUnder(p, '/var/run')) p = `/run${p.slice('/var/run'.length)}`
  if (ALLOWED_BIND_SOURCES.includes(p)) return undefined
  if (ALWAYS_PRIVILEGED_UNDER.some((d) => isUnder(p, d)) || /^\/run\/docker/.test(p) || p.endsWith('.sock')) return readOnly ? 'socket or device' : 'read-write socket or device'
  if (readOnly) return undefined
  if (PRIVILEGED_BIND_SOURCES.includes(p) || RW_PRIVILEGED_UNDER.some((d) => isUnder(p, d))) return 'read-write'
  return undefined
}

/** Check the shape every config must have; returns it typed. */
function checkRequired(raw: unknown): RuntimeSpec {
  if (!isObject(raw)) throw invalid('expected a JSON object')
  if (!isObject(raw.root)) throw invalid('root is missing')
  if (raw.root.path !== 'rootfs') {
    throw new ContentError('config.root-path', `config.json: root.path must be "rootfs" (found ${JSON.stringify(raw.root.path)})`, {
      data: { expected: 'rootfs', found: raw.root.path },
    })
  }
  if (raw.root.readonly !== true) {
    throw new ContentError('config.root-not-readonly', 'config.json: root.readonly must be true: sysctr runs containers on a read-only rootfs', {
      hint: 'mount writable state with a bind mount or a tmpfs instead',
      data: { found: raw.root.readonly },
    })
  }
  if (!isObject(raw.process)) throw invalid('process is missing')
  const args = raw.process.args
  if (!isStringList(args) || args.length === 0) {
    throw new ContentError('config.no-args', 'config.json: process.args must be a non-empty list of strings (the image sets no Entrypoint or Cmd?)', {
      data: { found: args },
    })
  }
  if (raw.mounts !== undefined) {
    if (!Array.isArray(raw.mounts) || !raw.mounts.every((m) => isObject(m) && typeof m.destination === 'string')) {
      throw invalid('mounts must be a list of objects with a destination')
    }
    for (const [i, m] of (raw.mounts as Record<string, unknown>[]).entries()) {
      if (m.options !== undefined && !isStringList(m.options)) throw invalid(`mounts[${i}].options must be a list of strings`)
    }
  }
  if (raw.linux !== undefined && !isObject(raw.linux)) throw invalid('linux must be an object')
  const ns = isObject(raw.linux) ? raw.linux.namespaces : undefined
  if (ns !== undefined && (!Array.isArray(ns) || !ns.every((n) => isObject(n) && typeof n.type === 'string'))) {
    throw invalid('linux.namespaces must be a list of objects with a type')
  }
  const caps = raw.process.capabilities
  if (caps !== undefined) {
    if (!isObject(caps)) throw invalid('process.capabilities must be an object')
    for (const [set, list] of Object.entries(caps)) {
      if (!isStringList(list)) throw invalid(`process.capabilities.${set} must be a list of strings`)
    }
  }
  return raw as unknown as RuntimeSpec
}

/** What the config grants beyond runc's default spec (see the module comment). */
export function privilegeFindings(spec: RuntimeSpec): ConfigFinding[] {
  const findings: ConfigFinding[] = []
  const namespaces = spec.linux?.namespaces ?? []
  for (const type of REQUIRED_NAMESPACES) {
    const ns = namespaces.find((n) => n.type === type)
    if (!ns) {
      findings.push({ code: 'config.host-namespace', field: 'linux.namespaces', message: `no ${type} namespace: the container shares the host's` })
    } else if (ns.path) {
      findings.push({
        code: 'config.host-namespace',
        field: 'linux.namespaces',
        message: `the ${type} namespace joins ${ns.path} instead of a new one`,
      })
    }
  }
  const caps = spec.process.capabilities ?? {}
  const extra = new Set<string>()
  for (const list of Object.values(caps)) for (const c of list ?? []) if (!DEFAULT_CAPABILITIES.includes(c)) extra.add(c)
  if (extra.size > 0) {
    findings.push({
      code: 'config.extra-capabilities',
      field: 'process.capabilities',
      message: `capabilities beyond the default set: ${[...extra].sort().join(', ')}`,
    })
  }
  for (const [i, m] of (spec.mounts ?? []).entries()) {
    const options = m.options ?? []
    const isBind = m.type === 'bind' || options.includes('bind') || options.includes('rbind')
    if (!isBind || typeof m.source !== 'string') continue
    const readOnly = options.includes('ro')
    const why = isPrivilegedBind(m.source, readOnly)
    if (why) {
      findings.push({
        code: 'config.privileged-mount',
        field: `mounts[${i}]`,
        message: `${why} bind of the host's ${normalisePath(m.source)} at ${m.destination}`,
      })
    }
  }
  for (const [i, d] of (spec.linux?.resources?.devices ?? []).entries()) {
    const all = d.allow === true && (d.type === undefined || d.type === 'a') && d.major === undefined && d.minor === undefined
    if (all) {
      findings.push({ code: 'config.all-devices', field: `linux.resources.devices[${i}]`, message: 'all host devices are allowed' })
    }
  }
  if (spec.hooks !== undefined && isObject(spec.hooks) && Object.values(spec.hooks).some((h) => Array.isArray(h) && h.length > 0)) {
    findings.push({ code: 'config.hooks', field: 'hooks', message: 'OCI hooks run programs on the host as root' })
  }
  return findings
}

/** Findings reported even for privileged containers. */
function serviceFindings(spec: RuntimeSpec): ConfigFinding[] {
  if (spec.process.terminal !== true) return []
  return [{ code: 'config.terminal', field: 'process.terminal', message: 'process.terminal is true, but a service has no terminal' }]
}

/**
 * Parse and check a rendered config.json. Throws ContentError for what no
 * container may have; returns the findings unless `privileged`.
 */
export function checkRuntimeConfig(text: string, opts: { privileged?: boolean } = {}): ConfigCheckResult {
  const spec = checkRequired(parseJson(text))
  const findings = [...(opts.privileged ? [] : privilegeFindings(spec)), ...serviceFindings(spec)]
  return { spec, findings, warnings: findings.map((f) => `${f.field}: ${f.message}`) }
}

/** The codes install refuses without --privileged (config.terminal is only a warning). */
export const PRIVILEGE_CODES: readonly ConfigFindingCode[] = ['config.host-namespace', 'config.extra-capabilities', 'config.privileged-mount', 'config.all-devices', 'config.hooks']

/**
 * Throw ContentError 'config.privileged' (exit 6) naming every offending field
 * when `checked` has privilege findings. A result checked with
 * `privileged: true` has none, so this passes.
 */
export function refusePrivileged(checked: ConfigCheckResult): void {
  const found = checked.findings.filter((f) => PRIVILEGE_CODES.includes(f.code))
  if (found.length === 0) return
  const fields = [...new Set(found.map((f) => f.field))]
  throw new ContentError('config.privileged', `config.json asks for privileges a system container does not get by default: ${found.map((f) => `${f.field}: ${f.message}`).join('; ')}`, {
    hint: 'if you trust this image with that much of the host, install it with --privileged',
    data: { fields, findings: found.map((f) => ({ code: f.code, field: f.field, message: f.message })) },
  })
}

/** Sources of bind mounts (Atomic created the missing ones through tmpfiles). */
export function bindMountSources(spec: RuntimeSpec): string[] {
  return (spec.mounts ?? [])
    .filter((m) => typeof m.source === 'string' && (m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind')))
    .map((m) => m.source as string)
}
