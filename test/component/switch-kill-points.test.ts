/**
 * Kill points inside install, update and rollback (deployment/switch.ts
 * killPoint): the operation is stopped at each step boundary as a crash
 * would stop it (nothing undoes it), then the host is checked:
 * - replaying the undo journal (what the next command on the name does
 *   first) brings the host back exactly to the state before the operation:
 *   unit, tmpfiles entry, host files, the active link, enablement;
 * - running the same command again then ends in exactly the state a run
 *   without the kill ends in.
 * In-process registry and fake systemd; the "host" is a temp root.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { WrittenImage } from '../../harness/oci-layout-writer'
import { install } from '../../src/ops/install'
import { update } from '../../src/ops/update'
import { rollback } from '../../src/ops/rollback'
import { uninstall } from '../../src/ops/uninstall'
import type { OpsContext } from '../../src/ops/context'
import { Deployments } from '../../src/deployment/deployments'
import { recover, SimulatedKill } from '../../src/deployment/switch'
import type { FakeSystemd } from '../../harness/fake-systemd'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { buildHostfsImages } from '../helpers/hostfs-images'
import { fakeHost } from '../helpers/test-paths'

let served: ServedLayout<WrittenImage[]>
let registry: FakeRegistry
let images: Record<string, WrittenImage>
let root: string
let ctx: OpsContext
let systemd: FakeSystemd

beforeAll(async () => {
  served = await serveLayout('demo/web', (dir) => buildHostfsImages(dir))
  registry = served.registry
  images = Object.fromEntries(served.built.map((w) => [w.tag, w]))
})
afterAll(async () => {
  await served?.close()
  if (root) await fsp.rm(root, { recursive: true, force: true })
})
beforeEach(async () => {
  if (root) await fsp.rm(root, { recursive: true, force: true })
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-kill-'))
  ;({ ctx, systemd } = await fakeHost(root, {}, { root }))
  publish('web-v1')
})

const REF = () => `${registry.host}/demo/web:latest`
const publish = (tag: string) => registry.tag('latest', images[tag].manifestDigest)
const FILES = ['/etc/systemd/system/web1.service', '/etc/tmpfiles.d/web1.conf', '/etc/web1/web1.conf', '/etc/web1/webctl', '/etc/web/v1-only.conf']

/** What a person would look at: the files sysctr writes, the active link, enablement, and whether the unit runs. */
async function hostState(): Promise<Record<string, unknown>> {
  const files: Record<string, string | null> = {}
  for (const f of FILES) files[f] = await fsp.readFile(join(root, f), 'utf8').catch(() => null)
  const link = await fsp.readlink(join(ctx.paths.containersDir, 'web1')).catch(() => null)
  const u = await systemd.unitState('web1.service')
  const wants = await fsp.readlink(join(root, 'etc/systemd/system/multi-user.target.wants/web1.service')).catch(() => null)
  return { files, link, enabled: wants !== null || u.unitFileState === 'enabled' }
}

const installWeb = (c: OpsContext = ctx) => install(c, { image: REF(), name: 'web1', tlsVerify: false, now: true })
const SWITCH_POINTS = ['switch:journal', 'switch:unit', 'switch:hostfs', 'switch:link', 'switch:systemd']

async function replayJournal(): Promise<void> {
  await recover(ctx, new Deployments(ctx.paths.containersDir), 'web1')
}

