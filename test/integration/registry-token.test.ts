/**
 * Token auth against the real registry (docker-registry 2.8, `auth: token`)
 * with an in-process token server: RS256 JWTs signed with node:crypto, the
 * signer's self-signed certificate in x5c and in the registry's
 * rootcertbundle. Basic credentials are checked by the token server; "reader"
 * may pull, "pusher" (skopeo) may push; anonymous gets a token without access.
 */
import { execFile } from 'node:child_process'
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http'
import { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RegistryError, SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { openImageSource, OpenImageOptions } from '../../src/transports/open'
import { cliSkipReason, runCli } from '../helpers/crash'
import { pushLayout, registrySkipReason, RunningRegistry, startRegistry } from '../helpers/registry'

const execFileP = promisify(execFile)
const skip = registrySkipReason()
const SERVICE = 'sysctr-test-registry'
const ISSUER = 'sysctr-test-token-issuer'
const USERS: Record<string, { password: string; actions: string[] }> = {
  reader: { password: 'reader-pw-9f2c', actions: ['pull'] },
  pusher: { password: 'pusher-pw-41aa', actions: ['pull', 'push'] },
}
const WRONG = 'wrong-pw-77e1'

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url')

interface TokenRequest {
  user: string | null
  scopes: string[]
  service: string | null
}

/** The token server: GET /token?service=…&scope=repository:NAME:ACTIONS (repeatable), Basic credentials optional. */
async function startTokenServer(keyPem: string, certPem: string): Promise<{ server: Server; realm: string; requests: TokenRequest[] }> {
  const key = createPrivateKey(keyPem)
  const x5c = [new X509Certificate(certPem).raw.toString('base64')]
  const requests: TokenRequest[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname !== '/token') {
      res.writeHead(404).end()
      return
    }
    let user: string | null = null
    const authz = req.headers.authorization
    if (authz?.startsWith('Basic ')) {
      const decoded = Buffer.from(authz.slice(6), 'base64').toString('utf8')
      const i = decoded.indexOf(':')
      const [name, password] = [decoded.slice(0, i), decoded.slice(i + 1)]
      if (USERS[name]?.password !== password) {
        requests.push({ user: `${name} (refused)`, scopes: url.searchParams.getAll('scope'), service: url.searchParams.get('service') })
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"invalid credentials"}')
        return
      }
      user = name
    }
    const scopes = url.searchParams.getAll('scope')
    requests.push({ user, scopes, service: url.searchParams.get('service') })
    const access = scopes.flatMap((s) => {
      const m = /^repository:([^:]+):(.*)$/.exec(s)
      if (!m || !user) return []
      const actions = m[2].split(',').filter((a) => USERS[user!].actions.includes(a))
      return [{ type: 'repository', name: m[1], actions }]
    })
    const now = Math.floor(Date.now() / 1000)
    const header = { typ: 'JWT', alg: 'RS256', x5c }
    const claims = { iss: ISSUER, sub: user ?? '', aud: SERVICE, exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access }
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`
    const token = `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { server, realm: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, requests }
}

async function failure(p: Promise<unknown>): Promise<SysctrError> {
  return p.then(
    () => {
      throw new Error('expected a failure')
    },
    (e) => e as SysctrError,
  )
}

