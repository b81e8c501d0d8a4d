/**
 * mount / umount with real bind mounts (needs root: CAP_SYS_ADMIN), the
 * in-process registry and the fake systemd. While an image is mounted,
 * `images delete` refuses it and `images prune` keeps its objects.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { WrittenImage } from '../../harness/oci-layout-writer'
import { install } from '../../src/ops/install'
import { pull } from '../../src/ops/images'
import { mount, umount, listMounts } from '../../src/ops/mount'
import { pruneStore } from '../../src/ops/store-maintenance'
import { deleteImage } from '../../src/ops/images'
import type { OpsContext } from '../../src/ops/context'
import { startFakeRegistry, FakeRegistry } from '../helpers/http-fake-registry'
import { buildUpdateImages } from '../helpers/update-images'
import { uninstall } from '../../src/ops/uninstall'
import { fakeHost } from '../helpers/test-paths'

const notRoot = process.getuid?.() !== 0

describe.skipIf(notRoot)(`sysctr mount / umount${notRoot ? ': skipped, bind mounts need root' : ''}`, () => {
  let layout: string
  let registry: FakeRegistry
  let root: string
  let ctx: OpsContext
  const mounted: string[] = []

  beforeAll(async () => {
    layout = await fsp.mkdtemp(join(tmpdir(), 'sysctr-mount-layout-'))
    const imgs: WrittenImage[] = await buildUpdateImages(layout)
    expect(imgs.length).toBe(3)
    registry = await startFakeRegistry({ repository: 'demo/svc' })
    await registry.loadLayout(layout)
    root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-mount-root-'))
    ctx = (await fakeHost(root)).ctx
  })
  afterAll(async () => {
    for (const d of mounted) await umount(ctx, d).catch(() => {})
    await registry?.close()
    await fsp.rm(layout, { recursive: true, force: true })
    if (root) await fsp.rm(root, { recursive: true, force: true })
  })

  const ref = (v: string) => `${registry.host}/demo/svc:svc-${v}`

  it("NAME: the container's rootfs, readable and read-only; umount removes the record", async () => {
    await install(ctx, { image: ref('v1'), name: 'svc', tlsVerify: false })
    const dir = join(root, 'mnt/svc')
    const r = await mount(ctx, 'svc', dir)
    mounted.push(dir)
    expect(r).toMatchObject({ kind: 'container', target: 'svc', source: join(ctx.paths.containersDir, 'svc.0/rootfs') })
    expect(await fsp.readFile(join(dir, 'etc/svc-version'), 'utf8')).toBe('v1\n')
    await expect(fsp.writeFile(join(dir, 'etc/new'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    await expect(fsp.unlink(join(dir, 'etc/svc-version'))).rejects.toMatchObject({ code: 'EROFS' })
    await expect(mount(ctx, 'svc', dir)).rejects.toMatchObject({ code: 'mount.exists', exitCode: 4 })
    // Uninstall would pull the files out from under the view: refused while mounted.
    await expect(uninstall(ctx, 'svc')).rejects.toMatchObject({ code: 'container.mounted', exitCode: 4 })
    expect(await fsp.readFile(join(dir, 'etc/svc-version'), 'utf8')).toBe('v1\n')
    await umount(ctx, dir)
    mounted.pop()
    expect(await listMounts(ctx)).toEqual([])
    expect(await fsp.readdir(dir)).toEqual([])
    await expect(umount(ctx, dir)).rejects.toMatchObject({ code: 'mount.not-found', exitCode: 3 })
  })

  it('IMAGE: a fresh checkout bound read-only; images delete refuses and prune keeps it while mounted', async () => {
    await pull(ctx, ref('v2'), { tlsVerify: false })
    const dir = join(root, 'mnt/v2')
    const r = await mount(ctx, ref('v2'), dir)
    mounted.push(dir)
    expect(r.kind).toBe('image')
    expect(r.checkout).toBeDefined()
    expect(await fsp.readFile(join(dir, 'etc/svc-version'), 'utf8')).toBe('v2\n')
    await expect(fsp.writeFile(join(dir, 'x'), 'x')).rejects.toMatchObject({ code: 'EROFS' })
    await expect(deleteImage(ctx, ref('v2'))).rejects.toMatchObject({ code: 'image.mounted', exitCode: 4 })
    await pruneStore(ctx)
    expect(await fsp.readFile(join(dir, 'bin/busybox')).then((b) => b.length)).toBeGreaterThan(0)
    await umount(ctx, dir)
    mounted.pop()
    await expect(fsp.access(r.checkout!)).rejects.toThrow()
    await expect(deleteImage(ctx, ref('v2'))).resolves.toMatchObject({ reference: ref('v2') })
  })

  it('neither a container nor an image in the store: exit 3, nothing recorded', async () => {
    await expect(mount(ctx, ref('v3'), join(root, 'mnt/v3'))).rejects.toMatchObject({ code: 'mount.not-found', exitCode: 3 })
    expect(await listMounts(ctx)).toEqual([])
  })
})
