/**
 * watchUnit (systemd/settle.ts): the verdict from a sequence of unit states
 * as D-Bus would report them, and the settle time from --settle /
 * SYSCTR_SETTLE_TIME. The sleep is injected: no test waits on a clock.
 */
import { describe, expect, it } from 'vitest'
import { settleMs, watchUnit } from '../../src/systemd/settle'
import type { UnitState } from '../../src/systemd/systemd'
import { SysctrError } from '../../src/errors'

const up: UnitState = {
  loadState: 'loaded',
  activeState: 'active',
  subState: 'running',
  unitFileState: 'enabled',
  activeEnterTimestampMonotonic: 10n,
  inactiveExitTimestampMonotonic: 9n,
  result: 'success',
}

/** A unit whose state is states[i] at the i-th look, the last one from then on. */
function scripted(states: Partial<UnitState>[]) {
  let i = 0
  return {
    looks: () => i,
    systemd: { unitState: async () => ({ ...up, ...states[Math.min(i++, states.length - 1)] }) },
  }
}
const noSleep = async () => {}

describe('watchUnit', () => {
  it('a unit that stays up: no verdict', async () => {
    const s = scripted([{}])
    expect(await watchUnit(s.systemd, 'a.service', 50, noSleep)).toBeUndefined()
  })

  const cases: [string, Partial<UnitState>][] = [
    ['failed (result: exit-code)', { activeState: 'failed', subState: 'failed', result: 'exit-code' }],
    ['exited and is being restarted by systemd (result: exit-code)', { activeState: 'activating', subState: 'auto-restart', result: 'exit-code' }],
    ['stopped', { activeState: 'inactive', subState: 'dead' }],
    ['was restarted by systemd', { inactiveExitTimestampMonotonic: 99n }],
  ]
  it.each(cases)('reports "%s"', async (why, later) => {
    const s = scripted([{}, {}, later])
    const f = await watchUnit(s.systemd, 'a.service', 60_000, noSleep)
    expect(f?.why).toBe(why)
    expect(f?.unit).toBe('a.service')
  })

  it('0 (or less) does not look at the unit at all', async () => {
    const s = scripted([{ activeState: 'failed' }])
    expect(await watchUnit(s.systemd, 'a.service', 0, noSleep)).toBeUndefined()
    expect(s.looks()).toBe(0)
  })
})

describe('settleMs', () => {
  it('the flag, else SYSCTR_SETTLE_TIME, else 3 s', () => {
    expect(settleMs(undefined, {})).toBe(3000)
    expect(settleMs(undefined, { SYSCTR_SETTLE_TIME: '0.5' })).toBe(500)
    expect(settleMs('0', { SYSCTR_SETTLE_TIME: '7' })).toBe(0)
    expect(settleMs('10', {})).toBe(10_000)
  })

  it('refuses what is not a number of seconds (usage, exit 2)', () => {
    for (const [flag, envv] of [['soon', undefined], ['-1', undefined], [undefined, 'x'], [' ', undefined]] as const) {
      let err: unknown
      try {
        settleMs(flag, envv === undefined ? {} : { SYSCTR_SETTLE_TIME: envv })
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(SysctrError)
      expect((err as SysctrError).exitCode).toBe(2)
    }
  })
})
