/**
 * containers update / rollback / list against an in-process registry and the
 * fake systemd. Images svc v1/v2/v3 (test/helpers/update-images.ts); the tag
 * `svc` is moved between them as a publisher would. v3's unit fails to start
 * (FakeSystemd.failsToStart on `Description=svc v3`).
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { WrittenImage } from '../../harness/oci-layout-writer'
import { install } from '../../src/ops/install'
import { update, updateAll, dependencyOrder } from '../../src/ops/update'
import { rollback } from '../../src/ops/rollback'
import { listContainers } from '../../src/ops/containers'
import { deploymentUses } from '../../src/ops/store-maintenance'
import type { OpsContext } from '../../src/ops/context'
import { FakeSystemd } from '../../harness/fake-systemd'
import { SysctrError, SystemdError } from '../../src/errors'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { buildUpdateImages } from '../helpers/update-images'
import { fakeHost } from '../helpers/test-paths'


let served: ServedLayout<WrittenImage[]>
let registry: FakeRegistry
let images: Record<string, WrittenImage>
let root: string
let ctx: OpsContext
let systemd: FakeSystemd
let messages: string[]

beforeAll(async () => {
  served = await serveLayout('demo/svc', (dir) => buildUpdateImages(dir))
  registry = served.registry
  images = Object.fromEntries(served.built.map((w) => [w.tag.replace('svc-', ''), w]))
})
afterAll(async () => {
  await served?.close()
  if (root) await fsp.rm(root, { recursive: true, force: true })
})

const failsV3 = (_unit: string, file: { get(s: string, k: string): string | undefined }) =>
  file.get('Unit', 'Description')?.includes('v3') ? 'exit-code' : undefined

beforeEach(async () => {
  if (root) await fsp.rm(root, { recursive: true, force: true })
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-update-root-'))
  ;({ ctx, systemd, messages } = await fakeHost(root, { failsToStart: failsV3 }))
  publish('v1')
})

const REF = () => `${registry.host}/demo/svc:latest`
/** Point the tag the container was installed from at another version. */
const publish = (v: string) => registry.tag('latest', images[v].manifestDigest)
const containers = () => ctx.paths.containersDir
const activeLink = () => fsp.readlink(join(containers(), 'svc'))
const unitText = () => fsp.readFile(join(ctx.paths.unitDir, 'svc.service'), 'utf8')
const configOf = async (dep: string) => JSON.parse(await fsp.readFile(join(containers(), dep, 'config.json'), 'utf8'))
const slotDirs = async () => (await fsp.readdir(containers())).filter((e) => /^svc\.\d+$/.test(e)).sort()

async function installV1(now = true) {
  return install(ctx, { image: REF(), name: 'svc', tlsVerify: false, now, set: ['GREETING=hi'] })
}

