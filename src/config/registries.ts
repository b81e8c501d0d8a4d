/**
 * containers-registries.conf(5), version 2, as podman/skopeo/CRI-O read it:
 *   <root>/etc/containers/registries.conf (or $CONTAINERS_REGISTRIES_CONF, or
 *   ~/.config/containers/registries.conf when it exists and no root is given)
 *   then <same dir>/registries.conf.d/*.conf in name order, each overriding
 *   the fields it sets ([[registry]] entries by prefix, aliases by name);
 *   then the machine-written short-name-aliases.conf
 *   (<root>/var/cache/containers/, ~/.cache/containers/), whose aliases win.
 *
 * What sysctr uses: unqualified-search-registries, short-name-mode
 * (enforcing | permissive | disabled), [aliases], and [[registry]] with
 * prefix, location, insecure, blocked, mirror-by-digest-only and
 * [[registry.mirror]] (location, insecure, pull-from-mirror). The v1 format
 * ([registries.search]) is refused with a clear error.
 *
 * Pure parsing and resolution here; reading files is `loadRegistriesConf`.
 */
import { promises as fsp } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { ContentError, UsageError } from '../errors'
import { ImageReference, parseReference } from '../reference/reference'

export type ShortNameMode = 'enforcing' | 'permissive' | 'disabled'
export type PullFromMirror = 'all' | 'digest-only' | 'tag-only'

export interface MirrorEntry {
  location: string
  insecure: boolean
  pullFromMirror: PullFromMirror
}

export interface RegistryEntry {
  /** What references it applies to: `example.com/ns`, `*.example.com`. */
  prefix: string
  /** Where to pull them from (replaces `prefix`). */
  location: string
  insecure: boolean
  blocked: boolean
  mirrorByDigestOnly: boolean
  mirrors: MirrorEntry[]
}

export interface RegistriesConf {
  unqualifiedSearchRegistries: string[]
  shortNameMode: ShortNameMode
  /** short name (no tag) -> fully qualified name. */
  aliases: Record<string, string>
  registries: RegistryEntry[]
  /** Files read, in order (for messages). */
  files: string[]
}

export function emptyRegistriesConf(): RegistriesConf {
  return { unqualifiedSearchRegistries: [], shortNameMode: 'enforcing', aliases: {}, registries: [], files: [] }
}

function bad(file: string, what: string): ContentError {
  return new ContentError('config.bad-registries-conf', `${file}: ${what}`, { data: { file } })
}

function str(v: unknown, file: string, key: string): string | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw bad(file, `${key} must be a string`)
  return v
}

function bool(v: unknown, file: string, key: string): boolean | undefined {
  if (v === undefined) return undefined
  if (typeof v !== 'boolean') throw bad(file, `${key} must be true or false`)
  return v
}

