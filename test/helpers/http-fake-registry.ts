/**
 * An in-process registry (distribution spec, pull side) for component tests,
 * serving blobs and manifests held in memory (loaded from an OCI layout or put
 * directly), with switches for the faults a client must survive or report.
 *
 * Paths: GET /v2/ (ping), /v2/<repo>/manifests/<tag|digest>,
 * /v2/<repo>/blobs/<digest>, /token (bearer token endpoint), and
 * /cdn/blobs/<digest> (unauthenticated, the target of blob redirects).
 * `faults` can be changed between requests; `requests` records what arrived.
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import type { Digest, ImageIndex } from '../../src/oci/types'

export interface FakeCredentials {
  username: string
  password: string
}

export interface FakeFaults {
  /** Answer 401 with a Bearer challenge (realm = this server's /token) unless a token issued by /token is sent. */
  requireToken?: boolean
  /** The token endpoint wants Basic credentials (else 401). */
  tokenCredentials?: FakeCredentials
  /** Answer 401 with a Basic challenge unless these credentials are sent. */
  basicAuth?: FakeCredentials
  /** Every repository request answers 401 (403 with forbidden), whatever is sent. */
  unauthorized?: boolean
  forbidden?: boolean
  /** Every manifest answers 404 with a distribution error body. */
  notFound?: boolean
  /** This many repository requests answer 429 (with Retry-After: 0) before the normal answer. */
  tooManyRequests?: number
  /** This many repository requests answer 500 before the normal answer (Infinity: always). */
  serverErrors?: number
  /** Blobs answer 307 to `<url>/cdn/blobs/<digest>?sig=…` on this other server. */
  redirectBlobsTo?: string
  /** Digests (blobs or manifests) served with one byte flipped (same length). */
  wrongBytes?: string[]
  /** Digests whose body stops after half (of what this response sends), the connection destroyed. */
  truncate?: string[]
  /** How many responses `truncate` cuts (counted down); default every one. */
  truncateTimes?: number
  /** Ignore Range headers (answer 200 with the whole body), like a registry without range support. */
  noRange?: boolean
  /** Digests whose body stops after half and then stalls (connection kept open). */
  stall?: string[]
  /** Digests sent chunked (no Content-Length) that end cleanly after half. */
  shortChunked?: string[]
  /** Content-Type to send for a manifest (by tag or digest), overriding the stored one. */
  contentType?: Record<string, string>
  /** Send no Docker-Content-Digest header. */
  noDockerContentDigest?: boolean
}

export interface FakeRequest {
  method: string
  path: string
  authorization?: string
  range?: string
}

export interface FakeRegistry {
  /** `http://127.0.0.1:PORT` */
  url: string
  /** `127.0.0.1:PORT` */
  host: string
  repository: string
  faults: FakeFaults
  requests: FakeRequest[]
  /** Tokens issued so far by /token. */
  tokensIssued: string[]
  /** Store bytes under their digest (sha256 unless `algorithm` says sha512). */
  putBlob(bytes: Buffer, algorithm?: 'sha256' | 'sha512'): Digest
  putManifest(content: object | Buffer, mediaType: string, tag?: string, algorithm?: 'sha256' | 'sha512'): Digest
  /** Serve `bytes` for `digest` whatever they hash to (a lying registry). */
  putRaw(digest: string, bytes: Buffer, mediaType?: string): void
  tag(tag: string, digest: Digest): void
  /** Load every blob of an OCI layout, tagging each index.json entry by its ref.name annotation. */
  loadLayout(dir: string): Promise<void>
  close(): Promise<void>
}

interface Stored {
  bytes: Buffer
  mediaType?: string
}

