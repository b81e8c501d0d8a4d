/**
 * Shared setup for test/component/security-registry-*.test.ts: one small
 * image in an in-process fake registry, a fresh store per test, a pull that
 * returns its failure, a listing of every file the store holds (to assert a
 * refused pull wrote nothing), and a bare hostile HTTP server for cases the
 * fake registry cannot play (huge bodies, trickles, redirect loops).
 */
import { promises as fsp } from 'node:fs'
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { afterEach, beforeEach, expect } from 'vitest'
import { SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { pullImage, PullResult } from '../../src/ops/pull-image'
import { parseReference } from '../../src/reference/reference'
import { Store } from '../../src/store/store'
import { openRegistrySource, RegistrySource, RegistrySourceOptions } from '../../src/transports/registry'
import { FakeRegistry, startFakeRegistry } from './http-fake-registry'

export const FAST: RegistrySourceOptions = { tlsVerify: false, retries: 1, retryDelayMs: 1, maxRetryDelayMs: 5, timeoutMs: 5_000 }

const quiet = { info() {}, warn() {} }

/** Every file under the store root except scratch (tmp/), leases and the lock: what a pull may not change when refused. */
export async function storeFiles(root: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      const rel = relative(root, p)
      if (rel === 'tmp' || rel === 'leases' || rel === 'lock' || rel === 'lock.break') continue
      if (e.isDirectory()) await walk(p)
      else out.push(rel)
    }
  }
  await walk(root)
  return out.sort()
}

/** The failure of `p`, which must be a SysctrError. */
export async function failure(p: Promise<unknown>): Promise<SysctrError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, 'expected a failure').toBeInstanceOf(SysctrError)
  return err as SysctrError
}

export interface Harness {
  dir: string
  image: WrittenImage
  reg: FakeRegistry
  storeDir: string
  store: Store
  source(ref: string, opts?: RegistrySourceOptions): RegistrySource
  /** Pull `ref` (REG = the fake registry's host) into the store. */
  pull(ref: string, opts?: RegistrySourceOptions): Promise<PullResult>
  /** Pull, expect it refused with `cls`/`code`, the store's files unchanged, no ref written; returns the error. */
  refused(ref: string, cls: new (...a: never[]) => SysctrError, code: string, opts?: RegistrySourceOptions): Promise<SysctrError>
  close(): Promise<void>
}

/** A fake registry holding one two-layer image tagged v1, and an empty store. */
export async function startHarness(): Promise<Harness> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-sec-registry-'))
  const [image] = await writeOciLayout(join(dir, 'layout'), [
    {
      tag: 'v1',
      layers: [
        [{ path: 'etc/', type: 'directory' }, { path: 'etc/hello', content: 'hello\n' }],
        [{ path: 'usr/bin/app', content: Buffer.alloc(200_000, 7), mode: 0o755 }],
      ],
      config: { Cmd: ['/usr/bin/app'] },
    },
  ])
  const reg = await startFakeRegistry({ repository: 'demo/app' })
  await reg.loadLayout(join(dir, 'layout'))
  const storeDir = join(dir, 'store')
  const store = await Store.open(storeDir)
  const sources: RegistrySource[] = []
  const h: Harness = {
    dir,
    image,
    reg,
    storeDir,
    store,
    source(ref, opts = {}) {
      const s = openRegistrySource(parseReference(ref.replace('REG', reg.host)), { ...FAST, ...opts })
      sources.push(s)
      return s
    },
    pull(ref, opts = {}) {
      return pullImage(store, h.source(ref, opts), 'pulled', { reporter: quiet })
    },
    async refused(ref, cls, code, opts = {}) {
      const before = await storeFiles(storeDir)
      const err = await failure(h.pull(ref, opts))
      expect(err).toBeInstanceOf(cls)
      expect(err.code).toBe(code)
      expect(await storeFiles(storeDir)).toEqual(before)
      expect(await store.getImageRef('pulled')).toBeUndefined()
      return err
    },
    async close() {
      for (const s of sources) await s.close()
      await store.close()
      await reg.close()
      await fsp.rm(dir, { recursive: true, force: true })
    },
  }
  return h
}

/**
 * A fresh harness for each test of the calling file, handed to `set`; returns
 * the list into which a test puts the hostile servers it starts: they are
 * closed after the test, before the harness.
 */
export function harnessPerTest(set: (h: Harness) => void): HostileServer[] {
  const servers: HostileServer[] = []
  let h: Harness | undefined
  beforeEach(async () => {
    h = await startHarness()
    set(h)
  })
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close()
    await h?.close()
  })
  return servers
}

export interface HostileServer {
  url: string
  host: string
  /** Paths requested, with their Authorization header. */
  requests: Array<{ path: string; authorization?: string }>
  close(): Promise<void>
}

/**
 * A bare HTTP server: GET /v2/ answers 200 {}, everything else goes to
 * `handler` (which owns the response, and may never finish it).
 */
export async function startHostileServer(handler: (req: IncomingMessage, res: ServerResponse, self: HostileServer) => void): Promise<HostileServer> {
  const sockets = new Set<Socket>()
  const self: HostileServer = { url: '', host: '', requests: [], close: async () => undefined }
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/'
    self.requests.push({ path, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) })
    if (path === '/v2/' || path === '/v2') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2' })
      res.end('{}')
      return
    }
    handler(req, res, self)
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  self.url = `http://127.0.0.1:${port}`
  self.host = `127.0.0.1:${port}`
  self.close = () => {
    for (const s of sockets) s.destroy()
    return new Promise((resolve) => server.close(() => resolve()))
  }
  return self
}

export interface RealRegistryImage {
  host: string
  url: string
  /** PUT raw manifest bytes under `reference` with this Content-Type; the registry's status and error text. */
  putManifest(reference: string, bytes: Buffer, contentType: string): Promise<{ status: number; body: string }>
  stop(): Promise<void>
}

/** The real docker-registry holding `h`'s image as demo/app:v1 (pushed with skopeo). */
export async function realRegistryWithImage(h: Harness): Promise<RealRegistryImage> {
  const { startRegistry, pushLayout } = await import('./registry')
  const running = await startRegistry()
  try {
    await pushLayout(join(h.dir, 'layout'), 'v1', `${running.host}/demo/app:v1`)
  } catch (err) {
    await running.stop()
    throw err
  }
  return {
    host: running.host,
    url: running.url,
    async putManifest(reference, bytes, contentType) {
      const res = await fetch(`${running.url}/v2/demo/app/manifests/${reference}`, { method: 'PUT', headers: { 'content-type': contentType }, body: bytes })
      return { status: res.status, body: await res.text() }
    },
    stop: () => running.stop(),
  }
}
