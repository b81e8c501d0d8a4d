/**
 * Compose a root with `--root` (the root context install uses for
 * `sysctr install --system --root DIR`): the three demo images pulled from
 * Debian's docker-registry on the host into DIR, then DIR booted with
 * systemd-nspawn (`-D DIR`, persistent, the host's /usr bound read-only, no
 * network). The units start at boot in dependency order with no sysctr
 * running; states and timestamps read from the booted systemd over D-Bus.
 *
 * The root is the cheapest bootable tree: usr/ (the host's, bound), the
 * merged-/usr symlinks, an etc/ holding only what sysctr wrote, var/.
 * systemd fills in the rest at boot (machine-id, sysusers, tmpfiles).
 */
import { spawnSync } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildDemoImages, DEMO_IMAGES } from '../../harness/demo/images'
import { buildRootContext } from '../../src/ops/context'
import { install } from '../../src/ops/install'
import { connectSystemd } from '../../src/systemd/dbus-systemd'
import type { Systemd, UnitState } from '../../src/systemd/systemd'
import { bootSystemd, makeBootableRoot, systemdSkipReason, type SystemdContainer } from '../../harness/nspawn'
import { waitFor } from '../../harness/demo-env'
import { pushLayout, registrySkipReason, startRegistry, type RunningRegistry } from '../helpers/registry'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason() ?? registrySkipReason() ?? (process.arch === 'x64' || process.arch === 'arm64' ? undefined : 'needs a merged-/usr host')


describe.skipIf(skip !== undefined)(`a root composed with --root boots and starts its units${skip ? `: skipped, ${skip}` : ''}`, () => {
  let work: string
  let root: string
  let registry: RunningRegistry
  let box: SystemdContainer | undefined
  let systemd: Systemd | undefined

  beforeAll(async () => {
    work = await fsp.mkdtemp(join(tmpdir(), 'sysctr-rootboot-'))
    root = join(work, 'root')
    await buildDemoImages(join(work, 'oci'))
    registry = await startRegistry()
    for (const n of DEMO_IMAGES) await pushLayout(join(work, 'oci'), n, `${registry.host}/demo/${n}:latest`)
    await makeBootableRoot(root)
    const ctx = buildRootContext(root, { reporter: { info: () => {}, warn: () => {} }, env: {} })
    for (const n of DEMO_IMAGES) await install(ctx, { image: `${registry.host}/demo/${n}:latest`, tlsVerify: false })
    await registry.stop()
  }, 120_000)

  afterAll(async () => {
    await systemd?.close()
    await box?.stop()
    await registry?.stop()
    if (work) await fsp.rm(work, { recursive: true, force: true })
  })

  it('the composed tree has the units and the links systemctl --root enable would make', async () => {
    const theirs = join(work, 'systemctl')
    await fsp.mkdir(join(theirs, 'etc/systemd/system'), { recursive: true })
    for (const n of DEMO_IMAGES) await fsp.copyFile(join(root, `etc/systemd/system/${n}.service`), join(theirs, `etc/systemd/system/${n}.service`))
    expect(spawnSync('systemctl', [`--root=${theirs}`, 'enable', ...DEMO_IMAGES.map((n) => `${n}.service`)]).status).toBe(0)
    const wants = (d: string) => fsp.readdir(join(d, 'etc/systemd/system/multi-user.target.wants'))
    expect((await wants(root)).sort()).toEqual((await wants(theirs)).sort())
    for (const n of DEMO_IMAGES) {
      const l = `etc/systemd/system/multi-user.target.wants/${n}.service`
      expect(await fsp.readlink(join(root, l))).toBe(await fsp.readlink(join(theirs, l)))
    }
  })

  it('boots with systemd-nspawn -D DIR: etcd, flannel and engine start at boot, in order, with no sysctr running', async () => {
    box = await bootSystemd({ name: 'sysctr-rootboot', repo, directory: root, binds: [{ host: '/usr', container: '/usr', readOnly: true }] })
    systemd = await connectSystemd({ busAddress: box.busAddress })
    const st: Record<string, UnitState> = {}
    await waitFor(
      async () => {
        for (const n of DEMO_IMAGES) st[n] = await systemd!.unitState(`${n}.service`)
        return DEMO_IMAGES.every((n) => st[n]!.activeState === 'active' || st[n]!.activeState === 'failed')
      },
      60_000,
      'the demo units to start at boot',
    )
    const diag = async () => (await box!.exec(['journalctl', '-b', '--no-pager', '-n', '60', '-u', 'etcd', '-u', 'flannel', '-u', 'engine'])).stdout
    for (const n of DEMO_IMAGES) {
      if (st[n]!.activeState !== 'active') throw new Error(`${n}.service is ${st[n]!.activeState}:\n${await diag()}`)
      expect(st[n]!.unitFileState).toBe('enabled')
    }
    expect(st.etcd!.activeEnterTimestampMonotonic).toBeLessThanOrEqual(st.flannel!.inactiveExitTimestampMonotonic)
    expect(st.flannel!.activeEnterTimestampMonotonic).toBeLessThanOrEqual(st.engine!.inactiveExitTimestampMonotonic)
    // Nothing of sysctr ran in the container: no process, and the deployment is what the compose wrote.
    const ps = await box.exec(['sh', '-c', 'ps -eo args | grep -c "[s]ysctr " || true'])
    expect(ps.stdout.trim()).toBe('0')
    expect(await fsp.readlink(join(root, 'var/lib/sysctr/containers/etcd'))).toBe('etcd.0')
  }, 120_000)
})
