/**
 * The systemd interface: the few Manager calls sysctr needs, with one
 * implementation over D-Bus (`DbusSystemd`, dbus-systemd.ts) and one
 * in-process fake for tests (`FakeSystemd`, harness/fake-systemd.ts). The contract
 * suite in test/component/systemd-contract.ts runs against both, so the fake
 * cannot drift from the real thing.
 *
 * Contract every implementation keeps:
 * - `startUnit`/`stopUnit`/`restartUnit` resolve only once the job they
 *   queued has finished (JobRemoved), never when it was merely queued.
 *   'done' and 'skipped' resolve; any other job result rejects with
 *   SystemdError 'systemd.job-failed' (data: {unit, result, unitResult?}).
 * - A unit that does not exist (no unit file) rejects with
 *   'systemd.unit-not-found' (data: {unit}) - StartUnit/StopUnit on it.
 *   `unitState` of such a unit does not throw: loadState is 'not-found'.
 * - No connection to systemd -> 'systemd.unreachable' with a hint.
 * - enable/disable report the symlinks made or removed as systemd does:
 *   paths as seen by systemd (under its root), not by the test's host.
 */
import { SystemdError } from '../errors'

/** How a job ended, as in the JobRemoved signal. */
export type JobResult = 'done' | 'canceled' | 'timeout' | 'failed' | 'dependency' | 'skipped'

/** StartUnit's mode argument. */
export type JobMode = 'replace' | 'fail' | 'isolate' | 'ignore-dependencies' | 'ignore-requirements'

export interface UnitFileChange {
  /** 'symlink' | 'unlink' (systemd may also report e.g. 'masked'). */
  type: string
  /** The symlink made or removed. */
  file: string
  /** What it points at ('' for unlink). */
  dest: string
}

export interface UnitState {
  /** loaded | not-found | bad-setting | error | masked */
  loadState: string
  /** active | reloading | inactive | failed | activating | deactivating */
  activeState: string
  /** Type-specific: running, exited, dead, failed, ... */
  subState: string
  /** enabled | disabled | static | masked | linked | ... ; '' when not found. */
  unitFileState: string
  /** CLOCK_MONOTONIC µs when the unit last entered 'active'; 0n if never. */
  activeEnterTimestampMonotonic: bigint
  /** CLOCK_MONOTONIC µs when the unit last left 'inactive'; 0n if never. */
  inactiveExitTimestampMonotonic: bigint
  /** Service/socket/mount Result: success, exit-code, signal, timeout, ... */
  result?: string
  /** The service's main process, when it has one (0 is reported as undefined). */
  mainPid?: number
}

export interface Systemd {
  /** daemon-reload: re-read all unit files. Resolves when the reload is done. */
  reload(): Promise<void>
  /** EnableUnitFiles(files, runtime=false, force=false). `files` are unit names or absolute paths. */
  enableUnitFiles(files: string[]): Promise<{ changes: UnitFileChange[] }>
  /** DisableUnitFiles(files, runtime=false). */
  disableUnitFiles(files: string[]): Promise<{ changes: UnitFileChange[] }>
  startUnit(name: string, mode?: JobMode): Promise<JobResult>
  stopUnit(name: string, mode?: JobMode): Promise<JobResult>
  restartUnit(name: string, mode?: JobMode): Promise<JobResult>
  unitState(name: string): Promise<UnitState>
  close(): Promise<void>
}

/** Job results after which the unit is where the caller asked it to be (or need not move). */
export const OK_JOB_RESULTS: readonly JobResult[] = ['done', 'skipped']

export type JobVerb = 'start' | 'stop' | 'restart'

/** The error for a job that ended in anything but done/skipped. */
export function jobFailedError(verb: JobVerb, unit: string, result: string, unitResult?: string): SystemdError {
  const why = unitResult && unitResult !== 'success' ? ` (unit result: ${unitResult})` : ''
  const hint =
    verb === 'stop'
      ? undefined
      : `see \`systemctl status ${unit}\` and \`journalctl -u ${unit}\``
  return new SystemdError('systemd.job-failed', `${verb} job for ${unit} ended with result '${result}'${why}`, {
    hint,
    data: { unit, verb, result, ...(unitResult ? { unitResult } : {}) },
  })
}

export function unitNotFoundError(unit: string, cause?: unknown): SystemdError {
  return new SystemdError('systemd.unit-not-found', `unit ${unit} not found`, {
    hint: 'is the unit file installed, and was systemd reloaded since?',
    data: { unit },
    cause,
  })
}

export function unreachableError(address: string, cause?: unknown): SystemdError {
  const why = cause instanceof Error ? `: ${cause.message}` : ''
  return new SystemdError('systemd.unreachable', `cannot reach systemd over D-Bus at ${address}${why}`, {
    hint: 'is systemd running (and are you root)? To prepare an image without a running systemd, use --root',
    data: { address },
    cause,
  })
}

/**
 * The D-Bus interface that carries a unit type's `Result`/`MainPID`
 * properties, from the unit name's suffix; undefined for types without one.
 */
export function unitTypeInterface(name: string): string | undefined {
  const suffix = name.slice(name.lastIndexOf('.') + 1)
  const known: Record<string, string> = {
    service: 'Service',
    socket: 'Socket',
    mount: 'Mount',
    swap: 'Swap',
    timer: 'Timer',
    path: 'Path',
    automount: 'Automount',
    scope: 'Scope',
  }
  return known[suffix] ? `org.freedesktop.systemd1.${known[suffix]}` : undefined
}
