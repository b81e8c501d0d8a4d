/**
 * Decide whether an image may be used, from its policy requirements and its
 * signatures. Every requirement of the matched scope must be satisfied; a
 * signature requirement is satisfied by one signature that verifies, is for
 * this image's manifest digest (the top-level one the reference named, or
 * the platform manifest picked from it) and names an identity the
 * requirement's signedIdentity accepts.
 *
 *   signedBy (GPG "simple signing"): an OpenPGP signed message (not
 *     detached) whose literal data is
 *     {"critical": {"type": "atomic container signature",
 *       "image": {"docker-manifest-digest": D}, "identity": {"docker-reference": R}},
 *      "optional": {…}}; verified with openpgp against the keys of keyPath(s)/keyData.
 *   sigstoreSigned: payload {"critical": {"type": "cosign container image signature", …}}
 *     and a signature over the payload bytes, verified with node:crypto
 *     against the PEM public key (ECDSA/SHA-256, Ed25519, RSA/SHA-256).
 *     (@sigstore/verify would need Node 22; Fulcio/Rekor are refused by the policy parser.)
 *
 * A rejection is a TrustError (exit 9) naming the scope, the policy file, the
 * requirement and what was found.
 */
import { createPublicKey, verify as cryptoVerify, KeyObject } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { TrustError } from '../errors'
import type { Digest, ResolvedImage } from '../oci/types'
import { ImageReference, parseReference } from '../reference/reference'
import type { Policy, PolicySubject, Requirement, SignedIdentity } from './policy'
import { requirementsFor } from './policy'
import type { FoundSignature, SignatureSource } from './signatures'

export const SIMPLE_SIGNING_TYPE = 'atomic container signature'
export const COSIGN_TYPE = 'cosign container image signature'

export interface TrustSubject extends PolicySubject {
  /** What the user asked for, for messages. */
  display: string
}

export interface TrustDecision {
  scope: string
  /** Requirement types that were applied. */
  requirements: string[]
  /** What verified, e.g. `GPG key FPR (keyPath /etc/pki/…)`; empty when nothing needed a signature. */
  verifiedBy: string[]
}

interface Payload {
  digest: string
  identity: string
}

/** The parts of a payload both formats share; undefined with a reason when malformed. */
function parsePayload(bytes: Buffer | Uint8Array, type: string): Payload | string {
  let j: unknown
  try {
    j = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    return 'payload is not JSON'
  }
  const o = j as { critical?: { type?: unknown; image?: { 'docker-manifest-digest'?: unknown }; identity?: { 'docker-reference'?: unknown } } }
  const c = o?.critical
  if (!c || typeof c !== 'object') return 'payload has no "critical" section'
  if (c.type !== type) return `payload type is ${JSON.stringify(c.type)}, expected "${type}"`
  const digest = c.image?.['docker-manifest-digest']
  const identity = c.identity?.['docker-reference']
  if (typeof digest !== 'string') return 'payload has no docker-manifest-digest'
  if (typeof identity !== 'string') return 'payload has no docker-reference'
  return { digest, identity }
}

function canonical(r: ImageReference): string {
  const name = `${r.registry}/${r.repository}`
  return r.digest ? `${name}@${r.digest}` : `${name}:${r.tag ?? 'latest'}`
}

function nameOf(r: ImageReference): string {
  return `${r.registry}/${r.repository}`
}

function parseRef(s: string): ImageReference | undefined {
  try {
    return parseReference(s, { shortNames: 'docker-hub' })
  } catch {
    return undefined
  }
}

/** undefined when `signed` is acceptable for `image` under `si`, else why not. */
export function identityProblem(si: SignedIdentity, image: ImageReference | undefined, signedText: string): string | undefined {
  const signed = parseRef(signedText)
  if (!signed) return `signed identity "${signedText}" is not a valid docker reference`
  const mismatch = (want: string) => `signed identity ${signedText} does not match ${want} (signedIdentity ${si.type})`
  const needImage = (): ImageReference | string => image ?? 'the image has no docker reference (local transport): use signedIdentity exactReference or exactRepository'
  const exactOrRepoDigest = (img: ImageReference): string | undefined => {
    if (img.digest) return nameOf(img) === nameOf(signed) ? undefined : mismatch(nameOf(img))
    return canonical(img) === canonical(signed) ? undefined : mismatch(canonical(img))
  }
  switch (si.type) {
    case 'matchRepoDigestOrExact': {
      const img = needImage()
      return typeof img === 'string' ? img : exactOrRepoDigest(img)
    }
    case 'matchExact': {
      const img = needImage()
      if (typeof img === 'string') return img
      return canonical(img) === canonical(signed) ? undefined : mismatch(canonical(img))
    }
    case 'matchRepository': {
      const img = needImage()
      if (typeof img === 'string') return img
      return nameOf(img) === nameOf(signed) ? undefined : mismatch(nameOf(img))
    }
    case 'exactReference': {
      const want = parseRef(si.dockerReference)
      if (!want) return `policy dockerReference "${si.dockerReference}" is not a valid reference`
      return canonical(want) === canonical(signed) ? undefined : mismatch(canonical(want))
    }
    case 'exactRepository': {
      const want = parseRef(si.dockerRepository)
      if (!want) return `policy dockerRepository "${si.dockerRepository}" is not a valid repository`
      return nameOf(want) === nameOf(signed) ? undefined : mismatch(nameOf(want))
    }
    case 'remapIdentity': {
      const img = needImage()
      if (typeof img === 'string') return img
      const name = nameOf(img)
      if (name !== si.prefix && !name.startsWith(si.prefix.endsWith('/') ? si.prefix : `${si.prefix}/`)) return exactOrRepoDigest(img)
      const remapped = parseRef(si.signedPrefix + name.slice(si.prefix.length) + (img.tag !== undefined ? `:${img.tag}` : '') + (img.digest ? `@${img.digest}` : ''))
      if (!remapped) return `remapping ${name} with prefix ${si.prefix} -> ${si.signedPrefix} gives an invalid reference`
      return exactOrRepoDigest(remapped)
    }
  }
}

