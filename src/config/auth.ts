/**
 * Registry credentials as containers-auth.json(5) keeps them:
 *   --authfile FILE (or $REGISTRY_AUTH_FILE) alone when given; else
 *   ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json,
 *   ~/.docker/config.json, in that order.
 * In each file, `auths` keys are looked up most specific first:
 * `registry/ns/repo`, `registry/ns`, `registry` (Docker's
 * `https://index.docker.io/v1/` and `http(s)://host/…` keys match their host).
 * An entry is {"auth": base64(user:password)} (or username/password fields);
 * credHelpers/credsStore are not supported and reported as such.
 *
 * Nothing here puts a password or token in a message: errors name the file
 * and the key only.
 */
import { promises as fsp } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { ContentError, UsageError } from '../errors'
import type { Credentials } from '../transports/registry/auth'

export interface AuthLookupOptions {
  /** --authfile: only this file is read. */
  authfile?: string
  /** --creds user[:password]: used as given, no file read. */
  creds?: string
  env?: NodeJS.ProcessEnv
  home?: string
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

export function defaultAuthFiles(env: NodeJS.ProcessEnv, home: string): string[] {
  const files: string[] = []
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, 'containers/auth.json'))
  files.push(join(home, '.config/containers/auth.json'))
  files.push(join(env.DOCKER_CONFIG ?? join(home, '.docker'), 'config.json'))
  return files
}

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
  const files = explicit ? [explicit] : defaultAuthFiles(env, opts.home ?? env.HOME ?? homedir())
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
    const c = credentialsIn(doc, file, keys)
    if (c) return { credentials: c, from: file, tried }
  }
  return { tried }
}