/** Parse one file's text and merge it over `base` (returns a new value). */
export function mergeRegistriesConf(base: RegistriesConf, text: string, file: string): RegistriesConf {
  let doc: Record<string, unknown>
  try {
    // smol-toml, loaded on first use (start-up of commands that resolve no image name).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    doc = (require('smol-toml') as typeof import('smol-toml')).parse(text) as Record<string, unknown>
  } catch (err) {
    throw bad(file, `not valid TOML: ${(err as Error).message.split('\n')[0]}`)
  }
  if (doc.registries !== undefined && !Array.isArray(doc.registries)) {
    throw bad(file, 'this is the version 1 format ([registries.search] …); sysctr reads version 2 (see containers-registries.conf(5))')
  }
  const out: RegistriesConf = {
    ...base,
    aliases: { ...base.aliases },
    registries: [...base.registries],
    files: [...base.files, file],
  }
  const usr = doc['unqualified-search-registries']
  if (usr !== undefined) {
    if (!Array.isArray(usr) || usr.some((x) => typeof x !== 'string')) throw bad(file, 'unqualified-search-registries must be a list of strings')
    out.unqualifiedSearchRegistries = usr as string[]
  }
  const mode = str(doc['short-name-mode'], file, 'short-name-mode')
  if (mode !== undefined) {
    if (mode !== 'enforcing' && mode !== 'permissive' && mode !== 'disabled') throw bad(file, `short-name-mode "${mode}" is not enforcing, permissive or disabled`)
    out.shortNameMode = mode
  }
  const aliases = doc.aliases
  if (aliases !== undefined) {
    if (typeof aliases !== 'object' || aliases === null || Array.isArray(aliases)) throw bad(file, '[aliases] must be a table')
    for (const [k, v] of Object.entries(aliases)) {
      if (typeof v !== 'string') throw bad(file, `alias "${k}" must be a string`)
      out.aliases[k] = v
    }
  }
  const regs = doc.registry
  if (regs !== undefined) {
    if (!Array.isArray(regs)) throw bad(file, '[[registry]] must be an array of tables')
    for (const [i, r] of (regs as Record<string, unknown>[]).entries()) {
      const where = `registry ${i + 1}`
      const location = str(r.location, file, `${where} location`) ?? ''
      const prefix = str(r.prefix, file, `${where} prefix`) || location
      if (!prefix) throw bad(file, `${where} has neither prefix nor location`)
      if (prefix.startsWith('*.') && r.location !== undefined && location !== '') {
        throw bad(file, `${where}: a wildcard prefix (${prefix}) cannot have a location`)
      }
      const mirrorsRaw = r.mirror ?? []
      if (!Array.isArray(mirrorsRaw)) throw bad(file, `${where}: [[registry.mirror]] must be an array of tables`)
      const mirrors = (mirrorsRaw as Record<string, unknown>[]).map((m, j) => {
        const loc = str(m.location, file, `${where} mirror ${j + 1} location`)
        if (!loc) throw bad(file, `${where} mirror ${j + 1} has no location`)
        const pfm = str(m['pull-from-mirror'], file, `${where} mirror ${j + 1} pull-from-mirror`) ?? 'all'
        if (pfm !== 'all' && pfm !== 'digest-only' && pfm !== 'tag-only') throw bad(file, `${where} mirror ${j + 1}: pull-from-mirror "${pfm}" is not all, digest-only or tag-only`)
        return { location: loc, insecure: bool(m.insecure, file, 'insecure') ?? false, pullFromMirror: pfm as PullFromMirror }
      })
      const entry: RegistryEntry = {
        prefix,
        location: location || (prefix.startsWith('*.') ? '' : prefix),
        insecure: bool(r.insecure, file, `${where} insecure`) ?? false,
        blocked: bool(r.blocked, file, `${where} blocked`) ?? false,
        mirrorByDigestOnly: bool(r['mirror-by-digest-only'], file, `${where} mirror-by-digest-only`) ?? false,
        mirrors,
      }
      const same = out.registries.findIndex((e) => e.prefix === prefix)
      if (same >= 0) out.registries[same] = entry
      else out.registries.push(entry)
    }
  }
  return out
}

export interface LoadRegistriesOptions {
  /** Read /etc and /var/cache under this directory instead of / (tests, offline roots); the home directory is then not read. */
  configRoot?: string
  env?: NodeJS.ProcessEnv
  home?: string
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw err
  }
}

/** Read and merge the files (see the top of this file). Missing files are fine. */
export async function loadRegistriesConf(opts: LoadRegistriesOptions = {}): Promise<RegistriesConf> {
  const env = opts.env ?? process.env
  const root = opts.configRoot ?? '/'
  const home = opts.configRoot !== undefined ? undefined : (opts.home ?? env.HOME ?? homedir())
  let main = join(root, 'etc/containers/registries.conf')
  if (env.CONTAINERS_REGISTRIES_CONF) main = env.CONTAINERS_REGISTRIES_CONF
  else if (home) {
    const user = join(home, '.config/containers/registries.conf')
    if ((await readIfExists(user)) !== undefined) main = user
  }
  let conf = emptyRegistriesConf()
  const text = await readIfExists(main)
  if (text !== undefined) conf = mergeRegistriesConf(conf, text, main)
  const dropDir = join(dirname(main), 'registries.conf.d')
  let drops: string[] = []
  try {
    drops = (await fsp.readdir(dropDir)).filter((f) => f.endsWith('.conf')).sort()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err
  }
  for (const f of drops) {
    const t = await readIfExists(join(dropDir, f))
    if (t !== undefined) conf = mergeRegistriesConf(conf, t, join(dropDir, f))
  }
  for (const cache of [join(root, 'var/cache/containers/short-name-aliases.conf'), ...(home ? [join(home, '.cache/containers/short-name-aliases.conf')] : [])]) {
    const t = await readIfExists(cache)
    if (t === undefined) continue
    const only = mergeRegistriesConf(emptyRegistriesConf(), t, cache)
    conf = { ...conf, aliases: { ...conf.aliases, ...only.aliases }, files: [...conf.files, cache] }
  }
  return conf
}

function prefixMatches(prefix: string, name: string): boolean {
  if (prefix.startsWith('*.')) {
    const host = name.split('/')[0]
    return host.endsWith(prefix.slice(1))
  }
  if (!name.startsWith(prefix)) return false
  const next = name[prefix.length]
  return next === undefined || next === '/' || next === ':' || next === '@'
}

