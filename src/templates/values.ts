/**
 * Template values: `--set` parsing, the values sysctr computes for every
 * container, precedence, and the checks on values and names.
 *
 * Precedence (highest first): --set > computed defaults > the image's
 * manifest.json `defaultValues`. The keys in FIXED_KEYS describe the deployment
 * itself (its name, directory, image, the runtime command lines); as in Atomic,
 * they always take the computed value, and `--set` of one is a usage error
 * rather than a silent no-op.
 *
 * Invariants:
 * - A value that lands in a unit or tmpfiles file cannot add a line, a
 *   continuation or a NUL (checkUnitSafe): it cannot add directives or sections.
 * - Container names are safe as a unit name, a path component and a runc id.
 */
import { UsageError } from '../errors'

export type ValueSource = 'set' | 'computed' | 'manifest'

const IDENTIFIER = /^[_a-zA-Z][_a-zA-Z0-9]*$/

export function isIdentifier(s: string): boolean {
  return IDENTIFIER.test(s)
}

/** Parse `--set KEY=VALUE` flags. VALUE may contain `=` and be empty; a later KEY wins. */
export function parseSetFlags(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const flag of list) {
    const eq = flag.indexOf('=')
    const key = eq < 0 ? flag : flag.slice(0, eq)
    if (eq < 0 || !isIdentifier(key) || key === '__proto__') {
      throw new UsageError(
        'values.invalid-set',
        eq < 0
          ? `invalid --set ${JSON.stringify(flag)}: expected KEY=VALUE`
          : `invalid --set ${JSON.stringify(flag)}: ${JSON.stringify(key)} is not a variable name (letters, digits and _, not starting with a digit)`,
        { hint: 'use --set NAME=VALUE, e.g. --set ETCD_NAME=node1', data: { flag } },
      )
    }
    out[key] = flag.slice(eq + 1)
  }
  return out
}

/**
 * Linux capabilities by number (capabilities(7), include/uapi/linux/capability.h).
 * Atomic listed the ones up to /proc/sys/kernel/cap_last_cap, in this order.
 */
export const LINUX_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
]

/** The capabilities numbered 0..lastCap (the host's /proc/sys/kernel/cap_last_cap); all known ones by default. */
export function allProcessCapabilities(lastCap?: number): string[] {
  if (lastCap === undefined || !Number.isInteger(lastCap) || lastCap < 0) return [...LINUX_CAPABILITIES]
  return LINUX_CAPABILITIES.slice(0, lastCap + 1)
}

