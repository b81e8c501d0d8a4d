/**
 * Shared harness for the config-privileged-*.test.ts files (one per class of
 * privilege): an image whose /exports/config.json asks for CLASS is refused
 * by install with config.privileged (exit 6) naming the fields, and the host
 * is exactly as before; with `privileged: true` it installs and the record
 * says so. The same image without the request installs unprivileged.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { writeOciLayout } from '../../harness/oci-layout-writer'
import { install } from '../../src/ops/install'
import type { OpsContext } from '../../src/ops/context'
import { FakeSystemd } from '../../harness/fake-systemd'
import { SysctrError } from '../../src/errors'
import type { RuntimeSpec } from '../../src/runtime/config-check'
import { startFakeRegistry, FakeRegistry } from '../helpers/http-fake-registry'
import { update } from '../../src/ops/update'
import { installDryRun } from '../../src/ops/dry-run'
import { pull } from '../../src/ops/images'
import { uninstall } from '../../src/ops/uninstall'
import { fakeHost, listTree } from '../helpers/test-paths'


/** A config like the demo images' (what the default template renders): nothing beyond the defaults. */
export function baseSpec(): RuntimeSpec {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']
  return {
    ociVersion: '1.0.2',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/bin/true'], env: ['PATH=/bin'], cwd: '/', capabilities: { bounding: caps, effective: caps, permitted: caps }, noNewPrivileges: true },
    root: { path: 'rootfs', readonly: true },
    hostname: 'svc',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/run/svc', type: 'bind', source: '/run/svc', options: ['rbind', 'rw'] },
      { destination: '/dev/log', type: 'bind', source: '/run/systemd/notify', options: ['bind'] },
    ],
    linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }] },
  }
}


/**
 * Define the suite for one class: `mutate` turns the base config into one that
 * asks for it; `fields` are the spec fields the error must name, `texts` more it must say.
 */
