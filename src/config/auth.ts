/**
 * Registry credentials as containers-auth.json(5) keeps them, in the order
 * containers/image reads them (pkg/docker/config getAuthFilePaths):
 *   --authfile FILE (or $REGISTRY_AUTH_FILE) alone when given; else
 *   1. the primary file: ${XDG_RUNTIME_DIR}/containers/auth.json, or without
 *      XDG_RUNTIME_DIR /run/containers/UID/auth.json (where a root
 *      `podman login` writes: /run/containers/0/auth.json);
 *   2. ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json;
 *   3. ${DOCKER_CONFIG:-~/.docker}/config.json;
 *   4. ~/.dockercfg (Docker's legacy format: the registry map at the top
 *      level, no "auths").
 * In each file, `auths` keys are looked up most specific first:
 * `registry/ns/repo`, `registry/ns`, `registry` (Docker's
 * `https://index.docker.io/v1/` and `http(s)://host/…` keys match their host).
 * An entry is {"auth": base64(user:password)} (or username/password fields).
 *
 * Credential helpers: in each file, in this order (as containers/image):
 *   1. `credHelpers: {"REGISTRY": "NAME"}` for the registry,
 *   2. the `auths` entries,
 *   3. `credsStore: "NAME"` (Docker's default store for every registry).
 * A helper is `docker-credential-NAME get` with the registry on stdin; it
 * prints {"ServerURL","Username","Secret"}. "credentials not found" (exit 1)
 * means none here (the lookup goes on); a helper that is not installed is a
 * HostError naming it (exit 7). Its output is never put in a message.
 *
 * Nothing here puts a password or token in a message: errors name the file
 * and the key only.
 */
import { spawn } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { homedir } from 'node:os'
import { basename, join } from 'node:path'
import { ContentError, HostError, UsageError } from '../errors'
import type { Credentials } from '../transports/registry/auth'

export interface AuthLookupOptions {
  /** --authfile: only this file is read. */
  authfile?: string
  /** --creds user[:password]: used as given, no file read. */
  creds?: string
  env?: NodeJS.ProcessEnv
  home?: string
  /** The primary file's directory without XDG_RUNTIME_DIR: RUN_DIR/UID/auth.json (default /run/containers; tests). */
  runDir?: string
  /** Default: this process's uid. */
  uid?: number
  /** Runs a credential helper (tests; default: spawn `docker-credential-NAME get` in PATH of `env`). */
  runHelper?: CredentialHelperRunner
}

/** Run `docker-credential-NAME get` with `serverUrl` on stdin. */
export type CredentialHelperRunner = (name: string, serverUrl: string, env: NodeJS.ProcessEnv) => Promise<HelperResult>

export interface HelperResult {
  /** Exit status; null when killed. */
  code: number | null
  stdout: string
  stderr: string
}

const HELPER_TIMEOUT_MS = 30_000
const HELPER_OUTPUT_LIMIT = 1 << 20

/** The default runner: spawn the helper, feed stdin, collect (bounded) output. ENOENT is thrown as is. */
export const spawnCredentialHelper: CredentialHelperRunner = (name, serverUrl, env) =>
  new Promise((resolve, reject) => {
    const child = spawn(`docker-credential-${name}`, ['get'], { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: HELPER_TIMEOUT_MS })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < HELPER_OUTPUT_LIMIT) stdout += d
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < HELPER_OUTPUT_LIMIT) stderr += d
    })
    child.once('error', reject)
    child.stdin.on('error', () => {}) // a helper that exits without reading stdin
    child.stdin.end(serverUrl)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })

/**
 * Credentials from credential helper `name` for `registry`, or undefined when
 * it has none. `why` says where the helper was named (for messages).
 */
