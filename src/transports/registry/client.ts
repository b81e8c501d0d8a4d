/**
 * A client for one registry (OCI distribution spec, pull side): ping,
 * manifests by tag or digest, blobs as verified streams.
 *
 * Scheme: with tlsVerify (the default) only https with checked certificates.
 * With tlsVerify=false, like containers/image for an insecure registry: try
 * https without checking the certificate first and, when that fails at the
 * transport level (refused, TLS error, …), use plain http. The choice is
 * made once, by the ping, and kept for the client's life.
 *
 * Status mapping: 401/403 -> RegistryError `registry.unauthorized` (after one
 * fresh token); 404 -> returned for the caller (manifest: `image.not-found`,
 * blob: `blob.not-found`); 429/5xx -> retried, then RegistryError
 * `registry.status` with the status.
 */
import type { Readable } from 'node:stream'
import { ContentError, NotFoundError, RegistryError, SysctrError } from '../../errors'
import { Descriptor, INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES } from '../../oci/types'
import { DigestStream } from '../../util/digest-stream'
import { isDigest } from '../../reference/digest'
import { Authenticator, Credentials, parseWwwAuthenticate } from './auth'
import { describeUrl, hostPort, HttpResponse, HttpTlsOptions, HttpTransport, isTransportError, readBody } from './http'

export interface RegistryClientOptions {
  /** Default true. False: certificates unchecked and plain http allowed (see above). */
  tlsVerify?: boolean
  /** Default `sysctr/<version>`. */
  userAgent?: string
  /** Stall timeout in ms (nothing received for this long). Default 30 000. */
  timeoutMs?: number
  /**
   * Whole-body deadline for a manifest or index (at most MANIFEST_SIZE_LIMIT
   * bytes): a registry that trickles one is cut off. Also bounds reading an
   * error body (then the error is reported without its detail). Default 120 000.
   */
  manifestTimeoutMs?: number
  /**
   * Blobs: fail with `registry.too-slow` when fewer than `bytes` arrive in
   * `windowMs` (a trickle the stall timeout never sees), like curl's
   * --speed-limit/--speed-time. Windows where the consumer holds the stream
   * back do not count. Default 1024 bytes per 60 000 ms; bytes 0 turns it off.
   */
  lowSpeed?: { bytes: number; windowMs: number }
  credentials?: Credentials
  /** Extra attempts for 429/5xx/dropped connections. Default 2. */
  retries?: number
  /** First backoff delay in ms, doubled per attempt. Default 500. */
  retryDelayMs?: number
  /** Longest single wait, also caps Retry-After. Default 10 000. */
  maxRetryDelayMs?: number
  /** Injected clock and sleep (tests). */
  now?: () => number
  sleep?: (ms: number) => Promise<void>
  /** Extra CA roots / client certificate for https (containers-certs.d, see src/config/certs.ts). */
  tls?: HttpTlsOptions
}

export interface FetchedManifest {
  bytes: Buffer
  /** Content-Type without parameters, lower case; '' when absent. */
  contentType: string
  /** Docker-Content-Digest as sent by the registry (unverified). */
  dockerContentDigest?: string
}

/** Manifests bigger than this are refused (containers/image uses the same limit). */
export const MANIFEST_SIZE_LIMIT = 4 << 20

export const MANIFEST_ACCEPT = [...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES].join(', ')

const DEFAULT_USER_AGENT = 'sysctr/0.1.0'

/** Where the API of a registry lives: Docker Hub's is not at docker.io. */
export function apiHost(registry: string): string {
  return registry === 'docker.io' ? 'registry-1.docker.io' : registry
}

export class RegistryClient {
  readonly registry: string
  private readonly http: HttpTransport
  private readonly auth: Authenticator
  private readonly tlsVerify: boolean
  private readonly manifestTimeoutMs: number
  private readonly lowSpeed: { bytes: number; windowMs: number }
  private base?: Promise<URL>

