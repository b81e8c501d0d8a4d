/**
 * containers-policy.json(5): which images may be pulled, and by whose
 * signature.
 *
 * Which file: `--signature-policy FILE` when given, else
 * `$HOME/.config/containers/policy.json` when it exists, else
 * `/etc/containers/policy.json` (under `configRoot` for tests and offline
 * roots; the home directory is then not read). When none exists, the caller
 * decides (sysctr accepts and says so once; podman/skopeo refuse).
 *
 * Parsing is strict, as containers/image's is: unknown keys, unknown
 * requirement types, empty requirement lists, a missing `default`, and
 * options sysctr cannot honour (Fulcio, Rekor, X.509) are errors naming the
 * file, never silently accepted.
 *
 * Scope lookup (`requirementsFor`), most specific first, as containers/image:
 *   docker:  host[:port]/repo:tag (or @digest), host/repo, each parent
 *            namespace, host[:port], `*.domain` wildcards, then `""`
 *            (the transport's catch-all), then `default`.
 *   local:   /abs/path:tag, /abs/path, each parent directory, `""`, `default`.
 */
import { promises as fsp } from 'node:fs'
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path'
import { ContentError, NotFoundError, UsageError } from '../errors'
import type { ImageReference } from '../reference/reference'
import { locateContainersFile, systemContainersPath } from '../config/containers-files'

export type SignedIdentity =
  | { type: 'matchRepoDigestOrExact' }
  | { type: 'matchExact' }
  | { type: 'matchRepository' }
  | { type: 'exactReference'; dockerReference: string }
  | { type: 'exactRepository'; dockerRepository: string }
  | { type: 'remapIdentity'; prefix: string; signedPrefix: string }

export type Requirement =
  | { type: 'insecureAcceptAnything' }
  | { type: 'reject' }
  | {
      type: 'signedBy'
      keyType: 'GPGKeys'
      /** Absolute key files (keyPath or keyPaths). */
      keyPaths?: string[]
      /** keyData, decoded. */
      keyData?: Buffer
      signedIdentity: SignedIdentity
    }
  | {
      type: 'sigstoreSigned'
      keyPaths?: string[]
      keyData?: Buffer
      signedIdentity: SignedIdentity
    }

export type RequirementType = Requirement['type']

export interface Policy {
  /** The file it came from; undefined for a policy built in code. */
  file?: string
  default: Requirement[]
  /** transport -> scope -> requirements. */
  transports: Record<string, Record<string, Requirement[]>>
}

export type TrustTransport = 'docker' | 'oci' | 'oci-archive' | 'docker-archive' | 'dir'

/** What is being pulled, as the policy sees it. */
export interface PolicySubject {
  transport: TrustTransport
  /** docker: the user-facing reference (not a mirror's). */
  reference?: ImageReference
  /** Local transports: absolute path. */
  path?: string
  /** Local transports: the tag/ref after the path. */
  tag?: string
}

export interface MatchedRequirements {
  /** `default`, or `TRANSPORT:SCOPE` (SCOPE `""` for the transport's catch-all). */
  scope: string
  requirements: Requirement[]
}

export interface LocatePolicyOptions {
  /** --signature-policy FILE */
  signaturePolicy?: string
  /** Read /etc under this directory instead of / (tests, offline roots); the home directory is then not read. */
  configRoot?: string
  home?: string
  env?: NodeJS.ProcessEnv
}

/** The policy file that applies (see the top of this file); undefined when none exists. */
export async function locatePolicy(opts: LocatePolicyOptions = {}): Promise<string | undefined> {
  if (opts.signaturePolicy !== undefined) return resolvePath(opts.signaturePolicy)
  return locateContainersFile('policy.json', 'file', opts)
}

/** The path `trust add` writes by default (the system file). */
export function systemPolicyPath(configRoot?: string): string {
  return systemContainersPath('policy.json', configRoot)
}

/**
 * Read and parse the policy that applies. Undefined when no file exists
 * (and no --signature-policy was given: a named file that is missing is an
 * error).
 */
export async function loadPolicy(opts: LocatePolicyOptions = {}): Promise<Policy | undefined> {
  const file = await locatePolicy(opts)
  if (file === undefined) return undefined
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError('trust.policy-not-found', `signature policy ${file} does not exist`, { data: { file } })
    }
    throw err
  }
  return parsePolicy(text, file)
}

