/**
 * The systemd contract against a real systemd (booted with nspawn from the
 * host's /usr), plus runc running as a service inside it.
 */
import { promises as fs } from 'node:fs'
import * as path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectSystemd, type DbusSystemd } from '../../src/systemd/dbus-systemd'
import { bootSystemd, systemdSkipReason, type SystemdContainer } from '../helpers/nspawn'
import { systemdContract, type ContractHarness } from '../component/systemd-contract'

const REPO = path.resolve(__dirname, '../..')
const skip = systemdSkipReason()

describe.skipIf(skip)(`DbusSystemd against a real systemd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let box: SystemdContainer
  let systemd: DbusSystemd
  let harness: ContractHarness

  beforeAll(async () => {
    box = await bootSystemd({ name: 'sysctr-sd', repo: REPO })
    systemd = await connectSystemd({ busAddress: box.busAddress })
    harness = {
      systemd,
      hostPath: (p) => box.hostPath(p),
      writeUnit: (name, text) => fs.writeFile(box.hostPath(`/etc/systemd/system/${name}`), text),
    }
  })
  afterAll(async () => {
    await systemd?.close()
    await box?.stop()
  })

  describe('contract', () => systemdContract(() => harness))

  it('reports systemd unreachable with a hint when nothing listens', async () => {
    const err = await connectSystemd({ busAddress: `unix:path=${box.hostPath('/run/no-such-bus')}` }).catch((e) => e)
    expect(err).toMatchObject({ code: 'systemd.unreachable', exitCode: 8 })
    expect(err.hint).toContain('--root')
  })
})
