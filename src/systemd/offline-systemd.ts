/**
 * `Systemd` for a root directory with no systemd running in it (`--root DIR`:
 * an OS tree being composed, a disk image being assembled). Only what
 * `systemctl --root=DIR` can do offline:
 * - reload: nothing to reload (the tree's systemd reads its units when it boots);
 * - enable/disable: the [Install] symlinks on disk (enablement.ts), exactly
 *   as `systemctl --root=DIR enable|disable` makes them, link targets as seen
 *   from inside DIR;
 * - unitState: read from the files: loadState loaded/not-found, unitFileState
 *   enabled/disabled/static, and always inactive/dead (nothing runs);
 * - start/stop/restart: refused with SystemdError 'systemd.offline': there is
 *   no systemd under DIR to run a job.
 */
import { SystemdError } from '../errors'
import { DEFAULT_UNIT_DIRS, disableUnits, enableUnits, findUnitFile, linkedUnits, unitFileState, type UnitTree } from './enablement'
import type { JobResult, Systemd, UnitFileChange, UnitState } from './systemd'

export interface OfflineSystemdOptions {
  /** The directory the tree's systemd will see as `/`. */
  root: string
  /** Unit search path inside root, highest priority first; default systemd's system unit path. */
  unitDirs?: string[]
}

export class OfflineSystemd implements Systemd {
  readonly root: string
  private readonly tree: UnitTree
  /** The units linked from *.wants/*.requires, read once; dropped whenever this object changes links. */
  private linked?: Promise<Set<string>>

  constructor(opts: OfflineSystemdOptions) {
    this.root = opts.root
    this.tree = { root: opts.root, unitDirs: opts.unitDirs ?? DEFAULT_UNIT_DIRS }
  }

  async reload(): Promise<void> {
    // Nothing is running: the tree's systemd loads its units when it boots. Links are read again.
    this.linked = undefined
  }

  async enableUnitFiles(files: string[]): Promise<{ changes: UnitFileChange[] }> {
    this.linked = undefined
    try {
      return { changes: await enableUnits(this.tree, files) }
    } finally {
      this.linked = undefined
    }
  }

  async disableUnitFiles(files: string[]): Promise<{ changes: UnitFileChange[] }> {
    this.linked = undefined
    try {
      return { changes: await disableUnits(this.tree, files) }
    } finally {
      this.linked = undefined
    }
  }

  startUnit(name: string): Promise<JobResult> {
    return Promise.reject(this.offline('start', name))
  }

  stopUnit(name: string): Promise<JobResult> {
    return Promise.reject(this.offline('stop', name))
  }

  restartUnit(name: string): Promise<JobResult> {
    return Promise.reject(this.offline('restart', name))
  }

  async unitState(name: string): Promise<UnitState> {
    const found = await findUnitFile(this.tree, name)
    return {
      loadState: found ? 'loaded' : 'not-found',
      activeState: 'inactive',
      subState: 'dead',
      unitFileState: found ? await unitFileState(this.tree, name, found.file, await (this.linked ??= linkedUnits(this.tree))) : '',
      activeEnterTimestampMonotonic: 0n,
      inactiveExitTimestampMonotonic: 0n,
    }
  }

  async close(): Promise<void> {}

  private offline(verb: string, unit: string): SystemdError {
    return new SystemdError('systemd.offline', `cannot ${verb} ${unit}: no systemd runs under ${this.root} (--root installs offline)`, {
      hint: 'units installed with --root start when that root boots; drop --now',
      data: { unit, verb, root: this.root },
    })
  }
}
