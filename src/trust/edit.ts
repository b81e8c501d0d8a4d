/**
 * `trust show` and `trust add` (as `podman image trust show|set`): read the
 * policy with its signature stores, and set one scope's requirement.
 *
 * add: the policy file is edited as JSON (other scopes and keys kept as
 * they are), validated by the same parser that enforces it, and replaced
 * crash-safely (temp file, fsync, rename); created when absent, indented as
 * the existing file is (4 spaces, as containers-common's, by default).
 * `--lookaside URL` writes REGISTRIES_D/sysctr-SCOPE.yaml, refusing a scope
 * another file already sets.
 */
import { promises as fsp } from 'node:fs'
import { dirname, join, resolve as resolvePath } from 'node:path'
import { ConflictError, UsageError } from '../errors'
import { writeFileAtomic } from '../util/atomic-file'
import { loadPolicy, locatePolicy, parsePolicy, parseRequirementType, Requirement, systemPolicyPath } from './policy'
import { loadRegistriesD, locateRegistriesD, mergeRegistriesDFile, RegistriesD } from './registries-d'
import { systemContainersPath } from '../config/containers-files'

export interface TrustFiles {
  signaturePolicy?: string
  registriesD?: string
  configRoot?: string
  home?: string
  env?: NodeJS.ProcessEnv
}

export interface TrustScopeInfo {
  /** `default`, or the transport's scope (`""` for its catch-all). */
  transport: string
  scope: string
  type: string
  keys: string[]
  signedIdentity?: string
  lookaside?: string
  useSigstoreAttachments?: boolean
}

export interface TrustShow {
  policy: string | null
  registriesD: string | null
  scopes: TrustScopeInfo[]
}

function keysOf(r: Requirement): string[] {
  if (r.type !== 'signedBy' && r.type !== 'sigstoreSigned') return []
  return r.keyData ? ['keyData'] : (r.keyPaths ?? [])
}

function storageFor(conf: RegistriesD, scope: string | undefined): { lookaside?: string; useSigstoreAttachments?: boolean } {
  const s = scope === undefined ? conf.defaultDocker : conf.docker[scope]
  return { ...(s?.lookaside ? { lookaside: s.lookaside } : {}), ...(s?.useSigstoreAttachments !== undefined ? { useSigstoreAttachments: s.useSigstoreAttachments } : {}) }
}

/** The policy in force, one row per scope and requirement. */
export async function showTrust(files: TrustFiles = {}): Promise<TrustShow> {
  const policy = await loadPolicy(files)
  const regs = await loadRegistriesD(files)
  const out: TrustShow = { policy: policy?.file ?? null, registriesD: regs.dir ?? null, scopes: [] }
  if (!policy) return out
  const row = (transport: string, scope: string, r: Requirement, st: { lookaside?: string; useSigstoreAttachments?: boolean }): TrustScopeInfo => ({
    transport,
    scope,
    type: r.type,
    keys: keysOf(r),
    ...('signedIdentity' in r ? { signedIdentity: r.signedIdentity.type } : {}),
    ...st,
  })
  for (const r of policy.default) out.scopes.push(row('default', 'default', r, storageFor(regs, undefined)))
  for (const [transport, scopes] of Object.entries(policy.transports)) {
    for (const [scope, reqs] of Object.entries(scopes)) {
      const st = transport === 'docker' ? storageFor(regs, scope) : {}
      for (const r of reqs) out.scopes.push(row(transport, scope === '' ? '""' : scope, r, st))
    }
  }
  return out
}

export interface AddTrustOptions extends TrustFiles {
  type: string
  pubkeys?: string[]
  lookaside?: string
}

export interface AddTrustResult {
  policy: string
  scope: string
  requirement: Record<string, unknown>
  created: boolean
  registriesDFile?: string
}

function indentOf(text: string): number {
  const m = /\n( +)\S/.exec(text)
  return m ? m[1].length : 4
}

