/**
 * Validation of a rendered runc config.json (OCI runtime spec).
 *
 * Legacy shapes are translated first (normaliseLegacySpec, in legacy-spec.ts):
 * the checks apply to what the runtime will be given.
 *
 * Hard requirements (ContentError, whatever the options):
 * - valid JSON, an object, with `process` and `root`;
 * - root.path is "rootfs" and root.readonly is true (the checkout is shared
 *   with the store through hardlinks: the container must never write to it);
 * - process.args is a non-empty list of strings;
 * - a bind mount's source is an absolute host path (runc would resolve a
 *   relative one against the bundle: the deployment directory);
 * - no `hostname` without a uts namespace (runc refuses it at start).
 *
 * Privilege findings: what the config asks beyond the default grant
 * (grants.ts: a container engine's default). Each carries the `--grant` ITEM
 * that allows it; findings covered by `grants` are left out, `privileged:
 * true` leaves out all. Install refuses a config with any through
 * refusePrivileged (ContentError 'config.privileged', exit 6, naming each
 * thing and the flags that grant exactly it). A terminal (which a service
 * does not have) is reported even when privileged, as a warning.
 * Each finding has a stable code.
 */
import { ContentError } from '../errors'
import { askedGrants, formatGrant, grantRefusal, missingGrants, parseGrants, type AskedGrant, type ServiceIdentity } from './grants'
import { normaliseLegacySpec } from './legacy-spec'

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
  | 'config.mount-type'
  | 'config.all-devices'
  | 'config.devices'
  | 'config.hooks'
  | 'config.terminal'

export interface ConfigFinding {
  code: ConfigFindingCode
  /** The spec field, e.g. `linux.namespaces`, `mounts[7]`. */
  field: string
  message: string
  /** For a privilege finding: the `--grant` ITEM that allows it (grants.ts). */
  grant?: string
}

export interface ConfigCheckResult {
  spec: RuntimeSpec
  /**
   * The config.json to write: the input text, or the translated one when a
   * legacy shape was translated (see `legacy`).
   */
  configJson: string
  /** What normaliseLegacySpec translated, one line each (empty for a current config). */
  legacy: string[]
  /** The findings' and translations' messages, for printing. */
  warnings: string[]
  /** Privilege findings not covered by the grants (none when privileged), and the terminal warning. */
  findings: ConfigFinding[]
  /** Everything asked beyond the default grant, granted or not (what `--privileged` or the grants allowed). */
  asked: AskedGrant[]
  /** The `--grant` ITEMs given (canonical form). */
  granted: string[]
  /** The `--grant` ITEMs given that this config does not need. */
  unusedGrants: string[]
}

export interface ConfigCheckOptions extends ServiceIdentity {
  /** Grant everything (`--privileged`). */
  privileged?: boolean
  /** `--grant` ITEMs (a bad one is a UsageError 'grant.invalid'). */
  grants?: readonly string[]
  /** A run-once image (ops/run-once.ts) runs on a throwaway copy: root.readonly may be false. */
  writableRoot?: boolean
}

export { ALLOWED_BIND_SOURCES, DEFAULT_CAPABILITIES, REQUIRED_NAMESPACES, isPrivilegedBind } from './grants'

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

