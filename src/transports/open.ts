/**
 * One entry point from what the user typed to an ImageSource:
 *   docker://REF or REF          a registry (short names per registries.conf,
 *                                mirrors, insecure/blocked, credentials per auth.json)
 *   oci:DIR[:TAG]                an OCI image layout directory
 *   oci-archive:FILE[:TAG]       an OCI layout in a tar
 *   docker-archive:FILE[:REF]    docker/podman save output (also :@N)
 *   dir:DIR                      skopeo's directory format
 * As in containers/image, the path ends at the first ":" after the transport.
 *
 * `describeInput` is pure (no file read): the transport, the name the image
 * gets in the store, and the default container name. `openImageSource` also
 * reads registries.conf and auth files and, for a registry, returns a source
 * that tries each endpoint (mirrors, then the registry; each short-name
 * candidate in permissive mode) until one resolves.
 */
import { basename, extname, resolve as resolvePath } from 'node:path'
import type { Readable } from 'node:stream'
import { NotFoundError, RegistryError, SysctrError, UsageError, withContext } from '../errors'
import type { Descriptor, Platform, ResolvedImage } from '../oci/types'
import { ImageReference, parseReference } from '../reference/reference'
import { findCredentials } from '../config/auth'
import { tlsOptionsFor } from '../config/certs'
import { isShortName, loadRegistriesConf, pullEndpoints, RegistriesConf, resolveShortName } from '../config/registries'
import type { ImageSource } from './image-source'
import { openDir } from './dir'
import { openDockerArchive } from './docker-archive'
import { openOciArchive } from './oci-archive'
import { openOciLayout } from './oci-layout'
import { normalizePlatform } from './registry/platform'
import { openRegistrySource, RegistrySourceOptions } from './registry/registry-source'
import { RegistryClient } from './registry/client'
import { guardSource } from '../trust/guard'

export type Transport = 'docker' | 'oci' | 'oci-archive' | 'docker-archive' | 'dir'

export interface InputDescription {
  transport: Transport
  /** The store ref: `registry/repo:tag` for a qualified registry name, `oci-archive:/abs/file:tag` otherwise. Undefined for a short name (known after resolution). */
  refName?: string
  /** Container name when none is given: the repository's last component, or the tag's, or the file's base name. */
  defaultName: string
  /** Absolute path (local transports). */
  path?: string
  /** TAG / REF after the path (local transports). */
  tag?: string
  /** Parsed reference (qualified registry names). */
  reference?: ImageReference
  /** The name without transport when it is a short name. */
  shortName?: string
}

const LOCAL: Record<string, Transport> = { 'oci:': 'oci', 'oci-archive:': 'oci-archive', 'docker-archive:': 'docker-archive', 'dir:': 'dir' }

/** Does `input` name a local image (oci:, oci-archive:, docker-archive:, dir:)? Anything else names a registry. */
export function isLocalInput(input: string): boolean {
  return Object.keys(LOCAL).some((prefix) => input.startsWith(prefix))
}

/** A ref name that names an image (`etcd`, `hello-world`), not a version (`latest`, `v1`, `3.4.23`). */
function isNameTag(tag: string): boolean {
  return tag !== 'latest' && /^[A-Za-z]/.test(tag) && !/^v\d/.test(tag)
}

function containerNameFrom(s: string): string {
  const n = s.toLowerCase().replace(/[^a-z0-9_.:@-]+/g, '-').replace(/^[-.]+/, '').replace(/@+$/, '')
  return n || 'image'
}

