/**
 * update and rollback with a root context (`--root DIR`): the new deployment
 * and the switched unit land inside DIR, paths in the records stay as seen
 * from inside it, and nothing is started (there is no running systemd).
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { install } from '../../src/ops/install'
import { update } from '../../src/ops/update'
import { rollback } from '../../src/ops/rollback'
import { buildRootContext } from '../../src/ops/context'
import { startFakeRegistry, FakeRegistry } from '../helpers/http-fake-registry'
import { buildUpdateImages } from '../helpers/update-images'

const TEMPLATES = join(__dirname, '..', '..', 'templates')
let layout: string
let root: string
let registry: FakeRegistry

beforeAll(async () => {
  layout = await fsp.mkdtemp(join(tmpdir(), 'sysctr-offline-update-layout-'))
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-offline-update-root-'))
  await buildUpdateImages(layout)
  registry = await startFakeRegistry({ repository: 'demo/svc' })
  await registry.loadLayout(layout)
})
afterAll(async () => {
  await registry?.close()
  for (const d of [layout, root]) await fsp.rm(d, { recursive: true, force: true })
})

describe('update and rollback under --root', () => {
  it('moves the composed tree to v2 and back to v1, all inside the root', async () => {
    const ctx = buildRootContext(root, { templatesDir: TEMPLATES, env: {}, reporter: { info() {}, warn() {} } })
    const image = (v: string) => `${registry.host}/demo/svc:svc-${v}`
    await install(ctx, { image: image('v1'), name: 'svc', tlsVerify: false })
    const unitPath = join(root, 'etc/systemd/system/svc.service')
    const containers = join(root, 'var/lib/sysctr/containers')

    const up = await update(ctx, 'svc', { rebase: image('v2'), tlsVerify: false })
    expect(up.unchanged).toBe(false)
    expect(up.restarted).toBeUndefined()
    expect(await fsp.readlink(join(containers, 'svc'))).toBe('svc.1')
    expect(await fsp.readFile(join(containers, 'svc/rootfs/etc/svc-version'), 'utf8')).toBe('v2\n')
    // The unit names the deployment as the booted tree will see it.
    expect(await fsp.readFile(unitPath, 'utf8')).toContain('--bundle /var/lib/sysctr/containers/svc.1 svc')
    const info = JSON.parse(await fsp.readFile(join(containers, 'svc.1/info.json'), 'utf8'))
    expect(info.files.map((f: { path: string }) => f.path)).toEqual(['/etc/systemd/system/svc.service', '/etc/tmpfiles.d/svc.conf'])
    // Nothing was written outside the root.
    await expect(fsp.access('/var/lib/sysctr/containers/svc.1')).rejects.toThrow()

    const back = await rollback(ctx, 'svc')
    expect(back.deployment).toBe('svc.0')
    expect(await fsp.readlink(join(containers, 'svc'))).toBe('svc.0')
    expect(await fsp.readFile(unitPath, 'utf8')).toContain('--bundle /var/lib/sysctr/containers/svc.0 svc')
    // Still enabled the way `systemctl --root` would have it.
    await expect(fsp.lstat(join(root, 'etc/systemd/system/multi-user.target.wants/svc.service'))).resolves.toBeTruthy()
  })
})
