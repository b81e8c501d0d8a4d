/**
 * The real registry (Debian's docker-registry, distribution 2.8) for
 * integration tests: one per call, on 127.0.0.1 with a free port and a temp
 * storage dir, stopped and removed by stop(). Plus pushLayout() via skopeo.
 */
import { execFile, spawn, ChildProcess } from 'node:child_process'
import { existsSync, promises as fsp } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { registryConfig } from '../../src/testbed/registry-config'

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
  /** `http://127.0.0.1:PORT` */
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
  try {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) })
    await res.arrayBuffer()
    return res.status
  } catch {
    return undefined
  }
}

export async function startRegistry(opts: { htpasswd?: { user: string; password: string } } = {}): Promise<RunningRegistry> {
  const dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-docker-registry-'))
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const url = `http://${host}`
  let htpasswdFile: string | undefined
  if (opts.htpasswd) {
    htpasswdFile = join(dir, 'htpasswd')
    await fsp.writeFile(htpasswdFile, `${opts.htpasswd.user}:${await bcrypt(opts.htpasswd.password)}\n`, { mode: 0o600 })
  }
  const config = registryConfig({ addr: host, storageDir: join(dir, 'data'), htpasswdFile })
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
    const status = await answers(url)
    if (status === 200 || status === 401) return { host, url, stop }
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
  opts: { all?: boolean; credentials?: { user: string; password: string } } = {},
): Promise<void> {
  const args = ['copy', '--insecure-policy', '--dest-tls-verify=false']
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