/** Parse the input's transport and names (pure). */
export function describeInput(input: string, cwd: string = process.cwd()): InputDescription {
  if (typeof input !== 'string' || input === '') throw new UsageError('reference.invalid', 'empty image name')
  for (const [prefix, transport] of Object.entries(LOCAL)) {
    if (!input.startsWith(prefix)) continue
    const rest = input.slice(prefix.length)
    const colon = transport === 'dir' ? -1 : rest.indexOf(':')
    const p = colon >= 0 ? rest.slice(0, colon) : rest
    const tag = colon >= 0 ? rest.slice(colon + 1) : undefined
    if (p === '') throw new UsageError('reference.invalid', `invalid image "${input}": no path after ${prefix}`, { hint: `${prefix}/path/to/image` })
    if (tag === '') throw new UsageError('reference.invalid', `invalid image "${input}": empty tag after the path`)
    const path = resolvePath(cwd, p)
    let defaultName: string
    if (tag !== undefined && (tag.includes('/') || tag.includes(':')) && !tag.startsWith('@')) {
      const t = tag.replace(/@.*$/, '')
      const noTag = t.lastIndexOf(':') > t.lastIndexOf('/') ? t.slice(0, t.lastIndexOf(':')) : t
      defaultName = containerNameFrom(noTag.slice(noTag.lastIndexOf('/') + 1))
    } else if (tag !== undefined && !tag.startsWith('@') && isNameTag(tag)) {
      // `oci:/srv/layout:etcd`: the layout's ref name says which image it is (skopeo and podman name it so).
      defaultName = containerNameFrom(tag.replace(/@.*$/, ''))
    } else {
      defaultName = containerNameFrom(basename(path, extname(path)))
    }
    return { transport, refName: `${prefix}${path}${tag !== undefined ? `:${tag}` : ''}`, defaultName, path, ...(tag !== undefined ? { tag } : {}) }
  }
  const name = input.startsWith('docker://') ? input.slice('docker://'.length) : input
  if (/^(containers-storage|docker-daemon|ostree|sif|tarball):/.test(name)) {
    throw new UsageError('reference.unsupported-transport', `transport ${name.slice(0, name.indexOf(':'))}: is not supported`, {
      hint: 'use docker://, oci:, oci-archive:, docker-archive: or dir:',
    })
  }
  if (isShortName(name)) {
    const probe = parseReference(`placeholder.invalid/${name}`)
    return { transport: 'docker', defaultName: probe.name, shortName: name }
  }
  const reference = parseReference(name)
  return { transport: 'docker', refName: reference.toString(), defaultName: reference.name, reference }
}

export interface OpenImageOptions {
  /** Default true; false also for every registry (as --tls-verify=false). registries.conf `insecure` applies per registry. */
  tlsVerify?: boolean
  authfile?: string
  /** USER:PASSWORD */
  creds?: string
  /** os/arch[/variant] or a Platform. */
  platform?: string | Platform
  env?: NodeJS.ProcessEnv
  /** Root for /etc/containers and /var/cache/containers (tests). */
  configRoot?: string
  /** --cert-dir: TLS CAs / client certificate for every registry, instead of certs.d (src/config/certs.ts). */
  certDir?: string
  /** Home directory for the user files (default $HOME). */
  home?: string
  /** Already loaded registries.conf (skips reading it). */
  registriesConf?: RegistriesConf
  /** Extra registry client options (timeouts, retries; tests). */
  registry?: Omit<RegistrySourceOptions, 'tlsVerify' | 'credentials' | 'platform'>
  /** --signature-policy FILE (default: the containers-policy.json files; see src/trust/policy.ts). */
  signaturePolicy?: string
  /** --registries.d DIR (where signatures are; see src/trust/registries-d.ts). */
  registriesD?: string
  /** Trust messages ("signature verified by …", "no signature policy"). */
  reporter?: { info(message: string): void; warn?(message: string): void }
}

export interface OpenedImage extends InputDescription {
  source: ImageSource
  /** Always set here: for a short name, the candidate that resolved. */
  refName: string
  /** The transport form the image is read from when refName is not it (a docker archive named after its RepoTags). */
  origin?: string
}

export function parsePlatform(p: string | Platform): Platform {
  if (typeof p !== 'string') return normalizePlatform(p)
  const parts = p.split('/')
  if (parts.length < 2 || parts.length > 3 || parts.some((x) => x === '')) {
    throw new UsageError('usage.bad-platform', `bad platform "${p}": expected os/arch[/variant]`, { hint: 'e.g. --platform linux/arm64/v8' })
  }
  return normalizePlatform({ os: parts[0], architecture: parts[1], ...(parts[2] ? { variant: parts[2] } : {}) })
}

async function notFoundIfMissing<T>(path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError('image.not-found', `${path} does not exist`, { data: { path } })
    throw err
  }
}

/**
 * Open the source `input` names (see the top of this file). Its resolve()
 * checks the image against the signature policy (src/trust/guard.ts) before
 * returning: the identity is the user-facing reference, not a mirror's.
 */
