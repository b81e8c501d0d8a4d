/**
 * An in-process `Systemd` for fast tests of install/uninstall. It reads real
 * unit files from a directory tree (`root`, e.g. a temp dir standing for /),
 * makes and removes the real .wants/.requires symlinks, and keeps unit
 * states in memory. It runs nothing.
 *
 * What it models (and the contract suite checks against real systemd):
 * - Units are loaded on first use and kept until reload() (systemd 252 also
 *   loads a never-seen unit on demand; a changed file needs a reload).
 * - enable/disable: the symlinks of [Install] (WantedBy=, RequiredBy=, Alias=,
 *   Also=) made and removed on disk by enablement.ts, as systemctl does.
 * - start: pulls in Requires=/BindsTo=/Wants=/Requisite= dependencies and
 *   starts them in After=/Before= order (each start gets a later monotonic
 *   timestamp); a unit whose requirement failed gets result 'dependency'.
 *   Type=oneshot without RemainAfterExit= goes back to inactive (dead).
 * - stop: also stops active units that Requires=/BindsTo= the stopped one.
 * - Two starts of one unit at once are one job (the second joins the first).
 * - A unit fails to start when configured with failUnit(), or by default when
 *   its ExecStart= runs `false` (/bin/false, /usr/bin/false).
 * Not modelled: Conflicts=, conditions, timeouts, restart policies, templates
 * (foo@.service), drop-ins, masking.
 */
import { SystemdError } from '../src/errors'
import {
  jobFailedError,
  OK_JOB_RESULTS,
  unitNotFoundError,
  type JobMode,
  type JobResult,
  type JobVerb,
  type Systemd,
  type UnitFileChange,
  type UnitState,
} from '../src/systemd/systemd'
import { UnitFile, splitUnitList } from '../src/systemd/unit-file'
import { DEFAULT_UNIT_DIRS, disableUnits, enableUnits, findUnitFile, unitFileState, type UnitTree } from '../src/systemd/enablement'

export interface FakeSystemdOptions {
  /** The directory standing for `/`; unit dirs and reported paths are relative to it. */
  root: string
  /** Unit search path inside root, highest priority first; the first is where enable writes links. */
  unitDirs?: string[]
  /**
   * Decide whether a unit's start fails and with which unit Result
   * (e.g. 'exit-code'); undefined means it starts. Default: ExecStart runs `false`.
   */
  failsToStart?: (unit: string, file: UnitFile) => string | undefined
  /** CLOCK_MONOTONIC stand-in in µs; default: a counter that advances 1000 µs per read. */
  clock?: () => bigint
}

/** One state change, in the order they happened. */
export interface FakeEvent {
  unit: string
  event: 'start' | 'active' | 'failed' | 'stop'
  at: bigint
}

interface LoadedUnit {
  name: string
  /** Path of the unit file as systemd would report it (inside root). */
  fragmentPath?: string
  file?: UnitFile
  activeState: string
  subState: string
  result: string
  activeEnter: bigint
  inactiveExit: bigint
  mainPid?: number
}


export class FakeSystemd implements Systemd {
  readonly root: string
  readonly unitDirs: string[]
  /** Every state change so far, oldest first. */
  readonly events: FakeEvent[] = []
  private readonly units = new Map<string, LoadedUnit>()
  private readonly failing = new Map<string, string>()
  /** Start jobs under way, by unit name. */
  private readonly starting = new Map<string, Promise<JobResult>>()
  private readonly failsToStart: (unit: string, file: UnitFile) => string | undefined
  private readonly clock: () => bigint
  private nextPid = 1000
  private closed = false

  constructor(opts: FakeSystemdOptions) {
    this.root = opts.root
    this.unitDirs = opts.unitDirs ?? DEFAULT_UNIT_DIRS
    this.failsToStart = opts.failsToStart ?? execStartRunsFalse
    let t = 1_000_000n
    this.clock = opts.clock ?? (() => (t += 1000n))
  }

  /** Make `unit`'s next starts fail with this unit Result (default 'exit-code'); null clears. */
  failUnit(unit: string, result: string | null = 'exit-code'): void {
    if (result === null) this.failing.delete(unit)
    else this.failing.set(unit, result)
  }

