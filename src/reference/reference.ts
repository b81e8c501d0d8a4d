/**
 * Image references, parsed once into an immutable value.
 *
 * Grammar (distribution/reference):
 *   reference  := name [ ":" tag ] [ "@" digest ]
 *   name       := [ registry "/" ] path-component ( "/" path-component )*
 *   registry   := host [ ":" port ]       host: DNS name, IPv4, or "[" IPv6 "]"
 *   path-component := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag        := [\w][\w.-]{0,127}
 *   digest     := ( "sha256:" 64 hex | "sha512:" 128 hex )     (lower-case hex; other algorithms refused)
 * The first component is a registry when it contains "." or ":", is
 * "localhost", or has upper case in it (it cannot be a repository component then).
 *
 * Installs need a fully qualified name: a name without a registry is refused
 * with `reference.unqualified` unless `shortNames: 'docker-hub'` asks for the
 * Docker Hub normalisation (docker.io, and library/ for a single component).
 * Neither tag nor digest means tag "latest".
 */
import { UsageError } from '../errors'
import type { Digest } from '../oci/types'
import { digestProblem } from './digest'

export const DOCKER_HUB = 'docker.io'

export interface ImageReference {
  /** host[:port], e.g. `127.0.0.1:5000`, `quay.io`, `docker.io`. */
  readonly registry: string
  /** Path in the registry, e.g. `library/busybox`, `demo/etcd`. */
  readonly repository: string
  /** Undefined only when the reference has a digest and no tag. */
  readonly tag?: string
  readonly digest?: Digest
  /** Last path component of the repository (`etcd` for `demo/etcd`). */
  readonly name: string
  /** Short form as `docker` prints it: `busybox:latest` for `docker.io/library/busybox:latest`. */
  readonly familiar: string
  /** Canonical `registry/repository[:tag][@digest]`. */
  toString(): string
  /** The same reference pinned to `digest` (the tag is kept for display). */
  withDigest(digest: Digest): ImageReference
}

export type ShortNameMode = 'reject' | 'docker-hub'

export interface ParseReferenceOptions {
  /** What to do with a name that has no registry. Default 'reject'. */
  shortNames?: ShortNameMode
}

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/
const TAG = /^[\w][\w.-]{0,127}$/
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/
const PORT = /^[0-9]{1,5}$/
const NAME_MAX = 255

class Reference implements ImageReference {
  readonly name: string
  constructor(
    readonly registry: string,
    readonly repository: string,
    readonly tag: string | undefined,
    readonly digest: Digest | undefined,
  ) {
    this.name = repository.slice(repository.lastIndexOf('/') + 1)
    Object.freeze(this)
  }

  get familiar(): string {
    let path = `${this.registry}/${this.repository}`
    if (this.registry === DOCKER_HUB) {
      path = this.repository.startsWith('library/') && this.repository.split('/').length === 2 ? this.repository.slice(8) : this.repository
    }
    return path + suffix(this.tag, this.digest)
  }

  toString(): string {
    return `${this.registry}/${this.repository}${suffix(this.tag, this.digest)}`
  }

  withDigest(digest: Digest): ImageReference {
    const problem = digestProblem(digest)
    if (problem) throw invalid(digest, problem)
    return new Reference(this.registry, this.repository, this.tag, digest)
  }
}

function suffix(tag: string | undefined, digest: Digest | undefined): string {
  return (tag !== undefined ? `:${tag}` : '') + (digest !== undefined ? `@${digest}` : '')
}

function invalid(input: string, what: string, hint?: string): UsageError {
  return new UsageError('reference.invalid', `invalid image reference "${input}": ${what}`, { hint, data: { input } })
}

function registryProblem(registry: string): string | undefined {
  let host = registry
  let port: string | undefined
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']')
    host = registry.slice(0, close + 1)
    const rest = registry.slice(close + 1)
    if (rest !== '') {
      if (!rest.startsWith(':')) return `bad registry "${registry}"`
      port = rest.slice(1)
    }
    if (!IPV6.test(host)) return `bad IPv6 address in registry "${registry}"`
  } else {
    const colon = registry.indexOf(':')
    if (colon >= 0) {
      host = registry.slice(0, colon)
      port = registry.slice(colon + 1)
    }
    if (host === '' || !host.split('.').every((c) => DOMAIN_COMPONENT.test(c))) return `bad registry host "${host}"`
  }
  if (port !== undefined && (!PORT.test(port) || Number(port) > 65535 || Number(port) === 0)) return `bad registry port "${port}"`
  return undefined
}

function looksLikeRegistry(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()
}

/**
 * Parse an image reference. Throws UsageError `reference.invalid` naming the
 * input and what is wrong, or `reference.unqualified` for a name without a
 * registry (unless `shortNames: 'docker-hub'`).
 */
export function parseReference(input: string, opts: ParseReferenceOptions = {}): ImageReference {
  if (typeof input !== 'string' || input === '') throw invalid(String(input ?? ''), 'empty')
  if (input.includes('://')) {
    throw invalid(input, 'a transport prefix is not part of an image reference', 'give the image as registry/repository[:tag][@digest]')
  }
  if (/\s/.test(input)) throw invalid(input, 'contains white space')

  let rest = input
  let digest: Digest | undefined
  const at = rest.indexOf('@')
  if (at >= 0) {
    const d = rest.slice(at + 1)
    const problem = digestProblem(d)
    if (problem) throw invalid(input, problem)
    digest = d as Digest
    rest = rest.slice(0, at)
  }

  let tag: string | undefined
  const colon = rest.lastIndexOf(':')
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1)
    rest = rest.slice(0, colon)
    if (!TAG.test(tag)) {
      throw invalid(input, tag === '' ? 'empty tag' : `bad tag "${tag}" (letters, digits, "_", "." and "-", at most 128, not starting with "." or "-")`)
    }
  }

  if (rest === '') throw invalid(input, 'no repository name')
  if (rest.length > NAME_MAX) throw invalid(input, `name longer than ${NAME_MAX} characters`)

  let registry: string | undefined
  let repository = rest
  const slash = rest.indexOf('/')
  if (slash >= 0 && looksLikeRegistry(rest.slice(0, slash))) {
    registry = rest.slice(0, slash)
    repository = rest.slice(slash + 1)
    const problem = registryProblem(registry)
    if (problem) throw invalid(input, problem)
  }

  if (repository === '') throw invalid(input, 'no repository name after the registry')
  for (const component of repository.split('/')) {
    if (component === '') throw invalid(input, 'empty path component in the repository name')
    if (!PATH_COMPONENT.test(component)) {
      if (component !== component.toLowerCase()) throw invalid(input, `repository name must be lower case ("${component}")`)
      throw invalid(input, `bad repository path component "${component}" (lower-case letters and digits, separated by ".", "_", "__" or "-")`)
    }
  }

  if (registry === undefined) {
    if ((opts.shortNames ?? 'reject') === 'reject') {
      throw new UsageError('reference.unqualified', `image reference "${input}" does not name a registry`, {
        hint: `use a fully qualified name, e.g. docker.io/${repository.includes('/') ? '' : 'library/'}${input} or 127.0.0.1:5000/${input}`,
        data: { input },
      })
    }
    registry = DOCKER_HUB
  }
  if (registry === 'index.docker.io') registry = DOCKER_HUB
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`

  if (tag === undefined && digest === undefined) tag = 'latest'
  return new Reference(registry, repository, tag, digest)
}
