/**
 * containers-registries.d(5): where the signatures of registry images are.
 *
 * Directory: `--registries.d DIR` when given, else
 * `$HOME/.config/containers/registries.d` when it exists, else
 * `/etc/containers/registries.d` (under `configRoot` for tests). As in
 * containers/image, the user directory replaces the system one rather than
 * adding to it. Every `*.yaml` file in it is read (sorted); a scope or
 * `default-docker` defined twice is an error naming both files.
 *
 *   default-docker: {lookaside: URL, use-sigstore-attachments: BOOL}
 *   docker:
 *     SCOPE: {lookaside: URL, use-sigstore-attachments: BOOL}
 *
 * `sigstore` is the older name of `lookaside` (and `sigstore-staging` of
 * `lookaside-staging`, which only writers use). The most specific scope
 * wins, with the same scope order as the policy (host/repo:tag, host/repo,
 * namespaces, host, `*.domain`), then `default-docker`. With no lookaside
 * configured anywhere, the built-in default `file:///var/lib/containers/sigstore`
 * is used (under `configRoot`).
 */
import { promises as fsp } from 'node:fs'
import { join, resolve as resolvePath } from 'node:path'
import { ContentError } from '../errors'
import type { ImageReference } from '../reference/reference'
import { dockerScopes } from './policy'
import { locateContainersFile } from '../config/containers-files'

export interface SignatureStorage {
  lookaside?: string
  lookasideStaging?: string
  useSigstoreAttachments?: boolean
}

export interface RegistriesD {
  /** The directory read (undefined when none exists). */
  dir?: string
  defaultDocker?: SignatureStorage
  docker: Record<string, SignatureStorage>
  /** SCOPE or `default-docker` -> the file that set it. */
  sources: Record<string, string>
}

export interface LoadRegistriesDOptions {
  /** --registries.d DIR */
  registriesD?: string
  configRoot?: string
  home?: string
  env?: NodeJS.ProcessEnv
}

export interface SignatureStorageChoice {
  /** The lookaside base URL to read (the configured one, or the built-in default). */
  lookaside: string
  useSigstoreAttachments: boolean
  /** Which entry decided: `docker:SCOPE`, `default-docker` or `built-in default`. */
  from: string
}

/** The registries.d directory that applies. */
export async function locateRegistriesD(opts: LoadRegistriesDOptions = {}): Promise<string | undefined> {
  if (opts.registriesD !== undefined) return resolvePath(opts.registriesD)
  return locateContainersFile('registries.d', 'dir', opts)
}

/** Read every *.yaml file of the directory that applies. */
export async function loadRegistriesD(opts: LoadRegistriesDOptions = {}): Promise<RegistriesD> {
  const dir = await locateRegistriesD(opts)
  const out: RegistriesD = { docker: {}, sources: {} }
  if (dir === undefined) return out
  out.dir = dir
  let names: string[]
  try {
    names = (await fsp.readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return out
    throw err
  }
  for (const name of names) {
    const file = join(dir, name)
    mergeRegistriesDFile(out, await fsp.readFile(file, 'utf8'), file)
  }
  return out
}

function bad(file: string, what: string): ContentError {
  return new ContentError('trust.bad-registries-d', `${file}: ${what}`, { data: { file } })
}

function storage(v: unknown, file: string, where: string): SignatureStorage {
  if (v === null || v === undefined) return {}
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(file, `${where} must be a mapping`)
  const o = v as Record<string, unknown>
  const out: SignatureStorage = {}
  for (const [k, val] of Object.entries(o)) {
    switch (k) {
      case 'lookaside':
      case 'sigstore':
        if (typeof val !== 'string' || !val) throw bad(file, `${where}: ${k} must be a URL`)
        if (out.lookaside !== undefined) throw bad(file, `${where}: both lookaside and sigstore are set`)
        checkUrl(val, file, `${where}: ${k}`)
        out.lookaside = val
        break
      case 'lookaside-staging':
      case 'sigstore-staging':
        if (typeof val !== 'string' || !val) throw bad(file, `${where}: ${k} must be a URL`)
        out.lookasideStaging = val
        break
      case 'use-sigstore-attachments':
        if (typeof val !== 'boolean') throw bad(file, `${where}: use-sigstore-attachments must be true or false`)
        out.useSigstoreAttachments = val
        break
      default:
        throw bad(file, `${where}: unknown key "${k}"`)
    }
  }
  return out
}

function checkUrl(u: string, file: string, where: string): void {
  let url: URL
  try {
    url = new URL(u)
  } catch {
    throw bad(file, `${where}: "${u}" is not a URL`)
  }
  if (!['file:', 'http:', 'https:'].includes(url.protocol)) throw bad(file, `${where}: ${url.protocol} URLs are not supported (file, http, https)`)
}

/** Merge one YAML file into `into` (exported for tests). */
export function mergeRegistriesDFile(into: RegistriesD, text: string, file: string): void {
  let doc: unknown
  try {
    // yaml, loaded on first use (start-up of commands that read no registries.d).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    doc = (require('yaml') as typeof import('yaml')).parse(text)
  } catch (err) {
    throw bad(file, `not valid YAML (${(err as Error).message.split('\n')[0]})`)
  }
  if (doc === null || doc === undefined) return
  if (typeof doc !== 'object' || Array.isArray(doc)) throw bad(file, 'the top level must be a mapping')
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    if (k === 'default-docker') {
      if (into.defaultDocker) throw bad(file, `default-docker is also set in ${into.sources['default-docker']}`)
      into.defaultDocker = storage(v, file, 'default-docker')
      into.sources['default-docker'] = file
    } else if (k === 'docker') {
      if (v === null) continue
      if (typeof v !== 'object' || Array.isArray(v)) throw bad(file, 'docker must be a mapping of scopes')
      for (const [scope, s] of Object.entries(v as Record<string, unknown>)) {
        if (into.docker[scope]) throw bad(file, `docker scope ${scope} is also set in ${into.sources[scope]}`)
        into.docker[scope] = storage(s, file, `docker: ${scope}`)
        into.sources[scope] = file
      }
    } else {
      throw bad(file, `unknown key "${k}" (expected default-docker, docker)`)
    }
  }
}

/** The built-in lookaside for reading when nothing is configured (root's default in containers/image). */
export function builtinLookaside(configRoot?: string): string {
  return `file://${join(configRoot ?? '/', 'var/lib/containers/sigstore')}`
}

/**
 * Where the signatures of `ref` are. Each setting is looked up on its own,
 * most specific scope first, then default-docker (as containers/image does).
 */
export function signatureStorageFor(conf: RegistriesD, ref: ImageReference, configRoot?: string): SignatureStorageChoice {
  const entries: Array<[string, SignatureStorage]> = []
  for (const scope of dockerScopes(ref)) {
    if (conf.docker[scope]) entries.push([`docker: ${scope} in ${conf.sources[scope]}`, conf.docker[scope]])
  }
  if (conf.defaultDocker) entries.push([`default-docker in ${conf.sources['default-docker']}`, conf.defaultDocker])
  const look = entries.find(([, s]) => s.lookaside !== undefined)
  const att = entries.find(([, s]) => s.useSigstoreAttachments !== undefined)
  return {
    lookaside: look ? look[1].lookaside! : builtinLookaside(configRoot),
    useSigstoreAttachments: att ? att[1].useSigstoreAttachments! : false,
    from: look ? look[0] : 'built-in default',
  }
}
