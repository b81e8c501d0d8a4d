/**
 * A damaged install record (containers/NAME.N/info.json cut short, emptied,
 * not an object, a field missing): the record is named, never skipped.
 * `containers list` still lists the other containers and marks this one
 * broken; update, rollback, uninstall and install of that name refuse with
 * HostError record.damaged (exit 7) naming the file and how to repair;
 * prune refuses too rather than take the image for unused.
 * (Before: list left the container out, exit 0; update failed with the
 * parser's "Unterminated string in JSON at position 300", exit 1.)
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildDemoImages } from '../../harness/demo/images'
import { SysctrError } from '../../src/errors'
import { listContainers } from '../../src/ops/containers'
import type { OpsContext } from '../../src/ops/context'
import { install } from '../../src/ops/install'
import { rollback } from '../../src/ops/rollback'
import { pruneStore } from '../../src/ops/store-maintenance'
import { uninstall } from '../../src/ops/uninstall'
import { update } from '../../src/ops/update'
import { startFakeRegistry, type FakeRegistry } from '../helpers/http-fake-registry'
import { fakeHost } from '../helpers/test-paths'

let layout: string
let registry: FakeRegistry
let root: string
let ctx: OpsContext
let messages: string[]

beforeAll(async () => {
  layout = await fsp.mkdtemp(join(tmpdir(), 'sysctr-faults-record-layout-'))
  await buildDemoImages(layout)
  registry = await startFakeRegistry({ repository: 'demo/images' })
  await registry.loadLayout(layout)
})
afterAll(async () => {
  await registry?.close()
  await fsp.rm(layout, { recursive: true, force: true })
  if (root) await fsp.rm(root, { recursive: true, force: true })
})

const ref = (tag: string) => `${registry.host}/demo/images:${tag}`

async function rejection(p: Promise<unknown>): Promise<SysctrError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(SysctrError)
  return err as SysctrError
}

const DAMAGE: [string, (text: string) => string, RegExp][] = [
  ['cut short', (t) => t.slice(0, 300), /not valid JSON \(.*\)/],
  ['emptied', () => '', /it is empty/],
  ['not an object', () => '[1, 2]\n', /not a JSON object/],
  ['a field missing', (t) => JSON.stringify({ ...JSON.parse(t), imageCommit: undefined }), /field "imageCommit" is missing/],
]

describe.each(DAMAGE)('an info.json %s', (_label, damage, problem) => {
  let info: string
  let damaged: string
  beforeEach(async () => {
    if (root) await fsp.rm(root, { recursive: true, force: true })
    root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-faults-record-'))
    ;({ ctx, messages } = await fakeHost(root))
    await install(ctx, { image: ref('etcd'), name: 'etcd', tlsVerify: false })
    await install(ctx, { image: ref('flannel'), name: 'flannel', tlsVerify: false })
    info = join(ctx.paths.containersDir, 'etcd.0', 'info.json')
    damaged = damage(await fsp.readFile(info, 'utf8'))
    await fsp.writeFile(info, damaged)
  })

  function expectDamaged(e: SysctrError): void {
    expect({ code: e.code, exitCode: e.exitCode }).toEqual({ code: 'record.damaged', exitCode: 7 })
    expect(e.fullMessage).toContain(`the record ${info} is damaged: `)
    expect(e.fullMessage).toMatch(problem)
    expect(e.hint).toMatch(/restore the file from a backup; otherwise remove etcd by hand/)
    expect(e.data).toMatchObject({ path: info })
  }

  it('containers list: the other containers are listed, this one marked broken with the path and the problem', async () => {
    const list = await listContainers(ctx)
    expect(list.map((c) => c.name)).toEqual(['etcd', 'flannel'])
    const [etcd, flannel] = list
    expect(etcd.broken).toMatchObject({ path: info, code: 'record.damaged' })
    expect(etcd.broken!.error).toMatch(problem)
    expect(etcd.deployment).toBe('etcd.0')
    expect(flannel.broken).toBeUndefined()
    expect(flannel.image).toBe(ref('flannel'))
    expect(messages.some((m) => m.startsWith('warning: etcd: the record ') && m.includes(info))).toBe(true)
  })

  it('update refuses: record.damaged, exit 7, naming the file', async () => {
    expectDamaged(await rejection(update(ctx, 'etcd', { tlsVerify: false })))
    expect(await fsp.readlink(join(ctx.paths.containersDir, 'etcd'))).toBe('etcd.0')
  })

  it('rollback refuses: record.damaged, exit 7', async () => {
    expectDamaged(await rejection(rollback(ctx, 'etcd')))
  })

  it('uninstall refuses and removes nothing', async () => {
    expectDamaged(await rejection(uninstall(ctx, 'etcd')))
    expect(await fsp.readFile(info, 'utf8')).toBe(damaged)
    expect(await fsp.readlink(join(ctx.paths.containersDir, 'etcd'))).toBe('etcd.0')
  })

  it('install of that name refuses', async () => {
    expectDamaged(await rejection(install(ctx, { image: ref('etcd'), name: 'etcd', tlsVerify: false })))
  })

  it('the other containers are untouched: update of flannel still works', async () => {
    const r = await update(ctx, 'flannel', { tlsVerify: false })
    expect(r).toBeDefined()
  })

  it('prune refuses instead of taking the image for unused', async () => {
    expectDamaged(await rejection(pruneStore(ctx)))
  })
})

describe('a damaged previous deployment', () => {
  it('rollback names it instead of saying there is nothing to roll back to', async () => {
    if (root) await fsp.rm(root, { recursive: true, force: true })
    root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-faults-record-'))
    ;({ ctx, messages } = await fakeHost(root))
    await install(ctx, { image: ref('etcd'), name: 'svc', tlsVerify: false })
    await update(ctx, 'svc', { tlsVerify: false, rebase: ref('flannel') })
    const prev = join(ctx.paths.containersDir, 'svc.0', 'info.json')
    expect(await fsp.readlink(join(ctx.paths.containersDir, 'svc'))).toBe('svc.1')
    await fsp.writeFile(prev, (await fsp.readFile(prev, 'utf8')).slice(0, 100))
    const e = await rejection(rollback(ctx, 'svc'))
    expect({ code: e.code, exitCode: e.exitCode }).toEqual({ code: 'record.damaged', exitCode: 7 })
    expect(e.fullMessage).toContain(prev)
  })
})

describe('a damaged mount record', () => {
  it('prune refuses (record.damaged, the file named) instead of taking the mounted image for unused', async () => {
    if (root) await fsp.rm(root, { recursive: true, force: true })
    root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-faults-record-'))
    ;({ ctx, messages } = await fakeHost(root))
    await install(ctx, { image: ref('etcd'), name: 'etcd', tlsVerify: false })
    const rec = join(ctx.paths.stateDir, 'mounts', '0123456789abcdef.json')
    await fsp.mkdir(join(ctx.paths.stateDir, 'mounts'), { recursive: true })
    await fsp.writeFile(rec, '{"dir": "/mnt/x", "kind": "ima')
    const e = await rejection(pruneStore(ctx))
    expect({ code: e.code, exitCode: e.exitCode }).toEqual({ code: 'record.damaged', exitCode: 7 })
    expect(e.fullMessage).toContain(`the record ${rec} is damaged: not valid JSON`)
  })
})
