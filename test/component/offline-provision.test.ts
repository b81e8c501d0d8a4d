/**
 * provision: provision.d entries installed idempotently into a root
 * (--root, OfflineSystemd) and on a "live" host (FakeSystemd: starts in
 * dependency order), failures reported per entry while the others go on.
 * Images from an in-process registry (the source factory path).
 */
import { spawnSync } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildDemoImages } from '../../harness/demo/images'
import { buildRootContext } from '../../src/ops/context'
import { parseProvisionEntry, provision, provisionFailedError } from '../../src/ops/provision'
import { SysctrError } from '../../src/errors'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { fakeHost } from '../helpers/test-paths'

const TEMPLATES = join(__dirname, '..', '..', 'templates')
let served: ServedLayout<unknown>
let layout: string
let registry: FakeRegistry
const dirs: string[] = []

beforeAll(async () => {
  served = await serveLayout('demo/images', (dir) => buildDemoImages(dir))
  ;({ registry, layout } = served)
})
afterAll(async () => {
  await served?.close()
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true })
})

async function tempDir(): Promise<string> {
  const d = await fsp.mkdtemp(join(tmpdir(), 'sysctr-prov-root-'))
  dirs.push(d)
  return d
}

const entry = (tag: string, more = '') => `image = ${registry.host}/demo/images:${tag}\nname = ${tag}\ntls-verify = false\nstart = true\n${more}`

async function writeEntries(dir: string, entries: Record<string, string>): Promise<void> {
  await fsp.mkdir(dir, { recursive: true })
  for (const [f, text] of Object.entries(entries)) await fsp.writeFile(join(dir, f), text)
}

describe('parseProvisionEntry', () => {
  it('reads image, name, set.KEY and [values], booleans; name defaults to the file name without its order prefix', () => {
    const e = parseProvisionEntry('image = oci-archive:/usr/share/sysctr/images/etcd.tar\nset.A = 1\nenable = no\n[values]\nB = "x;y"\n', '/etc/sysctr/provision.d/10-etcd.conf')
    expect(e).toMatchObject({ name: 'etcd', image: 'oci-archive:/usr/share/sysctr/images/etcd.tar', values: { A: '1', B: 'x;y' }, enable: false, start: false, tlsVerify: true })
  })
  it.each([
    ['name = x\n', /no image/],
    ['image = a/b:c\nstart = maybe\n', /start must be true or false/],
    ['image = a/b:c\nbogus = 1\n', /unknown key bogus/],
  ])('refuses %j', (text, re) => {
    expect(() => parseProvisionEntry(text, 'f.conf')).toThrow(re)
  })
})

