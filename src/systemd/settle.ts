/**
 * After a start or restart job ended `done`: is the unit still up a few
 * seconds later? A `Type=simple` service's start job is done as soon as
 * runc was forked, so a container that exits at once (a bad binary, a
 * missing file) would be reported as started while systemd restarts it into
 * `failed`. `watchUnit` polls the unit's state over D-Bus (the Systemd
 * interface, never systemctl's text) for the settle time and reports the
 * first sign of trouble:
 *
 * - ActiveState `failed`, `inactive` or `deactivating` (it stopped);
 * - SubState `auto-restart` (it exited and Restart= is bringing it back);
 * - InactiveExitTimestampMonotonic moved (it was restarted between polls).
 *
 * The wait is bounded by `ms`; 0 returns at once with no verdict.
 */
import { UsageError } from '../errors'
import type { Systemd, UnitState } from './systemd'

/** The default settle time of install --now, update and rollback (seconds); SYSCTR_SETTLE_TIME or --settle change it. */
export const DEFAULT_SETTLE_SECONDS = 3

export interface SettleFailure {
  unit: string
  /** What happened, lower case: "failed (result: exit-code)". */
  why: string
  state: UnitState
}

const POLL_MS = 200

export async function watchUnit(
  systemd: Pick<Systemd, 'unitState'>,
  unit: string,
  ms: number,
  sleep: (ms: number) => Promise<void> = (t) => new Promise((r) => setTimeout(r, t)),
): Promise<SettleFailure | undefined> {
  if (!(ms > 0)) return undefined
  const end = Date.now() + ms
  const first = await systemd.unitState(unit)
  let state = first
  for (;;) {
    const why = trouble(first, state)
    if (why) return { unit, why, state }
    const left = end - Date.now()
    if (left <= 0) return undefined
    await sleep(Math.min(POLL_MS, left))
    state = await systemd.unitState(unit)
  }
}

function trouble(first: UnitState, s: UnitState): string | undefined {
  const result = s.result && s.result !== 'success' ? ` (result: ${s.result})` : ''
  if (s.activeState === 'failed') return `failed${result}`
  if (s.activeState === 'inactive' || s.activeState === 'deactivating') return `stopped${result}`
  if (s.subState === 'auto-restart') return `exited and is being restarted by systemd${result}`
  if (s.inactiveExitTimestampMonotonic !== first.inactiveExitTimestampMonotonic) return `was restarted by systemd${result}`
  return undefined
}

/** The settle time in ms from a --settle value (seconds) or SYSCTR_SETTLE_TIME; undefined input: the default. */
export function settleMs(seconds: string | number | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const raw = seconds ?? env.SYSCTR_SETTLE_TIME
  if (raw === undefined || raw === '') return DEFAULT_SETTLE_SECONDS * 1000
  const n = typeof raw === 'number' ? raw : Number(raw)
  if (typeof raw === 'string' && raw.trim() === '' || !Number.isFinite(n) || n < 0) {
    const from = seconds !== undefined ? `--settle ${seconds}` : `SYSCTR_SETTLE_TIME=${raw}`
    throw new UsageError('usage.bad-settle', `bad settle time ${from}: expected seconds (0 or more)`, { hint: 'e.g. --settle 3, or --settle 0 to only wait for the start job' })
  }
  return Math.round(n * 1000)
}