/** Quote one argument for a systemd Exec*= line (spaces, quotes, `\`, `%` specifiers, `$` expansion). */
export function systemdQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_/.:@+=,-]+$/.test(arg)) return arg
  const escaped = arg.replace(/[\\"]/g, (c) => `\\${c}`).replace(/%/g, '%%').replace(/\$/g, '$$$$')
  return `"${escaped}"`
}

export interface RuntimeCommands {
  EXEC_START: string
  EXEC_STOP: string
  EXEC_STARTPRE: string
  EXEC_STOPPOST: string
}

/**
 * The runtime command lines for the unit (ExecStart= etc.). One place, so the
 * integrator can adjust them. runc runs in the foreground: systemd's SIGTERM
 * goes to runc, which forwards it to the container, so no ExecStop is needed;
 * a stale container of the same name is deleted before start and after stop
 * (`-`: a failure there does not fail the unit).
 */
export function runtimeCommands(runtime: string, destDir: string, name: string): RuntimeCommands {
  const rt = systemdQuote(runtime)
  const n = systemdQuote(name)
  return {
    EXEC_START: `${rt} run --no-new-keyring --bundle ${systemdQuote(destDir)} ${n}`,
    EXEC_STOP: '',
    EXEC_STARTPRE: `-${rt} delete --force ${n}`,
    EXEC_STOPPOST: `-${rt} delete --force ${n}`,
  }
}

export interface DefaultsContext {
  /** Container name (already checked with checkContainerName). */
  name: string
  /** The deployment directory: the runc bundle holding config.json and rootfs/. */
  destDir: string
  /** Path of the OCI runtime, e.g. /usr/bin/runc. */
  runtime: string
  imageName: string
  /** The manifest digest. */
  imageId: string
  hostUid: number
  hostGid: number
  uuid: string
  /** Pass `--set RUN_DIRECTORY` here too, so PIDFILE follows it (as in Atomic). */
  runDirectory?: string
  stateDirectory?: string
  confDirectory?: string
  /** The host's /proc/sys/kernel/cap_last_cap; all known capabilities when absent. */
  capLastCap?: number
}

/** The values sysctr computes for every container (all strings). */
export function computeDefaults(ctx: DefaultsContext): Record<string, string> {
  const runDirectory = ctx.runDirectory ?? '/run'
  return {
    NAME: ctx.name,
    DESTDIR: ctx.destDir,
    ...runtimeCommands(ctx.runtime, ctx.destDir, ctx.name),
    HOST_UID: String(ctx.hostUid),
    HOST_GID: String(ctx.hostGid),
    IMAGE_NAME: ctx.imageName,
    IMAGE_ID: ctx.imageId,
    RUN_DIRECTORY: runDirectory,
    STATE_DIRECTORY: ctx.stateDirectory ?? '/var/lib',
    CONF_DIRECTORY: ctx.confDirectory ?? '/etc',
    PIDFILE: `${runDirectory.replace(/\/+$/, '')}/container-${ctx.name}.pid`,
    UUID: ctx.uuid,
    RUNTIME: ctx.runtime,
    ALL_PROCESS_CAPABILITIES: allProcessCapabilities(ctx.capLastCap)
      .map((c) => `"${c}"`)
      .join(', '),
  }
}

/** Keys that describe the deployment itself: always computed, never --set. */
export const FIXED_KEYS: readonly string[] = [
  'NAME',
  'DESTDIR',
  'EXEC_START',
  'EXEC_STOP',
  'EXEC_STARTPRE',
  'EXEC_STOPPOST',
  'HOST_UID',
  'HOST_GID',
  'IMAGE_NAME',
  'IMAGE_ID',
]

export interface ResolvedValues {
  values: Record<string, string>
  sources: Record<string, ValueSource>
}

/** Merge values: --set > computed > manifest defaultValues. */
export function resolveValues(input: {
  manifestDefaults?: Record<string, string>
  computed: Record<string, string>
  set?: Record<string, string>
}): ResolvedValues {
  const set = input.set ?? {}
  const fixed = Object.keys(set).filter((k) => FIXED_KEYS.includes(k))
  if (fixed.length > 0) {
    throw new UsageError(
      'values.fixed',
      `${fixed.join(', ')} ${fixed.length > 1 ? 'are' : 'is'} set by sysctr for every container and cannot be changed with --set`,
      { hint: 'drop the --set; choose the container name with --name', data: { keys: fixed } },
    )
  }
  const values: Record<string, string> = {}
  const sources: Record<string, ValueSource> = {}
  const layer = (from: Record<string, string> | undefined, source: ValueSource): void => {
    for (const [k, v] of Object.entries(from ?? {})) {
      values[k] = v
      sources[k] = source
    }
  }
  layer(input.manifestDefaults, 'manifest')
  layer(input.computed, 'computed')
  layer(set, 'set')
  return { values, sources }
}

/** Why a value cannot go into a unit or tmpfiles line, or undefined when it can. */
export function unitUnsafeReason(value: string): string | undefined {
  if (value.includes('\n')) return 'contains a newline'
  if (value.includes('\r')) return 'contains a carriage return'
  if (value.includes('\0')) return 'contains a NUL byte'
  if (value.endsWith('\\')) return 'ends with a backslash (a line continuation)'
  return undefined
}

/**
 * Values that land in a unit or tmpfiles file must stay on their line:
 * no \n, \r, NUL, nor a trailing backslash. Every offending key is named.
 */
export function checkUnitSafe(values: Record<string, string>, keys: readonly string[], opts: { file?: string } = {}): void {
  const bad: string[] = []
  const reasons: Record<string, string> = {}
  for (const key of keys) {
    if (!Object.prototype.hasOwnProperty.call(values, key)) continue
    const reason = unitUnsafeReason(String(values[key]))
    if (reason && !bad.includes(key)) {
      bad.push(key)
      reasons[key] = reason
    }
  }
  if (bad.length === 0) return
  const where = opts.file ? ` (used in ${opts.file})` : ''
  throw new UsageError(
    'values.unsafe',
    `unsafe value${bad.length > 1 ? 's' : ''} for ${bad.map((k) => `${k} (${reasons[k]})`).join(', ')}${where}: it would add lines to a systemd file`,
    { hint: 'values used in service or tmpfiles templates must be a single line', data: { keys: bad, file: opts.file } },
  )
}

const NAME_CHARS = /^[A-Za-z0-9:_.@-]+$/
export const MAX_NAME_LENGTH = 200

/**
 * A container name is used as the unit name, the deployment directory and the
 * runc container id: [A-Za-z0-9:_.@-], 1..200 characters, not starting with
 * `-` or `.`, and not ending with `@` (that would name a systemd template unit).
 */
export function checkContainerName(name: string): void {
  let problem: string | undefined
  if (name.length === 0) problem = 'it is empty'
  else if (name.length > MAX_NAME_LENGTH) problem = `it is longer than ${MAX_NAME_LENGTH} characters`
  else if (!NAME_CHARS.test(name)) problem = 'only letters, digits and : _ . @ - are allowed'
  else if (name.startsWith('-') || name.startsWith('.')) problem = 'it cannot start with - or .'
  else if (name.endsWith('@')) problem = 'it cannot end with @ (that names a systemd template unit)'
  if (problem) {
    throw new UsageError('name.invalid', `invalid container name ${JSON.stringify(name)}: ${problem}`, {
      hint: 'choose a name like etcd or etcd-1',
      data: { name },
    })
  }
}

/** Are two sets of --set values the same (install's no-op, update's "nothing to do")? */
export function sameValues(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k])
}