export async function openImageSource(input: string, opts: OpenImageOptions = {}): Promise<OpenedImage> {
  const opened = await openUnverified(input, opts)
  const fallback = opened.source instanceof RegistryFallbackSource ? opened.source : undefined
  const source = await guardSource(
    opened.source,
    {
      subject: { transport: opened.transport, display: opened.refName, ...(opened.transport === 'docker' ? { reference: parseReference(opened.refName) } : { path: opened.path, tag: opened.tag }) },
      ...(fallback ? { attachments: () => fallback.endpoint() } : {}),
    },
    { signaturePolicy: opts.signaturePolicy, registriesD: opts.registriesD, configRoot: opts.configRoot, home: opts.home, env: opts.env, reporter: opts.reporter },
  ).catch(async (err) => {
    await opened.source.close()
    throw err
  })
  return { ...opened, source }
}

async function openUnverified(input: string, opts: OpenImageOptions): Promise<OpenedImage> {
  const d = describeInput(input)
  const platform = opts.platform !== undefined ? parsePlatform(opts.platform) : undefined
  const local = { ...(platform ? { platform } : {}) }
  switch (d.transport) {
    case 'oci':
      return { ...d, refName: d.refName!, source: openOciLayout(d.path!, d.tag, local) }
    case 'dir':
      return { ...d, refName: d.refName!, source: openDir(d.path!, local) }
    case 'oci-archive':
      return { ...d, refName: d.refName!, source: await notFoundIfMissing(d.path!, () => openOciArchive(d.path!, d.tag, local)) }
    case 'docker-archive': {
      const source = await notFoundIfMissing(d.path!, () => openDockerArchive(d.path!, d.tag, local))
      // Named after the archive's RepoTags (skopeo, podman and atomic do): the same archive under another file name is the same image.
      const named = await source.imageName().catch(async (err) => {
        await source.close()
        throw err
      })
      let reference: ImageReference | undefined
      try {
        reference = named === undefined ? undefined : parseReference(named)
      } catch {
        reference = undefined // a RepoTags entry that is no valid name: the file's path names it
      }
      if (named === undefined || reference === undefined) return { ...d, refName: d.refName!, source }
      return { ...d, refName: named, defaultName: reference.name, origin: d.refName!, source }
    }
    case 'docker':
      break
  }
  const conf = opts.registriesConf ?? (await loadRegistriesConf({ configRoot: opts.configRoot, env: opts.env, home: opts.home }))
  const candidates = d.reference ? [d.reference] : resolveShortName(conf, d.shortName!).candidates
  const attempts: Attempt[] = []
  for (const cand of candidates) {
    for (const ep of pullEndpoints(conf, cand)) {
      attempts.push({ refName: cand.toString(), endpoint: ep.ref, insecure: ep.insecure, mirror: ep.mirror })
    }
  }
  const source = new RegistryFallbackSource(attempts, {
    tlsVerify: opts.tlsVerify ?? true,
    authfile: opts.authfile,
    creds: opts.creds,
    env: opts.env,
    home: opts.home,
    platform,
    client: opts.registry ?? {},
    ...(opts.certDir !== undefined ? { certDir: opts.certDir } : {}),
    ...(opts.configRoot !== undefined ? { configRoot: opts.configRoot } : {}),
  })
  let refName = candidates[0].toString()
  let reference = candidates[0]
  if (candidates.length > 1) {
    // permissive: find the candidate that exists now, so the store ref names it
    const chosen = await source.select()
    refName = chosen.refName
    reference = parseReference(refName)
  }
  return { ...d, refName, reference, defaultName: reference.name, source }
}

interface Attempt {
  refName: string
  endpoint: ImageReference
  insecure: boolean
  mirror: boolean
}

interface FallbackOptions {
  tlsVerify: boolean
  authfile?: string
  creds?: string
  env?: NodeJS.ProcessEnv
  home?: string
  certDir?: string
  configRoot?: string
  platform?: Platform
  client: Omit<RegistrySourceOptions, 'tlsVerify' | 'credentials' | 'platform'>
}

/**
 * Tries each endpoint in order (mirrors, then the registry; short-name
 * candidates in turn) and keeps the first that resolves; blobs come from that
 * one. Not-found and registry errors move on to the next; content errors
 * (a bad digest) stop, as a mirror serving bad bytes must not be papered over.
 * The error of the last attempt is thrown, with what was tried.
 */
