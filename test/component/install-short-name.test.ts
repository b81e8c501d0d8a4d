/**
 * install, install --dry-run and update with short names: resolved as
 * registries.conf says (alias, the one search registry, enforcing refuses an
 * ambiguous name, permissive takes the first registry that has the image),
 * and the record keeps the qualified name, so an update pulls from there.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildDemoImages } from '../../harness/demo/images'
import { install } from '../../src/ops/install'
import { installDryRun } from '../../src/ops/dry-run'
import { update } from '../../src/ops/update'
import type { OpsContext } from '../../src/ops/context'
import { SysctrError } from '../../src/errors'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { fakeHost, listTree } from '../helpers/test-paths'

let served: ServedLayout<unknown>
let registry: FakeRegistry
let root: string
let confDir: string
let ctx: OpsContext
let messages: string[]
const savedConf = process.env.CONTAINERS_REGISTRIES_CONF

beforeAll(async () => {
  served = await serveLayout('demo/images', buildDemoImages)
  registry = served.registry
})
afterAll(async () => {
  await served?.close()
})

beforeEach(async () => {
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-shortname-root-'))
  confDir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-shortname-conf-'))
  ;({ ctx, messages } = await fakeHost(root))
})
afterEach(async () => {
  if (savedConf === undefined) delete process.env.CONTAINERS_REGISTRIES_CONF
  else process.env.CONTAINERS_REGISTRIES_CONF = savedConf
  await fsp.rm(root, { recursive: true, force: true })
  await fsp.rm(confDir, { recursive: true, force: true })
})

/** registries.conf for this test; the fake registry speaks plain HTTP, so it is marked insecure. */
async function registriesConf(text: string): Promise<void> {
  const file = join(confDir, 'registries.conf')
  await fsp.writeFile(file, `${text}\n[[registry]]\nlocation = "${registry.host}"\ninsecure = true\n`)
  process.env.CONTAINERS_REGISTRIES_CONF = file
}

describe('install with a short name', () => {
  it('resolves an alias; the record and the store ref hold the qualified name', async () => {
    await registriesConf(`[aliases]\n"etcd" = "${registry.host}/demo/images"\n`)
    const r = await install(ctx, { image: 'etcd:etcd', tlsVerify: false })
    expect(r.name).toBe('etcd')
    expect(r.image).toBe(`${registry.host}/demo/images:etcd`)
    const info = JSON.parse(await fsp.readFile(join(ctx.paths.containersDir, 'etcd.0/info.json'), 'utf8'))
    expect(info.image).toBe(`${registry.host}/demo/images:etcd`)
    expect(messages.some((m) => m.includes(`short name etcd:etcd resolved to ${registry.host}/demo/images:etcd (alias`))).toBe(true)
  })

  it('uses the one unqualified-search registry, and the update pulls from the recorded name', async () => {
    await registriesConf(`unqualified-search-registries = ["${registry.host}"]\n`)
    const r = await install(ctx, { image: 'demo/images:flannel', name: 'flannel', tlsVerify: false })
    expect(r.image).toBe(`${registry.host}/demo/images:flannel`)
    // The search list changes afterwards: update still uses the recorded, qualified name.
    await registriesConf(`unqualified-search-registries = ["127.0.0.1:1"]\n`)
    const u = await update(ctx, 'flannel', { tlsVerify: false })
    expect(u.image).toBe(`${registry.host}/demo/images:flannel`)
  })

  it('enforcing mode refuses an ambiguous short name (exit 2, both candidates named) and writes nothing', async () => {
    await registriesConf(`short-name-mode = "enforcing"\nunqualified-search-registries = ["127.0.0.1:1", "${registry.host}"]\n`)
    const before = await listTree(root)
    const err = await install(ctx, { image: 'demo/images:etcd', name: 'etcd', tlsVerify: false }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(SysctrError)
    expect((err as SysctrError).code).toBe('reference.ambiguous')
    expect((err as SysctrError).exitCode).toBe(2)
    expect((err as SysctrError).message).toContain(`127.0.0.1:1/demo/images:etcd, ${registry.host}/demo/images:etcd`)
    expect(await listTree(root)).toEqual(before)
  })

  it('permissive mode takes the first search registry that has the image', async () => {
    await registriesConf(`short-name-mode = "permissive"\nunqualified-search-registries = ["127.0.0.1:1", "${registry.host}"]\n`)
    const r = await install(ctx, { image: 'demo/images:engine', name: 'engine', tlsVerify: false })
    expect(r.image).toBe(`${registry.host}/demo/images:engine`)
  }, 30_000)

  it('install --dry-run names the resolved image', async () => {
    await registriesConf(`[aliases]\n"etcd" = "${registry.host}/demo/images"\n`)
    const plan = await installDryRun(ctx, { image: 'etcd:etcd', tlsVerify: false })
    expect(plan.name).toBe('etcd')
    expect(plan.image).toBe(`${registry.host}/demo/images:etcd`)
  })

  it('a short name with no alias and no search registry is a usage error naming the fix', async () => {
    await registriesConf('')
    const err = await install(ctx, { image: 'etcd', tlsVerify: false }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect((err as SysctrError).code).toBe('reference.unqualified')
    expect((err as SysctrError).exitCode).toBe(2)
    expect((err as SysctrError).hint).toContain('fully qualified name')
  })
})