describe.skipIf(skip)(`registry token auth${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string
  let reg: RunningRegistry
  let tokens: Awaited<ReturnType<typeof startTokenServer>>
  let image: WrittenImage
  let base: OpenImageOptions

  async function pull(opts: OpenImageOptions): Promise<string> {
    const { source } = await openImageSource(`${reg.host}/demo/app:v1`, { ...base, ...opts })
    try {
      const r = await source.resolve()
      for (const l of r.manifest.layers) for await (const _ of await source.openBlob(l)); // verified while read
      return r.manifestDigest
    } finally {
      await source.close()
    }
  }

  async function authFile(user: string, password: string): Promise<string> {
    const f = join(dir, `auth-${user}-${Math.random().toString(36).slice(2)}.json`)
    await fsp.writeFile(f, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }))
    return f
  }

  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-registry-token-'))
    await execFileP('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'signer.key', '-out', 'signer.crt', '-days', '2', '-subj', '/CN=sysctr token signer'], {
      cwd: dir,
      timeout: 30_000,
    })
    const [keyPem, certPem] = await Promise.all([fsp.readFile(join(dir, 'signer.key'), 'utf8'), fsp.readFile(join(dir, 'signer.crt'), 'utf8')])
    tokens = await startTokenServer(keyPem, certPem)
    reg = await startRegistry({ token: { realm: tokens.realm, service: SERVICE, issuer: ISSUER, rootCertBundle: join(dir, 'signer.crt') } })
    const empty = join(dir, 'empty')
    await fsp.mkdir(empty)
    // plain-http registry; no registries.conf, no auth files from the host
    base = { tlsVerify: false, configRoot: empty, home: empty, env: {}, registry: { timeoutMs: 10_000, retries: 0 } }
    const layout = join(dir, 'layout')
    ;[image] = await writeOciLayout(layout, [{ tag: 'v1', layers: [[{ path: 'etc/token-test', content: 'token auth\n' }]] }])
    await pushLayout(layout, 'v1', `${reg.host}/demo/app:v1`, { credentials: { user: 'pusher', password: USERS.pusher.password } })
  }, 60_000)

  afterAll(async () => {
    await reg?.stop()
    await new Promise((r) => tokens?.server.close(r))
    if (dir) await fsp.rm(dir, { recursive: true, force: true })
  })

  it('anonymous pull is refused: registry.unauthorized (exit 5) naming the registry', async () => {
    const err = await failure(pull({}))
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.code).toBe('registry.unauthorized')
    expect(err.exitCode).toBe(5)
    expect(err.message).toContain(reg.host)
    expect(tokens.requests.some((r) => r.user === null && r.scopes.includes('repository:demo/app:pull'))).toBe(true)
  })

  it('--creds: the token is fetched with Basic credentials for scope repository:demo/app:pull, and the pull works', async () => {
    tokens.requests.length = 0
    expect(await pull({ creds: `reader:${USERS.reader.password}` })).toBe(image.manifestDigest)
    expect(tokens.requests.length).toBeGreaterThan(0)
    for (const r of tokens.requests) {
      expect(r).toEqual({ user: 'reader', scopes: ['repository:demo/app:pull'], service: SERVICE })
    }
  })

  it('credentials from an auth.json (--authfile) work', async () => {
    expect(await pull({ authfile: await authFile('reader', USERS.reader.password) })).toBe(image.manifestDigest)
  })

  it('a wrong password: the error names the credential file used and never the password', async () => {
    const authfile = await authFile('reader', WRONG)
    const err = await failure(pull({ authfile }))
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.code).toBe('registry.unauthorized')
    expect(err.message).toContain(reg.host)
    expect(err.message).toContain(authfile)
    const everything = JSON.stringify({ m: err.message, h: err.hint, full: err.toJSON(), cause: String(err.cause ?? '') })
    expect(everything).not.toContain(WRONG)
    expect(everything).not.toContain(Buffer.from(`reader:${WRONG}`).toString('base64'))
  })

  it.skipIf(cliSkipReason())(`the CLI: wrong password -> exit 5, the file named, the password nowhere in stdout/stderr (also --json and --debug)${cliSkipReason() ? ` (skipped: ${cliSkipReason()})` : ''}`, async () => {
    const authfile = await authFile('reader', WRONG)
    const state = join(dir, 'state')
    for (const extra of [[], ['--json'], ['--debug']]) {
      const r = await runCli(['images', 'pull', '--tls-verify=false', '--authfile', authfile, ...extra, `${reg.host}/demo/app:v1`], state)
      expect(r.code).toBe(5)
      expect(r.stdout + r.stderr).toContain(authfile)
      expect(r.stdout + r.stderr).not.toContain(WRONG)
      expect(r.stdout + r.stderr).not.toContain(Buffer.from(`reader:${WRONG}`).toString('base64'))
    }
    const ok = await runCli(['images', 'pull', '--tls-verify=false', '--creds', `reader:${USERS.reader.password}`, `${reg.host}/demo/app:v1`], state)
    expect(ok.code, ok.stderr).toBe(0)
  })
})
