import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ContentError, SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../src/oci/layout-writer'
import type { ProgressEvent } from '../../src/ops/context'
import { pullImage } from '../../src/ops/pull'
import { parseReference } from '../../src/reference/reference'
import { Store } from '../../src/store/store'
import { openRegistrySource, RegistrySource } from '../../src/transports/registry'
import { FakeRegistry, startFakeRegistry } from '../helpers/http-fake-registry'

let dir: string
let image: WrittenImage
let reg: FakeRegistry
let storeDir: string
let store: Store
const sources: RegistrySource[] = []

beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-pull-'))
  ;[image] = await writeOciLayout(join(dir, 'layout'), [
    {
      tag: 'v1',
      layers: [
        [{ path: 'etc/', type: 'directory' }, { path: 'etc/one', content: 'one\n' }],
        [{ path: 'usr/bin/big', content: Buffer.alloc(400_000, 3) }],
        [{ path: 'etc/two', content: 'two\n' }],
        [{ path: 'etc/three', content: 'three\n' }],
        [{ path: 'usr/lib/data', content: Buffer.alloc(200_000, 9) }],
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
  storeDir = await fsp.mkdtemp(join(dir, 'store-'))
  store = await Store.open(storeDir)
})

afterEach(async () => {
  for (const s of sources.splice(0)) await s.close()
  await store.close()
  await reg.close()
})

function source(): RegistrySource {
  const s = openRegistrySource(parseReference(`${reg.host}/demo/app:v1`), {
    tlsVerify: false,
    retries: 2,
    retryDelayMs: 1,
    maxRetryDelayMs: 5,
    timeoutMs: 5_000,
  })
  sources.push(s)
  return s
}

function recorder() {
  const events: ProgressEvent[] = []
  return { events, reporter: { info() {}, warn() {}, progress: (e: ProgressEvent) => events.push(e) } }
}

describe('pull', () => {
  it('fetches layers concurrently, keeps their order, reports progress per layer', async () => {
    const rec = recorder()
    const r = await pullImage(store, source(), 'demo/app:v1', { reporter: rec.reporter, concurrency: 3 })
    expect(r.layersFetched).toBe(5)
    const ref = await store.getImageRef('demo/app:v1')
    expect(ref?.layers).toEqual(image.layers.map((l) => l.digest))
    const done = rec.events.filter((e) => e.kind === 'done')
    expect(done.map((e) => e.digest).sort()).toEqual(image.layers.map((l) => l.digest).sort())
    for (const l of image.layers) {
      const bytes = rec.events.filter((e) => e.kind === 'bytes' && e.digest === l.digest)
      expect(bytes.length).toBeGreaterThan(0)
      expect(bytes[bytes.length - 1]).toMatchObject({ bytes: l.size, total: l.size })
    }
    // a second pull of the same image fetches nothing
    const again = recorder()
    const r2 = await pullImage(store, source(), 'demo/app:v1', { reporter: again.reporter })
    expect(r2.layersReused).toBe(5)
    expect(r2.commit).toBe(r.commit)
    expect(again.events.every((e) => e.kind === 'skipped')).toBe(true)
  })

  it('the same commit with one layer at a time', async () => {
    const a = await pullImage(store, source(), 'a', { reporter: recorder().reporter, concurrency: 5 })
    const other = await Store.open(await fsp.mkdtemp(join(dir, 'store-')))
    try {
      const b = await pullImage(other, source(), 'b', { reporter: recorder().reporter, concurrency: 1 })
      expect(b.commit).toBe(a.commit)
    } finally {
      await other.close()
    }
  })

  it('a bad layer fails the pull, cancels the others, publishes nothing for it and writes no ref', async () => {
    const bad = image.layers[1].digest
    reg.faults.wrongBytes = [bad]
    const err = await pullImage(store, source(), 'demo/app:v1', { reporter: recorder().reporter }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(ContentError)
    expect((err as SysctrError).code).toBe('content.digest-mismatch')
    expect(await store.getLayer(bad)).toBeUndefined()
    expect(await store.getImageRef('demo/app:v1')).toBeUndefined()
    // the store is usable afterwards and the pull completes once the registry is fixed
    reg.faults.wrongBytes = []
    const r = await pullImage(store, source(), 'demo/app:v1', { reporter: recorder().reporter })
    expect(r.layersFetched + r.layersReused).toBe(5)
  })

  it('without a progress handler, layers are reported through info()', async () => {
    const lines: string[] = []
    await pullImage(store, source(), 'x', { reporter: { info: (m) => lines.push(m), warn() {} } })
    expect(lines.filter((l) => l.startsWith('fetching layer'))).toHaveLength(5)
  })
})