/** Check the shape every config must have; returns it typed. */
function checkRequired(raw: unknown, writableRoot = false): RuntimeSpec {
  if (!isObject(raw)) throw invalid('expected a JSON object')
  if (!isObject(raw.root)) throw invalid('root is missing')
  if (raw.root.path !== 'rootfs') {
    throw new ContentError('config.root-path', `config.json: root.path must be "rootfs" (found ${JSON.stringify(raw.root.path)})`, {
      data: { expected: 'rootfs', found: raw.root.path },
    })
  }
  if (raw.root.readonly !== true && !(writableRoot && (raw.root.readonly === false || raw.root.readonly === undefined))) {
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
  for (const [i, m] of ((raw.mounts ?? []) as Record<string, unknown>[]).entries()) {
    const options = (m.options ?? []) as string[]
    const bind = m.type === 'bind' || options.includes('bind') || options.includes('rbind')
    if (bind && (typeof m.source !== 'string' || !m.source.startsWith('/'))) {
      throw new ContentError('config.bind-source', `config.json: mounts[${i}] binds ${JSON.stringify(m.source)}: a bind mount's source must be an absolute host path`, {
        hint: 'runc would resolve a relative source against the deployment directory',
        data: { field: `mounts[${i}]`, found: m.source },
      })
    }
  }
  const hasUts = Array.isArray(ns) && ns.some((n) => isObject(n) && n.type === 'uts')
  if (typeof raw.hostname === 'string' && raw.hostname !== '' && !hasUts) {
    throw new ContentError('config.hostname-without-uts', 'config.json: hostname is set but linux.namespaces has no uts namespace: runc refuses to set the hostname of the host', {
      hint: 'add {"type": "uts"} to linux.namespaces, or drop hostname',
      data: { field: 'hostname', found: raw.hostname },
    })
  }
  return raw as unknown as RuntimeSpec
}

/** What the config asks beyond the default grant (see grants.ts), as findings carrying their ITEM. */
export function privilegeFindings(spec: RuntimeSpec, id: ServiceIdentity = {}): ConfigFinding[] {
  return askedGrants(spec, id).map((a) => ({ code: a.code, field: a.field, message: a.message, grant: a.grant }))
}

/** Findings reported even for privileged containers. */
function serviceFindings(spec: RuntimeSpec): ConfigFinding[] {
  if (spec.process.terminal !== true) return []
  return [{ code: 'config.terminal', field: 'process.terminal', message: 'process.terminal is true, but a service has no terminal' }]
}

/**
 * Parse, translate legacy shapes of, and check a rendered config.json. Throws
 * ContentError for what no container may have, UsageError for a bad grant
 * ITEM; returns the privilege findings the grants do not cover (none when
 * `privileged`). Pass the service's names (and rendered RUN/STATE/CONF
 * directories) so its own directories are recognised (ServiceIdentity).
 */
export function checkRuntimeConfig(text: string, opts: ConfigCheckOptions = {}): ConfigCheckResult {
  const raw = parseJson(text)
  const granted = parseGrants(opts.grants ?? [])
  const { spec: translated, changes } = normaliseLegacySpec(raw)
  const spec = checkRequired(translated, opts.writableRoot === true)
  const asked = askedGrants(spec, opts)
  const missing = missingGrants(asked, granted, { privileged: opts.privileged })
  const findings: ConfigFinding[] = [...missing.map((a) => ({ code: a.code, field: a.field, message: a.message, grant: a.grant })), ...serviceFindings(spec)]
  const unusedGrants = granted.filter((g) => !asked.some((a) => missingGrants([a], [g]).length === 0)).map(formatGrant)
  return {
    spec,
    configJson: changes.length > 0 ? `${JSON.stringify(spec, null, 2)}\n` : text,
    legacy: changes,
    findings,
    asked,
    granted: granted.map(formatGrant),
    unusedGrants,
    warnings: [...changes, ...findings.map((f) => `${f.field}: ${f.message}`)],
  }
}

/** The codes install refuses without a grant (config.terminal is only a warning). */
export const PRIVILEGE_CODES: readonly ConfigFindingCode[] = ['config.host-namespace', 'config.extra-capabilities', 'config.privileged-mount', 'config.mount-type', 'config.all-devices', 'config.devices', 'config.hooks']

/**
 * Throw ContentError 'config.privileged' (exit 6) when `checked` has privilege
 * findings the grants did not cover: one line per thing asked with its
 * `--grant` ITEM; the hint has the flags that grant exactly those, ready to
 * paste (see grantRefusal). A result checked with `privileged: true`, or
 * with every ITEM granted, has none, so this passes.
 */
export function refusePrivileged(checked: Pick<ConfigCheckResult, 'findings'> & { granted?: readonly string[] }): void {
  const found = checked.findings.filter((f) => PRIVILEGE_CODES.includes(f.code))
  if (found.length === 0) return
  throw grantRefusal(
    found.map((f) => ({ code: f.code, field: f.field, message: f.message, grant: f.grant ?? 'privileged' })),
    { granted: checked.granted },
  )
}

/** Sources of bind mounts (Atomic created the missing ones through tmpfiles). */
export function bindMountSources(spec: RuntimeSpec): string[] {
  return (spec.mounts ?? [])
    .filter((m) => typeof m.source === 'string' && (m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind')))
    .map((m) => m.source as string)
}