/** Set SCOPE (`default` or a docker scope) to one requirement of `type`. */
export async function addTrust(scope: string, opts: AddTrustOptions): Promise<AddTrustResult> {
  const type = parseRequirementType(opts.type)
  if (!scope) throw new UsageError('usage.bad-scope', 'no scope given', { hint: 'a registry scope like quay.io/coreos, or "default"' })
  if (scope !== 'default' && (/\s/.test(scope) || scope.includes('://'))) throw new UsageError('usage.bad-scope', `bad scope "${scope}": give host[:port][/namespace[/repo]] without a scheme`)
  const pubkeys = (opts.pubkeys ?? []).map((p) => resolvePath(p))
  const req: Record<string, unknown> = { type }
  if (type === 'signedBy') {
    if (pubkeys.length === 0) throw new UsageError('usage.missing-pubkeys', 'signedBy needs --pubkeys FILE (a GPG public key or keyring)')
    req.keyType = 'GPGKeys'
    if (pubkeys.length === 1) req.keyPath = pubkeys[0]
    else req.keyPaths = pubkeys
  } else if (type === 'sigstoreSigned') {
    if (pubkeys.length !== 1) throw new UsageError('usage.missing-pubkeys', 'sigstoreSigned needs exactly one --pubkeys FILE (a PEM public key)')
    req.keyPath = pubkeys[0]
  } else if (pubkeys.length) {
    throw new UsageError('usage.unexpected-pubkeys', `--pubkeys is not used with ${type}`)
  }
  const file = opts.signaturePolicy ? resolvePath(opts.signaturePolicy) : ((await locatePolicy(opts)) ?? systemPolicyPath(opts.configRoot))
  let text: string | undefined
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (text !== undefined) parsePolicy(text, file) // refuse to edit a policy that does not parse
  const json: Record<string, unknown> = text !== undefined ? JSON.parse(text) : { default: [{ type: 'insecureAcceptAnything' }] }
  if (scope === 'default') json.default = [req]
  else {
    const transports = (json.transports ??= {}) as Record<string, Record<string, unknown>>
    const docker = (transports.docker ??= {})
    docker[scope] = [req]
  }
  const out = JSON.stringify(json, null, text !== undefined ? indentOf(text) : 4) + '\n'
  parsePolicy(out, file)
  let registriesDFile: string | undefined
  if (opts.lookaside !== undefined) {
    registriesDFile = await writeLookaside(scope, opts.lookaside, opts)
  }
  await fsp.mkdir(dirname(file), { recursive: true })
  await writeFileAtomic(file, out)
  return { policy: file, scope, requirement: req, created: text === undefined, ...(registriesDFile ? { registriesDFile } : {}) }
}

async function writeLookaside(scope: string, url: string, opts: TrustFiles): Promise<string> {
  const dir = opts.registriesD ? resolvePath(opts.registriesD) : ((await locateRegistriesD(opts)) ?? systemContainersPath('registries.d', opts.configRoot))
  const name = `sysctr-${scope.replace(/[^A-Za-z0-9._-]+/g, '-')}.yaml`
  const file = join(dir, name)
  const doc = scope === 'default' ? { 'default-docker': { lookaside: url } } : { docker: { [scope]: { lookaside: url } } }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const text = (require('yaml') as typeof import('yaml')).stringify(doc)
  // validate, and refuse a scope another file already sets
  const probe: RegistriesD = { docker: {}, sources: {} }
  mergeRegistriesDFile(probe, text, file)
  const current = await loadRegistriesD({ ...opts, registriesD: dir })
  const key = scope === 'default' ? 'default-docker' : scope
  const setBy = current.sources[key]
  if (setBy && setBy !== file) throw new ConflictError('trust.scope-in-other-file', `${key} is already set in ${setBy}`, { hint: `edit ${setBy} instead` })
  await fsp.mkdir(dir, { recursive: true })
  await writeFileAtomic(file, text)
  return file
}