describe('kill points', () => {
  it.each(SWITCH_POINTS)('install killed at %s: the journal takes the host back to nothing; a rerun installs it whole', async (point) => {
    const before = await hostState()
    await expect(installWeb({ ...ctx, killAt: point })).rejects.toBeInstanceOf(SimulatedKill)
    await replayJournal()
    expect(await hostState()).toEqual(before)
    expect(await new Deployments(ctx.paths.containersDir).slots('web1')).toEqual([])
    const r = await installWeb()
    expect(r.unchanged).toBe(false)
    const after = await hostState()
    expect(after).toMatchObject({ link: 'web1.0', enabled: true })
    expect(Object.values(after.files as object).every((v) => v !== null)).toBe(true)
  })

  it('a write killed between its temp file and the rename leaves .NAME.tmp-… beside the unit: the replay removes it', async () => {
    await expect(installWeb({ ...ctx, killAt: 'switch:unit' })).rejects.toBeInstanceOf(SimulatedKill)
    const temp = join(root, 'etc/systemd/system/.web1.service.tmp-4242-deadbeef')
    await fsp.writeFile(temp, 'half a unit')
    await replayJournal()
    await expect(fsp.access(temp)).rejects.toThrow()
    expect((await fsp.readdir(join(root, 'etc/systemd/system'))).filter((e) => e.startsWith('.'))).toEqual([])
  })

  it('install killed after its switch but before enable used to be a no-op on rerun; now the rerun enables it', async () => {
    await expect(installWeb({ ...ctx, killAt: 'switch:link' })).rejects.toBeInstanceOf(SimulatedKill)
    const r = await installWeb()
    expect(r.unchanged).toBe(false)
    expect(await hostState()).toMatchObject({ link: 'web1.0', enabled: true })
  })

  it.each(['update:built', ...SWITCH_POINTS, 'update:restarted'])('update killed at %s: the journal takes the host back to v1; a rerun ends as an uninterrupted update', async (point) => {
    // The state an uninterrupted update ends in, from a fresh root.
    await installWeb()
    publish('web-v2')
    await update(ctx, 'web1', { tlsVerify: false })
    const updated = await hostState()
    await fsp.rm(root, { recursive: true, force: true })
    root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-kill-'))
    ;({ ctx, systemd } = await fakeHost(root, {}, { root }))
    publish('web-v1')

    await installWeb()
    const v1 = await hostState()
    publish('web-v2')
    await expect(update({ ...ctx, killAt: point }, 'web1', { tlsVerify: false })).rejects.toBeInstanceOf(SimulatedKill)
    await replayJournal()
    expect(await hostState()).toEqual(v1)
    expect(await new Deployments(ctx.paths.containersDir).slots('web1')).toEqual([0])
    const u = await update(ctx, 'web1', { tlsVerify: false })
    expect(u.unchanged).toBe(false)
    expect(await hostState()).toEqual(updated)
    expect((await systemd.unitState('web1.service')).activeState).toBe('active')
  })

  it.each(SWITCH_POINTS)('rollback killed at %s: the journal leaves v2 active; a rerun rolls back to v1', async (point) => {
    await installWeb()
    const v1 = await hostState()
    publish('web-v2')
    await update(ctx, 'web1', { tlsVerify: false })
    const v2 = await hostState()
    await expect(rollback({ ...ctx, killAt: point }, 'web1')).rejects.toBeInstanceOf(SimulatedKill)
    await replayJournal()
    expect(await hostState()).toEqual(v2)
    await rollback(ctx, 'web1')
    expect(await hostState()).toEqual({ ...v1, link: 'web1.0' })
    expect(await new Deployments(ctx.paths.containersDir).slots('web1')).toEqual([0, 1])
  })

  it.each(['uninstall:disabled', 'uninstall:files'])('uninstall killed at %s: a rerun finishes it and leaves nothing of the container', async (point) => {
    await installWeb()
    publish('web-v2')
    await update(ctx, 'web1', { tlsVerify: false })
    await expect(uninstall({ ...ctx, killAt: point }, 'web1')).rejects.toBeInstanceOf(SimulatedKill)
    await uninstall(ctx, 'web1')
    expect(await hostState()).toEqual({ files: Object.fromEntries(FILES.map((f) => [f, null])), link: null, enabled: false })
    expect(await fsp.readdir(ctx.paths.containersDir)).toEqual([])
  })
})

describe('the no-op install checks the host against the record', () => {
  it('a removed unit file and a disabled unit are put back by the same install (it used to say "nothing to do")', async () => {
    await installWeb()
    const installed = await hostState()
    await fsp.rm(join(root, 'etc/systemd/system/web1.service'))
    await fsp.writeFile(join(root, 'etc/tmpfiles.d/web1.conf'), 'edited\n')
    await systemd.disableUnitFiles(['web1.service']).catch(() => {})
    await fsp.rm(join(root, 'etc/systemd/system/multi-user.target.wants/web1.service'), { force: true })
    expect(await hostState()).not.toEqual(installed)
    const r = await installWeb()
    expect(r.unchanged).toBe(true)
    expect(await hostState()).toEqual(installed)
  })
})

