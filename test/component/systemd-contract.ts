/**
 * One contract, run against FakeSystemd (systemd-fake.test.ts) and a real
 * systemd booted with nspawn (test/integration/systemd-real.test.ts), so the
 * fake cannot drift from what systemd does.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { expect, it } from 'vitest'
import { SystemdError } from '../../src/errors'
import type { Systemd } from '../../src/systemd/systemd'

export interface ContractHarness {
  systemd: Systemd
  /** Write /etc/systemd/system/<name> as systemd sees it. */
  writeUnit(name: string, text: string): Promise<void>
  /** Where systemd's path `p` is on the test's filesystem. */
  hostPath(p: string): string
}

const UNIT_DIR = '/etc/systemd/system'

async function rejection(p: Promise<unknown>): Promise<SystemdError> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(SystemdError)
    return err as SystemdError
  }
  throw new Error('expected a rejection')
}

async function readlinkOrUndefined(p: string): Promise<string | undefined> {
  return fs.readlink(p).catch(() => undefined)
}

/** Define the contract tests; `h()` is called inside each test (after the caller's beforeAll). */
export function systemdContract(h: () => ContractHarness): void {
  const prefix = (): string => `t${randomBytes(3).toString('hex')}`

  it('reload makes a new unit file visible', async () => {
    const { systemd, writeUnit } = h()
    const name = `${prefix()}-new.service`
    expect((await systemd.unitState(name)).loadState).toBe('not-found')
    await writeUnit(name, '[Service]\nType=oneshot\nExecStart=/bin/true\n')
    await systemd.reload()
    const state = await systemd.unitState(name)
    expect(state.loadState).toBe('loaded')
    expect(state.activeState).toBe('inactive')
    expect(state.unitFileState).toBe('static')
  })

  it('enable makes the wants symlink and the unit enabled; disable removes it', async () => {
    const { systemd, writeUnit, hostPath } = h()
    const name = `${prefix()}-en.service`
    await writeUnit(name, '[Service]\nExecStart=/bin/sleep 1000\n\n[Install]\nWantedBy=multi-user.target\n')
    await systemd.reload()
    expect((await systemd.unitState(name)).unitFileState).toBe('disabled')

    const link = `${UNIT_DIR}/multi-user.target.wants/${name}`
    const { changes } = await systemd.enableUnitFiles([name])
    expect(changes).toEqual([{ type: 'symlink', file: link, dest: `${UNIT_DIR}/${name}` }])
    expect(await readlinkOrUndefined(hostPath(link))).toBe(`${UNIT_DIR}/${name}`)
    await systemd.reload()
    expect((await systemd.unitState(name)).unitFileState).toBe('enabled')

    const off = await systemd.disableUnitFiles([name])
    expect(off.changes).toEqual([{ type: 'unlink', file: link, dest: '' }])
    expect(await readlinkOrUndefined(hostPath(link))).toBeUndefined()
    await systemd.reload()
    expect((await systemd.unitState(name)).unitFileState).toBe('disabled')
  })

  it('starts a oneshot unit with RemainAfterExit: done, active (exited)', async () => {
    const { systemd, writeUnit } = h()
    const name = `${prefix()}-once.service`
    await writeUnit(name, '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n')
    await systemd.reload()
    expect(await systemd.startUnit(name)).toBe('done')
    const state = await systemd.unitState(name)
    expect(state).toMatchObject({ loadState: 'loaded', activeState: 'active', subState: 'exited', result: 'success' })
    expect(state.activeEnterTimestampMonotonic).toBeGreaterThan(0n)
    expect(state.mainPid).toBeUndefined()
  })

  it('starts, restarts and stops a simple unit', async () => {
    const { systemd, writeUnit } = h()
    const name = `${prefix()}-simple.service`
    await writeUnit(name, '[Service]\nExecStart=/bin/sleep 1000\n')
    await systemd.reload()
    expect(await systemd.startUnit(name)).toBe('done')
    const running = await systemd.unitState(name)
    expect(running).toMatchObject({ activeState: 'active', subState: 'running' })
    expect(running.mainPid).toBeGreaterThan(0)

    expect(await systemd.restartUnit(name)).toBe('done')
    const restarted = await systemd.unitState(name)
    expect(restarted.activeState).toBe('active')
    expect(restarted.mainPid).not.toBe(running.mainPid)
    expect(restarted.activeEnterTimestampMonotonic).toBeGreaterThan(running.activeEnterTimestampMonotonic)

    expect(await systemd.stopUnit(name)).toBe('done')
    const stopped = await systemd.unitState(name)
    expect(stopped).toMatchObject({ activeState: 'inactive', subState: 'dead' })
    expect(stopped.mainPid).toBeUndefined()
  })

  it('a unit that fails to start rejects with job-failed, result failed, unit result exit-code', async () => {
    const { systemd, writeUnit } = h()
    const name = `${prefix()}-fail.service`
    await writeUnit(name, '[Service]\nType=oneshot\nExecStart=/bin/false\n')
    await systemd.reload()
    const err = await rejection(systemd.startUnit(name))
    expect(err.code).toBe('systemd.job-failed')
    expect(err.exitCode).toBe(8)
    expect(err.data).toMatchObject({ unit: name, result: 'failed', unitResult: 'exit-code' })
    expect(err.message).toContain(name)
    expect(await systemd.unitState(name)).toMatchObject({ activeState: 'failed', result: 'exit-code' })
  })

  it('starts Requires=/After= dependencies first, in order; stopping the first stops the others', async () => {
    const { systemd, writeUnit } = h()
    const p = prefix()
    const [a, b, c] = [`${p}-a.service`, `${p}-b.service`, `${p}-c.service`]
    await writeUnit(a, '[Service]\nExecStart=/bin/sleep 1000\n')
    await writeUnit(b, `[Unit]\nRequires=${a}\nAfter=${a}\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n`)
    await writeUnit(c, `[Unit]\nRequires=${b}\nAfter=${b}\n\n[Service]\nExecStart=/bin/sleep 1000\n`)
    await systemd.reload()
    expect(await systemd.startUnit(c)).toBe('done')
    const [sa, sb, sc] = await Promise.all([a, b, c].map((u) => systemd.unitState(u)))
    for (const s of [sa, sb, sc]) expect(s!.activeState).toBe('active')
    expect(sa!.activeEnterTimestampMonotonic).toBeGreaterThan(0n)
    expect(sa!.activeEnterTimestampMonotonic).toBeLessThanOrEqual(sb!.inactiveExitTimestampMonotonic)
    expect(sb!.activeEnterTimestampMonotonic).toBeLessThanOrEqual(sc!.inactiveExitTimestampMonotonic)
    expect(sa!.activeEnterTimestampMonotonic).toBeLessThanOrEqual(sb!.activeEnterTimestampMonotonic)
    expect(sb!.activeEnterTimestampMonotonic).toBeLessThanOrEqual(sc!.activeEnterTimestampMonotonic)

    expect(await systemd.stopUnit(a)).toBe('done')
    for (const u of [a, b, c]) expect((await systemd.unitState(u)).activeState).toBe('inactive')
  })

  it('a failed requirement fails the dependent job with result dependency', async () => {
    const { systemd, writeUnit } = h()
    const p = prefix()
    const [bad, dep] = [`${p}-bad.service`, `${p}-dep.service`]
    await writeUnit(bad, '[Service]\nType=oneshot\nExecStart=/bin/false\n')
    await writeUnit(dep, `[Unit]\nRequires=${bad}\nAfter=${bad}\n\n[Service]\nExecStart=/bin/sleep 1000\n`)
    await systemd.reload()
    const err = await rejection(systemd.startUnit(dep))
    expect(err.code).toBe('systemd.job-failed')
    expect(err.data).toMatchObject({ unit: dep, result: 'dependency' })
    expect((await systemd.unitState(dep)).activeState).toBe('inactive')
    expect((await systemd.unitState(bad)).activeState).toBe('failed')
  })

  it('starting a unit that does not exist rejects with unit-not-found', async () => {
    const { systemd } = h()
    const name = `${prefix()}-missing.service`
    const err = await rejection(systemd.startUnit(name))
    expect(err.code).toBe('systemd.unit-not-found')
    expect(err.data).toEqual({ unit: name })
    expect((await systemd.unitState(name)).loadState).toBe('not-found')
  })
}
