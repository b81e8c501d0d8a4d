/**
 * The HTTP layer of the registry client, on Node's http/https only: one GET
 * with a stall timeout, redirects, and retries with backoff for 429/5xx and
 * dropped connections (GETs are idempotent).
 *
 * - The timeout is a stall timeout (socket idle), for headers and body alike.
 * - Redirects: at most 5; the Authorization header is dropped when the
 *   redirect leaves the origin (scheme://host:port); https -> http is refused
 *   when TLS is verified.
 * - Errors never carry credentials: headers are never printed and URLs are
 *   shown without their query (signed redirect URLs carry secrets there).
 */
import * as http from 'node:http'
import * as https from 'node:https'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { ContentError, RegistryError, SysctrError } from '../../errors'

export interface HttpOptions {
  /** Verify TLS certificates (false: accept any certificate). */
  tlsVerify: boolean
  userAgent: string
  /** Abort when the connection is idle this long (connect, headers or body). */
  timeoutMs: number
  /** Extra attempts after a 429, a 5xx or a dropped connection. */
  retries: number
  /** First backoff delay; doubled per attempt (Retry-After wins when given, up to maxRetryDelayMs). */
  retryDelayMs: number
  maxRetryDelayMs: number
  sleep: (ms: number) => Promise<void>
}

export interface HttpResponse {
  status: number
  headers: IncomingHttpHeaders
  /** Final URL, after redirects. */
  url: URL
  body: IncomingMessage
  /** Turn an error the body emitted into a SysctrError (stall timeout or connection lost). */
  bodyError(err: unknown): SysctrError
}

/** Lower-case header names. */
export type Headers = Record<string, string>

const MAX_REDIRECTS = 5
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])
const TLS_CODES = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|ERR_SSL)/