type Openpgp = typeof import('openpgp')
let loaded: Openpgp | undefined
function openpgp(): Openpgp {
  // loaded lazily: only a signedBy requirement pays for it
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('openpgp') as Openpgp
  return loaded
}

async function keyBytes(req: { keyPaths?: string[]; keyData?: Buffer }): Promise<Array<{ bytes: Buffer; from: string }>> {
  if (req.keyData) return [{ bytes: req.keyData, from: 'keyData' }]
  const out: Array<{ bytes: Buffer; from: string }> = []
  for (const p of req.keyPaths ?? []) {
    try {
      out.push({ bytes: await fsp.readFile(p), from: p })
    } catch (err) {
      throw new TrustError('trust.key-unreadable', `cannot read key file ${p}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err, data: { file: p } })
    }
  }
  return out
}

async function readPgpKeys(req: { keyPaths?: string[]; keyData?: Buffer }): Promise<Array<{ key: import('openpgp').Key; from: string }>> {
  const pgp = openpgp()
  const out: Array<{ key: import('openpgp').Key; from: string }> = []
  for (const { bytes, from } of await keyBytes(req)) {
    const text = bytes.toString('latin1')
    try {
      const keys = text.includes('-----BEGIN PGP') ? await pgp.readKeys({ armoredKeys: text }) : await pgp.readKeys({ binaryKeys: new Uint8Array(bytes) })
      for (const key of keys) out.push({ key, from })
    } catch (err) {
      throw new TrustError('trust.bad-key', `${from} is not an OpenPGP public key or keyring: ${(err as Error).message}`, { cause: err, data: { file: from } })
    }
  }
  return out
}

function describeKeys(req: { keyPaths?: string[]; keyData?: Buffer }): string {
  return req.keyData ? 'keyData' : `keyPath ${(req.keyPaths ?? []).join(', ')}`
}

/** Verify one simple-signing signature; returns the signer's fingerprint and payload, or why not. */
async function verifySimpleSigning(sig: FoundSignature & { kind: 'simple-signing' }, keys: Array<{ key: import('openpgp').Key; from: string }>, req: { keyPaths?: string[]; keyData?: Buffer }): Promise<{ fingerprint: string; payload: Payload } | string> {
  const pgp = openpgp()
  let message: import('openpgp').Message<Uint8Array>
  try {
    const text = sig.bytes.toString('latin1')
    message = text.startsWith('-----BEGIN PGP')
      ? ((await pgp.readMessage({ armoredMessage: text })) as import('openpgp').Message<Uint8Array>)
      : await pgp.readMessage({ binaryMessage: new Uint8Array(sig.bytes) })
  } catch (err) {
    return `${sig.from} is not an OpenPGP message (${(err as Error).message})`
  }
  const ids = message.getSigningKeyIDs()
  if (ids.length === 0) return `${sig.from} is not signed`
  const known = keys.filter(({ key }) => ids.some((id) => key.getKeys(id).length > 0))
  if (known.length === 0) return `signature by key ${ids.map((i) => i.toHex().toUpperCase()).join(', ')} not in ${describeKeys(req)}`
  let data: Uint8Array
  let fingerprint: string
  try {
    const r = await pgp.verify({ message, verificationKeys: known.map((k) => k.key), expectSigned: true, format: 'binary' })
    data = r.data as Uint8Array
    await r.signatures[0].verified
    const id = r.signatures[0].keyID
    const k = known.find(({ key }) => key.getKeys(id).length > 0)!
    fingerprint = k.key.getFingerprint().toUpperCase()
  } catch (err) {
    return `${sig.from}: the signature does not verify (${(err as Error).message})`
  }
  const payload = parsePayload(data, SIMPLE_SIGNING_TYPE)
  if (typeof payload === 'string') return `${sig.from}: ${payload}`
  return { fingerprint, payload }
}

async function readPublicKeys(req: { keyPaths?: string[]; keyData?: Buffer }): Promise<Array<{ key: KeyObject; from: string }>> {
  const out: Array<{ key: KeyObject; from: string }> = []
  for (const { bytes, from } of await keyBytes(req)) {
    try {
      out.push({ key: createPublicKey(bytes), from })
    } catch (err) {
      throw new TrustError('trust.bad-key', `${from} is not a PEM public key: ${(err as Error).message}`, { cause: err, data: { file: from } })
    }
  }
  return out
}

function sigstoreVerifies(key: KeyObject, payload: Buffer, signature: Buffer): boolean {
  const t = key.asymmetricKeyType
  try {
    if (t === 'ed25519') return cryptoVerify(null, payload, key, signature)
    if (t === 'ec' || t === 'rsa' || t === 'rsa-pss') return cryptoVerify('sha256', payload, key, signature)
  } catch {
    return false
  }
  return false
}

export interface CheckOptions {
  /** Info messages ("signature verified by …"). */
  info?: (message: string) => void
}

/**
 * Check `image` (already resolved, nothing else fetched) against `policy`.
 * Returns what was applied; throws TrustError when the policy rejects it.
 */
export async function checkImage(policy: Policy, subject: TrustSubject, image: ResolvedImage, signatures: SignatureSource, opts: CheckOptions = {}): Promise<TrustDecision> {
  const { scope, requirements } = requirementsFor(policy, subject)
  const digests = [...new Set([image.topDigest, image.manifestDigest])] as Digest[]
  const decision: TrustDecision = { scope, requirements: requirements.map((r) => r.type), verifiedBy: [] }
  const where = `scope ${scope} of ${policy.file ?? 'the policy'}`
  const reject = (req: Requirement, why: string, data: Record<string, unknown> = {}): never => {
    throw new TrustError(`trust.rejected`, `${subject.display} is rejected by ${where} (${req.type}): ${why}`, {
      data: { scope, policy: policy.file, requirement: req.type, image: subject.display, ...data },
      hint: req.type === 'reject' ? 'the policy refuses every image of this scope' : 'check the signature and the keys named in the policy (sysctr trust show)',
    })
  }
  const digestProblem = (p: Payload): string | undefined =>
    digests.includes(p.digest as Digest) ? undefined : `signature is for ${p.digest}, image is ${digests.join(' (index) / ')}`

  for (const req of requirements) {
    if (req.type === 'insecureAcceptAnything') continue
    if (req.type === 'reject') reject(req, 'the scope says "reject"')
    if (req.type === 'signedBy') {
      const sigs = (await signatures.simpleSigning(digests)).filter((s) => s.kind === 'simple-signing')
      if (sigs.length === 0) reject(req, `no signature in ${signatures.where('simple-signing', digests)}`)
      const keys = await readPgpKeys(req)
      const problems: string[] = []
      let ok = false
      for (const sig of sigs) {
        const r = await verifySimpleSigning(sig as FoundSignature & { kind: 'simple-signing' }, keys, req)
        if (typeof r === 'string') {
          problems.push(r)
          continue
        }
        const p = digestProblem(r.payload) ?? identityProblem(req.signedIdentity, subject.reference, r.payload.identity)
        if (p) {
          problems.push(p)
          continue
        }
        const by = `GPG key ${r.fingerprint} (${describeKeys(req)})`
        decision.verifiedBy.push(by)
        opts.info?.(`signature of ${subject.display} verified by ${by}`)
        ok = true
        break
      }
      if (!ok) reject(req, problems.join('; '))
    }
    if (req.type === 'sigstoreSigned') {
      const sigs = (await signatures.sigstore(digests)).filter((s) => s.kind === 'sigstore')
      if (sigs.length === 0) reject(req, `no sigstore signature in ${signatures.where('sigstore', digests)}`)
      const keys = await readPublicKeys(req)
      const problems: string[] = []
      let ok = false
      for (const sig of sigs as Array<FoundSignature & { kind: 'sigstore' }>) {
        const key = keys.find((k) => sigstoreVerifies(k.key, sig.payload, sig.signature))
        if (!key) {
          problems.push(`${sig.from}: the signature does not verify with ${describeKeys(req)}`)
          continue
        }
        const payload = parsePayload(sig.payload, COSIGN_TYPE)
        if (typeof payload === 'string') {
          problems.push(`${sig.from}: ${payload}`)
          continue
        }
        const p = digestProblem(payload) ?? identityProblem(req.signedIdentity, subject.reference, payload.identity)
        if (p) {
          problems.push(p)
          continue
        }
        const by = `sigstore key ${key.from}`
        decision.verifiedBy.push(by)
        opts.info?.(`signature of ${subject.display} verified by ${by}`)
        ok = true
        break
      }
      if (!ok) reject(req, problems.join('; '))
    }
  }
  return decision
}