/** Parse policy.json text; `file` names it in errors and anchors relative key paths. */
export function parsePolicy(text: string, file = 'policy.json'): Policy {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw bad(file, `not valid JSON (${(err as Error).message})`)
  }
  const top = object(json, file, 'the top level')
  onlyKeys(top, ['default', 'transports'], file, 'the top level')
  if (top.default === undefined) throw bad(file, 'no "default" requirement list (containers-policy.json(5) requires one)')
  const base = dirname(file)
  const policy: Policy = { file, default: requirementList(top.default, file, 'default', base), transports: {} }
  if (top.transports !== undefined) {
    const transports = object(top.transports, file, '"transports"')
    for (const [transport, scopesJson] of Object.entries(transports)) {
      const scopes = object(scopesJson, file, `transport "${transport}"`)
      const out: Record<string, Requirement[]> = {}
      for (const [scope, list] of Object.entries(scopes)) {
        validateScope(transport, scope, file)
        out[scope] = requirementList(list, file, `${transport}:${scope || '""'}`, base)
      }
      policy.transports[transport] = out
    }
  }
  return policy
}

function bad(file: string, what: string): ContentError {
  return new ContentError('trust.bad-policy', `signature policy ${file}: ${what}`, { data: { file } })
}

function object(v: unknown, file: string, where: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(file, `${where} must be a JSON object`)
  return v as Record<string, unknown>
}

function onlyKeys(o: Record<string, unknown>, allowed: string[], file: string, where: string): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw bad(file, `${where}: unknown key "${k}"`)
  }
}

function str(v: unknown, file: string, where: string): string {
  if (typeof v !== 'string' || v === '') throw bad(file, `${where} must be a non-empty string`)
  return v
}

function validateScope(transport: string, scope: string, file: string): void {
  if (scope === '') return
  if (transport === 'docker') {
    if (scope.includes('://')) throw bad(file, `docker scope "${scope}" must not contain a scheme`)
    if (scope.startsWith('*.')) return
    if (/[A-Z]/.test(scope.split('/').slice(1).join('/'))) throw bad(file, `docker scope "${scope}": repository names are lower case`)
    return
  }
  if (['oci', 'oci-archive', 'docker-archive', 'dir'].includes(transport) && !scope.startsWith('/')) {
    throw bad(file, `${transport} scope "${scope}" must be an absolute path`)
  }
}

function requirementList(v: unknown, file: string, scope: string, base: string): Requirement[] {
  if (!Array.isArray(v)) throw bad(file, `scope ${scope} must be a list of requirements`)
  if (v.length === 0) throw bad(file, `scope ${scope} has no requirements (use [{"type": "reject"}] or [{"type": "insecureAcceptAnything"}])`)
  return v.map((r, i) => requirement(r, file, `scope ${scope}, requirement ${i + 1}`, base))
}

function keyFiles(o: Record<string, unknown>, file: string, where: string, base: string): { keyPaths?: string[]; keyData?: Buffer } {
  const given = ['keyPath', 'keyPaths', 'keyData'].filter((k) => o[k] !== undefined)
  if (given.length !== 1) throw bad(file, `${where}: exactly one of keyPath, keyPaths, keyData is required${given.length ? ` (found ${given.join(', ')})` : ''}`)
  const abs = (p: string) => (isAbsolute(p) ? p : resolvePath(base, p))
  if (o.keyPath !== undefined) return { keyPaths: [abs(str(o.keyPath, file, `${where}: keyPath`))] }
  if (o.keyPaths !== undefined) {
    if (!Array.isArray(o.keyPaths) || o.keyPaths.length === 0) throw bad(file, `${where}: keyPaths must be a non-empty list of files`)
    return { keyPaths: o.keyPaths.map((p, i) => abs(str(p, file, `${where}: keyPaths[${i}]`))) }
  }
  const data = str(o.keyData, file, `${where}: keyData`)
  if (!/^[A-Za-z0-9+/=\s]+$/.test(data)) throw bad(file, `${where}: keyData must be base64`)
  return { keyData: Buffer.from(data, 'base64') }
}

