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
 * - TLS: `tls` adds CA roots and a client certificate (containers-certs.d(5),
 *   see src/config/certs.ts) to the https agent. A certificate the client
 *   cannot verify is RegistryError `registry.tls-untrusted` naming host:port
 *   and the reason, with a hint on where the CA goes.
 */
import type * as http from 'node:http'
import type * as https from 'node:https'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { ContentError, RegistryError, SysctrError } from '../../errors'

// node:http and node:https (and tls, net below them), loaded when a transport is
// made: commands that reach no registry do not pay for them at start-up.
/* eslint-disable @typescript-eslint/no-require-imports */
const httpModule = (): typeof http => require('node:http') as typeof http
const httpsModule = (): typeof https => require('node:https') as typeof https
/* eslint-enable @typescript-eslint/no-require-imports */

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
  /** Extra TLS material for https (certs.d). Used for every https host this transport talks to (registry, token realm, redirects). */
  tls?: HttpTlsOptions
}

export interface HttpTlsOptions {
  /** Trusted roots (replaces Node's list: give tls.rootCertificates plus the extra CAs). */
  ca?: string[]
  /** Client certificate and key, PEM. */
  cert?: string
  key?: string
  /** Where these came from, for messages. */
  certDir?: string
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

/** Certificate verification failures (the peer's certificate is not trusted or does not match). */
const CERT_UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
])

function tlsError(err: NodeJS.ErrnoException, code: string | undefined, sslReason: string | undefined, url: URL, tls: HttpTlsOptions | undefined, data: Record<string, unknown>): RegistryError {
  const where = hostPort(url)
  const reason = (sslReason ?? (err.message || code || 'unknown')).split('\n')[0].replace(/\.$/, '')
  const certDir = `/etc/containers/certs.d/${url.host}/`
  if (code !== undefined && CERT_UNTRUSTED.has(code)) {
    const what = code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? 'does not match the name' : code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID' ? 'is not valid now' : 'is not trusted'
    return new RegistryError('registry.tls-untrusted', `TLS certificate of ${where} ${what} (${reason})`, {
      cause: err,
      data: { ...data, certDir: tls?.certDir ?? null },
      hint: `${tls?.certDir ? `CAs were read from ${tls.certDir}; ` : ''}put the registry's CA in ${certDir}ca.crt (or give --cert-dir DIR), or, if you trust this network, use --tls-verify=false or insecure = true for the registry in registries.conf`,
    })
  }
  const alert = /alert ([a-z ]+)$/i.exec(reason.replace(/[_:]/g, ' ').toLowerCase())
  const clientCert = /certificate (required|unknown)|bad certificate|unknown ca|handshake failure/.test(reason.toLowerCase()) || /CERTIFICATE_REQUIRED|BAD_CERTIFICATE|UNKNOWN_CA/.test(code ?? '')
  return new RegistryError('registry.tls', `TLS with ${where} failed: ${alert && clientCert ? `the registry refused the client certificate (${alert[1].trim()})` : reason}`, {
    cause: err,
    data: { ...data, certDir: tls?.certDir ?? null },
    hint: clientCert
      ? `this registry may require a client certificate: put NAME.cert and NAME.key in ${certDir} (or --cert-dir DIR)${tls?.certDir ? `; ${tls.certDir} was used` : ''}`
      : 'for a plain-HTTP registry or one with a self-signed certificate, use --tls-verify=false',
  })
}

function networkError(err: unknown, url: URL, tls?: HttpTlsOptions): RegistryError {
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
    return tlsError(e, code, sslReason, url, tls, data)
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
    this.httpAgent = new (httpModule().Agent)({ keepAlive: true, maxSockets: 8 })
    const t = opts.tls ?? {}
    this.httpsAgent = new (httpsModule().Agent)({
      keepAlive: true,
      maxSockets: 8,
      rejectUnauthorized: opts.tlsVerify,
      ...(t.ca ? { ca: t.ca } : {}),
      ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}),
    })
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
    const { timeoutMs, userAgent, tlsVerify, tls } = this.opts
    // Also on the request: the agent keys its socket pool on these, so a request must name them too.
    const tlsMaterial = { ...(tls?.ca ? { ca: tls.ca } : {}), ...(tls?.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}) }
    return new Promise((resolve, reject) => {
      let timedOut = false
      const isHttps = url.protocol === 'https:'
      const options: https.RequestOptions = {
        method: 'GET',
        headers: { 'user-agent': userAgent, ...headers },
        agent: isHttps ? this.httpsAgent : this.httpAgent,
        ...(isHttps ? { rejectUnauthorized: tlsVerify, ...tlsMaterial } : {}),
      }
      let req: http.ClientRequest
      try {
        req = (isHttps ? httpsModule() : httpModule()).request(url, options)
      } catch (err) {
        reject(networkError(err, url, tls))
        return
      }
      req.setTimeout(timeoutMs, () => {
        timedOut = true
        req.destroy()
      })
      req.on('error', (err) => reject(timedOut ? timeoutError(url, timeoutMs) : networkError(err, url, tls)))
      req.on('response', (res) => {
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          url,
          body: res,
          bodyError: (err) => (err instanceof SysctrError ? err : timedOut ? timeoutError(url, timeoutMs) : networkError(err, url, tls)),
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
