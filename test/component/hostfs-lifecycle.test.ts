/**
 * Host files through install / update / rollback / uninstall (issue #5),
 * noContainerService, the activated marker and the per-name lock, against an
 * in-process registry and the fake systemd. The "host" is a temp dir used as
 * --root-style ctx.root, so host files land under it (never on this machine's
 * /etc). Images: test/helpers/hostfs-images.ts.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { WrittenImage } from '../../harness/oci-layout-writer'
import { install } from '../../src/ops/install'
import { SimulatedKill } from '../../src/deployment/switch'
import { update } from '../../src/ops/update'
import { rollback } from '../../src/ops/rollback'
import { uninstall } from '../../src/ops/uninstall'
import { listContainers } from '../../src/ops/containers'
import { withNameLock } from '../../src/ops/name-lock'
import type { OpsContext } from '../../src/ops/context'
import { Deployments } from '../../src/deployment/deployments'
import { Store } from '../../src/store/store'
import { pullImage } from '../../src/ops/pull-image'
import { FakeSystemd } from '../../harness/fake-systemd'
import { ConflictError, NotFoundError, SysctrError } from '../../src/errors'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { buildHostfsImages, webConf, WEBCTL } from '../helpers/hostfs-images'
import { fakeHost } from '../helpers/test-paths'
import { openImageSource } from '../../src/transports/open'

let served: ServedLayout<WrittenImage[]>
let registry: FakeRegistry
let images: Record<string, WrittenImage>
let root: string
let ctx: OpsContext
let systemd: FakeSystemd
let messages: string[]
let tmpfilesCalls: string[]
/** A deployment dir (e.g. `web1.1`) whose unit fails to start. */
let failOn: string | undefined

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
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-hostfs-root-'))
  failOn = undefined
  const failsToStart = (_u: string, file: { get(s: string, k: string): string | undefined }) =>
    failOn && file.get('Service', 'WorkingDirectory')?.endsWith(`/${failOn}`) ? 'exit-code' : undefined
  ;({ ctx, systemd, messages, tmpfilesCalls } = await fakeHost(root, { failsToStart }, { root }))
  publish('web-v1')
})

const REF = () => `${registry.host}/demo/web:latest`
const publish = (tag: string) => registry.tag('latest', images[tag].manifestDigest)
const host = (p: string) => join(root, p)
const read = (p: string) => fsp.readFile(host(p), 'utf8')
const exists = (p: string) => fsp.access(host(p)).then(() => true, () => false)
const CONF = '/etc/web1/web1.conf'
const CTL = '/etc/web1/webctl'
const OLD = '/etc/web/v1-only.conf'
const installWeb = (now = true) => install(ctx, { image: REF(), name: 'web1', tlsVerify: false, now })
const warningsAbout = (p: string) => messages.filter((m) => m.startsWith('warning:') && m.includes(p))