  async reload(): Promise<void> {
    this.checkOpen()
    // Keep runtime state, re-read files: like daemon-reload.
    for (const [name, u] of this.units) {
      const found = await this.findUnitFile(name)
      u.fragmentPath = found?.path
      u.file = found?.file
      if (!found && u.activeState === 'inactive' && u.subState === 'dead') this.units.delete(name)
    }
  }

  async enableUnitFiles(files: string[]): Promise<{ changes: UnitFileChange[] }> {
    this.checkOpen()
    return { changes: await enableUnits(this.tree(), files) }
  }

  async disableUnitFiles(files: string[]): Promise<{ changes: UnitFileChange[] }> {
    this.checkOpen()
    return { changes: await disableUnits(this.tree(), files) }
  }

  startUnit(name: string, _mode: JobMode = 'replace'): Promise<JobResult> {
    return this.job('start', name, async (u) => this.start(u, new Set()))
  }

  stopUnit(name: string, _mode: JobMode = 'replace'): Promise<JobResult> {
    return this.job('stop', name, async (u) => {
      this.stop(u)
      return 'done'
    })
  }

  restartUnit(name: string, _mode: JobMode = 'replace'): Promise<JobResult> {
    return this.job('restart', name, async (u) => {
      this.stop(u)
      return this.start(u, new Set())
    })
  }

  async unitState(name: string): Promise<UnitState> {
    this.checkOpen()
    const u = await this.load(name)
    const state: UnitState = {
      loadState: u.file ? 'loaded' : 'not-found',
      activeState: u.activeState,
      subState: u.subState,
      unitFileState: u.file ? await this.unitFileState(name, u.file) : '',
      activeEnterTimestampMonotonic: u.activeEnter,
      inactiveExitTimestampMonotonic: u.inactiveExit,
    }
    if (name.endsWith('.service')) {
      state.result = u.result
      if (u.mainPid !== undefined) state.mainPid = u.mainPid
    }
    return state
  }

  async close(): Promise<void> {
    this.closed = true
  }

  // --- jobs ---------------------------------------------------------------

  private async job(verb: JobVerb, name: string, run: (u: LoadedUnit) => Promise<JobResult>): Promise<JobResult> {
    this.checkOpen()
    const u = await this.load(name)
    // Like systemd: StartUnit on a unit with no file fails; StopUnit on one that is not loaded too.
    if (!u.file && (verb !== 'stop' || u.activeState === 'inactive')) throw unitNotFoundError(name)
    const result = await run(u)
    if ((OK_JOB_RESULTS as readonly string[]).includes(result)) return result
    throw jobFailedError(verb, name, result, name.endsWith('.service') ? u.result : undefined)
  }

  private start(u: LoadedUnit, visiting: Set<string>): Promise<JobResult> {
    if (u.activeState === 'active') return Promise.resolve('done')
    if (!u.file) return Promise.resolve('failed')
    if (visiting.has(u.name)) return Promise.resolve('done') // dependency cycle: systemd breaks it too
    // A start of a unit whose start is under way joins that job, as systemd merges jobs.
    const running = this.starting.get(u.name)
    if (running) return running
    const job = this.startNow(u, visiting).finally(() => this.starting.delete(u.name))
    this.starting.set(u.name, job)
    return job
  }

  private async startNow(u: LoadedUnit, visiting: Set<string>): Promise<JobResult> {
    const unit = u.file!
    const deps = (key: string): string[] => unit.getAll('Unit', key).flatMap(splitUnitList)
    const required = [...deps('Requires'), ...deps('BindsTo'), ...deps('Requisite')]
    const wanted = deps('Wants')
    // Order: dependencies this unit is After= first, then itself, then those it is Before=.
    const after = new Set(deps('After'))
    const pulled = [...new Set([...required, ...wanted])]
    const first = pulled.filter((d) => after.has(d))
    const later = pulled.filter((d) => !after.has(d))
    let depFailed = false
    const startDep = async (dep: string): Promise<void> => {
      const d = await this.load(dep)
      if (!d.file) {
        if (required.includes(dep)) depFailed = true
        return
      }
      const r = await this.start(d, visiting)
      if (r !== 'done' && required.includes(dep)) depFailed = true
    }
    for (const dep of first) await startDep(dep)
    if (depFailed) {
      visiting.delete(u.name)
      return 'dependency'
    }
    const result = this.activate(u)
    for (const dep of later) await startDep(dep)
    visiting.delete(u.name)
    return result
  }