/** The [[registry]] entry for a fully qualified name: the longest matching prefix. */
export function findRegistry(conf: RegistriesConf, ref: ImageReference): RegistryEntry | undefined {
  const name = ref.toString()
  let best: RegistryEntry | undefined
  let bestLen = -1
  for (const e of conf.registries) {
    if (!prefixMatches(e.prefix, name)) continue
    const len = e.prefix.startsWith('*.') ? e.prefix.length - 2 : e.prefix.length + 1000
    if (len > bestLen) {
      best = e
      bestLen = len
    }
  }
  return best
}

export interface PullEndpoint {
  /** The reference to fetch from (the mirror's or the location's name). */
  ref: ImageReference
  insecure: boolean
  mirror: boolean
}

function rewrite(ref: ImageReference, prefix: string, location: string): ImageReference {
  if (prefix.startsWith('*.') || location === prefix) return ref
  return parseReference(location + ref.toString().slice(prefix.length))
}

/**
 * Where to pull `ref` from, in order: its mirrors that apply (pull-from-mirror,
 * mirror-by-digest-only), then its location. A blocked registry is refused.
 */
export function pullEndpoints(conf: RegistriesConf, ref: ImageReference): PullEndpoint[] {
  const e = findRegistry(conf, ref)
  if (!e) return [{ ref, insecure: false, mirror: false }]
  if (e.blocked) {
    throw new UsageError('registry.blocked', `pulling ${ref.toString()} is blocked by the registries configuration (prefix ${e.prefix})`, {
      hint: `see ${conf.files.join(', ') || 'registries.conf'}`,
      data: { reference: ref.toString(), prefix: e.prefix },
    })
  }
  const out: PullEndpoint[] = []
  const byDigest = ref.digest !== undefined
  for (const m of e.mirrors) {
    if (e.mirrorByDigestOnly && !byDigest) continue
    if (m.pullFromMirror === 'digest-only' && !byDigest) continue
    if (m.pullFromMirror === 'tag-only' && byDigest) continue
    out.push({ ref: rewrite(ref, e.prefix, m.location), insecure: m.insecure, mirror: true })
  }
  out.push({ ref: rewrite(ref, e.prefix, e.location || e.prefix), insecure: e.insecure, mirror: false })
  return out
}

/** True when `input` (no transport) names no registry. */
export function isShortName(input: string): boolean {
  try {
    parseReference(input)
    return false
  } catch (err) {
    if ((err as { code?: string }).code === 'reference.unqualified') return true
    throw err
  }
}

export interface ShortNameResolution {
  /** Fully qualified names to try, in order. */
  candidates: ImageReference[]
  /** How they were found. */
  via: 'alias' | 'search'
  mode: ShortNameMode
}

/**
 * Candidates for a short name: its alias when there is one (tag or digest of
 * the input kept), else each unqualified-search registry. In enforcing mode
 * with several candidates and no terminal to ask, refuse, naming them
 * (`interactive` asks through `choose`; without it enforcing is refused too).
 */
export function resolveShortName(conf: RegistriesConf, input: string): ShortNameResolution {
  // Validate the input's grammar through a placeholder registry, keeping tag and digest.
  const probe = parseReference(`placeholder.invalid/${input}`)
  const suffix = (probe.tag !== undefined && input.includes(':') ? `:${probe.tag}` : '') + (probe.digest ? `@${probe.digest}` : '')
  const bare = probe.repository
  const alias = conf.aliases[bare]
  if (alias !== undefined) {
    const target = parseReference(alias)
    const withSuffix = suffix ? parseReference(`${target.registry}/${target.repository}${suffix}`) : target
    return { candidates: [withSuffix], via: 'alias', mode: conf.shortNameMode }
  }
  const candidates = conf.unqualifiedSearchRegistries.map((r) => parseReference(`${r}/${input}`))
  if (candidates.length === 0) {
    throw new UsageError('reference.unqualified', `image reference "${input}" does not name a registry, and no unqualified-search-registries are configured`, {
      hint: `use a fully qualified name (e.g. docker.io/library/${input}), or set an alias in registries.conf${conf.files.length ? ` (read: ${conf.files.join(', ')})` : ''}`,
      data: { input },
    })
  }
  if (conf.shortNameMode === 'enforcing' && candidates.length > 1) {
    throw new UsageError('reference.ambiguous', `short name "${input}" is ambiguous: it could be ${candidates.map((c) => c.toString()).join(', ')}`, {
      hint: 'use a fully qualified name, or add an [aliases] entry for it in registries.conf (short-name-mode is enforcing and there is no terminal to ask)',
      data: { input, candidates: candidates.map((c) => c.toString()) },
    })
  }
  return { candidates, via: 'search', mode: conf.shortNameMode }
}
