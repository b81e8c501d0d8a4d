/**
 * `Systemd` over D-Bus (org.freedesktop.systemd1), with dbus-next.
 *
 * Jobs: like coreos/go-systemd, we Subscribe() and match JobRemoved once per
 * connection, BEFORE the first StartUnit/StopUnit/RestartUnit, so a job that
 * finishes before the method reply arrives is not missed: JobRemoved signals
 * that arrive while a job call is in flight are kept until the reply names
 * the job path, then matched.
 *
 * We use dbus-next's low-level `bus.call(Message)` rather than proxy objects:
 * no introspection round-trips, and every call gets a timeout (dbus-next
 * itself never times out a call, nor fails pending calls when the socket
 * closes).
 *
 * dbus-next notes: `systemBus()` ignores an explicit address, so we connect
 * with `sessionBus({busAddress})`, which is "connect to this address"
 * (EXTERNAL auth with our uid). uint64 properties arrive as BigInt.
 */
import type { EventEmitter } from 'node:events'
import * as dbus from 'dbus-next'
import { SystemdError } from '../errors'
import {
  jobFailedError,
  OK_JOB_RESULTS,
  unitNotFoundError,
  unitTypeInterface,
  unreachableError,
  type JobMode,
  type JobResult,
  type JobVerb,
  type Systemd,
  type UnitFileChange,
  type UnitState,
} from './systemd'

const DEST = 'org.freedesktop.systemd1'
const PATH = '/org/freedesktop/systemd1'
const MANAGER = 'org.freedesktop.systemd1.Manager'
const UNIT = 'org.freedesktop.systemd1.Unit'
const PROPERTIES = 'org.freedesktop.DBus.Properties'
const DEFAULT_ADDRESS = 'unix:path=/run/dbus/system_bus_socket'
const JOB_REMOVED_MATCH = `type='signal',sender='${DEST}',path='${PATH}',interface='${MANAGER}',member='JobRemoved'`

export interface ConnectSystemdOptions {
  /** D-Bus address; default $DBUS_SYSTEM_BUS_ADDRESS, else the system bus socket. */
  busAddress?: string
  /** Give up connecting after this long (default 10 s). */
  connectTimeoutMs?: number
  /** Give up on a method reply after this long (default 25 s, D-Bus's own default). */
  callTimeoutMs?: number
  /** Give up waiting for a job to finish after this long (default 10 min). */
  jobTimeoutMs?: number
}

interface JobEnd {
  unit: string
  result: string
}

/** Connect to systemd's bus and check that systemd answers. */
export async function connectSystemd(opts: ConnectSystemdOptions = {}): Promise<DbusSystemd> {
  const address = opts.busAddress ?? process.env.DBUS_SYSTEM_BUS_ADDRESS ?? DEFAULT_ADDRESS
  let bus: dbus.MessageBus
  try {
    bus = dbus.sessionBus({ busAddress: address })
  } catch (err) {
    throw unreachableError(address, err)
  }
  const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`no answer within ${connectTimeoutMs} ms`)), connectTimeoutMs)
    const onConnect = (): void => {
      cleanup()
      resolve()
    }
    const fail = (err: unknown): void => {
      cleanup()
      try {
        bus.disconnect()
      } catch {
        // already closed
      }
      reject(unreachableError(address, err))
    }
    const cleanup = (): void => {
      clearTimeout(timer)
      bus.removeListener('connect', onConnect)
      bus.removeListener('error', fail)
    }
    bus.on('connect', onConnect)
    bus.on('error', fail)
  })
  const systemd = new DbusSystemd(bus, address, opts)
  // Fail now, with the right error, if the bus is there but systemd is not on it.
  await systemd.version()
  return systemd
}

export class DbusSystemd implements Systemd {
  private readonly callTimeoutMs: number
  private readonly jobTimeoutMs: number
  private closedError: SystemdError | undefined
  private readonly pending = new Set<(err: Error) => void>()
  private subscribed: Promise<void> | undefined
  /** Waiters for JobRemoved, by job object path. */
  private readonly jobWaiters = new Map<string, (end: JobEnd) => void>()
  /** JobRemoved seen while a job call was in flight and nobody waited yet. */
  private readonly earlyJobEnds = new Map<string, JobEnd>()
  private jobCallsInFlight = 0

  constructor(
    private readonly bus: dbus.MessageBus,
    readonly address: string,
    opts: ConnectSystemdOptions = {},
  ) {
    this.callTimeoutMs = opts.callTimeoutMs ?? 25_000
    this.jobTimeoutMs = opts.jobTimeoutMs ?? 600_000
    bus.on('message', (msg) => this.onMessage(msg))
    bus.on('error', (err) => this.shutDown(unreachableError(this.address, err)))
    // dbus-next does not forward the stream's end; without this, calls made
    // after systemd's bus went away would wait for their timeout.
    const conn = (bus as unknown as { _connection?: EventEmitter })._connection
    conn?.on('end', () => this.shutDown(unreachableError(this.address, new Error('connection closed'))))
  }

