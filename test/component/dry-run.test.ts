/**
 * install --dry-run and containers update --dry-run against an in-process
 * registry and the fake systemd: the plan names the layers to fetch, renders
 * the files the real run then writes (byte for byte), and changes nothing
 * under the containers dir, the unit dir or the tmpfiles dir; systemd is
 * never contacted.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { WrittenImage } from '../../harness/oci-layout-writer'
import { install } from '../../src/ops/install'
import { update } from '../../src/ops/update'
import { pull } from '../../src/ops/images'
import { installDryRun, updateDryRun } from '../../src/ops/dry-run'
import type { OpsContext } from '../../src/ops/context'
import { FakeSystemd } from '../../harness/fake-systemd'
import { Store } from '../../src/store/store'
import { SysctrError } from '../../src/errors'
import { unifiedDiff } from '../../src/util/line-diff'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { buildUpdateImages } from '../helpers/update-images'
import { fakeHost } from '../helpers/test-paths'


let served: ServedLayout<WrittenImage[]>
let layout: string
let registry: FakeRegistry
let images: Record<string, WrittenImage>
let root: string
let ctx: OpsContext
let systemd: FakeSystemd
let systemdCalls: number

beforeAll(async () => {
  served = await serveLayout('demo/svc', (dir) => buildUpdateImages(dir))
  ;({ registry, layout } = served)
  images = Object.fromEntries(served.built.map((w) => [w.tag.replace('svc-', ''), w]))
})
afterAll(async () => {
  await served?.close()
  if (root) await fsp.rm(root, { recursive: true, force: true })
})

beforeEach(async () => {
  if (root) await fsp.rm(root, { recursive: true, force: true })
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-dryrun-root-'))
  systemdCalls = 0
  ;({ ctx, systemd } = await fakeHost(root, {}, {
    systemd: async () => {
      systemdCalls++
      return systemd
    },
    uuid: () => '11111111-2222-3333-4444-555555555555',
  }))
  registry.tag('latest', images.v1.manifestDigest)
})

const REF = () => `${registry.host}/demo/svc:latest`
const publish = (v: string) => registry.tag('latest', images[v].manifestDigest)

/** Every path under the containers, unit and tmpfiles dirs with its content or link target. */
async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  async function walk(d: string): Promise<void> {
    for (const e of await fsp.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name)
      if (e.isSymbolicLink()) out[p] = `-> ${await fsp.readlink(p)}`
      else if (e.isDirectory()) {
        out[p] = 'dir'
        if (e.name !== 'rootfs') await walk(p)
      } else out[p] = await fsp.readFile(p, 'utf8')
    }
  }
  for (const d of [ctx.paths.containersDir, ctx.paths.unitDir, ctx.paths.tmpfilesDir]) await walk(d)
  return out
}

describe('install --dry-run', () => {
  it('an image not in the store: lists every layer to fetch, renders nothing, changes nothing', async () => {
    const before = await snapshot()
    const plan = await installDryRun(ctx, { image: REF(), name: 'svc', tlsVerify: false, set: ['GREETING=hi'] })
    expect(plan.pull.imageInStore).toBe(false)
    expect(plan.pull.layersToFetch).toBe(3)
    expect(plan.pull.bytesToFetch).toBe(plan.pull.layers.reduce((n, l) => n + l.size, 0))
    expect(plan.files).toBeUndefined()
    expect(plan.note).toContain('sysctr images pull')
    expect(await snapshot()).toEqual(before)
    expect(systemdCalls).toBe(0)
    const store = await Store.open(ctx.paths.storeDir)
    expect(await store.listImageRefs()).toEqual([])
    expect(await store.getLayer(plan.pull.layers[0].digest)).toBeUndefined()
    await store.close()
  })

  it('an image in the store: renders exactly what the install then writes', async () => {
    await pull(ctx, REF(), { tlsVerify: false })
    const before = await snapshot()
    const plan = await installDryRun(ctx, { image: REF(), name: 'svc', tlsVerify: false, set: ['GREETING=hi'] })
    expect(plan.pull).toMatchObject({ imageInStore: true, layersToFetch: 0, bytesToFetch: 0 })
    expect(plan.deployment).toBe('svc.0')
    expect(await snapshot()).toEqual(before)
    expect(systemdCalls).toBe(0)

    await install(ctx, { image: REF(), name: 'svc', tlsVerify: false, set: ['GREETING=hi'] })
    const unit = plan.files!.find((f) => f.role === 'unit')!
    expect(unit.text).toContain('Description=svc v1')
    expect(await fsp.readFile(unit.path, 'utf8')).toBe(unit.text)
    for (const f of plan.files!) expect(await fsp.readFile(f.path, 'utf8')).toBe(f.text)
  })

  it('refuses as install would when the name is taken by another image', async () => {
    await install(ctx, { image: REF(), name: 'svc', tlsVerify: false })
    const err = await installDryRun(ctx, { image: `oci:${layout}:svc-v2`, name: 'svc' }).catch((e) => e)
    expect(err).toBeInstanceOf(SysctrError)
    expect(err.code).toBe('container.exists')
  })
})