/** `scheme://host:port/path`, never the query. */
export function describeUrl(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`
}

/** host:port, with the scheme's default port filled in. */
export function hostPort(u: URL): string {
  return u.port ? u.host : `${u.host}:${u.protocol === 'https:' ? 443 : 80}`
}

/** Errors of the transport itself (no HTTP answer), as opposed to an HTTP status. */
export function isTransportError(err: unknown): boolean {
  return err instanceof RegistryError && err.data?.transport === true
}

function networkError(err: unknown, url: URL): RegistryError {
  const e = err as NodeJS.ErrnoException
  const code = typeof e?.code === 'string' ? e.code : undefined
  const where = hostPort(url)
  const data = { host: where, errno: code, transport: true }
  if (code === 'ECONNREFUSED') {
    return new RegistryError('registry.unreachable', `cannot connect to ${where}: connection refused`, {
      cause: err,
      data,
      hint: 'is the registry running, and is the host:port right?',
    })
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new RegistryError('registry.unreachable', `cannot resolve ${url.hostname}`, { cause: err, data })
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') {
    return new RegistryError('registry.unreachable', `cannot reach ${where}: ${code}`, { cause: err, data })
  }
  const sslReason = /SSL routines:[^:]*:([^:]+):/.exec(e?.message ?? '')?.[1]
  if ((code !== undefined && TLS_CODES.test(code)) || sslReason) {
    return new RegistryError('registry.tls', `TLS with ${where} failed: ${sslReason ?? e.message}`, {
      cause: err,
      data,
      hint: 'for a plain-HTTP registry or one with a self-signed certificate, use --tls-verify=false',
    })
  }
  if (code === 'ECONNRESET' || code === 'EPIPE' || e?.message === 'socket hang up' || e?.message === 'aborted') {
    return new RegistryError('registry.connection-lost', `connection to ${where} lost`, { cause: err, data })
  }
  return new RegistryError('registry.network', `talking to ${where}: ${code ?? (e?.message || String(err))}`, { cause: err, data })
}

function timeoutError(url: URL, ms: number): RegistryError {
  return new RegistryError('registry.timeout', `${hostPort(url)} stalled: nothing received for ${ms / 1000} s (${describeUrl(url)})`, {
    data: { host: hostPort(url), timeoutMs: ms, transport: true },
  })
}

function retryAfterMs(h: IncomingHttpHeaders): number | undefined {
  const v = h['retry-after']
  if (typeof v !== 'string') return undefined
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now())
}

export class HttpTransport {
  private readonly httpAgent: http.Agent
  private readonly httpsAgent: https.Agent

  constructor(private readonly opts: HttpOptions) {
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 })
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: opts.tlsVerify })
  }

  /** GET with redirects and retries. The caller must consume or destroy `body`. */
  async get(url: URL, headers: Headers, callOpts: { retries?: number } = {}): Promise<HttpResponse> {
    const retries = callOpts.retries ?? this.opts.retries
    for (let attempt = 0; ; attempt++) {
      let res: HttpResponse
      try {
        res = await this.followRedirects(url, headers)
      } catch (err) {
        if (attempt < retries && err instanceof RegistryError && err.code === 'registry.connection-lost') {
          await this.opts.sleep(this.backoff(attempt))
          continue
        }
        throw err
      }
      if ((res.status === 429 || res.status >= 500) && attempt < retries) {
        res.body.resume()
        await this.opts.sleep(this.backoff(attempt, retryAfterMs(res.headers)))
        continue
      }
      return res
    }
  }

  /** Wait before extra attempt number `attempt` (0-based), as get() does between its retries. */
  pause(attempt: number): Promise<void> {
    return this.opts.sleep(this.backoff(attempt))
  }

  /** Extra attempts allowed (the `retries` option). */
  get retries(): number {
    return this.opts.retries
  }

  close(): void {
    this.httpAgent.destroy()
    this.httpsAgent.destroy()
  }

  private backoff(attempt: number, retryAfter?: number): number {
    return Math.min(this.opts.maxRetryDelayMs, retryAfter ?? this.opts.retryDelayMs * 2 ** attempt)
  }

  private async followRedirects(url: URL, headers: Headers): Promise<HttpResponse> {
    let current = url
    let h: Headers = { ...headers }
    for (let hops = 0; ; hops++) {
      const res = await this.once(current, h)
      if (!REDIRECT_STATUSES.has(res.status)) return res
      res.body.resume()
      const location = res.headers.location
      if (!location) {
        throw new RegistryError('registry.bad-redirect', `${describeUrl(current)} answered ${res.status} without a Location`, {
          data: { status: res.status },
        })
      }
      if (hops >= MAX_REDIRECTS) {
        throw new RegistryError('registry.bad-redirect', `more than ${MAX_REDIRECTS} redirects from ${describeUrl(url)}`)
      }
      let next: URL
      try {
        next = new URL(location, current)
      } catch {
        throw new RegistryError('registry.bad-redirect', `${describeUrl(current)} redirected to an invalid URL`)
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new RegistryError('registry.bad-redirect', `${describeUrl(current)} redirected to unsupported scheme ${next.protocol}`)
      }
      if (this.opts.tlsVerify && current.protocol === 'https:' && next.protocol === 'http:') {
        throw new RegistryError('registry.bad-redirect', `${describeUrl(current)} redirected from https to plain http (${describeUrl(next)})`, {
          hint: 'use --tls-verify=false only if you trust this registry and network',
        })
      }
      if (next.origin !== current.origin) {
        const { authorization: _dropped, ...rest } = h
        h = rest
      }
      current = next
    }
  }

  private once(url: URL, headers: Headers): Promise<HttpResponse> {
    const { timeoutMs, userAgent, tlsVerify } = this.opts
    return new Promise((resolve, reject) => {
      let timedOut = false
      const isHttps = url.protocol === 'https:'
      const options: https.RequestOptions = {
        method: 'GET',
        headers: { 'user-agent': userAgent, ...headers },
        agent: isHttps ? this.httpsAgent : this.httpAgent,
        ...(isHttps ? { rejectUnauthorized: tlsVerify } : {}),
      }
      let req: http.ClientRequest
      try {
        req = (isHttps ? https : http).request(url, options)
      } catch (err) {
        reject(networkError(err, url))
        return
      }
      req.setTimeout(timeoutMs, () => {
        timedOut = true
        req.destroy()
      })
      req.on('error', (err) => reject(timedOut ? timeoutError(url, timeoutMs) : networkError(err, url)))
      req.on('response', (res) => {
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          url,
          body: res,
          bodyError: (err) => (err instanceof SysctrError ? err : timedOut ? timeoutError(url, timeoutMs) : networkError(err, url)),
        })
      })
      req.end()
    })
  }
}

/** Read a whole (small) body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let n = 0
  try {
    for await (const chunk of res.body) {
      n += (chunk as Buffer).length
      if (n > limit) {
        res.body.destroy()
        throw new ContentError('content.too-large', `${what}: more than ${limit} bytes`, { data: { limit } })
      }
      chunks.push(chunk as Buffer)
    }
  } catch (err) {
    throw res.bodyError(err)
  }
  return Buffer.concat(chunks)
}