  async version(): Promise<string> {
    const [v] = await this.call(PROPERTIES, 'Get', 'ss', [MANAGER, 'Version'])
    return String((v as dbus.Variant).value)
  }

  async reload(): Promise<void> {
    await this.call(MANAGER, 'Reload', '', [])
  }

  async enableUnitFiles(files: string[]): Promise<{ changes: UnitFileChange[] }> {
    const [, changes] = await this.call(MANAGER, 'EnableUnitFiles', 'asbb', [files, false, false], files.join(' '))
    return { changes: toChanges(changes) }
  }

  async disableUnitFiles(files: string[]): Promise<{ changes: UnitFileChange[] }> {
    const [changes] = await this.call(MANAGER, 'DisableUnitFiles', 'asb', [files, false], files.join(' '))
    return { changes: toChanges(changes) }
  }

  startUnit(name: string, mode: JobMode = 'replace'): Promise<JobResult> {
    return this.runJob('start', 'StartUnit', name, mode)
  }

  stopUnit(name: string, mode: JobMode = 'replace'): Promise<JobResult> {
    return this.runJob('stop', 'StopUnit', name, mode)
  }

  restartUnit(name: string, mode: JobMode = 'replace'): Promise<JobResult> {
    return this.runJob('restart', 'RestartUnit', name, mode)
  }

  async unitState(name: string): Promise<UnitState> {
    // LoadUnit (unlike GetUnit) answers for units that do not exist, with LoadState not-found.
    const [path] = (await this.call(MANAGER, 'LoadUnit', 's', [name], name)) as [string]
    const [all] = (await this.call(PROPERTIES, 'GetAll', 's', [UNIT], name, path)) as [Record<string, dbus.Variant>]
    const prop = (key: string): unknown => all[key]?.value
    const state: UnitState = {
      loadState: String(prop('LoadState') ?? ''),
      activeState: String(prop('ActiveState') ?? ''),
      subState: String(prop('SubState') ?? ''),
      unitFileState: String(prop('UnitFileState') ?? ''),
      activeEnterTimestampMonotonic: BigInt((prop('ActiveEnterTimestampMonotonic') as bigint | undefined) ?? 0n),
      inactiveExitTimestampMonotonic: BigInt((prop('InactiveExitTimestampMonotonic') as bigint | undefined) ?? 0n),
    }
    const typeIface = unitTypeInterface(name)
    if (typeIface) {
      const result = await this.getProperty(path, typeIface, 'Result')
      if (typeof result === 'string') state.result = result
      if (typeIface.endsWith('.Service')) {
        const pid = await this.getProperty(path, typeIface, 'MainPID')
        if (typeof pid === 'number' && pid > 0) state.mainPid = pid
      }
    }
    return state
  }

  async close(): Promise<void> {
    if (this.closedError) return
    this.shutDown(new SystemdError('systemd.closed', 'the systemd connection was closed', { data: { address: this.address } }))
    try {
      this.bus.disconnect()
    } catch {
      // already gone
    }
  }

  // --- jobs ---------------------------------------------------------------

  private async runJob(verb: JobVerb, method: string, name: string, mode: JobMode): Promise<JobResult> {
    await this.subscribe()
    this.jobCallsInFlight++
    let jobPath: string
    let end: Promise<JobEnd>
    try {
      ;[jobPath] = (await this.call(MANAGER, method, 'ss', [name, mode], name)) as [string]
      const early = this.earlyJobEnds.get(jobPath)
      if (early) {
        this.earlyJobEnds.delete(jobPath)
        end = Promise.resolve(early)
      } else {
        end = this.waitForJob(jobPath, name)
      }
    } finally {
      if (--this.jobCallsInFlight === 0) this.earlyJobEnds.clear()
    }
    const { result } = await end
    if ((OK_JOB_RESULTS as readonly string[]).includes(result)) return result as JobResult
    throw jobFailedError(verb, name, result, await this.unitResult(name))
  }