export async function credentialsFromHelper(
  name: string,
  registry: string,
  why: string,
  env: NodeJS.ProcessEnv,
  run: CredentialHelperRunner = spawnCredentialHelper,
): Promise<Credentials | undefined> {
  const bin = `docker-credential-${name}`
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new ContentError('config.bad-credential-helper', `${why}: invalid credential helper name "${name}"`, { data: { helper: name } })
  }
  let r: HelperResult
  try {
    r = await run(name, registry, env)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') {
      throw new HostError('host.credential-helper-missing', `credential helper ${bin} (${why}) is not installed: not found in PATH`, {
        cause: err,
        data: { helper: bin },
        hint: `install ${bin}, or remove it from ${why.replace(/^.* in /, '')}`,
      })
    }
    throw new HostError('host.credential-helper-failed', `credential helper ${bin} (${why}) could not run: ${code ?? 'error'}`, { cause: err, data: { helper: bin } })
  }
  if (r.code !== 0) {
    // docker-credential-helpers print "credentials not found in native keychain" on stdout, exit 1.
    if (/credentials not found/i.test(r.stdout) || /credentials not found/i.test(r.stderr)) return undefined
    const first = (r.stderr.trim() || '').split('\n')[0].slice(0, 200)
    throw new HostError('host.credential-helper-failed', `credential helper ${bin} get for ${registry} failed (${r.code === null ? 'killed' : `exit ${r.code}`})${first ? `: ${first}` : ''}`, {
      data: { helper: bin, exitCode: r.code },
    })
  }
  let parsed: { Username?: unknown; Secret?: unknown }
  try {
    parsed = JSON.parse(r.stdout)
  } catch {
    parsed = {}
  }
  if (typeof parsed.Username !== 'string' || typeof parsed.Secret !== 'string') {
    throw new HostError('host.credential-helper-failed', `credential helper ${bin} get for ${registry} printed no {"Username","Secret"} JSON`, {
      data: { helper: bin },
    })
  }
  if (parsed.Username === '' && parsed.Secret === '') return undefined
  return { username: parsed.Username, password: parsed.Secret }
}

export interface CredentialLookup {
  credentials?: Credentials
  /** Where they came from (a file path or `--creds`); undefined when none were found. */
  from?: string
  /** Files looked at (present or not), in order (for a 401 message). */
  tried: string[]
}

/** Parse `--creds user:password`. */
export function parseCreds(s: string): Credentials {
  const i = s.indexOf(':')
  if (i <= 0) throw new UsageError('usage.bad-creds', '--creds must be USER:PASSWORD', { hint: 'e.g. --creds alice:secret' })
  return { username: s.slice(0, i), password: s.slice(i + 1) }
}

/** The files read when no --authfile / $REGISTRY_AUTH_FILE is given, in order (see the top of this file). */
export function defaultAuthFiles(env: NodeJS.ProcessEnv, home: string, opts: { runDir?: string; uid?: number } = {}): string[] {
  const uid = opts.uid ?? process.getuid?.() ?? 0
  return [
    env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'containers/auth.json') : join(opts.runDir ?? '/run/containers', String(uid), 'auth.json'),
    join(env.XDG_CONFIG_HOME || join(home, '.config'), 'containers/auth.json'),
    join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json'),
    join(home, LEGACY_DOCKERCFG),
  ]
}

/** Docker's pre-1.7 file: `{"REGISTRY": {"auth": ...}}`, read as if it were under "auths". */
const LEGACY_DOCKERCFG = '.dockercfg'

