/**
 * install/uninstall operations against an in-process registry and the fake
 * systemd: fast checks of results on disk, of refusals, and that a failed
 * install leaves the host exactly as before. The same paths run against the
 * real registry, systemd and runc in test/e2e/install-demo.test.ts.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildDemoImages } from '../../harness/demo/images'
import { writeOciLayout } from '../../harness/oci-layout-writer'
import { install } from '../../src/ops/install'
import { uninstall } from '../../src/ops/uninstall'
import type { OpsContext } from '../../src/ops/context'
import { FakeSystemd } from '../../harness/fake-systemd'
import { Store } from '../../src/store/store'
import { SysctrError } from '../../src/errors'
import { startFakeRegistry, FakeRegistry } from '../helpers/http-fake-registry'
import { fakeHost, listTree } from '../helpers/test-paths'


let layout: string
let registry: FakeRegistry
let root: string
let ctx: OpsContext
let systemd: FakeSystemd
let tmpfilesCalls: string[]
let messages: string[]


beforeAll(async () => {
  layout = await fsp.mkdtemp(join(tmpdir(), 'sysctr-install-layout-'))
  await buildDemoImages(layout)
  await writeOciLayout(layout, [
    {
      tag: 'needs-value',
      layers: [
        [
          { path: 'exports/', type: 'directory' },
          { path: 'exports/service.template', content: '[Service]\nExecStart=$EXEC_START --port $PORT\n' },
        ],
      ],
      config: { Cmd: ['/bin/true'] },
    },
  ])
  registry = await startFakeRegistry({ repository: 'demo/images' })
  await registry.loadLayout(layout)
})
afterAll(async () => {
  await registry?.close()
  await fsp.rm(layout, { recursive: true, force: true })
  if (root) await fsp.rm(root, { recursive: true, force: true })
})

beforeEach(async () => {
  if (root) await fsp.rm(root, { recursive: true, force: true })
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-install-root-'))
  ;({ ctx, systemd, messages, tmpfilesCalls } = await fakeHost(root))
})

const ref = (tag: string) => `${registry.host}/demo/images:${tag}`
// The fake registry speaks plain HTTP.
const opts = (tag: string, more: Record<string, unknown> = {}) => ({ image: ref(tag), name: tag, tlsVerify: false, ...more })

async function expectError(p: Promise<unknown>, code: string, exitCode: number): Promise<SysctrError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(SysctrError)
  const e = err as SysctrError
  expect({ code: e.code, exitCode: e.exitCode, message: e.fullMessage }).toMatchObject({ code, exitCode })
  return e
}

describe('install', () => {
  it('pulls, checks out, renders and enables: unit, tmpfiles entry, deployment, link and record', async () => {
    const r = await install(ctx, opts('etcd'))
    expect(r.unchanged).toBe(false)
    expect(r.unit).toBe('etcd.service')
    const unit = await fsp.readFile(join(ctx.paths.unitDir, 'etcd.service'), 'utf8')
    expect(unit).toContain(`ExecStart=/usr/bin/env -u NOTIFY_SOCKET /usr/bin/runc run --no-new-keyring --bundle ${ctx.paths.containersDir}/etcd.0 etcd`)
    expect(unit).toContain('ExecStartPre=-/usr/bin/runc delete --force etcd')
    const tmpfiles = await fsp.readFile(join(ctx.paths.tmpfilesDir, 'etcd.conf'), 'utf8')
    expect(tmpfiles).toBe('d /run/etcd 0755 root root -\n')
    expect(tmpfilesCalls).toEqual([`create ${join(ctx.paths.tmpfilesDir, 'etcd.conf')}`])
    expect(await fsp.readlink(join(ctx.paths.containersDir, 'etcd'))).toBe('etcd.0')
    const cfg = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'etcd.0/config.json'), 'utf8'))
    expect(cfg.root).toEqual({ path: 'rootfs', readonly: true })
    expect(cfg.process.env).toContain('READY_DELAY=2') // manifest.json defaultValues
    expect(cfg.linux.cgroupsPath).toBe('/system.slice/etcd.service/container') // unit has Delegate=yes
    const info = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'etcd.0/info.json'), 'utf8'))
    expect(info).toMatchObject({ name: 'etcd', slot: 0, image: ref('etcd'), templates: { configJson: 'image', service: 'image', tmpfiles: 'image' } })
    expect(info.files.map((f: { role: string }) => f.role)).toEqual(['unit', 'tmpfiles'])
    // The checkout: busybox is a hardlink to a store object, not a copy.
    const st = await fsp.stat(join(ctx.paths.containersDir, 'etcd.0/rootfs/bin/busybox'))
    expect(st.nlink).toBeGreaterThanOrEqual(2)
    const state = await systemd.unitState('etcd.service')
    expect(state.unitFileState).toBe('enabled')
    expect(state.activeState).toBe('inactive')
    await expect(fsp.lstat(join(ctx.paths.unitDir, 'multi-user.target.wants/etcd.service'))).resolves.toBeTruthy()
  })

  it('uses the default templates for what an image does not ship (engine: config.json and tmpfiles)', async () => {
    await install(ctx, opts('engine'))
    const info = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'engine.0/info.json'), 'utf8'))
    expect(info.templates).toEqual({ configJson: 'default', service: 'image', tmpfiles: 'default' })
    const cfg = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'engine.0/config.json'), 'utf8'))
    expect(cfg.process.args).toEqual(['/bin/sh', '/usr/bin/demo-service'])
    expect(cfg.root).toEqual({ path: 'rootfs', readonly: true })
  })

  it('with --now starts the unit and reports the job result', async () => {
    const r = await install(ctx, opts('etcd', { now: true }))
    expect(r.started).toBe('done')
    expect((await systemd.unitState('etcd.service')).activeState).toBe('active')
  })

  it('--now on a unit whose requirement is not installed fails with result dependency (exit 8)', async () => {
    const e = await expectError(install(ctx, opts('engine', { now: true })), 'systemd.job-failed', 8)
    expect(e.fullMessage).toContain("start job for engine.service ended with result 'dependency'")
  })

  it('a unit that fails to start is reported with its name and result (exit 8); the install stays', async () => {
    const failing = new FakeSystemd({ root, failsToStart: () => 'exit-code' })
    ctx.systemd = async () => failing
    const e = await expectError(install(ctx, opts('engine', { now: true })), 'systemd.job-failed', 8)
    expect(e.fullMessage).toMatch(/engine\.service/)
    expect(e.fullMessage).toMatch(/failed/)
    await expect(fsp.access(join(ctx.paths.unitDir, 'engine.service'))).resolves.toBeUndefined()
  })

  it('the same image and values again is a no-op; another image under that name is refused (exit 4) and nothing changes', async () => {
    await install(ctx, opts('etcd'))
    const before = await listTree(root)
    const unitBefore = await fsp.readFile(join(ctx.paths.unitDir, 'etcd.service'), 'utf8')
    const again = await install(ctx, opts('etcd'))
    expect(again.unchanged).toBe(true)
    await expectError(install(ctx, { ...opts('flannel'), name: 'etcd' }), 'container.exists', 4)
    await expectError(install(ctx, opts('etcd', { set: ['READY_DELAY=5'] })), 'container.exists', 4)
    expect(await listTree(root)).toEqual(before)
    expect(await fsp.readFile(join(ctx.paths.unitDir, 'etcd.service'), 'utf8')).toBe(unitBefore)
  })

  it('refuses to overwrite a unit file it did not write (exit 4)', async () => {
    await fsp.writeFile(join(ctx.paths.unitDir, 'etcd.service'), '[Service]\nExecStart=/bin/mine\n')
    await expectError(install(ctx, opts('etcd')), 'host.file-exists', 4)
    expect(await fsp.readFile(join(ctx.paths.unitDir, 'etcd.service'), 'utf8')).toBe('[Service]\nExecStart=/bin/mine\n')
  })

  describe('a failed install leaves the host as it was', () => {
    const cases: [string, () => ReturnType<typeof opts>, string, number][] = [
      ['a template value nobody supplies (exit 2, names it)', () => opts('needs-value'), 'template.missing-value', 2],
      ['an unsafe --set value that would add a unit line (exit 2)', () => opts('needs-value', { set: ['PORT=1\nExecStartPre=/bin/evil'] }), 'values.unsafe', 2],
      ['a bad container name (exit 2)', () => ({ ...opts('etcd'), name: '-rf' }), 'name.invalid', 2],
      ['a tag the registry does not have (exit 3)', () => opts('nope'), 'image.not-found', 3],
    ]
    for (const [what, o, code, exit] of cases) {
      it(what, async () => {
        const before = await listTree(root)
        const e = await expectError(install(ctx, o()), code, exit)
        if (code === 'template.missing-value') {
          expect(e.fullMessage).toContain('PORT')
          expect(e.hint).toContain('--set PORT=')
        }
        // The state dir itself may now exist; nothing else may.
        const outsideState = (l: string[]) => l.filter((p) => !['var', 'var/lib'].includes(p) && !p.startsWith('var/lib/sysctr'))
        expect(outsideState(await listTree(root))).toEqual(outsideState(before))
        expect(await fsp.readdir(ctx.paths.containersDir).catch(() => [])).toEqual([])
        expect((await systemd.unitState(`${o().name}.service`).catch(() => ({ loadState: 'not-found' }))).loadState).toBe('not-found')
      })
    }

    it('a layer whose bytes do not match its digest (exit 6): no layer stored, nothing installed', async () => {
      const manifest = JSON.parse((await fsp.readFile(join(layout, 'index.json'), 'utf8')).toString())
      const etcd = manifest.manifests.find((m: { annotations: Record<string, string> }) => m.annotations['org.opencontainers.image.ref.name'] === 'etcd')
      const m = JSON.parse(await fsp.readFile(join(layout, 'blobs/sha256', etcd.digest.slice(7)), 'utf8'))
      const layer = m.layers[1].digest
      registry.faults.wrongBytes = [layer]
      try {
        await expectError(install(ctx, opts('etcd')), 'content.digest-mismatch', 6)
      } finally {
        registry.faults.wrongBytes = []
      }
      const store = await Store.open(ctx.paths.storeDir)
      expect(await store.getLayer(layer)).toBeUndefined()
      expect(await store.getImageRef(ref('etcd'))).toBeUndefined()
      expect(await fsp.readdir(ctx.paths.containersDir)).toEqual([])
      await expect(fsp.access(join(ctx.paths.unitDir, 'etcd.service'))).rejects.toThrow()
    })
  })
})

describe('uninstall', () => {
  it('stops, disables and removes unit, tmpfiles entry and deployments; the image stays in the store', async () => {
    await install(ctx, opts('etcd', { now: true }))
    const r = await uninstall(ctx, 'etcd')
    expect(r.removedFiles.sort()).toEqual([join(ctx.paths.tmpfilesDir, 'etcd.conf'), join(ctx.paths.unitDir, 'etcd.service')].sort())
    expect(tmpfilesCalls).toContain(`remove ${join(ctx.paths.tmpfilesDir, 'etcd.conf')}`)
    expect(await fsp.readdir(ctx.paths.containersDir)).toEqual([])
    await expect(fsp.lstat(join(ctx.paths.unitDir, 'multi-user.target.wants/etcd.service'))).rejects.toThrow()
    const s = await systemd.unitState('etcd.service')
    expect(s.activeState).toBe('inactive')
    const store = await Store.open(ctx.paths.storeDir)
    expect(await store.getImageRef(ref('etcd'))).toBeDefined()
    await expectError(uninstall(ctx, 'etcd'), 'container.not-found', 3)
  })

  it('finishes an uninstall that was interrupted after the unit was removed', async () => {
    await install(ctx, opts('etcd'))
    await fsp.rm(join(ctx.paths.unitDir, 'etcd.service'))
    await systemd.reload()
    await uninstall(ctx, 'etcd')
    expect(await fsp.readdir(ctx.paths.containersDir)).toEqual([])
  })
})

describe('uninstall, interrupted after the unit file was removed and systemd reloaded', () => {
  it('completes when run again (disable of a unit systemd no longer knows is not an error)', async () => {
    await install(ctx, opts('etcd', { now: true }))
    await systemd.stopUnit('etcd.service')
    await systemd.disableUnitFiles(['etcd.service'])
    await fsp.rm(join(ctx.paths.unitDir, 'etcd.service'))
    await systemd.reload()
    const r = await uninstall(ctx, 'etcd')
    expect(r.removedDeployments).toEqual([0])
    expect(await fsp.readdir(ctx.paths.containersDir)).toEqual([])
    await expect(fsp.access(join(ctx.paths.tmpfilesDir, 'etcd.conf'))).rejects.toThrow()
  })
})
