/**
 * First-boot provisioning under a real systemd: a root holding only
 * provision.d entries, an OCI archive of the demo images and the shipped
 * units/sysctr-provision.service (enabled), booted with systemd-nspawn
 * (`-D DIR`, the host's /usr bound read-only, no network: nspawn's
 * --private-network). At boot sysctr provision installs etcd, flannel and
 * engine from the archive and starts them in dependency order; a second boot
 * reinstalls nothing and the units start by their own enablement.
 *
 * sysctr runs inside from a private build of this checkout (tsc --outDir),
 * bound at /opt/sysctr-build, so a concurrent `npm run build` cannot change
 * it under the test; a drop-in points ExecStart= there (the shipped unit
 * runs /usr/bin/sysctr, and /usr is the host's here). The archive lives at
 * /opt/sysctr-images inside the root: under /usr it would be hidden by the
 * bind of the host's /usr.
 */
import { spawnSync } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildDemoImages, DEMO_IMAGES } from '../../harness/demo/images'
import { connectSystemd } from '../../src/systemd/dbus-systemd'
import { OfflineSystemd } from '../../src/systemd/offline-systemd'
import type { Systemd, UnitState } from '../../src/systemd/systemd'
import { bootSystemd, makeBootableRoot, systemdSkipReason, type SystemdContainer } from '../../harness/nspawn'
import { waitFor } from '../../harness/demo-env'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason() ?? (spawnSync('/usr/bin/node', ['--version']).status === 0 ? undefined : 'needs node at /usr/bin/node (the booted root uses the host /usr)')


/** A private build of the checkout: dist from tsc, bin, templates, package.json; node_modules from the bound repo. */
async function privateBuild(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true })
  const tsc = spawnSync(join(repo, 'node_modules/.bin/tsc'), ['-p', join(repo, 'tsconfig.json'), '--outDir', join(dir, 'dist')], { encoding: 'utf8' })
  // tsc emits even when a file being edited elsewhere does not typecheck; what we need must exist.
  await fsp.access(join(dir, 'dist/commands/provision.js')).catch(() => {
    throw new Error(`private build failed:\n${tsc.stdout}${tsc.stderr}`)
  })
  for (const f of ['package.json', 'bin', 'templates']) await fsp.cp(join(repo, f), join(dir, f), { recursive: true })
  await fsp.symlink('/opt/sysctr/node_modules', join(dir, 'node_modules'))
}

