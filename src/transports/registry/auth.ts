/**
 * Registry authentication: the WWW-Authenticate challenge from `GET /v2/`,
 * anonymous or credentialed Bearer tokens (distribution token spec: GET
 * realm?service=…&scope=repository:NAME:pull, answer `token` or
 * `access_token`), cached per realm/service/scope until they expire, and
 * Basic auth when credentials are given.
 *
 * Tokens and passwords never appear in an error message or data.
 */
import { RegistryError } from '../../errors'
import { describeUrl, HttpTransport, readBody } from './http'

export interface Credentials {
  username: string
  password: string
}

export interface Challenge {
  /** Lower case: 'bearer', 'basic', … */
  scheme: string
  params: Record<string, string>
}

/** Parse WWW-Authenticate (RFC 7235), possibly several challenges in one or more headers. */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  const out: Challenge[] = []
  for (const h of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
    let i = 0
    let current: Challenge | undefined
    const skip = (re: RegExp) => {
      while (i < h.length && re.test(h[i])) i++
    }
    while (i < h.length) {
      skip(/[\s,]/)
      const start = i
      while (i < h.length && /[^\s,=]/.test(h[i])) i++
      const token = h.slice(start, i)
      if (!token) break
      skip(/\s/)
      if (h[i] === '=' && current) {
        i++
        skip(/\s/)
        let value = ''
        if (h[i] === '"') {
          i++
          while (i < h.length && h[i] !== '"') {
            if (h[i] === '\\' && i + 1 < h.length) i++
            value += h[i++]
          }
          i++
        } else {
          const vs = i
          while (i < h.length && h[i] !== ',') i++
          value = h.slice(vs, i).trim()
        }
        current.params[token.toLowerCase()] = value
      } else {
        current = { scheme: token.toLowerCase(), params: {} }
        out.push(current)
      }
    }
  }
  return out
}

export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`
}

interface CachedToken {
  token: string
  expiresAt: number
}

export interface AuthenticatorOptions {
  /** host[:port] as the user named it, for messages. */
  registry: string
  credentials?: Credentials
  now: () => number
}

/**
 * Holds the registry's challenge and the token cache. One per RegistryClient.
 */
export class Authenticator {
  private challenge?: Challenge
  private readonly tokens = new Map<string, CachedToken>()

  constructor(
    private readonly http: HttpTransport,
    private readonly opts: AuthenticatorOptions,
  ) {}

  /** Record the challenge from `GET /v2/` (or a later 401); none means no auth needed. */
  setChallenges(challenges: Challenge[]): void {
    this.challenge = challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic')
  }

  /** The Authorization header value for `scope`, if any is needed. */
  async authorization(scope: string): Promise<string | undefined> {
    const ch = this.challenge
    if (!ch) return undefined
    if (ch.scheme === 'basic') return this.opts.credentials ? basicAuthorization(this.opts.credentials) : undefined
    if (ch.scheme === 'bearer') return `Bearer ${await this.token(ch, scope)}`
    throw new RegistryError('registry.unsupported-auth', `${this.opts.registry} asks for unsupported authentication "${ch.scheme}"`)
  }

  /**
   * After a 401 on a resource: take the new challenge, forget the cached token
   * for `scope` and return a fresh Authorization, or undefined when a retry
   * cannot help (no challenge, Basic without credentials, or the same Basic
   * credentials already refused).
   */
  async reauthorize(challenges: Challenge[], scope: string, sent: string | undefined): Promise<string | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer')
    if (bearer) {
      this.challenge = bearer
      for (const key of [...this.tokens.keys()]) if (key.endsWith(`\n${scope}`)) this.tokens.delete(key)
      return `Bearer ${await this.token(bearer, scope)}`
    }
    if (challenges.some((c) => c.scheme === 'basic') && this.opts.credentials) {
      this.challenge = { scheme: 'basic', params: {} }
      const basic = basicAuthorization(this.opts.credentials)
      return basic === sent ? undefined : basic
    }
    return undefined
  }

  private async token(ch: Challenge, scope: string): Promise<string> {
    const realm = ch.params.realm
    if (!realm) {
      throw new RegistryError('registry.bad-challenge', `${this.opts.registry} asks for a bearer token without naming a realm`)
    }
    const service = ch.params.service ?? ''
    const key = `${realm}\n${service}\n${scope}`
    const cached = this.tokens.get(key)
    if (cached && cached.expiresAt > this.opts.now()) return cached.token

    let url: URL
    try {
      url = new URL(realm)
    } catch {
      throw new RegistryError('registry.bad-challenge', `${this.opts.registry} names an invalid token realm`)
    }
    if (service) url.searchParams.set('service', service)
    url.searchParams.set('scope', scope)
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.opts.credentials) headers.authorization = basicAuthorization(this.opts.credentials)
    const res = await this.http.get(url, headers)
    const where = describeUrl(url)
    if (res.status === 401 || res.status === 403) {
      res.body.resume()
      throw new RegistryError('registry.unauthorized', `${this.opts.registry}: token service ${where} refused ${this.opts.credentials ? 'the credentials' : 'anonymous access'} (HTTP ${res.status})`, {
        data: { registry: this.opts.registry, status: res.status },
        hint: this.opts.credentials ? 'check the user name and password' : 'this registry may need credentials',
      })
    }
    if (res.status !== 200) {
      res.body.resume()
      throw new RegistryError('registry.status', `${this.opts.registry}: token service ${where} answered HTTP ${res.status}`, {
        data: { registry: this.opts.registry, status: res.status },
      })
    }
    const body = await readBody(res, 1 << 20, `token from ${where}`)
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown }
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch {
      parsed = {}
    }
    const token = typeof parsed.token === 'string' && parsed.token ? parsed.token : parsed.access_token
    if (typeof token !== 'string' || !token) {
      throw new RegistryError('registry.bad-token', `${this.opts.registry}: token service ${where} answered without a token`)
    }
    const expiresIn = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60
    // Renew a little early so a token does not expire between two requests.
    this.tokens.set(key, { token, expiresAt: this.opts.now() + Math.max(1, expiresIn - 10) * 1000 })
    return token
  }
}
