/**
 * images delete: refused while a deployment uses the image, allowed after
 * uninstall; the store lock and this process's lease are released after it.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildDemoImages } from '../../harness/demo/images'
import { install } from '../../src/ops/install'
import { uninstall } from '../../src/ops/uninstall'
import { deleteImage, listImages } from '../../src/ops/images'
import type { OpsContext } from '../../src/ops/context'
import { Store } from '../../src/store/store'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { fakeHost } from '../helpers/test-paths'

let served: ServedLayout<unknown>
let registry: FakeRegistry
let root: string
let ctx: OpsContext

beforeAll(async () => {
  served = await serveLayout('demo/images', buildDemoImages)
  registry = served.registry
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-delete-root-'))
  ctx = (await fakeHost(root)).ctx
})
afterAll(async () => {
  await served?.close()
  await fsp.rm(root, { recursive: true, force: true })
})

describe('images delete', () => {
  it('is refused while a deployment uses the image (exit 4, deployment named), and works after uninstall', async () => {
    const image = `${registry.host}/demo/images:etcd`
    await install(ctx, { image, name: 'etcd', tlsVerify: false })
    await expect(deleteImage(ctx, image)).rejects.toMatchObject({ code: 'image.in-use', exitCode: 4, message: expect.stringContaining('etcd.0') })
    expect((await listImages(ctx)).map((i) => i.reference)).toEqual([image])

    await uninstall(ctx, 'etcd')
    const r = await deleteImage(ctx, image, { prune: true })
    expect(r.reference).toBe(image)
    expect(r.pruned!.objectsRemoved).toBeGreaterThan(0)
    expect(await listImages(ctx)).toEqual([])
    // Nothing of the run stays: no lock, no lease.
    const store = await Store.open(ctx.paths.storeDir)
    try {
      expect(await store.liveLeases()).toEqual([])
    } finally {
      await store.close()
    }
    await expect(fsp.lstat(join(ctx.paths.storeDir, 'lock'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