describe.skipIf(skip !== undefined)(`first-boot provisioning from local archives${skip ? `: skipped, ${skip}` : ''}`, () => {
  let work: string
  let root: string
  let box: SystemdContainer | undefined
  let systemd: Systemd | undefined

  const boot = async () => {
    box = await bootSystemd({
      name: 'sysctr-provision',
      repo,
      directory: root,
      binds: [
        { host: '/usr', container: '/usr', readOnly: true },
        { host: join(work, 'build'), container: '/opt/sysctr-build', readOnly: true },
      ],
      bootTimeoutMs: 120_000,
    })
    systemd = await connectSystemd({ busAddress: box.busAddress })
  }
  const shutdown = async () => {
    await systemd?.close()
    systemd = undefined
    await box?.stop()
    box = undefined
  }
  const states = async () => {
    const st: Record<string, UnitState> = {}
    for (const n of [...DEMO_IMAGES, 'sysctr-provision']) st[n] = await systemd!.unitState(`${n}.service`)
    return st
  }
  const journal = async () => (await box!.exec(['journalctl', '-b', '--no-pager', '-o', 'cat', '-u', 'sysctr-provision.service'])).stdout

  beforeAll(async () => {
    work = await fsp.mkdtemp(join(tmpdir(), 'sysctr-provboot-'))
    root = join(work, 'root')
    await privateBuild(join(work, 'build'))
    await buildDemoImages(join(work, 'oci'))
    await makeBootableRoot(root)
    await fsp.mkdir(join(root, 'opt/sysctr-images'), { recursive: true })
    expect(spawnSync('tar', ['-C', join(work, 'oci'), '-cf', join(root, 'opt/sysctr-images/demo.tar'), '.']).status).toBe(0)
    const conf = join(root, 'etc/sysctr/provision.d')
    await fsp.mkdir(conf, { recursive: true })
    // Engine first by file name: systemd's ordering, not the files', decides the start order.
    for (const [i, n] of [...DEMO_IMAGES].reverse().entries()) {
      await fsp.writeFile(join(conf, `${i + 1}0-${n}.conf`), `image = oci-archive:/opt/sysctr-images/demo.tar:${n}\nname = ${n}\nstart = true\n`)
    }
    const unitDir = join(root, 'etc/systemd/system')
    await fsp.mkdir(join(unitDir, 'sysctr-provision.service.d'), { recursive: true })
    await fsp.copyFile(join(repo, 'units/sysctr-provision.service'), join(unitDir, 'sysctr-provision.service'))
    await fsp.writeFile(join(unitDir, 'sysctr-provision.service.d/10-test.conf'), '[Service]\nExecStart=\nExecStart=/opt/sysctr-build/bin/sysctr provision\n')
    await new OfflineSystemd({ root }).enableUnitFiles(['sysctr-provision.service'])
  }, 180_000)

  afterAll(async () => {
    await shutdown()
    if (work) await fsp.rm(work, { recursive: true, force: true })
  })

  it('first boot: sysctr-provision installs the three from the archive and starts them in dependency order', async () => {
    await boot()
    let st: Record<string, UnitState> = {}
    await waitFor(
      async () => {
        st = await states()
        return ['active', 'failed'].includes(st['sysctr-provision']!.activeState) && DEMO_IMAGES.every((n) => ['active', 'failed'].includes(st[n]!.activeState))
      },
      120_000,
      'provisioning and the demo units',
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${JSON.stringify(st, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}\n${await journal()}`)
    })
    const log = await journal()
    expect(st['sysctr-provision']!.activeState, log).toBe('active')
    for (const n of DEMO_IMAGES) expect(st[n]!.activeState, log).toBe('active')
    expect(st.etcd!.activeEnterTimestampMonotonic).toBeLessThanOrEqual(st.flannel!.inactiveExitTimestampMonotonic)
    expect(st.flannel!.activeEnterTimestampMonotonic).toBeLessThanOrEqual(st.engine!.inactiveExitTimestampMonotonic)
    const info = JSON.parse(await fsp.readFile(join(root, 'var/lib/sysctr/containers/etcd.0/info.json'), 'utf8'))
    expect(info.image).toBe('oci-archive:/opt/sysctr-images/demo.tar:etcd')
    // No network inside: only lo.
    const links = await box!.exec(['ls', '/sys/class/net'])
    expect(links.stdout.trim().split(/\s+/)).toEqual(['lo'])
    await shutdown()
  }, 240_000)

  it('second boot: nothing is reinstalled; the units start by their own enablement', async () => {
    const before = await fsp.readFile(join(root, 'var/lib/sysctr/containers/etcd.0/info.json'), 'utf8')
    await boot()
    let st: Record<string, UnitState> = {}
    await waitFor(
      async () => {
        st = await states()
        return ['active', 'failed'].includes(st['sysctr-provision']!.activeState) && DEMO_IMAGES.every((n) => ['active', 'failed'].includes(st[n]!.activeState))
      },
      120_000,
      'the second boot',
    )
    const log = await journal()
    expect(st['sysctr-provision']!.activeState, log).toBe('active')
    for (const n of DEMO_IMAGES) expect(st[n]!.activeState, log).toBe('active')
    for (const n of DEMO_IMAGES) expect(log).toContain(`(${n}): already installed, nothing to do`)
    expect(log).not.toMatch(/\): installed from/)
    expect(await fsp.readFile(join(root, 'var/lib/sysctr/containers/etcd.0/info.json'), 'utf8')).toBe(before)
  }, 240_000)
})
