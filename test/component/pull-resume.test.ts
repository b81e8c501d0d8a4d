import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { RegistryError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import type { ProgressEvent } from '../../src/ops/context'
import { pullImage } from '../../src/ops/pull-image'
import { parseReference } from '../../src/reference/reference'
import { Store } from '../../src/store/store'
import { openRegistrySource, RegistrySource } from '../../src/transports/registry'
import { FakeRegistry, startFakeRegistry } from '../helpers/http-fake-registry'

let dir: string
let image: WrittenImage
let reg: FakeRegistry
const sources: RegistrySource[] = []

beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-resume-'))
  ;[image] = await writeOciLayout(join(dir, 'layout'), [
    {
      tag: 'v1',
      layers: [
        [{ path: 'etc/hello', content: 'hello\n' }],
        [{ path: 'usr/lib/blob', content: createHash('sha512').update('x').digest().toString('hex').repeat(4000) }],
      ],
    },
  ])
})

afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

beforeEach(async () => {
  reg = await startFakeRegistry({ repository: 'demo/app' })
  await reg.loadLayout(join(dir, 'layout'))
})

afterEach(async () => {
  for (const s of sources.splice(0)) await s.close()
  await reg.close()
})

function source(retries = 2): RegistrySource {
  const s = openRegistrySource(parseReference(`${reg.host}/demo/app:v1`), { tlsVerify: false, retries, retryDelayMs: 1, maxRetryDelayMs: 5, timeoutMs: 5_000 })
  sources.push(s)
  return s
}

async function drain(stream: Readable): Promise<{ digest?: string; bytes: number; error?: unknown }> {
  const hash = createHash('sha256')
  let bytes = 0
  try {
    for await (const c of stream) {
      hash.update(c as Buffer)
      bytes += (c as Buffer).length
    }
    return { digest: `sha256:${hash.digest('hex')}`, bytes }
  } catch (error) {
    return { error, bytes }
  }
}

const blobRequests = (digest: string) => reg.requests.filter((r) => r.path.endsWith(`/blobs/${digest}`))

describe('resuming a dropped blob transfer', () => {
  it('with Range support: continues where the connection dropped (206)', async () => {
    const layer = image.layers[1]
    reg.faults.truncate = [layer.digest]
    reg.faults.truncateTimes = 1
    const s = source()
    const r = await s.resolve()
    const got = await drain(await s.openBlob(r.manifest.layers[1]))
    expect(got.error).toBeUndefined()
    expect(got).toMatchObject({ digest: layer.digest, bytes: layer.size })
    const reqs = blobRequests(layer.digest)
    expect(reqs).toHaveLength(2)
    expect(reqs[0].range).toBeUndefined()
    expect(reqs[1].range).toBe(`bytes=${Math.floor(layer.size / 2)}-`)
  })

  it('without Range support: starts again from zero, skipping what was already passed on', async () => {
    const layer = image.layers[1]
    reg.faults.truncate = [layer.digest]
    reg.faults.truncateTimes = 1
    reg.faults.noRange = true
    const s = source()
    const r = await s.resolve()
    const got = await drain(await s.openBlob(r.manifest.layers[1]))
    expect(got).toMatchObject({ digest: layer.digest, bytes: layer.size })
    expect(blobRequests(layer.digest)).toHaveLength(2)
  })

  it('dropped twice, resumed twice', async () => {
    const layer = image.layers[1]
    reg.faults.truncate = [layer.digest]
    reg.faults.truncateTimes = 2
    const s = source()
    const r = await s.resolve()
    const got = await drain(await s.openBlob(r.manifest.layers[1]))
    expect(got).toMatchObject({ digest: layer.digest, bytes: layer.size })
    expect(blobRequests(layer.digest)).toHaveLength(3)
  })

  it('with the retries used up: fails with connection-lost, never ends', async () => {
    const layer = image.layers[1]
    reg.faults.truncate = [layer.digest]
    const s = source(1)
    const r = await s.resolve()
    const got = await drain(await s.openBlob(r.manifest.layers[1]))
    expect(got.error).toBeInstanceOf(RegistryError)
    expect((got.error as RegistryError).code).toBe('registry.connection-lost')
    expect(blobRequests(layer.digest)).toHaveLength(2)
  })

  it('a whole pull survives a drop; progress counts each byte once', async () => {
    const layer = image.layers[1]
    reg.faults.truncate = [layer.digest]
    reg.faults.truncateTimes = 1
    const store = await Store.open(join(dir, `store-${Date.now()}`))
    try {
      const events: ProgressEvent[] = []
      const r = await pullImage(store, source(), 'demo/app:v1', { reporter: { info() {}, warn() {}, progress: (e) => events.push(e) } })
      expect(r.layersFetched).toBe(2)
      const bytes = events.filter((e) => e.kind === 'bytes' && e.digest === layer.digest)
      expect(bytes[bytes.length - 1]).toMatchObject({ bytes: layer.size })
      expect(await store.getLayer(layer.digest)).toBeDefined()
    } finally {
      await store.close()
    }
  })

  it('a blob redirected to storage elsewhere resumes there too (Range kept across the redirect)', async () => {
    const layer = image.layers[1]
    const cdn = await startFakeRegistry({ repository: 'demo/app' })
    try {
      await cdn.loadLayout(join(dir, 'layout'))
      cdn.faults.truncate = [layer.digest]
      cdn.faults.truncateTimes = 1
      reg.faults.redirectBlobsTo = cdn.url
      const s = source()
      const r = await s.resolve()
      const got = await drain(await s.openBlob(r.manifest.layers[1]))
      expect(got).toMatchObject({ digest: layer.digest, bytes: layer.size })
      const ranged = cdn.requests.filter((q) => q.path.startsWith(`/cdn/blobs/${layer.digest}`))
      expect(ranged.map((q) => q.range)).toEqual([undefined, `bytes=${Math.floor(layer.size / 2)}-`])
    } finally {
      await cdn.close()
    }
  })
})