describe('containers update --dry-run', () => {
  it('lists the changed layer, diffs unit and config against the active deployment, and the update writes the planned files', async () => {
    await install(ctx, { image: REF(), name: 'svc', tlsVerify: false, set: ['GREETING=hi'] })
    publish('v2')
    const events = systemd.events.length
    systemdCalls = 0
    const before = await snapshot()

    const unknown = await updateDryRun(ctx, 'svc', { tlsVerify: false })
    expect(unknown.unchanged).toBe(false)
    expect(unknown.pull.layersToFetch).toBe(1)
    expect(unknown.diffs).toBeUndefined()
    expect(unknown.note).toContain('sysctr images pull')

    await pull(ctx, REF(), { tlsVerify: false })
    const plan = await updateDryRun(ctx, 'svc', { tlsVerify: false, set: ['GREETING=yo'] })
    expect(plan).toMatchObject({ activeDeployment: 'svc.0', deployment: 'svc.1', manifestDigest: images.v2.manifestDigest })
    expect(plan.changedValues).toEqual([
      { key: 'GREETING', from: 'hi', to: 'yo' },
      { key: 'VERSION', from: 'v1', to: 'v2' },
    ])
    const unitDiff = plan.diffs!.find((d) => d.role === 'unit')!.diff
    expect(unitDiff).toContain('-Description=svc v1')
    expect(unitDiff).toContain('+Description=svc v2')
    const configDiff = plan.diffs!.find((d) => d.role === 'config.json')!.diff
    expect(configDiff).toContain('+      "GREETING=yo"')
    expect(await snapshot()).toEqual(before)
    expect(systemdCalls).toBe(0)
    expect(systemd.events.length).toBe(events)

    await update(ctx, 'svc', { tlsVerify: false, set: ['GREETING=yo'] })
    for (const f of plan.files!) expect(await fsp.readFile(f.path, 'utf8')).toBe(f.text)
  })

  it('says so when nothing would change', async () => {
    await install(ctx, { image: REF(), name: 'svc', tlsVerify: false })
    const plan = await updateDryRun(ctx, 'svc', { tlsVerify: false })
    expect(plan.unchanged).toBe(true)
    expect(plan.pull.layersToFetch).toBe(0)
  })
})

describe('unifiedDiff', () => {
  it('produces diff -u hunks with context', () => {
    const a = 'a\nb\nc\nd\ne\nf\ng\nh\n'
    const b = 'a\nb\nc\nD\ne\nf\ng\nh\ni\n'
    expect(unifiedDiff(a, b, 'old', 'new', 1)).toBe('--- old\n+++ new\n@@ -3,3 +3,3 @@\n c\n-d\n+D\n e\n@@ -8,1 +8,2 @@\n h\n+i\n')
    expect(unifiedDiff(a, a, 'old', 'new')).toBe('')
    expect(unifiedDiff('', 'x\n', 'old', 'new')).toBe('--- old\n+++ new\n@@ -0,0 +1,1 @@\n+x\n')
  })
})