function requirement(v: unknown, file: string, where: string, base: string): Requirement {
  const o = object(v, file, where)
  const type = o.type
  switch (type) {
    case 'insecureAcceptAnything':
    case 'reject':
      onlyKeys(o, ['type'], file, `${where} (${type})`)
      return { type }
    case 'signedBy': {
      onlyKeys(o, ['type', 'keyType', 'keyPath', 'keyPaths', 'keyData', 'signedIdentity'], file, `${where} (signedBy)`)
      if (o.keyType !== 'GPGKeys') {
        if (o.keyType === undefined) throw bad(file, `${where} (signedBy): keyType is required ("GPGKeys")`)
        throw bad(file, `${where} (signedBy): keyType ${JSON.stringify(o.keyType)} is not supported (only "GPGKeys")`)
      }
      return { type, keyType: 'GPGKeys', ...keyFiles(o, file, `${where} (signedBy)`, base), signedIdentity: signedIdentity(o.signedIdentity, file, where) }
    }
    case 'sigstoreSigned': {
      for (const k of ['fulcio', 'rekorPublicKeyPath', 'rekorPublicKeyPaths', 'rekorPublicKeyData', 'rekorPublicKeyDatas', 'pki']) {
        if (o[k] !== undefined) {
          throw bad(file, `${where} (sigstoreSigned): "${k}" (Fulcio/Rekor/PKI verification) is not supported by sysctr; use a public key (keyPath or keyData)`)
        }
      }
      onlyKeys(o, ['type', 'keyPath', 'keyPaths', 'keyData', 'keyDatas', 'signedIdentity'], file, `${where} (sigstoreSigned)`)
      if (o.keyDatas !== undefined) throw bad(file, `${where} (sigstoreSigned): keyDatas is not supported; use keyData or keyPaths`)
      return { type, ...keyFiles(o, file, `${where} (sigstoreSigned)`, base), signedIdentity: signedIdentity(o.signedIdentity, file, where) }
    }
    default:
      throw bad(file, `${where}: unknown requirement type ${JSON.stringify(type)} (known: insecureAcceptAnything, reject, signedBy, sigstoreSigned)`)
  }
}

function signedIdentity(v: unknown, file: string, where: string): SignedIdentity {
  if (v === undefined) return { type: 'matchRepoDigestOrExact' }
  const o = object(v, file, `${where}: signedIdentity`)
  const w = `${where}: signedIdentity ${JSON.stringify(o.type)}`
  switch (o.type) {
    case 'matchRepoDigestOrExact':
    case 'matchExact':
    case 'matchRepository':
      onlyKeys(o, ['type'], file, w)
      return { type: o.type }
    case 'exactReference':
      onlyKeys(o, ['type', 'dockerReference'], file, w)
      return { type: o.type, dockerReference: str(o.dockerReference, file, `${w}: dockerReference`) }
    case 'exactRepository':
      onlyKeys(o, ['type', 'dockerRepository'], file, w)
      return { type: o.type, dockerRepository: str(o.dockerRepository, file, `${w}: dockerRepository`) }
    case 'remapIdentity':
      onlyKeys(o, ['type', 'prefix', 'signedPrefix'], file, w)
      return { type: o.type, prefix: str(o.prefix, file, `${w}: prefix`), signedPrefix: str(o.signedPrefix, file, `${w}: signedPrefix`) }
    default:
      throw bad(file, `${where}: unknown signedIdentity type ${JSON.stringify(o.type)}`)
  }
}

/** docker scopes for a reference, most specific first (see the top of this file). */
export function dockerScopes(ref: ImageReference): string[] {
  const name = `${ref.registry}/${ref.repository}`
  const out: string[] = []
  if (ref.digest) out.push(`${name}@${ref.digest}`)
  if (ref.tag !== undefined) out.push(`${name}:${ref.tag}`)
  let n = name
  for (;;) {
    out.push(n)
    const slash = n.lastIndexOf('/')
    if (slash < 0) break
    n = n.slice(0, slash)
  }
  let host = ref.registry.replace(/:\d+$/, '')
  if (!/^[0-9.]+$/.test(host) && !host.startsWith('[')) {
    for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.')) {
      host = host.slice(dot + 1)
      out.push(`*.${host}`)
    }
  }
  return out
}

/** Local-transport scopes: path:tag, path, each parent directory. */
export function pathScopes(path: string, tag?: string): string[] {
  const out: string[] = []
  if (tag !== undefined) out.push(`${path}:${tag}`)
  let p = path
  for (;;) {
    out.push(p)
    const parent = dirname(p)
    if (parent === p) break
    p = parent
  }
  return out
}

/** The requirement list that applies to `subject` and the scope it came from. */
export function requirementsFor(policy: Policy, subject: PolicySubject): MatchedRequirements {
  const scopes = policy.transports[subject.transport]
  if (scopes) {
    const candidates =
      subject.transport === 'docker' ? (subject.reference ? dockerScopes(subject.reference) : []) : subject.path ? pathScopes(subject.path, subject.tag) : []
    for (const s of [...candidates, '']) {
      const reqs = scopes[s]
      if (reqs) return { scope: `${subject.transport}:${s === '' ? '""' : s}`, requirements: reqs }
    }
  }
  return { scope: 'default', requirements: policy.default }
}

/** Throw UsageError when a requirement type is not one of the four. */
export function parseRequirementType(t: string): RequirementType {
  if (t === 'insecureAcceptAnything' || t === 'reject' || t === 'signedBy' || t === 'sigstoreSigned') return t
  throw new UsageError('usage.bad-trust-type', `unknown trust type "${t}"`, { hint: 'one of signedBy, sigstoreSigned, insecureAcceptAnything, reject' })
}