function normaliseKey(key: string): string {
  let k = key.replace(/^https?:\/\//, '').replace(/\/+$/, '')
  if (k === 'index.docker.io/v1' || k === 'index.docker.io' || k === 'registry-1.docker.io') k = 'docker.io'
  if (k.endsWith('/v1') || k.endsWith('/v2')) k = k.slice(0, -3)
  return k
}

/** Keys to look up for `registry/repository`, most specific first. */
export function lookupKeys(registry: string, repository: string): string[] {
  const parts = repository.split('/')
  const keys: string[] = []
  for (let n = parts.length; n >= 1; n--) keys.push(`${registry}/${parts.slice(0, n).join('/')}`)
  keys.push(registry)
  return keys
}

function decodeEntry(entry: unknown, file: string, key: string): Credentials | undefined {
  if (!entry || typeof entry !== 'object') return undefined
  const e = entry as { auth?: unknown; username?: unknown; password?: unknown }
  if (typeof e.auth === 'string' && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8')
    const i = decoded.indexOf(':')
    if (i <= 0) throw new ContentError('config.bad-auth-file', `${file}: the "auth" of ${key} is not base64 of user:password`, { data: { file, key } })
    return { username: decoded.slice(0, i), password: decoded.slice(i + 1) }
  }
  if (typeof e.username === 'string' && typeof e.password === 'string') return { username: e.username, password: e.password }
  return undefined
}

/** Credentials in one parsed auth file for the keys, or undefined. */
export function credentialsIn(doc: unknown, file: string, keys: string[]): Credentials | undefined {
  const auths = (doc as { auths?: unknown })?.auths
  if (!auths || typeof auths !== 'object') return undefined
  const byKey = new Map<string, unknown>()
  for (const [k, v] of Object.entries(auths as Record<string, unknown>)) {
    const nk = normaliseKey(k)
    if (!byKey.has(nk) || k === nk) byKey.set(nk, v)
  }
  for (const k of keys) {
    if (!byKey.has(k)) continue
    const c = decodeEntry(byKey.get(k), file, k)
    if (c) return c
  }
  return undefined
}

/** Find credentials for `registry/repository` (see the top of this file). */
export async function findCredentials(registry: string, repository: string, opts: AuthLookupOptions = {}): Promise<CredentialLookup> {
  if (opts.creds !== undefined) return { credentials: parseCreds(opts.creds), from: '--creds', tried: [] }
  const env = opts.env ?? process.env
  const explicit = opts.authfile ?? env.REGISTRY_AUTH_FILE
  const files = explicit ? [explicit] : defaultAuthFiles(env, opts.home ?? env.HOME ?? homedir(), { runDir: opts.runDir, uid: opts.uid })
  const keys = lookupKeys(registry, repository)
  const tried: string[] = []
  for (const file of files) {
    let text: string
    try {
      text = await fsp.readFile(file, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        if (file === opts.authfile) {
          throw new UsageError('usage.authfile-missing', `--authfile ${file} does not exist`)
        }
        tried.push(file)
        continue
      }
      throw err
    }
    tried.push(file)
    let doc: unknown
    try {
      doc = JSON.parse(text)
    } catch {
      throw new ContentError('config.bad-auth-file', `${file} is not JSON`, { data: { file } })
    }
    if (file !== explicit && basename(file) === LEGACY_DOCKERCFG) doc = { auths: doc }
    const d = (doc ?? {}) as { credHelpers?: unknown; credsStore?: unknown }
    const helpers = d.credHelpers && typeof d.credHelpers === 'object' ? (d.credHelpers as Record<string, unknown>) : {}
    const own = helpers[registry]
    if (typeof own === 'string' && own !== '') {
      const why = `credHelpers in ${file}`
      const c = await credentialsFromHelper(own, registry, why, env, opts.runHelper)
      if (c) return { credentials: c, from: `docker-credential-${own} (${why})`, tried }
      continue // containers/image: a registry's own helper is the only source in that file
    }
    const c = credentialsIn(doc, file, keys)
    if (c) return { credentials: c, from: file, tried }
    if (typeof d.credsStore === 'string' && d.credsStore !== '') {
      const why = `credsStore in ${file}`
      const s = await credentialsFromHelper(d.credsStore, registry, why, env, opts.runHelper)
      if (s) return { credentials: s, from: `docker-credential-${d.credsStore} (${why})`, tried }
    }
  }
  return { tried }
}
