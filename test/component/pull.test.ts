import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ContentError, SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import type { ProgressEvent } from '../../src/ops/context'
import type { Descriptor } from '../../src/oci/types'
import type { ImageSource } from '../../src/transports/image-source'
import { pullImage } from '../../src/ops/pull-image'
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

  it('at most `concurrency` blobs open at once, and that many really are (a barrier that would deadlock otherwise)', async () => {
    const inner = source()
    let open = 0
    let most = 0
    const waiting: Array<() => void> = []
    const gated: ImageSource = {
      name: inner.name,
      resolve: (p) => inner.resolve(p),
      close: () => inner.close(),
      openBlob: async (desc: Descriptor) => {
        open++
        most = Math.max(most, open)
        // the first three wait for each other: only concurrent fetching gets past this
        if (waiting.length < 2 && most < 3) await new Promise<void>((r) => waiting.push(r))
        else for (const w of waiting.splice(0)) w()
        const s = await inner.openBlob(desc)
        s.on('close', () => open--)
        return s
      },
    }
    const r = await pullImage(store, gated, 'gated', { reporter: recorder().reporter, concurrency: 3 })
    expect(r.layersFetched).toBe(5)
    expect(most).toBe(3)
  })

  it('one layer failing cancels transfers that would otherwise never end', async () => {
    const inner = source()
    const hanging: PassThrough[] = []
    let opened = 0
    const failing: ImageSource = {
      name: inner.name,
      resolve: (p) => inner.resolve(p),
      close: () => inner.close(),
      openBlob: async (desc: Descriptor): Promise<Readable> => {
        opened++
        if (desc.digest === image.layers[2].digest) {
          // wait until the other two are in flight, then fail
          while (hanging.length < 2) await new Promise((r) => setImmediate(r))
          throw new ContentError('content.digest-mismatch', 'bad bytes')
        }
        const p = new PassThrough()
        p.write(Buffer.alloc(10))
        hanging.push(p) // never ends
        return p
      },
    }
    const err = await pullImage(store, failing, 'failing', { reporter: recorder().reporter, concurrency: 3 }).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect((err as SysctrError).code).toBe('content.digest-mismatch')
    expect(opened).toBe(3) // nothing more started after the failure
    expect(hanging.every((p) => p.destroyed)).toBe(true)
    expect(await store.getImageRef('failing')).toBeUndefined()
  })
})
