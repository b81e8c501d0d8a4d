import { mkdtempSync, promises as fs, rmSync } from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FakeSystemd } from '../../harness/fake-systemd'
import { systemdContract, type ContractHarness } from './systemd-contract'

describe('FakeSystemd', () => {
  let root: string
  let harness: ContractHarness
  let fake: FakeSystemd

  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'sysctr-fake-systemd-'))
    fake = new FakeSystemd({ root })
    harness = {
      systemd: fake,
      hostPath: (p) => path.join(root, p),
      writeUnit: async (name, text) => {
        const dir = path.join(root, 'etc/systemd/system')
        await fs.mkdir(dir, { recursive: true })
        await fs.writeFile(path.join(dir, name), text)
      },
    }
  })
  afterAll(() => rmSync(root, { recursive: true, force: true }))

  describe('contract', () => systemdContract(() => harness))

  it('failUnit makes a unit fail with the given unit result, and can be cleared', async () => {
    await harness.writeUnit('flaky.service', '[Service]\nExecStart=/bin/sleep 1000\n')
    fake.failUnit('flaky.service', 'signal')
    await expect(fake.startUnit('flaky.service')).rejects.toMatchObject({
      code: 'systemd.job-failed',
      data: { unit: 'flaky.service', result: 'failed', unitResult: 'signal' },
    })
    fake.failUnit('flaky.service', null)
    expect(await fake.startUnit('flaky.service')).toBe('done')
  })

  it('starts a Wants=/After= dependency first; enable follows Also= and RequiredBy=', async () => {
    await harness.writeUnit('x-db.service', '[Service]\nExecStart=/bin/sleep 1\n[Install]\nRequiredBy=x-app.service\n')
    await harness.writeUnit('x-app.service', '[Unit]\nWants=x-db.service\nAfter=x-db.service\n[Service]\nExecStart=/bin/sleep 1\n[Install]\nWantedBy=multi-user.target\nAlso=x-db.service\n')
    const { changes } = await fake.enableUnitFiles(['x-app.service'])
    expect(changes.map((c) => c.file).sort()).toEqual([
      '/etc/systemd/system/multi-user.target.wants/x-app.service',
      '/etc/systemd/system/x-app.service.requires/x-db.service',
    ])
    expect(await fake.startUnit('x-app.service')).toBe('done')
    const db = await fake.unitState('x-db.service')
    const app = await fake.unitState('x-app.service')
    expect([db.activeState, app.activeState]).toEqual(['active', 'active'])
    // x-app left inactive only after x-db was active.
    expect(db.activeEnterTimestampMonotonic).toBeLessThanOrEqual(app.inactiveExitTimestampMonotonic)
  })

  it('close() makes further calls fail', async () => {
    const other = new FakeSystemd({ root })
    await other.close()
    await expect(other.reload()).rejects.toMatchObject({ code: 'systemd.closed' })
  })
})
