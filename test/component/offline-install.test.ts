/**
 * install/uninstall with a root context (`--root DIR`): an in-process
 * registry, OfflineSystemd, everything under DIR. What lands in DIR names
 * paths as seen from inside it; links match `systemctl --root=DIR enable`;
 * two composes of the same inputs give the same tree.
 */
import { spawnSync } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildDemoImages } from '../../harness/demo/images'
import { install } from '../../src/ops/install'
import { uninstall } from '../../src/ops/uninstall'
import { buildRootContext, type OpsContext } from '../../src/ops/context'
import { SysctrError } from '../../src/errors'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { compareTrees } from '../helpers/tree-compare'

const TEMPLATES = join(__dirname, '..', '..', 'templates')
const NAMES = ['etcd', 'flannel', 'engine']

let served: ServedLayout<unknown>
let registry: FakeRegistry
const dirs: string[] = []

beforeAll(async () => {
  served = await serveLayout('demo/images', (dir) => buildDemoImages(dir))
  registry = served.registry
})
afterAll(async () => {
  await served?.close()
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true })
})

async function newRoot(): Promise<{ root: string; ctx: OpsContext; messages: string[] }> {
  const root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-offline-root-'))
  dirs.push(root)
  const messages: string[] = []
  const ctx = buildRootContext(root, {
    templatesDir: TEMPLATES,
    env: {},
    reporter: { info: (m) => messages.push(m), warn: (m) => messages.push(`warning: ${m}`) },
  })
  return { root, ctx, messages }
}

const image = (tag: string) => `${registry.host}/demo/images:${tag}`

async function compose(ctx: OpsContext): Promise<void> {
  for (const n of NAMES) await install(ctx, { image: image(n), name: n, tlsVerify: false })
}

async function links(root: string, dir = 'etc/systemd/system'): Promise<string[]> {
  const out: string[] = []
  for (const e of await fsp.readdir(join(root, dir), { withFileTypes: true, recursive: true })) {
    const rel = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name).slice(root.length + 1)
    if (e.isSymbolicLink()) out.push(`${rel} -> ${await fsp.readlink(join(root, rel))}`)
  }
  return out.sort()
}

describe('install --root', () => {
  it('writes everything under DIR, naming paths as seen from inside DIR; enablement links as systemctl --root makes them', async () => {
    const { root, ctx } = await newRoot()
    await compose(ctx)
    const unit = await fsp.readFile(join(root, 'etc/systemd/system/etcd.service'), 'utf8')
    expect(unit).toContain('--bundle /var/lib/sysctr/containers/etcd.0 etcd')
    expect(unit).toContain('WorkingDirectory=/var/lib/sysctr/containers/etcd.0')
    expect(unit).not.toContain(root)
    expect(await fsp.readFile(join(root, 'etc/tmpfiles.d/etcd.conf'), 'utf8')).toBe('d /run/etcd 0755 root root -\n')
    const info = JSON.parse(await fsp.readFile(join(root, 'var/lib/sysctr/containers/etcd.0/info.json'), 'utf8'))
    expect(info.files.map((f: { path: string }) => f.path)).toEqual(['/etc/systemd/system/etcd.service', '/etc/tmpfiles.d/etcd.conf'])
    expect(info.createdAt).toBe('1970-01-01T00:00:00.000Z')
    expect(info.values.UUID).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(info.values.HOST_UID).toBe('0')
    for (const n of NAMES) expect(JSON.stringify(JSON.parse(await fsp.readFile(join(root, `var/lib/sysctr/containers/${n}.0/config.json`), 'utf8')))).not.toContain(root)
    const ours = await links(root)
    expect(ours).toEqual(NAMES.map((n) => `etc/systemd/system/multi-user.target.wants/${n}.service -> /etc/systemd/system/${n}.service`).sort())

    // The same unit files enabled by systemctl --root give the same links.
    if (spawnSync('systemctl', ['--version']).status === 0) {
      const theirs = await fsp.mkdtemp(join(tmpdir(), 'sysctr-offline-systemctl-'))
      dirs.push(theirs)
      await fsp.mkdir(join(theirs, 'etc/systemd/system'), { recursive: true })
      for (const n of NAMES) await fsp.copyFile(join(root, `etc/systemd/system/${n}.service`), join(theirs, `etc/systemd/system/${n}.service`))
      expect(spawnSync('systemctl', [`--root=${theirs}`, 'enable', ...NAMES.map((n) => `${n}.service`)]).status).toBe(0)
      expect((await links(theirs)).map((l) => l)).toEqual(ours)
    }
    expect((await (await ctx.systemd()).unitState('flannel.service')).unitFileState).toBe('enabled')
  })

  it('is reproducible: two composes of the same images into two roots give identical trees', async () => {
    const a = await newRoot()
    const b = await newRoot()
    await compose(a.ctx)
    await compose(b.ctx)
    expect(await compareTrees(a.root, b.root, { ignoreRoot: true, xattrs: false })).toBeUndefined()
  })

  it('a second install is the no-op path; --now is refused (systemd.offline) after the install, which stays', async () => {
    const { root, ctx } = await newRoot()
    await compose(ctx)
    const again = await install(ctx, { image: image('etcd'), name: 'etcd', tlsVerify: false })
    expect(again.unchanged).toBe(true)
    const err = await install(ctx, { image: image('etcd'), name: 'etcd2', tlsVerify: false, now: true }).catch((e: unknown) => e)
    expect((err as SysctrError).code).toBe('systemd.offline')
    expect(await fsp.readlink(join(root, 'etc/systemd/system/multi-user.target.wants/etcd2.service'))).toBe('/etc/systemd/system/etcd2.service')
  })

  it('uninstall --root removes unit, tmpfiles entry, links and deployments under DIR', async () => {
    const { root, ctx } = await newRoot()
    await compose(ctx)
    const r = await uninstall(ctx, 'flannel')
    expect(r.removedFiles.sort()).toEqual(['/etc/systemd/system/flannel.service', '/etc/tmpfiles.d/flannel.conf'])
    await expect(fsp.access(join(root, 'etc/systemd/system/flannel.service'))).rejects.toThrow()
    await expect(fsp.access(join(root, 'var/lib/sysctr/containers/flannel.0'))).rejects.toThrow()
    expect(await links(root)).toEqual(['etcd', 'engine'].map((n) => `etc/systemd/system/multi-user.target.wants/${n}.service -> /etc/systemd/system/${n}.service`).sort())
  })
})