export function privilegeSuite(what: string, mutate: (spec: RuntimeSpec) => void, fields: string[], texts: string[] = []): void {
  let layout: string
  let registry: FakeRegistry
  let root: string
  let ctx: OpsContext
  let systemd: FakeSystemd

  beforeAll(async () => {
    layout = await fsp.mkdtemp(join(tmpdir(), 'sysctr-priv-layout-'))
    const privileged = baseSpec()
    mutate(privileged)
    const image = (spec: RuntimeSpec) => [
      [
        { path: 'bin/', type: 'directory' as const },
        { path: 'bin/true', content: '#!/bin/sh\n', mode: 0o755 },
        { path: 'exports/', type: 'directory' as const },
        { path: 'exports/config.json', content: JSON.stringify(spec, null, 2) },
      ],
    ]
    await writeOciLayout(layout, [
      { tag: 'plain', layers: image(baseSpec()), config: { Cmd: ['/bin/true'] } },
      { tag: 'asks', layers: image(privileged), config: { Cmd: ['/bin/true'] } },
    ])
    registry = await startFakeRegistry({ repository: 'demo/priv' })
    await registry.loadLayout(layout)
  })
  afterAll(async () => {
    await registry?.close()
    await fsp.rm(layout, { recursive: true, force: true })
    if (root) await fsp.rm(root, { recursive: true, force: true })
  })
  beforeEach(async () => {
    if (root) await fsp.rm(root, { recursive: true, force: true })
    root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-priv-root-'))
    ;({ ctx, systemd } = await fakeHost(root))
  })
  const opts = (tag: string, more: Record<string, unknown> = {}) => ({ image: `${registry.host}/demo/priv:${tag}`, name: 'svc', tlsVerify: false, ...more })

  describe(`config.json asking for ${what}`, () => {
    it('is refused with config.privileged (exit 6) naming the fields; the host is as before', async () => {
      const before = await listTree(root)
      const err = await install(ctx, opts('asks')).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(SysctrError)
      const e = err as SysctrError
      expect({ code: e.code, exitCode: e.exitCode }).toEqual({ code: 'config.privileged', exitCode: 6 })
      for (const f of [...fields, ...texts]) expect(e.fullMessage).toContain(f)
      expect(e.data?.fields).toEqual(expect.arrayContaining(fields))
      expect(e.hint).toContain('--privileged')
      // Only the store (which keeps the pulled image, as after any failed install) may have appeared.
      const outsideStore = (l: string[]) => l.filter((p) => !['var', 'var/lib', 'var/lib/sysctr', 'var/lib/sysctr/containers'].includes(p) && !p.startsWith('var/lib/sysctr/store'))
      expect(outsideStore(await listTree(root))).toEqual(outsideStore(before))
      expect(await fsp.readdir(ctx.paths.containersDir).catch(() => [])).toEqual([])
      expect((await systemd.unitState('svc.service').catch(() => ({ loadState: 'not-found' }))).loadState).toBe('not-found')
    })

    it('installs with privileged: true, and the record and result say so', async () => {
      const r = await install(ctx, opts('asks', { privileged: true }))
      expect(r.privileged).toBe(true)
      const info = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'svc.0/info.json'), 'utf8'))
      expect(info.privileged).toBe(true)
      expect((await systemd.unitState('svc.service')).unitFileState).toBe('enabled')
    })

    it('an update of an install allowed --privileged stays allowed; an unprivileged one is refused the privileged image', async () => {
      await install(ctx, opts('asks', { privileged: true }))
      const up = await update(ctx, 'svc', { rebase: `${registry.host}/demo/priv:plain`, tlsVerify: false })
      expect(up.unchanged).toBe(false)
      const back = await update(ctx, 'svc', { rebase: `${registry.host}/demo/priv:asks`, tlsVerify: false })
      expect(back.unchanged).toBe(false)
      await uninstall(ctx, 'svc')
      await install(ctx, opts('plain'))
      await expect(update(ctx, 'svc', { rebase: `${registry.host}/demo/priv:asks`, tlsVerify: false })).rejects.toMatchObject({ code: 'config.privileged' })
    })

    it('a dry run refuses it too (it promises nothing the install would refuse)', async () => {
      // A dry run renders only images already in the store.
      await pull(ctx, `${registry.host}/demo/priv:asks`, { tlsVerify: false })
      await expect(installDryRun(ctx, opts('asks'))).rejects.toMatchObject({ code: 'config.privileged', exitCode: 6 })
      await expect(installDryRun(ctx, opts('asks', { privileged: true }))).resolves.toBeDefined()
    })

    it('installs with exactly the --grant flags its refusal printed; with one left out it is refused naming that one', async () => {
      const err = (await install(ctx, opts('asks')).catch((e: unknown) => e)) as SysctrError
      const grants = err.data?.grants as string[]
      expect(grants.length).toBeGreaterThan(0)
      for (const g of grants) expect(err.hint).toContain(`--grant ${g}`)
      for (const [i, left] of grants.entries()) {
        const fewer = grants.filter((_, j) => j !== i)
        const again = (await install(ctx, opts('asks', { grant: fewer })).catch((e: unknown) => e)) as SysctrError
        expect({ code: again.code, grants: again.data?.grants }).toEqual({ code: 'config.privileged', grants: [left] })
      }
      const r = await install(ctx, opts('asks', { grant: grants }))
      expect(r.privileged).toBeUndefined()
      expect(r.asked).toEqual(expect.arrayContaining(grants))
      const info = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'svc.0/info.json'), 'utf8'))
      expect(info.grants).toEqual(grants)
    })

    it('an update whose image asks for more than was granted is refused with the --grant flags to add, the running deployment untouched; update --grant accepts it', async () => {
      await install(ctx, opts('plain', { now: true }))
      const before = await listTree(root)
      const asks = { rebase: `${registry.host}/demo/priv:asks`, tlsVerify: false }
      const err = (await update(ctx, 'svc', asks).catch((e: unknown) => e)) as SysctrError
      expect({ code: err.code, exitCode: err.exitCode }).toEqual({ code: 'config.privileged', exitCode: 6 })
      const grants = err.data?.grants as string[]
      for (const g of grants) expect(err.hint).toContain(`--grant ${g}`)
      const outsideStore = (l: string[]) => l.filter((p) => !p.startsWith('var/lib/sysctr/store') && !p.startsWith('var/lib/sysctr/locks'))
      expect(outsideStore(await listTree(root))).toEqual(outsideStore(before))
      expect((await systemd.unitState('svc.service')).activeState).toBe('active')
      const up = await update(ctx, 'svc', { ...asks, grant: grants })
      expect(up.deployment).toBe('svc.1')
      const info = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'svc.1/info.json'), 'utf8'))
      expect(info.grants).toEqual(grants)
    })

    it('the same image without the request installs unprivileged', async () => {
      const r = await install(ctx, opts('plain'))
      expect(r.privileged).toBeUndefined()
      const info = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'svc.0/info.json'), 'utf8'))
      expect(info.privileged).toBeUndefined()
    })
  })
}
