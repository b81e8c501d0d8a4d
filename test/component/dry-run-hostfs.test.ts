/**
 * Dry runs plan host files (/exports/hostfs) and noContainerService images as
 * the real run handles them: the same paths and bytes, read from the store
 * without a checkout; update --dry-run diffs host files against the active
 * deployment's copies and lists the ones the update would remove.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { install } from '../../src/ops/install'
import { pull } from '../../src/ops/images'
import { installDryRun, updateDryRun } from '../../src/ops/dry-run'
import type { OpsContext } from '../../src/ops/context'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { buildHostfsImages, webConf } from '../helpers/hostfs-images'
import { fakeHost, listTree } from '../helpers/test-paths'

let served: ServedLayout<unknown>
let registry: FakeRegistry
let root: string
let ctx: OpsContext

beforeAll(async () => {
  served = await serveLayout('demo/web', (dir) => buildHostfsImages(dir))
  registry = served.registry
})
afterAll(async () => {
  await served?.close()
  if (root) await fsp.rm(root, { recursive: true, force: true })
})
beforeEach(async () => {
  if (root) await fsp.rm(root, { recursive: true, force: true })
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-dryrun-hostfs-root-'))
  // Host files land under the root, never on this machine's /etc.
  ctx = (await fakeHost(root, {}, { root })).ctx
})

const ref = (tag: string) => `${registry.host}/demo/web:${tag}`

describe('dry runs and host files', () => {
  it('install --dry-run lists the host files with the bytes and modes the install then writes', async () => {
    await pull(ctx, ref('web-v1'), { tlsVerify: false })
    const before = await listTree(root)
    const plan = await installDryRun(ctx, { image: ref('web-v1'), name: 'web1', tlsVerify: false })
    expect(await listTree(root)).toEqual(before)
    const hostfs = plan.files!.filter((f) => f.role === 'hostfs')
    expect(hostfs.map((f) => f.path).sort()).toEqual([join(root, 'etc/web/v1-only.conf'), join(root, 'etc/web1/web1.conf'), join(root, 'etc/web1/webctl')])
    expect(hostfs.find((f) => f.path.endsWith('web1.conf'))!.text).toBe(webConf('v1', 'web1'))

    await install(ctx, { image: ref('web-v1'), name: 'web1', tlsVerify: false })
    for (const f of hostfs) {
      expect(await fsp.readFile(f.path, 'utf8')).toBe(f.text)
      expect((await fsp.stat(f.path)).mode & 0o7777).toBe(f.mode)
    }
  })

  it('update --dry-run diffs host files against the active deployment and lists the ones it would remove', async () => {
    await install(ctx, { image: ref('web-v1'), name: 'web1', tlsVerify: false })
    await pull(ctx, ref('web-v2'), { tlsVerify: false })
    const plan = await updateDryRun(ctx, 'web1', { rebase: ref('web-v2'), tlsVerify: false })
    const diff = (suffix: string) => plan.diffs!.find((d) => d.role === 'hostfs' && d.path.endsWith(suffix))!.diff
    expect(diff('/etc/web1/web1.conf')).toContain('+workers=4')
    expect(diff('/etc/web1/webctl')).toContain('+echo webctl v2')
    expect(diff('/etc/web/v1-only.conf')).toContain('-old')
  })

  it('a noContainerService image: no unit planned, config.json not checked, tmpfiles entry and host files listed', async () => {
    await pull(ctx, ref('tools'), { tlsVerify: false })
    const plan = await installDryRun(ctx, { image: ref('tools'), name: 'tools', tlsVerify: false })
    expect(plan.files!.map((f) => f.role)).toEqual(['config.json', 'tmpfiles', 'hostfs'])
    expect(plan.files!.find((f) => f.role === 'tmpfiles')!.text).toBe('d /run/tools-tools 0755 root root -\n')
    expect(plan.files!.find((f) => f.role === 'hostfs')!.path).toBe(join(root, 'etc/tools/hello'))
  })
})
