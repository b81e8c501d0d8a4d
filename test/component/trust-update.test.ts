/**
 * The signature policy applies to every operation that opens an image, not
 * only install and pull: update, update --dry-run and install --dry-run
 * refuse an image the policy rejects (exit 9) and change nothing.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildDemoImages } from '../../harness/demo/images'
import { install } from '../../src/ops/install'
import { update } from '../../src/ops/update'
import { installDryRun, updateDryRun } from '../../src/ops/dry-run'
import type { OpsContext } from '../../src/ops/context'
import { serveLayout, type FakeRegistry, type ServedLayout } from '../helpers/http-fake-registry'
import { fakeHost, listTree } from '../helpers/test-paths'

let served: ServedLayout<unknown>
let registry: FakeRegistry
let root: string
let ctx: OpsContext
let accept: string
let reject: string

beforeAll(async () => {
  served = await serveLayout('demo/images', buildDemoImages)
  registry = served.registry
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-trust-update-root-'))
  ctx = (await fakeHost(root)).ctx
  accept = join(root, 'accept.json')
  reject = join(root, 'reject.json')
  await fsp.writeFile(accept, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }))
  await fsp.writeFile(reject, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }], transports: { docker: { [`${registry.host}/demo`]: [{ type: 'reject' }] } } }))
})
afterAll(async () => {
  await served?.close()
  await fsp.rm(root, { recursive: true, force: true })
})

describe('signature policy beyond install', () => {
  it('update, update --dry-run and install --dry-run refuse what the policy rejects (exit 9), nothing changes', async () => {
    const image = `${registry.host}/demo/images:etcd`
    await install(ctx, { image, name: 'etcd', tlsVerify: false, signaturePolicy: accept })
    const before = await listTree(root)
    const rejected = { code: 'trust.rejected', exitCode: 9 }
    await expect(update(ctx, 'etcd', { tlsVerify: false, signaturePolicy: reject })).rejects.toMatchObject(rejected)
    await expect(updateDryRun(ctx, 'etcd', { tlsVerify: false, signaturePolicy: reject })).rejects.toMatchObject(rejected)
    await expect(installDryRun(ctx, { image: `${registry.host}/demo/images:flannel`, tlsVerify: false, signaturePolicy: reject })).rejects.toMatchObject(rejected)
    expect(await listTree(root)).toEqual(before)
    // The same update under the accepting policy goes through (nothing new: unchanged).
    const r = await update(ctx, 'etcd', { tlsVerify: false, signaturePolicy: accept })
    expect(r.unchanged).toBe(true)
  })
})
