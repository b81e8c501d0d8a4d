/**
 * Template values: `--set` parsing, the values sysctr computes for every
 * container, and their precedence.
 *
 * Precedence (highest first): --set > computed defaults > the image's
 * manifest.json `defaultValues`. The keys in FIXED_KEYS describe the deployment
 * itself (its name, directory, image, the runtime command lines); as in Atomic,
 * they always take the computed value, and `--set` of one is a usage error
 * rather than a silent no-op.
 *
 * The checks on values live with what they protect: unit-file safety in
 * systemd/unit-quote.ts, container names in deployment/name.ts.
 */
import { UsageError } from '../errors'
import { allProcessCapabilities } from '../runtime/capabilities'
import { systemdQuote } from '../systemd/unit-quote'

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

export interface RuntimeCommands {
  EXEC_START: string
  EXEC_STOP: string
  EXEC_STARTPRE: string
  EXEC_STOPPOST: string
}

/**
 * The runtime command lines for the unit (ExecStart= etc.). One place, so the
 * integrator can adjust them. runc runs in the foreground. ExecStop is
 * `RUNTIME kill NAME` (SIGTERM to the container's init), as Atomic gave it:
 * it reaches the container directly, even while runc 1.1 waits on its
 * sd_notify proxy. A stale container of the same name is deleted before
 * start and after stop (`-`: a failure there does not fail the unit); after
 * the stop timeout (STOP_TIMEOUT, TimeoutStopSec=) systemd kills what is left
 * and ExecStopPost's `delete --force` removes the container.
 */
export function runtimeCommands(runtime: string, destDir: string, name: string): RuntimeCommands {
  const rt = systemdQuote(runtime)
  const n = systemdQuote(name)
  return {
    EXEC_START: `${rt} run --no-new-keyring --bundle ${systemdQuote(destDir)} ${n}`,
    EXEC_STOP: `${rt} kill ${n}`,
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
  /** $ATOMIC: the path of the tool that installed the container (Atomic gave its own CLI's). */
  atomic?: string
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
    // As Atomic: the digest's hex, without its `sha256:` prefix.
    IMAGE_ID: ctx.imageId.replace(/^sha256:/, ''),
    ...(ctx.atomic ? { ATOMIC: ctx.atomic } : {}),
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

/**
 * sysctr's defaults that an image's manifest may change (they sit below
 * manifest defaultValues): STOP_TIMEOUT, the seconds `systemctl stop` waits
 * for the container before killing it (TimeoutStopSec= added to a unit that
 * sets none); ADDTL_MOUNTS, spliced into the mounts of Atomic's etcd
 * config.json.template (Atomic required a --set for it; empty here).
 */
export const SOFT_DEFAULTS: Readonly<Record<string, string>> = { STOP_TIMEOUT: '10', ADDTL_MOUNTS: '' }

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

/**
 * A `--set` of a key sysctr fixes is a usage error. install and update call
 * this on the parsed flags before anything else (no lock, no network), and
 * resolveValues again on what it merges.
 */
export function refuseFixedKeys(set: Record<string, string>): void {
  const fixed = Object.keys(set).filter((k) => FIXED_KEYS.includes(k))
  if (fixed.length > 0) {
    throw new UsageError(
      'values.fixed',
      `${fixed.join(', ')} ${fixed.length > 1 ? 'are' : 'is'} set by sysctr for every container and cannot be changed with --set`,
      { hint: 'drop the --set; choose the container name with --name', data: { keys: fixed } },
    )
  }
}

/** Levenshtein distance (for "did you mean"). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = cur
  }
  return prev[b.length]!
}

/** The candidate closest to `key` by edit distance (ties: the first in sorted order); undefined when there is none. */
export function nearestKey(key: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestD = Infinity
  for (const c of [...new Set(candidates)].sort()) {
    const d = editDistance(key.toLowerCase(), c.toLowerCase())
    if (d < bestD) {
      best = c
      bestD = d
    }
  }
  return best
}

/** Merge values: --set > computed > manifest defaultValues. */
export function resolveValues(input: {
  manifestDefaults?: Record<string, string>
  computed: Record<string, string>
  set?: Record<string, string>
}): ResolvedValues {
  const set = input.set ?? {}
  refuseFixedKeys(set)
  const values: Record<string, string> = {}
  const sources: Record<string, ValueSource> = {}
  const layer = (from: Record<string, string> | undefined, source: ValueSource): void => {
    for (const [k, v] of Object.entries(from ?? {})) {
      values[k] = v
      sources[k] = source
    }
  }
  layer(SOFT_DEFAULTS, 'computed')
  layer(input.manifestDefaults, 'manifest')
  layer(input.computed, 'computed')
  layer(set, 'set')
  return { values, sources }
}

/** Are two sets of --set values the same (install's no-op, update's "nothing to do")? */
export function sameValues(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k])
}