describe('provision --root', () => {
  it('installs every entry into the root, enabled, starts deferred to boot; a second run changes nothing', async () => {
    const root = await tempDir()
    const messages: string[] = []
    const ctx = buildRootContext(root, { templatesDir: TEMPLATES, env: {}, reporter: { info: (m) => messages.push(m), warn: (m) => messages.push(`warning: ${m}`) } })
    await writeEntries(join(root, 'etc/sysctr/provision.d'), { '10-etcd.conf': entry('etcd'), '20-flannel.conf': entry('flannel'), '30-engine.conf': entry('engine') })
    const r = await provision(ctx)
    expect(r.failures).toBe(0)
    expect(r.entries.map((e) => [e.name, e.outcome])).toEqual([['etcd', 'installed'], ['flannel', 'installed'], ['engine', 'installed']])
    expect(r.started.map((s) => s.result)).toEqual(['deferred', 'deferred', 'deferred'])
    for (const n of ['etcd', 'flannel', 'engine']) {
      expect(await fsp.readlink(join(root, `etc/systemd/system/multi-user.target.wants/${n}.service`))).toBe(`/etc/systemd/system/${n}.service`)
    }
    const info = await fsp.readFile(join(root, 'var/lib/sysctr/containers/etcd.0/info.json'), 'utf8')
    const again = await provision(ctx)
    expect(again.entries.map((e) => e.outcome)).toEqual(['unchanged', 'unchanged', 'unchanged'])
    expect(await fsp.readFile(join(root, 'var/lib/sysctr/containers/etcd.0/info.json'), 'utf8')).toBe(info)
  })

  it('a failing entry is reported with its file and name, the others are installed, and the run fails', async () => {
    const root = await tempDir()
    const warnings: string[] = []
    const ctx = buildRootContext(root, { templatesDir: TEMPLATES, env: {}, reporter: { info: () => {}, warn: (m) => warnings.push(m) } })
    await writeEntries(join(root, 'etc/sysctr/provision.d'), {
      '10-etcd.conf': entry('etcd'),
      '15-missing.conf': entry('nosuchtag').replace('name = nosuchtag', 'name = missing'),
      '16-broken.conf': 'name = broken\n',
      '30-engine.conf': entry('engine', 'enable = false\n'),
    })
    const r = await provision(ctx)
    expect(r.entries.map((e) => [e.name ?? null, e.outcome])).toEqual([['etcd', 'installed'], ['missing', 'failed'], [null, 'failed'], ['engine', 'installed']])
    expect(r.failures).toBe(2)
    expect(warnings.some((w) => w.includes('15-missing.conf (missing) failed'))).toBe(true)
    expect(warnings.some((w) => w.includes('16-broken.conf failed') && w.includes('no image'))).toBe(true)
    // enable = false: installed, not enabled.
    await expect(fsp.readlink(join(root, 'etc/systemd/system/multi-user.target.wants/engine.service'))).rejects.toThrow()
    const err = provisionFailedError(r)
    expect(err).toBeInstanceOf(SysctrError)
    expect(err!.message).toContain('missing')
    expect(err!.exitCode).not.toBe(0)
  })
})

describe('provision --root from a local archive inside the root', () => {
  it('opens oci-archive:/usr/share/... under DIR and records the name as written, so the booted system finds it unchanged', async () => {
    const root = await tempDir()
    await fsp.mkdir(join(root, 'usr/share/sysctr/images'), { recursive: true })
    const tar = spawnSync('tar', ['-C', layout, '-cf', join(root, 'usr/share/sysctr/images/demo.tar'), '.'])
    expect(tar.status).toBe(0)
    const ctx = buildRootContext(root, { templatesDir: TEMPLATES, env: {}, reporter: { info: () => {}, warn: () => {} } })
    await writeEntries(join(root, 'etc/sysctr/provision.d'), { '10-etcd.conf': 'image = oci-archive:/usr/share/sysctr/images/demo.tar:etcd\nstart = true\n' })
    const r = await provision(ctx)
    expect(r.entries).toMatchObject([{ name: 'etcd', outcome: 'installed' }])
    const info = JSON.parse(await fsp.readFile(join(root, 'var/lib/sysctr/containers/etcd.0/info.json'), 'utf8'))
    expect(info.image).toBe('oci-archive:/usr/share/sysctr/images/demo.tar:etcd')
    expect((await provision(ctx)).entries[0]!.outcome).toBe('unchanged')
  })
})

describe('provision with a running systemd (fake)', () => {
  it('starts the start = true units; systemd orders them by their dependencies', async () => {
    const root = await tempDir()
    const { ctx, systemd } = await fakeHost(root)
    const dir = join(root, 'conf')
    // Engine first by file name: the start order still follows Requires=/After=.
    await writeEntries(dir, { '10-engine.conf': entry('engine'), '20-flannel.conf': entry('flannel'), '30-etcd.conf': entry('etcd') })
    const r = await provision(ctx, { dir })
    expect(r.failures).toBe(0)
    expect(r.started.map((s) => s.result)).toEqual(['done', 'done', 'done'])
    const st = Object.fromEntries(
      await Promise.all(['etcd', 'flannel', 'engine'].map(async (n) => [n, await systemd.unitState(`${n}.service`)] as const)),
    )
    for (const n of ['etcd', 'flannel', 'engine']) expect(st[n].activeState).toBe('active')
    // Each left inactive only after the one it requires was active.
    expect(st.etcd.activeEnterTimestampMonotonic).toBeLessThanOrEqual(st.flannel.inactiveExitTimestampMonotonic)
    expect(st.flannel.activeEnterTimestampMonotonic).toBeLessThanOrEqual(st.engine.inactiveExitTimestampMonotonic)
  })
})