function sha256(b: Buffer, algorithm: 'sha256' | 'sha512' = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(b).digest('hex')}` as Digest
}

export async function startFakeRegistry(opts: { repository?: string; faults?: FakeFaults } = {}): Promise<FakeRegistry> {
  const repository = opts.repository ?? 'demo/app'
  const blobs = new Map<string, Stored>()
  const tags = new Map<string, Digest>()
  const requests: FakeRequest[] = []
  const tokensIssued: string[] = []
  const sockets = new Set<Socket>()
  const faults: FakeFaults = opts.faults ?? {}
  let url = ''

  const basic = (c: FakeCredentials) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`
  const errorBody = (code: string, message: string) => JSON.stringify({ errors: [{ code, message }] })

  function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string | Buffer = ''): void {
    res.writeHead(status, { 'content-length': String(Buffer.byteLength(body)), ...headers })
    res.end(body)
  }

  function sendContent(res: ServerResponse, digest: string, stored: Stored, headers: Record<string, string>, range?: string): void {
    let bytes = stored.bytes
    if (faults.wrongBytes?.includes(digest)) {
      bytes = Buffer.from(bytes)
      bytes[Math.floor(bytes.length / 2)] ^= 0xff
    }
    const half = bytes.subarray(0, Math.floor(bytes.length / 2))
    if (faults.shortChunked?.includes(digest)) {
      res.writeHead(200, headers) // chunked
      res.end(half)
      return
    }
    // Range: only the `bytes=N-` form clients use to resume, answered 206.
    const ranged = range && !faults.noRange ? /^bytes=(\d+)-$/.exec(range) : null
    if (ranged && Number(ranged[1]) < bytes.length) {
      const start = Number(ranged[1])
      const total = bytes.length
      bytes = bytes.subarray(start)
      res.writeHead(206, { ...headers, 'content-length': String(bytes.length), 'content-range': `bytes ${start}-${total - 1}/${total}` })
    } else {
      res.writeHead(200, { ...headers, 'content-length': String(bytes.length) })
    }
    if (faults.truncate?.includes(digest) && (faults.truncateTimes === undefined || faults.truncateTimes-- > 0)) {
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => setTimeout(() => res.socket?.destroy(), 20))
      return
    }
    if (faults.stall?.includes(digest)) {
      res.write(half)
      return
    }
    res.end(bytes)
  }

  function authorized(req: IncomingMessage): boolean {
    const auth = req.headers.authorization
    if (faults.basicAuth) return auth === basic(faults.basicAuth)
    if (faults.requireToken) return typeof auth === 'string' && auth.startsWith('Bearer ') && tokensIssued.includes(auth.slice(7))
    return true
  }

  function challenge(): Record<string, string> {
    if (faults.basicAuth) return { 'www-authenticate': 'Basic realm="fake"' }
    if (faults.requireToken) {
      return { 'www-authenticate': `Bearer realm="${url}/token",service="fake-registry",scope="repository:${repository}:pull"` }
    }
    return {}
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const u = new URL(req.url ?? '/', url)
    requests.push({
      method: req.method ?? '',
      path: u.pathname + u.search,
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      ...(req.headers.range ? { range: req.headers.range } : {}),
    })
    const json = { 'content-type': 'application/json' }

    if (u.pathname === '/token') {
      if (faults.tokenCredentials && req.headers.authorization !== basic(faults.tokenCredentials)) {
        return send(res, 401, json, errorBody('UNAUTHORIZED', 'bad credentials'))
      }
      if (u.searchParams.get('scope') !== `repository:${repository}:pull` || u.searchParams.get('service') !== 'fake-registry') {
        return send(res, 400, json, errorBody('DENIED', 'bad scope or service'))
      }
      const token = randomBytes(12).toString('hex')
      tokensIssued.push(token)
      // both fields, as Docker Hub does; expires_in short enough to exercise the cache
      return send(res, 200, json, JSON.stringify({ token, access_token: token, expires_in: 300 }))
    }

    const cdn = /^\/cdn\/blobs\/([^/]+)$/.exec(u.pathname)
    if (cdn) {
      const stored = blobs.get(cdn[1])
      if (!stored) return send(res, 404, json, errorBody('BLOB_UNKNOWN', 'blob unknown'))
      return sendContent(res, cdn[1], stored, { 'content-type': 'application/octet-stream' }, req.headers.range)
    }

    if (u.pathname === '/v2/' || u.pathname === '/v2') {
      if (!authorized(req) || faults.unauthorized) return send(res, 401, { ...json, ...challenge() }, errorBody('UNAUTHORIZED', 'authentication required'))
      return send(res, 200, json, '{}')
    }

    const prefix = `/v2/${repository}/`
    if (!u.pathname.startsWith(prefix)) return send(res, 404, json, errorBody('NAME_UNKNOWN', 'repository name not known to registry'))
    if (faults.tooManyRequests && faults.tooManyRequests > 0) {
      faults.tooManyRequests--
      return send(res, 429, { ...json, 'retry-after': '0' }, errorBody('TOOMANYREQUESTS', 'slow down'))
    }
    if (faults.serverErrors && faults.serverErrors > 0) {
      faults.serverErrors--
      return send(res, 500, json, errorBody('UNKNOWN', 'internal trouble'))
    }
    if (faults.unauthorized || faults.forbidden) {
      return send(res, faults.forbidden ? 403 : 401, { ...json, ...challenge() }, errorBody('DENIED', 'requested access to the resource is denied'))
    }
    if (!authorized(req)) return send(res, 401, { ...json, ...challenge() }, errorBody('UNAUTHORIZED', 'authentication required'))

    const rest = u.pathname.slice(prefix.length)
    const m = /^manifests\/([^/]+)$/.exec(rest)
    if (m) {
      const ref = m[1]
      const digest = ref.includes(':') ? ref : tags.get(ref)
      const stored = digest ? blobs.get(digest) : undefined
      if (faults.notFound || !digest || !stored) return send(res, 404, json, errorBody('MANIFEST_UNKNOWN', `manifest unknown: ${ref}`))
      const type = faults.contentType?.[ref] ?? faults.contentType?.[digest] ?? stored.mediaType ?? 'application/octet-stream'
      return sendContent(res, digest, stored, {
        'content-type': type,
        ...(faults.noDockerContentDigest ? {} : { 'docker-content-digest': digest }),
      })
    }
    const b = /^blobs\/([^/]+)$/.exec(rest)
    if (b) {
      const stored = blobs.get(b[1])
      if (!stored) return send(res, 404, json, errorBody('BLOB_UNKNOWN', 'blob unknown to registry'))
      if (faults.redirectBlobsTo) {
        return send(res, 307, { location: `${faults.redirectBlobsTo}/cdn/blobs/${b[1]}?sig=s3cr3t-signature` })
      }
      return sendContent(res, b[1], stored, { 'content-type': 'application/octet-stream', 'docker-content-digest': b[1] }, req.headers.range)
    }
    return send(res, 404, json, errorBody('UNSUPPORTED', 'not here'))
  }

  const server: Server = createServer(handle)
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  url = `http://127.0.0.1:${port}`

  const reg: FakeRegistry = {
    url,
    host: `127.0.0.1:${port}`,
    repository,
    faults,
    requests,
    tokensIssued,
    putBlob(bytes, algorithm) {
      const d = sha256(bytes, algorithm)
      blobs.set(d, { bytes })
      return d
    },
    putRaw(digest, bytes, mediaType) {
      blobs.set(digest, { bytes, ...(mediaType ? { mediaType } : {}) })
    },
    putManifest(content, mediaType, tag, algorithm) {
      const bytes = Buffer.isBuffer(content) ? content : Buffer.from(JSON.stringify(content))
      const d = sha256(bytes, algorithm)
      blobs.set(d, { bytes, mediaType })
      if (tag) tags.set(tag, d)
      return d
    },
    tag(tag, digest) {
      tags.set(tag, digest)
    },
    async loadLayout(dir) {
      const blobDir = join(dir, 'blobs', 'sha256')
      for (const name of await fsp.readdir(blobDir)) {
        if (name.startsWith('.')) continue
        const bytes = await fsp.readFile(join(blobDir, name))
        let mediaType: string | undefined
        try {
          const j = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown }
          if (typeof j.mediaType === 'string') mediaType = j.mediaType
        } catch {
          /* a layer */
        }
        blobs.set(`sha256:${name}`, { bytes, mediaType })
      }
      const index = JSON.parse(await fsp.readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex
      for (const d of index.manifests) {
        const tag = d.annotations?.['org.opencontainers.image.ref.name']
        if (tag) tags.set(tag, d.digest)
        const stored = blobs.get(d.digest)
        if (stored && !stored.mediaType) stored.mediaType = d.mediaType
      }
    },
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
  return reg
}

export interface ServedLayout<T> {
  registry: FakeRegistry
  /** The temp OCI layout the registry serves. */
  layout: string
  /** What `build` returned (e.g. the written images). */
  built: T
  /** Stop the registry and remove the layout. */
  close(): Promise<void>
}

/** Write an OCI layout with `build` into a temp dir and serve it from a fake registry under `repository`. */
export async function serveLayout<T>(repository: string, build: (layout: string) => Promise<T>): Promise<ServedLayout<T>> {
  const layout = await fsp.mkdtemp(join(tmpdir(), 'sysctr-layout-'))
  try {
    const built = await build(layout)
    const registry = await startFakeRegistry({ repository })
    await registry.loadLayout(layout)
    return {
      registry,
      layout,
      built,
      close: async () => {
        await registry.close()
        await fsp.rm(layout, { recursive: true, force: true })
      },
    }
  } catch (err) {
    await fsp.rm(layout, { recursive: true, force: true })
    throw err
  }
}