  private activate(u: LoadedUnit): JobResult {
    const file = u.file!
    const service = u.name.endsWith('.service')
    u.inactiveExit = this.clock()
    this.events.push({ unit: u.name, event: 'start', at: u.inactiveExit })
    const failure = this.failing.get(u.name) ?? this.failsToStart(u.name, file)
    if (failure !== undefined) {
      u.activeState = 'failed'
      u.subState = 'failed'
      u.result = failure
      u.mainPid = undefined
      this.events.push({ unit: u.name, event: 'failed', at: this.clock() })
      return 'failed'
    }
    u.result = 'success'
    const type = file.get('Service', 'Type') ?? 'simple'
    const remain = parseBoolean(file.get('Service', 'RemainAfterExit'))
    if (service && type === 'oneshot' && !remain) {
      u.activeState = 'inactive'
      u.subState = 'dead'
      u.mainPid = undefined
      this.events.push({ unit: u.name, event: 'stop', at: this.clock() })
      return 'done'
    }
    u.activeEnter = this.clock()
    u.activeState = 'active'
    if (service) {
      u.subState = type === 'oneshot' ? 'exited' : 'running'
      u.mainPid = type === 'oneshot' ? undefined : this.nextPid++
    } else {
      u.subState = 'active'
    }
    this.events.push({ unit: u.name, event: 'active', at: u.activeEnter })
    return 'done'
  }

  private stop(u: LoadedUnit): void {
    if (u.activeState === 'inactive') return
    // Units that require this one go first.
    for (const other of this.units.values()) {
      if (other === u || other.activeState !== 'active' || !other.file) continue
      const needs = [...other.file.getAll('Unit', 'Requires'), ...other.file.getAll('Unit', 'BindsTo')].flatMap(splitUnitList)
      if (needs.includes(u.name)) this.stop(other)
    }
    const wasFailed = u.activeState === 'failed'
    u.activeState = 'inactive'
    u.subState = 'dead'
    u.mainPid = undefined
    if (!wasFailed) u.result = 'success'
    this.events.push({ unit: u.name, event: 'stop', at: this.clock() })
  }

  // --- files --------------------------------------------------------------

  private async load(name: string): Promise<LoadedUnit> {
    checkUnitName(name)
    let u = this.units.get(name)
    if (u && u.file) return u
    const found = await this.findUnitFile(name)
    // A load of the same unit that finished meanwhile made the one record of it.
    u = this.units.get(name) ?? u
    if (!u) {
      u = { name, activeState: 'inactive', subState: 'dead', result: 'success', activeEnter: 0n, inactiveExit: 0n }
      if (found) this.units.set(name, u)
    }
    u.fragmentPath = found?.path
    u.file = found?.file
    return u
  }

  private findUnitFile(name: string): Promise<{ path: string; file: UnitFile } | undefined> {
    return findUnitFile(this.tree(), name)
  }

  private unitFileState(name: string, file: UnitFile): Promise<string> {
    return unitFileState(this.tree(), name, file)
  }

  private tree(): UnitTree {
    return { root: this.root, unitDirs: this.unitDirs }
  }

  private checkOpen(): void {
    if (this.closed) throw new SystemdError('systemd.closed', 'the systemd connection was closed')
  }
}

function checkUnitName(name: string): void {
  if (!/^[A-Za-z0-9:_.\\@-]+\.(service|socket|target|mount|timer|path|slice|scope|swap|device|automount)$/.test(name)) {
    throw new SystemdError('systemd.dbus', `unit name ${name} is not valid`, {
      data: { dbusError: 'org.freedesktop.DBus.Error.InvalidArgs', unit: name },
    })
  }
}

function execStartRunsFalse(_unit: string, file: UnitFile): string | undefined {
  const exec = file.getAll('Service', 'ExecStart', { emptyResets: true })
  const runsFalse = exec.some((cmd) => /^[-@:+!]*(\/usr)?(\/bin\/)?false(\s|$)/.test(cmd))
  return runsFalse ? 'exit-code' : undefined
}

function parseBoolean(v: string | undefined): boolean {
  return v !== undefined && /^(1|yes|true|on)$/i.test(v)
}