describe('containers update', () => {
  it('v1 -> v2: new deployment, unit switched and restarted, saved --set kept, new image default applied', async () => {
    await installV1()
    expect(await activeLink()).toBe('svc.0')
    publish('v2')
    const r = await update(ctx, 'svc', { tlsVerify: false })
    expect(r.unchanged).toBe(false)
    expect(r.manifestDigest).toBe(images.v2.manifestDigest)
    expect(r.previousManifestDigest).toBe(images.v1.manifestDigest)
    expect(r.deployment).toBe('svc.1')
    expect(r.previousDeployment).toBe('svc.0')
    expect(r.wasRunning).toBe(true)
    expect(r.restarted).toBe('done')
    // Only the changed layer was fetched.
    expect(r.pull?.layersFetched).toBe(1)
    // VERSION follows the image's new default; GREETING stays what the user set.
    expect(r.changedValues).toEqual([{ key: 'VERSION', from: 'v1', to: 'v2' }])
    expect(await activeLink()).toBe('svc.1')
    const unit = await unitText()
    expect(unit).toContain('Description=svc v2')
    expect(unit).toContain(`--bundle ${containers()}/svc.1 svc`)
    expect((await configOf('svc.1')).process.env).toEqual(expect.arrayContaining(['VERSION=v2', 'GREETING=hi']))
    expect(await fsp.readFile(join(containers(), 'svc.1/rootfs/etc/svc-version'), 'utf8')).toBe('v2\n')
    const s = await systemd.unitState('svc.service')
    expect(s.activeState).toBe('active')
    // The UUID survives the update.
    const info0 = JSON.parse(await fsp.readFile(join(containers(), 'svc.0/info.json'), 'utf8'))
    const info1 = JSON.parse(await fsp.readFile(join(containers(), 'svc.1/info.json'), 'utf8'))
    expect(info1.values.UUID).toBe(info0.values.UUID)
    expect(info1.setValues).toEqual({ GREETING: 'hi' })
  })

  it('same digest and values: nothing to do, nothing changes', async () => {
    await installV1()
    const before = await unitText()
    const r = await update(ctx, 'svc', { tlsVerify: false })
    expect(r.unchanged).toBe(true)
    expect(await slotDirs()).toEqual(['svc.0'])
    expect(await unitText()).toBe(before)
  })

  it('a new --set alone re-renders the same image; later --set wins over saved, saved ones stay', async () => {
    await installV1()
    const r = await update(ctx, 'svc', { tlsVerify: false, set: ['GREETING=bonjour', 'EXTRA=1'] })
    expect(r.unchanged).toBe(false)
    expect(r.changedValues).toEqual([
      { key: 'EXTRA', from: undefined, to: '1' },
      { key: 'GREETING', from: 'hi', to: 'bonjour' },
    ])
    expect((await configOf('svc.1')).process.env).toContain('GREETING=bonjour')
    publish('v2')
    const r2 = await update(ctx, 'svc', { tlsVerify: false })
    expect(r2.changedValues).toEqual([{ key: 'VERSION', from: 'v1', to: 'v2' }])
    const info = JSON.parse(await fsp.readFile(join(containers(), `${r2.deployment}/info.json`), 'utf8'))
    expect(info.setValues).toEqual({ GREETING: 'bonjour', EXTRA: '1' })
  })

  it('a stopped unit is switched but not started', async () => {
    await installV1(false)
    publish('v2')
    const r = await update(ctx, 'svc', { tlsVerify: false })
    expect(r.wasRunning).toBe(false)
    expect(r.restarted).toBeUndefined()
    expect((await systemd.unitState('svc.service')).activeState).toBe('inactive')
    expect(await unitText()).toContain('Description=svc v2')
  })

  it('v3 fails to start: rolled back to v2 by itself (exit 8, says so), v1 still kept for a manual rollback', async () => {
    await installV1()
    publish('v2')
    await update(ctx, 'svc', { tlsVerify: false })
    publish('v3')
    const err = await update(ctx, 'svc', { tlsVerify: false }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(SystemdError)
    const e = err as SysctrError
    expect(e.code).toBe('update.rolled-back')
    expect(e.exitCode).toBe(8)
    expect(e.fullMessage).toMatch(/^updating svc: svc\.service failed to start on svc\.0 .*rolled back to svc\.1/)
    expect(e.data).toMatchObject({ rolledBack: true, activeDeployment: 'svc.1', restarted: 'done' })
    expect(await activeLink()).toBe('svc.1')
    expect(await unitText()).toContain('Description=svc v2')
    expect((await systemd.unitState('svc.service')).activeState).toBe('active')
    expect(await slotDirs()).toEqual(['svc.0', 'svc.1'])
    expect(messages.some((m) => m.includes('rolling back to svc.1'))).toBe(true)

    // Manual rollback: to v1, with v1's own recorded files.
    const v1Unit = await fsp.readFile(join(containers(), 'svc.0/svc.service'), 'utf8')
    const rb = await rollback(ctx, 'svc')
    expect(rb).toMatchObject({ deployment: 'svc.0', previousDeployment: 'svc.1', manifestDigest: images.v1.manifestDigest, restarted: 'done' })
    expect(await activeLink()).toBe('svc.0')
    expect(await unitText()).toBe(v1Unit)
    expect(await unitText()).toContain('Description=svc v1')
    // And forward again.
    const fwd = await rollback(ctx, 'svc')
    expect(fwd.deployment).toBe('svc.1')
    expect(await unitText()).toContain('Description=svc v2')
  })

  it('after an update the deployment before the previous one is removed: two slots remain', async () => {
    await installV1()
    publish('v2')
    await update(ctx, 'svc', { tlsVerify: false })
    publish('v1')
    const r = await update(ctx, 'svc', { tlsVerify: false })
    expect(r.deployment).toBe('svc.0')
    expect(await slotDirs()).toEqual(['svc.0', 'svc.1'])
    expect((await rollback(ctx, 'svc')).deployment).toBe('svc.1')
  })

  it("slots alternate NAME.0 <-> NAME.1 as Atomic's did: update, two rollbacks, update leaves svc.0 and svc.1 only", async () => {
    await installV1()
    publish('v2')
    expect((await update(ctx, 'svc', { tlsVerify: false })).deployment).toBe('svc.1')
    expect((await rollback(ctx, 'svc')).deployment).toBe('svc.0')
    expect((await rollback(ctx, 'svc')).deployment).toBe('svc.1')
    publish('v1')
    const r = await update(ctx, 'svc', { tlsVerify: false, set: ['GREETING=again'] })
    expect(r).toMatchObject({ deployment: 'svc.0', previousDeployment: 'svc.1' })
    expect(await activeLink()).toBe('svc.0')
    expect((await fsp.readdir(containers())).filter((e) => e.includes('svc')).sort()).toEqual(['svc', 'svc.0', 'svc.1'])
    expect(await unitText()).toContain('Description=svc v1')
    expect((await configOf('svc.0')).process.env).toContain('GREETING=again')
    // The deployment it replaced in svc.0 is gone; svc.1 (v2) is the rollback target.
    expect((await rollback(ctx, 'svc')).deployment).toBe('svc.1')
    expect(await unitText()).toContain('Description=svc v2')
  })

  it('a failing update in the slot of the previous deployment puts that deployment back (parked, not lost)', async () => {
    await installV1()
    publish('v2')
    await update(ctx, 'svc', { tlsVerify: false })
    const v1Record = await fsp.readFile(join(containers(), 'svc.0/info.json'), 'utf8')
    publish('v3')
    await expect(update(ctx, 'svc', { tlsVerify: false })).rejects.toMatchObject({ code: 'update.rolled-back' })
    expect(await fsp.readFile(join(containers(), 'svc.0/info.json'), 'utf8')).toBe(v1Record)
    expect((await fsp.readdir(containers())).filter((e) => e.includes('svc')).sort()).toEqual(['svc', 'svc.0', 'svc.1'])
  })

  it('a crash after the previous deployment was parked and the new one built: the next command puts it back', async () => {
    await installV1()
    publish('v2')
    await update(ctx, 'svc', { tlsVerify: false })
    const v1Record = await fsp.readFile(join(containers(), 'svc.0/info.json'), 'utf8')
    publish('v1')
    await expect(update({ ...ctx, killAt: 'update:built' }, 'svc', { tlsVerify: false })).rejects.toMatchObject({ code: 'test.killed' })
    expect((await fsp.readdir(containers())).filter((e) => e.includes('svc')).sort()).toEqual(['.svc.0.parked', 'svc', 'svc.0', 'svc.1'])
    // While parked it may come back: images prune and images delete see it as a use of v1.
    expect((await deploymentUses(ctx)).find((u) => u.deployment === '.svc.0.parked')).toMatchObject({ name: 'svc', active: false, imageCommit: JSON.parse(v1Record).imageCommit })
    // Any next command on svc (here a rollback) first puts the host back: the built svc.0 goes, the parked one returns.
    expect((await rollback(ctx, 'svc')).deployment).toBe('svc.0')
    expect(await fsp.readFile(join(containers(), 'svc.0/info.json'), 'utf8')).toBe(v1Record)
    expect((await fsp.readdir(containers())).filter((e) => e.includes('svc')).sort()).toEqual(['svc', 'svc.0', 'svc.1'])
  })

  it('--rebase moves to another reference; unknown container is exit 3; rollback without a previous deployment is exit 3', async () => {
    await installV1()
    const r = await update(ctx, 'svc', { tlsVerify: false, rebase: `${registry.host}/demo/svc:svc-v2` })
    expect(r.image).toBe(`${registry.host}/demo/svc:svc-v2`)
    expect(JSON.parse(await fsp.readFile(join(containers(), 'svc.1/info.json'), 'utf8')).image).toBe(r.image)
    await expect(update(ctx, 'nope', { tlsVerify: false })).rejects.toMatchObject({ code: 'container.not-found', exitCode: 3 })
    await install(ctx, { image: REF(), name: 'other', tlsVerify: false })
    await expect(rollback(ctx, 'other')).rejects.toMatchObject({ code: 'deployment.not-found', exitCode: 3 })
  })
})

describe('containers list', () => {
  it('shows name, image, digest, deployments, unit state and runtime; unknown states when systemd is unreachable', async () => {
    await installV1()
    publish('v2')
    await update(ctx, 'svc', { tlsVerify: false })
    const list = await listContainers(ctx)
    expect(list).toEqual([
      {
        name: 'svc',
        image: REF(),
        manifestDigest: images.v2.manifestDigest,
        deployment: 'svc.1',
        previousDeployment: 'svc.0',
        unit: 'svc.service',
        activeState: 'active',
        subState: 'running',
        unitFileState: 'enabled',
        runtime: '/usr/bin/runc',
        created: expect.any(String),
      },
    ])
    const offline = await listContainers({
      ...ctx,
      systemd: async () => {
        throw new SystemdError('systemd.unreachable', 'cannot reach systemd')
      },
    })
    expect(offline[0]).toMatchObject({ name: 'svc', activeState: 'unknown', subState: 'unknown' })
  })
})

describe('update --all', () => {
  it('orders by After=/Requires= among installed containers and updates each', async () => {
    // Two containers from the same image; b's unit orders itself after a's (and a network.target we do not install).
    await install(ctx, { image: REF(), name: 'b', tlsVerify: false })
    await install(ctx, { image: REF(), name: 'a', tlsVerify: false })
    for (const [name, after] of [['a', 'b.service'], ['b', '']] as const) {
      if (!after) continue
      const p = join(containers(), `${name}.0/${name}.service`)
      await fsp.writeFile(p, (await fsp.readFile(p, 'utf8')).replace('After=network.target', `After=network.target ${after}\nRequires=${after}`))
    }
    expect((await dependencyOrder(ctx)).map((o) => o.name)).toEqual(['b', 'a'])
    publish('v2')
    const r = await updateAll(ctx, { tlsVerify: false })
    expect(r.order).toEqual(['b', 'a'])
    expect(r.failed).toEqual([])
    expect(r.results.map((x) => [x.name, x.manifestDigest])).toEqual([
      ['b', images.v2.manifestDigest],
      ['a', images.v2.manifestDigest],
    ])
  })
})