  constructor(registry: string, opts: RegistryClientOptions = {}) {
    this.registry = registry
    this.tlsVerify = opts.tlsVerify ?? true
    this.manifestTimeoutMs = opts.manifestTimeoutMs ?? 120_000
    this.lowSpeed = opts.lowSpeed ?? { bytes: 1024, windowMs: 60_000 }
    this.http = new HttpTransport({
      tlsVerify: this.tlsVerify,
      userAgent: opts.userAgent ?? DEFAULT_USER_AGENT,
      timeoutMs: opts.timeoutMs ?? 30_000,
      retries: opts.retries ?? 2,
      retryDelayMs: opts.retryDelayMs ?? 500,
      maxRetryDelayMs: opts.maxRetryDelayMs ?? 10_000,
      sleep: opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms))),
      ...(opts.tls ? { tls: opts.tls } : {}),
    })
    this.auth = new Authenticator(this.http, { registry, credentials: opts.credentials, now: opts.now ?? Date.now })
  }

  /** `GET /v2/`: pick the scheme and record the auth challenge. Memoised. */
  ping(): Promise<URL> {
    if (!this.base) {
      this.base = this.detect()
      this.base.catch(() => {
        this.base = undefined // a later call may try again
      })
    }
    return this.base
  }

  /** GET a manifest by tag or digest. 404 -> NotFoundError `image.not-found` naming `display`. */
  async getManifest(repository: string, reference: string, display: string): Promise<FetchedManifest> {
    const res = await this.get(repository, `manifests/${reference}`, { accept: MANIFEST_ACCEPT })
    if (res.status === 404) {
      const detail = await errorDetail(res, this.manifestTimeoutMs)
      throw new NotFoundError('image.not-found', `image ${display} not found${detail ? ` (${detail})` : ''}`, {
        data: { reference: display, registry: this.registry },
        hint: 'check the repository name and tag',
      })
    }
    await this.expectOk(res, `manifest ${reference} of ${repository}`)
    const announced = res.headers['content-length']
    if (announced !== undefined && Number(announced) > MANIFEST_SIZE_LIMIT) {
      res.body.destroy()
      throw new ContentError('content.too-large', `manifest ${reference} of ${repository}: ${String(announced)} bytes announced, more than ${MANIFEST_SIZE_LIMIT}`, {
        data: { limit: MANIFEST_SIZE_LIMIT, announced: Number(announced) },
      })
    }
    // readBody stops reading (and closes the connection) at the limit: a huge body is never buffered.
    // The stall timeout does not see a trickle: a deadline for the whole body does.
    const deadline = setTimeout(() => {
      res.body.destroy(
        new RegistryError('registry.too-slow', `${hostPort(res.url)} too slow: manifest ${reference} of ${repository} not received within ${this.manifestTimeoutMs / 1000} s`, {
          data: { host: hostPort(res.url), timeoutMs: this.manifestTimeoutMs },
        }),
      )
    }, this.manifestTimeoutMs)
    let bytes: Buffer
    try {
      bytes = await readBody(res, MANIFEST_SIZE_LIMIT, `manifest ${reference} of ${repository}`)
    } finally {
      clearTimeout(deadline)
    }
    const ct = res.headers['content-type']
    const dcd = res.headers['docker-content-digest']
    return {
      bytes,
      contentType: typeof ct === 'string' ? ct.split(';')[0].trim().toLowerCase() : '',
      ...(typeof dcd === 'string' && dcd ? { dockerContentDigest: dcd.trim() } : {}),
    }
  }

  /**
   * GET a blob as a stream that fails (never ends) unless the bytes match
   * `desc.digest` and `desc.size`. Redirects are followed.
   *
   * A connection lost mid-body is resumed (at most `retries` times, with
   * backoff): `Range: bytes=N-` for the bytes not yet received; a 206 whose
   * Content-Range starts at N continues the stream, a 200 (no range support)
   * is read from the start with its first N bytes dropped. Either way every
   * byte passed on went through the one digest check exactly once, in order.
   * A stall (timeout) is not resumed: it fails with `registry.timeout`.
   */
  async getBlob(repository: string, desc: Descriptor): Promise<Readable> {
    if (!isDigest(desc.digest) || !Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw new ContentError('content.bad-descriptor', `bad blob descriptor (digest ${String(desc.digest)}, size ${String(desc.size)})`)
    }
    const what = `blob ${desc.digest}`
    const path = `blobs/${desc.digest}`
    const res = await this.get(repository, path, {})
    if (res.status === 404) {
      res.body.resume()
      throw new NotFoundError('blob.not-found', `${what} not found in ${this.registry}/${repository}`, {
        data: { digest: desc.digest, repository, registry: this.registry },
      })
    }
    await this.expectOk(res, `${what} of ${repository}`)
    const sizeError = (length: unknown) =>
      new ContentError('content.size-mismatch', `${what}: size mismatch (expected ${desc.size} bytes, registry announces ${String(length)})`, {
        data: { expected: desc.size, found: Number(length) },
      })
    const length = res.headers['content-length']
    if (length !== undefined && Number(length) !== desc.size) {
      res.body.destroy()
      throw sizeError(length)
    }
    const verify = new DigestStream({ digest: desc.digest, size: desc.size, what })
    let current = res
    let received = 0
    let resumes = 0
    let closed = false
    // Low-speed limit: the stall timeout resets on every byte, so a trickle would never end.
    let windowBytes = 0
    const low = this.lowSpeed
    const speedTimer =
      low.bytes > 0
        ? setInterval(() => {
            const heldBack = verify.writableNeedDrain || current.body.isPaused()
            if (!heldBack && windowBytes < low.bytes && received < desc.size) {
              verify.destroy(
                new RegistryError('registry.too-slow', `${hostPort(current.url)} too slow: ${windowBytes} bytes of ${what} in ${low.windowMs / 1000} s (less than ${low.bytes})`, {
                  data: { host: hostPort(current.url), bytes: windowBytes, windowMs: low.windowMs, received, size: desc.size },
                }),
              )
            }
            windowBytes = 0
          }, low.windowMs)
        : undefined
    speedTimer?.unref()
    verify.on('close', () => {
      closed = true
      if (speedTimer) clearInterval(speedTimer)
      if (!current.body.complete) current.body.destroy()
    })

    const attach = (r: HttpResponse, skip: number): void => {
      current = r
      let toSkip = skip
      let failed = false
      const fail = (err: unknown) => {
        if (failed) return
        failed = true
        void recover(r.bodyError(err))
      }
      r.body.on('data', (chunk: Buffer) => {
        if (failed || closed) return
        if (toSkip > 0) {
          if (chunk.length <= toSkip) {
            toSkip -= chunk.length
            return
          }
          chunk = chunk.subarray(toSkip)
          toSkip = 0
        }
        received += chunk.length
        windowBytes += chunk.length
        if (!verify.write(chunk)) {
          r.body.pause()
          verify.once('drain', () => r.body.resume())
        }
      })
      r.body.on('end', () => {
        if (failed) return
        if (r.body.complete) verify.end()
        else fail(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }))
      })
      r.body.on('error', fail)
      r.body.on('aborted', () => fail(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })))
    }

    const recover = async (err: SysctrError): Promise<void> => {
      if (closed) return
      if (!(err instanceof RegistryError && err.code === 'registry.connection-lost') || resumes >= this.http.retries || received >= desc.size) {
        verify.destroy(err)
        return
      }
      await this.http.pause(resumes++)
      if (closed) return
      let next: HttpResponse
      try {
        next = await this.get(repository, path, { range: `bytes=${received}-` })
        if (closed) {
          next.body.destroy()
          return
        }
        if (next.status === 206) {
          const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(next.headers['content-range'] ?? '').trim())
          if (!m || Number(m[1]) !== received || Number(m[2]) !== desc.size - 1) {
            next.body.destroy()
            throw new RegistryError('registry.bad-range', `${this.registry} answered a range request for ${what} with another range (${String(next.headers['content-range'] ?? 'none')})`, {
              data: { registry: this.registry, requested: received },
            })
          }
          attach(next, 0)
          return
        }
        await this.expectOk(next, `${what} of ${repository}`)
        const len = next.headers['content-length']
        if (len !== undefined && Number(len) !== desc.size) {
          next.body.destroy()
          throw sizeError(len)
        }
        attach(next, received)
      } catch (e) {
        verify.destroy(e instanceof Error ? e : new Error(String(e)))
      }
    }

    attach(res, 0)
    return verify
  }

  close(): void {
    this.http.close()
  }

  private async detect(): Promise<URL> {
    const host = apiHost(this.registry)
    const httpsBase = new URL(`https://${host}/`)
    if (this.tlsVerify) return this.pingAt(httpsBase, undefined)
    try {
      return await this.pingAt(httpsBase, 0)
    } catch (err) {
      if (!isTransportError(err)) throw err
      return this.pingAt(new URL(`http://${host}/`), undefined)
    }
  }

  private async pingAt(base: URL, retries: number | undefined): Promise<URL> {
    const url = new URL('/v2/', base)
    const res = await this.http.get(url, {}, { retries })
    res.body.resume()
    if (res.status === 200) {
      this.auth.setChallenges([])
      return base
    }
    if (res.status === 401) {
      this.auth.setChallenges(parseWwwAuthenticate(res.headers['www-authenticate']))
      return base
    }
    if (res.status === 404) {
      throw new RegistryError('registry.not-v2', `${this.registry} does not speak the registry v2 API (${describeUrl(url)}: HTTP 404)`, {
        data: { registry: this.registry, status: 404 },
      })
    }
    throw this.statusError(res, `pinging ${describeUrl(url)}`, '')
  }

  private async get(repository: string, path: string, headers: Record<string, string>): Promise<HttpResponse> {
    const base = await this.ping()
    const scope = `repository:${repository}:pull`
    const url = new URL(`/v2/${repository}/${path}`, base)
    const authorization = await this.auth.authorization(scope)
    let res = await this.http.get(url, { ...headers, ...(authorization ? { authorization } : {}) })
    if (res.status === 401) {
      let again: string | undefined
      try {
        again = await this.auth.reauthorize(parseWwwAuthenticate(res.headers['www-authenticate']), scope, authorization)
      } catch (err) {
        res.body.resume()
        throw err
      }
      if (again) {
        res.body.resume()
        res = await this.http.get(url, { ...headers, authorization: again })
      }
    }
    return res
  }

  private async expectOk(res: HttpResponse, what: string): Promise<void> {
    if (res.status === 200) return
    const detail = await errorDetail(res, this.manifestTimeoutMs)
    throw this.statusError(res, what, detail)
  }

  private statusError(res: HttpResponse, what: string, detail: string): RegistryError {
    const status = res.status
    const tail = detail ? `: ${detail}` : ''
    if (status === 401 || status === 403) {
      return new RegistryError('registry.unauthorized', `${this.registry} refused access to ${what} (HTTP ${status})${tail}`, {
        data: { registry: this.registry, status },
        hint: 'check the credentials and the image name (registries answer 401 for repositories that do not exist, too)',
      })
    }
    return new RegistryError('registry.status', `${this.registry} answered HTTP ${status} for ${what}${tail}`, {
      data: { registry: this.registry, status },
      ...(status === 429 ? { hint: 'the registry is rate-limiting; try again later' } : {}),
    })
  }
}

/** First error of a distribution-spec error body (`{"errors":[{code,message}]}`), short; '' if none. */
async function errorDetail(res: HttpResponse, deadlineMs: number): Promise<string> {
  let body: Buffer
  const deadline = setTimeout(() => res.body.destroy(), deadlineMs) // a trickled error body is given up on
  try {
    body = await readBody(res, 64 << 10, 'error body')
  } catch {
    return ''
  } finally {
    clearTimeout(deadline)
  }
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown; message?: unknown }> }
    const e = parsed.errors?.[0]
    if (!e) return ''
    const text = [e.code, e.message].filter((x) => typeof x === 'string' && x).join(' ')
    return text.replace(/[\r\n]+/g, ' ').slice(0, 200)
  } catch {
    return ''
  }
}