describe('host files', () => {
  it('install writes them renamed and rendered, recorded with sha256 and role hostfs', async () => {
    const r = await installWeb()
    expect(await read(CONF)).toBe(webConf('v1', 'web1'))
    expect(await read(CTL)).toBe(WEBCTL.v1)
    expect((await fsp.stat(host(CTL))).mode & 0o777).toBe(0o755)
    expect(await read(OLD)).toBe('old\n')
    const hostfs = r.files.filter((f) => f.role === 'hostfs')
    expect(hostfs.map((f) => f.path).sort()).toEqual([OLD, CONF, CTL].sort())
    expect(hostfs.every((f) => /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true)
    expect(hostfs.find((f) => f.path === CONF)?.source).toBe('/exports/hostfs/etc/web/web.conf')
    expect(await fsp.readFile(join(ctx.paths.containersDir, 'web1.0/hostfs', CONF), 'utf8')).toBe(webConf('v1', 'web1'))
  })

  it('a user-edited file survives update, rollback and uninstall; unchanged ones follow the image', async () => {
    await installWeb()
    await fsp.writeFile(host(CONF), 'port=9999 # mine\n')
    publish('web-v2')
    const u = await update(ctx, 'web1', { tlsVerify: false })
    expect(u.unchanged).toBe(false)
    expect(await read(CONF)).toBe('port=9999 # mine\n')
    expect(warningsAbout(CONF)).toHaveLength(1)
    expect(await read(CTL)).toBe(WEBCTL.v2)
    expect(await exists(OLD)).toBe(false)

    const rb = await rollback(ctx, 'web1')
    expect(rb.deployment).toBe('web1.0')
    expect(await read(CONF)).toBe('port=9999 # mine\n')
    expect(await read(CTL)).toBe(WEBCTL.v1)
    expect(await read(OLD)).toBe('old\n')

    const un = await uninstall(ctx, 'web1')
    expect(un.keptFiles).toEqual([CONF])
    expect(un.removedFiles).toEqual(expect.arrayContaining([CTL, OLD]))
    expect(await read(CONF)).toBe('port=9999 # mine\n')
    expect(await exists(CTL)).toBe(false)
    expect(await exists(OLD)).toBe(false)
    expect(await fsp.readdir(ctx.paths.containersDir)).toEqual([])
  })

  it('install refuses a destination sysctr did not write (exit 4, path named) and leaves the host as it was', async () => {
    await fsp.mkdir(host('/etc/web1'), { recursive: true })
    await fsp.writeFile(host(CONF), 'theirs\n')
    const err = await installWeb().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConflictError)
    expect((err as SysctrError).exitCode).toBe(4)
    expect((err as SysctrError).message).toContain(CONF)
    expect(await read(CONF)).toBe('theirs\n')
    expect(await exists(CTL)).toBe(false)
    expect(await exists('/etc/systemd/system/web1.service')).toBe(false)
    expect(await new Deployments(ctx.paths.containersDir).active('web1')).toBeUndefined()
  })

  it('an install failing after the host files were written removes exactly those', async () => {
    await fsp.mkdir(host('/etc/web1'), { recursive: true })
    await fsp.writeFile(host('/etc/web1/other.conf'), 'theirs\n')
    ctx.systemd = async () => {
      throw new SysctrError('test.no-systemd', 'systemd unreachable (test)')
    }
    await expect(installWeb()).rejects.toThrow(/systemd unreachable/)
    for (const p of [CONF, CTL, OLD]) expect(await exists(p)).toBe(false)
    expect(await read('/etc/web1/other.conf')).toBe('theirs\n')
    expect(await new Deployments(ctx.paths.containersDir).slots('web1')).toEqual([])
  })

  it('an update whose start fails rolls back the host files too', async () => {
    await installWeb()
    publish('web-v2')
    failOn = 'web1.1'
    const err = await update(ctx, 'web1', { tlsVerify: false }).catch((e: unknown) => e)
    expect((err as SysctrError).code).toBe('update.rolled-back')
    expect(await read(CONF)).toBe(webConf('v1', 'web1'))
    expect(await read(CTL)).toBe(WEBCTL.v1)
    expect(await read(OLD)).toBe('old\n')
  })

  it('an update (--rebase) refuses a new host file over a foreign one and changes nothing', async () => {
    publish('tools')
    await install(ctx, { image: REF(), name: 'web1', tlsVerify: false })
    await fsp.mkdir(host('/etc/web1'), { recursive: true })
    await fsp.writeFile(host(CONF), 'theirs\n')
    const err = await update(ctx, 'web1', { tlsVerify: false, rebase: `${registry.host}/demo/web:web-v1` }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConflictError)
    expect((err as SysctrError).message).toContain(CONF)
    expect(await read(CONF)).toBe('theirs\n')
    expect(await exists(CTL)).toBe(false)
    const d = new Deployments(ctx.paths.containersDir)
    expect((await d.active('web1'))?.slot).toBe(0)
    expect(await d.slots('web1')).toEqual([0])
  })
})

describe('noContainerService', () => {
  it('install writes host files and the tmpfiles entry, no unit, enables and starts nothing; list says none; uninstall cleans up', async () => {
    publish('tools')
    const r = await install(ctx, { image: REF(), name: 'tools', tlsVerify: false, now: true })
    expect(r.noContainerService).toBe(true)
    expect(r.started).toBeUndefined()
    expect(await read('/etc/tools/hello')).toBe('#!/bin/sh\necho hello\n')
    expect(await read('/etc/tmpfiles.d/tools.conf')).toBe('d /run/tools-tools 0755 root root -\n')
    expect(tmpfilesCalls).toEqual([`create ${host('/etc/tmpfiles.d/tools.conf')}`])
    expect(await exists('/etc/systemd/system/tools.service')).toBe(false)
    expect(systemd.events).toEqual([])
    const info = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'tools.0/info.json'), 'utf8'))
    expect(info.noContainerService).toBe(true)
    expect(info.files.map((f: { role: string }) => f.role).sort()).toEqual(['hostfs', 'tmpfiles'])
    const [c] = await listContainers(ctx)
    expect(c).toMatchObject({ name: 'tools', activeState: 'none', subState: 'none', unitFileState: 'none', noContainerService: true })
    const un = await uninstall(ctx, 'tools')
    expect(un.removedFiles.sort()).toEqual(['/etc/tmpfiles.d/tools.conf', '/etc/tools/hello'])
    expect(await exists('/etc/tools/hello')).toBe(false)
    expect(systemd.events).toEqual([])
  })

  it('an update from a service image to a host-files-only one removes and disables the unit', async () => {
    await installWeb()
    publish('tools')
    await update(ctx, 'web1', { tlsVerify: false })
    expect(await exists('/etc/systemd/system/web1.service')).toBe(false)
    expect(await exists('/etc/systemd/system/multi-user.target.wants/web1.service')).toBe(false)
    expect(await exists(CTL)).toBe(false)
    expect(await exists('/etc/tools/hello')).toBe(true)
  })
})

