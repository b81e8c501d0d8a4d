/**
 * The real registry (Debian's docker-registry, distribution 2.8) for
 * integration tests: one per call, on 127.0.0.1 with a free port and a temp
 * storage dir, stopped and removed by stop(). Plus pushLayout() via skopeo.
 */
import { execFile, spawn, ChildProcess } from 'node:child_process'
import { existsSync, promises as fsp } from 'node:fs'
import { connect, createServer } from 'node:net'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { registryConfig } from '../../harness/registry-config'

const execFileP = promisify(execFile)

export const REGISTRY_BIN = '/usr/bin/docker-registry'
export const SKOPEO_BIN = '/usr/bin/skopeo'

/** Why the real-registry tests cannot run here, or undefined when they can. */
export function registrySkipReason(): string | undefined {
  if (!existsSync(REGISTRY_BIN)) return `${REGISTRY_BIN} not installed (apt-get install docker-registry)`
  if (!existsSync(SKOPEO_BIN)) return `${SKOPEO_BIN} not installed (apt-get install skopeo)`
  return undefined
}

export interface RunningRegistry {
  /** `127.0.0.1:PORT` */
  host: string
  /** `http://127.0.0.1:PORT` (`https://` with tls) */
  url: string
  stop(): Promise<void>
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/** bcrypt hash for htpasswd (the registry accepts only bcrypt); Python's crypt does it with libxcrypt. Cost 4: the registry checks it on every request. */
async function bcrypt(password: string): Promise<string> {
  const { stdout } = await execFileP('python3', [
    '-W',
    'ignore',
    '-c',
    'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))',
    password,
  ])
  const hash = stdout.trim()
  if (!hash.startsWith('$2')) throw new Error('python3 crypt did not produce a bcrypt hash')
  return hash
}

async function answers(url: string): Promise<number | undefined> {
  if (url.startsWith('https:')) {
    // Self-signed: only "does it answer as a registry", nothing is trusted here.
    return new Promise((resolve) => {
      const req = httpsRequest(`${url}/v2/`, { rejectUnauthorized: false, timeout: 1000 }, (res) => {
        res.resume()
        resolve(res.statusCode)
      })
      req.on('timeout', () => req.destroy())
      req.on('error', () => resolve(undefined))
      req.end()
    })
  }
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) })
    await res.arrayBuffer()
    return res.status
  } catch {
    return undefined
  }
}

/** A TCP connect succeeds (for a registry that wants a client certificate before it answers). */
async function listens(host: string): Promise<boolean> {
  const [h, p] = [host.slice(0, host.lastIndexOf(':')), Number(host.slice(host.lastIndexOf(':') + 1))]
  return new Promise((resolve) => {
    const s = connect(p, h, () => (s.destroy(), resolve(true)))
    s.on('error', () => resolve(false))
  })
}

export interface StartRegistryOptions {
  htpasswd?: { user: string; password: string }
  /** Serve https: PEM file paths; clientCas: require a client certificate signed by one of them. */
  tls?: { cert: string; key: string; clientCas?: string[] }
  /** Token auth: realm URL, service, issuer and the PEM bundle of certificates the token signer's x5c must chain to. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string }
  /** Use this port (e.g. to know the registry's host before writing its certificate). */
  port?: number
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-docker-registry-'))
  const port = opts.port ?? (await freePort())
  const host = `127.0.0.1:${port}`
  const url = `${opts.tls ? 'https' : 'http'}://${host}`
  let htpasswdFile: string | undefined
  if (opts.htpasswd) {
    htpasswdFile = join(dir, 'htpasswd')
    await fsp.writeFile(htpasswdFile, `${opts.htpasswd.user}:${await bcrypt(opts.htpasswd.password)}\n`, { mode: 0o600 })
  }
  const config = registryConfig({
    addr: host,
    storageDir: join(dir, 'data'),
    htpasswdFile,
    ...(opts.tls ? { tls: { certificate: opts.tls.cert, key: opts.tls.key, ...(opts.tls.clientCas ? { clientCas: opts.tls.clientCas } : {}) } } : {}),
    ...(opts.token ? { token: opts.token } : {}),
  })
  await fsp.writeFile(join(dir, 'config.yml'), config)
  const log: Buffer[] = []
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout?.on('data', (b: Buffer) => log.push(b))
  child.stderr?.on('data', (b: Buffer) => log.push(b))
  let exited = false
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())))

  const stop = async () => {
    if (!exited && child.pid !== undefined) {
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exit
      clearTimeout(t)
    }
    await fsp.rm(dir, { recursive: true, force: true })
  }

  for (let i = 0; i < 100; i++) {
    if (opts.tls?.clientCas?.length) {
      if (await listens(host)) return { host, url, stop }
    } else {
      const status = await answers(url)
      if (status === 200 || status === 401) return { host, url, stop }
    }
    if (exited) break
    await new Promise((r) => setTimeout(r, 100))
  }
  const output = Buffer.concat(log).toString('utf8').slice(-2000)
  await stop()
  throw new Error(`docker-registry did not answer ${url}/v2/ within 10 s${output ? `; its output:\n${output}` : ''}`)
}

/** Push `oci:layoutDir:tag` to `docker://dest` (dest = `HOST/repo:tag`) with skopeo; `all` copies a whole index. */
export async function pushLayout(
  layoutDir: string,
  tag: string,
  dest: string,
  opts: { all?: boolean; credentials?: { user: string; password: string }; certDir?: string } = {},
): Promise<void> {
  // certDir: skopeo reads the same certs.d layout (*.crt CAs, NAME.cert/NAME.key client certificate) and verifies TLS.
  const args = ['copy', '--insecure-policy', ...(opts.certDir ? ['--dest-cert-dir', opts.certDir] : ['--dest-tls-verify=false'])]
  if (opts.all) args.push('--all')
  if (opts.credentials) args.push('--dest-creds', `${opts.credentials.user}:${opts.credentials.password}`)
  args.push(`oci:${layoutDir}:${tag}`, `docker://${dest}`)
  try {
    await execFileP(SKOPEO_BIN, args, { timeout: 60_000 })
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new Error(`skopeo copy oci:${layoutDir}:${tag} docker://${dest} failed: ${e.stderr || e.message}`)
  }
}