  private waitForJob(jobPath: string, unit: string): Promise<JobEnd> {
    return new Promise<JobEnd>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.jobWaiters.delete(jobPath)
        this.pending.delete(onClose)
        reject(
          new SystemdError('systemd.job-timeout', `job ${jobPath} for ${unit} did not finish within ${this.jobTimeoutMs} ms`, {
            data: { unit, job: jobPath },
          }),
        )
      }, this.jobTimeoutMs)
      const onClose = (err: Error): void => {
        clearTimeout(timer)
        this.jobWaiters.delete(jobPath)
        reject(err)
      }
      this.pending.add(onClose)
      this.jobWaiters.set(jobPath, (end) => {
        clearTimeout(timer)
        this.pending.delete(onClose)
        resolve(end)
      })
    })
  }

  private subscribe(): Promise<void> {
    this.subscribed ??= (async () => {
      await this.callBus('AddMatch', 's', [JOB_REMOVED_MATCH])
      try {
        await this.call(MANAGER, 'Subscribe', '', [])
      } catch (err) {
        // A second Subscribe from the same client is harmless.
        if (!(err instanceof SystemdError && String(err.data?.dbusError).endsWith('AlreadySubscribed'))) throw err
      }
    })().catch((err) => {
      this.subscribed = undefined
      throw err
    })
    return this.subscribed
  }

  private onMessage(msg: dbus.Message): void {
    if (msg.type !== dbus.MessageType.SIGNAL || msg.interface !== MANAGER || msg.member !== 'JobRemoved') return
    const [, job, unit, result] = msg.body as [number, string, string, string]
    const waiter = this.jobWaiters.get(job)
    if (waiter) {
      this.jobWaiters.delete(job)
      waiter({ unit, result })
    } else if (this.jobCallsInFlight > 0) {
      this.earlyJobEnds.set(job, { unit, result })
    }
  }

  /** The unit's own Result (exit-code, signal, timeout, ...), for error messages; undefined if unavailable. */
  private async unitResult(name: string): Promise<string | undefined> {
    const iface = unitTypeInterface(name)
    if (!iface || this.closedError) return undefined
    try {
      const [path] = (await this.call(MANAGER, 'LoadUnit', 's', [name], name)) as [string]
      const r = await this.getProperty(path, iface, 'Result')
      return typeof r === 'string' ? r : undefined
    } catch {
      return undefined
    }
  }

  // --- plumbing -----------------------------------------------------------

  private async getProperty(path: string, iface: string, prop: string): Promise<unknown> {
    try {
      const [v] = await this.call(PROPERTIES, 'Get', 'ss', [iface, prop], undefined, path)
      return (v as dbus.Variant).value
    } catch (err) {
      if (err instanceof SystemdError && err.code === 'systemd.dbus') return undefined
      throw err
    }
  }

  private callBus(member: string, signature: string, body: unknown[]): Promise<unknown[]> {
    const msg = new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member,
      signature,
      body,
    })
    return this.send(msg, member)
  }

  /** Call a systemd method; `unit` names the unit in errors. */
  private call(iface: string, member: string, signature: string, body: unknown[], unit?: string, path = PATH): Promise<unknown[]> {
    const msg = new dbus.Message({ destination: DEST, path, interface: iface, member, signature, body })
    return this.send(msg, member, unit)
  }

  private send(msg: dbus.Message, member: string, unit?: string): Promise<unknown[]> {
    if (this.closedError) return Promise.reject(this.closedError)
    return new Promise<unknown[]>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer)
        this.pending.delete(onClose)
      }
      const onClose = (err: Error): void => {
        done()
        reject(err)
      }
      const timer = setTimeout(() => {
        done()
        reject(
          new SystemdError('systemd.timeout', `no answer from systemd to ${member} within ${this.callTimeoutMs} ms`, {
            hint: 'is systemd busy or hung? see `systemctl list-jobs`',
            data: { member, ...(unit ? { unit } : {}) },
          }),
        )
      }, this.callTimeoutMs)
      this.pending.add(onClose)
      let sent: Promise<dbus.Message | null>
      try {
        sent = this.bus.call(msg)
      } catch (err) {
        done()
        reject(unreachableError(this.address, err))
        return
      }
      sent.then(
        (reply) => {
          done()
          resolve(reply?.body ?? [])
        },
        (err: unknown) => {
          done()
          reject(fromDbusError(err, member, unit))
        },
      )
    })
  }

  private shutDown(err: SystemdError): void {
    if (this.closedError) return
    this.closedError = err
    for (const fail of [...this.pending]) fail(err)
    this.pending.clear()
    this.jobWaiters.clear()
  }
}

function toChanges(raw: unknown): UnitFileChange[] {
  return ((raw ?? []) as [string, string, string][]).map(([type, file, dest]) => ({ type, file, dest }))
}

function fromDbusError(err: unknown, member: string, unit?: string): SystemdError {
  if (err instanceof SystemdError) return err
  if (err instanceof dbus.DBusError) {
    const type = err.type
    if (unit && (type === 'org.freedesktop.systemd1.NoSuchUnit' || type === 'org.freedesktop.DBus.Error.FileNotFound')) {
      return unitNotFoundError(unit, err)
    }
    const what = unit ? `${member} ${unit}` : member
    const hint =
      type === 'org.freedesktop.DBus.Error.AccessDenied' || type === 'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired'
        ? 'run as root'
        : type === 'org.freedesktop.DBus.Error.ServiceUnknown'
          ? 'systemd is not on this bus: is it running as PID 1?'
          : undefined
    return new SystemdError('systemd.dbus', `${what}: ${err.text || type}`, {
      hint,
      cause: err,
      data: { dbusError: type, member, ...(unit ? { unit } : {}) },
    })
  }
  const message = err instanceof Error ? err.message : String(err)
  return new SystemdError('systemd.dbus', `${member}: ${message}`, { cause: err, data: { member } })
}