describe('activated marker', () => {
  it('a slot built but never switched to (a crash) is no rollback target and is cleaned up by the next update', async () => {
    await installWeb()
    publish('web-v2')
    // An update killed after it built slot 1, before its switch.
    await expect(update({ ...ctx, killAt: 'update:built' }, 'web1', { tlsVerify: false })).rejects.toBeInstanceOf(SimulatedKill)
    const deployments = new Deployments(ctx.paths.containersDir)
    expect(await deployments.slots('web1')).toEqual([0, 1])
    expect(await deployments.isActivated('web1', 0)).toBe(true)
    expect(await deployments.isActivated('web1', 1)).toBe(false)

    await expect(rollback(ctx, 'web1')).rejects.toBeInstanceOf(NotFoundError)
    expect(await read(CTL)).toBe(WEBCTL.v1)
    const u = await update(ctx, 'web1', { tlsVerify: false })
    expect(u.deployment).toBe('web1.1')
    expect(u.previousDeployment).toBe('web1.0')
    expect(await deployments.isActivated('web1', 1)).toBe(true)
    expect(await read(CTL)).toBe(WEBCTL.v2)
  })
})

describe('an update interrupted after writing host files', () => {
  it('the next operation puts the active deployment\'s host files back (user edits still kept) before removing the slot', async () => {
    await installWeb()
    await fsp.writeFile(host(CONF), 'edited by the user\n')
    publish('web-v2')
    // An update killed inside its switch, after the host files, before the link: the slot is never activated.
    await expect(update({ ...ctx, killAt: 'switch:hostfs' }, 'web1', { tlsVerify: false })).rejects.toBeInstanceOf(SimulatedKill)
    const deployments = new Deployments(ctx.paths.containersDir)
    expect(await read(CTL)).toBe(WEBCTL.v2)
    expect(await exists(OLD)).toBe(false)

    // The publisher goes back to v1: the update has nothing to do, but the host files are v1's again.
    publish('web-v1')
    const u = await update(ctx, 'web1', { tlsVerify: false })
    expect(u.unchanged).toBe(true)
    expect(await read(CTL)).toBe(WEBCTL.v1)
    expect(await read(OLD)).toBe('old\n')
    expect(await read(CONF)).toBe('edited by the user\n')
    expect(await deployments.slots('web1')).toEqual([0])
    expect(messages.some((m) => m.startsWith('host files of an interrupted operation on web1 put back'))).toBe(true)
  })
})

describe('per-name lock', () => {
  it('two installs of one name at once run one after the other: one installs, the other finds it done', async () => {
    const [a, b] = await Promise.all([installWeb(false), installWeb(false)])
    expect([a.unchanged, b.unchanged].sort()).toEqual([false, true])
    expect(messages.some((m) => /^waiting for web1: pid \d+ is installing web1$/.test(m))).toBe(true)
    expect(await read(CTL)).toBe(WEBCTL.v1)
  })

  it('a second holder waits until the first releases; different names do not wait', async () => {
    const order: string[] = []
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    const first = withNameLock(ctx, 'x', 'first', async () => {
      order.push('first in')
      await held
      order.push('first out')
    })
    while (order.length === 0) await new Promise((r) => setTimeout(r, 5))
    const second = withNameLock(ctx, 'x', 'second', async () => void order.push('second in'))
    await withNameLock(ctx, 'y', 'other', async () => void order.push('other name'))
    while (!messages.some((m) => m.startsWith('waiting for x'))) await new Promise((r) => setTimeout(r, 5))
    release()
    await Promise.all([first, second])
    expect(order).toEqual(['first in', 'other name', 'first out', 'second in'])
    expect(messages).toContain(`waiting for x: pid ${process.pid} is first`)
    expect(await fsp.readdir(ctx.paths.stateDir).catch(() => [])).toEqual([])
  })
})