export class RegistryFallbackSource implements ImageSource {
  readonly name: string
  private current?: { attempt: Attempt; source: ImageSource; resolved?: Map<string, ResolvedImage> }
  private readonly clientOptions = new Map<Attempt, RegistrySourceOptions>()

  constructor(
    private readonly attempts: Attempt[],
    private readonly opts: FallbackOptions,
  ) {
    this.name = `docker://${attempts[0].refName}`
  }

  /** Resolve for the default platform, keeping the first endpoint that works. */
  async select(platform?: Platform): Promise<Attempt> {
    await this.resolve(platform)
    return this.current!.attempt
  }

  async resolve(platform?: Platform): Promise<ResolvedImage> {
    const key = JSON.stringify(platform ?? this.opts.platform ?? null)
    const cached = this.current?.resolved?.get(key)
    if (cached) return cached
    if (this.current) return this.resolveWith(this.current, key, platform)
    let last: unknown
    for (const attempt of this.attempts) {
      const current = { attempt, source: await this.open(attempt), resolved: new Map<string, ResolvedImage>() }
      try {
        const r = await this.resolveWith(current, key, platform)
        this.current = current
        return r
      } catch (err) {
        await current.source.close()
        last = err
        if (!(err instanceof NotFoundError || err instanceof RegistryError) || this.attempts.length === 1) throw err
      }
    }
    const tried = this.attempts.map((a) => a.endpoint.toString())
    throw withContext(last, `tried ${tried.join(', ')}`)
  }

  /** The endpoint that resolved and a client for it with the same credentials (signature attachments). */
  endpoint(): { client: RegistryClient; repository: string } | undefined {
    const a = this.current?.attempt
    const o = a && this.clientOptions.get(a)
    return a && o ? { client: new RegistryClient(a.endpoint.registry, o), repository: a.endpoint.repository } : undefined
  }

  async openBlob(desc: Descriptor): Promise<Readable> {
    if (!this.current) await this.resolve()
    return this.current!.source.openBlob(desc)
  }

  async close(): Promise<void> {
    await this.current?.source.close()
  }

  private async resolveWith(c: { attempt: Attempt; source: ImageSource; resolved?: Map<string, ResolvedImage> }, key: string, platform?: Platform): Promise<ResolvedImage> {
    const r = await c.source.resolve(platform)
    c.resolved?.set(key, r)
    return r
  }

  private async open(a: Attempt): Promise<ImageSource> {
    const found = await findCredentials(a.endpoint.registry, a.endpoint.repository, {
      authfile: this.opts.authfile,
      creds: this.opts.creds,
      env: this.opts.env,
      home: this.opts.home,
    })
    const tls = await tlsOptionsFor(a.endpoint.registry, { certDir: this.opts.certDir, configRoot: this.opts.configRoot, home: this.opts.home })
    const options: RegistrySourceOptions = {
      ...this.opts.client,
      ...(tls.ca || tls.cert ? { tls } : {}),
      tlsVerify: this.opts.tlsVerify && !a.insecure,
      ...(found.credentials ? { credentials: found.credentials } : {}),
      ...(this.opts.platform ? { platform: this.opts.platform } : {}),
    }
    this.clientOptions.set(a, options)
    const inner = openRegistrySource(a.endpoint, options)
    return explainUnauthorized(inner, found.from, found.tried)
  }
}

/** Wrap a source so a 401 says which credentials were used (never the credentials themselves). */
function explainUnauthorized(inner: ImageSource, from: string | undefined, tried: string[]): ImageSource {
  const explain = (err: unknown): never => {
    if (err instanceof SysctrError && err.code === 'registry.unauthorized') {
      const used = from ? `credentials from ${from}` : tried.length ? `no credentials for this registry in ${tried.join(', ')}` : 'no credential file found'
      err.message = `${err.message} (${used})`
      err.hint = `${err.hint ?? 'check the credentials'}; give them with --authfile FILE or --creds USER:PASSWORD`
      if (err.data) (err.data as Record<string, unknown>).credentialSource = from ?? null
    }
    throw err
  }
  return {
    name: inner.name,
    resolve: (p) => inner.resolve(p).catch(explain),
    openBlob: (d) => inner.openBlob(d).catch(explain),
    close: () => inner.close(),
  }
}
