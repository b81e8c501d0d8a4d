/**
 * Digest strings (`algorithm:hex`), per the OCI image-spec descriptor rules.
 * Only sha256 (64 hex) and sha512 (128 hex) are accepted; the hex is lower case.
 */
import { createHash } from 'node:crypto'
import { ContentError } from '../errors'
import type { Digest } from '../oci/types'

export type DigestAlgorithm = 'sha256' | 'sha512'

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 }

/** Why `s` is not an acceptable digest, or undefined when it is. */
export function digestProblem(s: string): string | undefined {
  const i = s.indexOf(':')
  if (i <= 0) return 'a digest is algorithm:hex, e.g. sha256:<64 hex digits>'
  const algorithm = s.slice(0, i)
  const hex = s.slice(i + 1)
  if (!/^[a-z0-9]+(?:[+._-][a-z0-9]+)*$/.test(algorithm)) return `bad digest algorithm "${algorithm}"`
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return `unsupported digest algorithm "${algorithm}" (sha256 or sha512 only)`
  const want = HEX_LENGTH[algorithm]
  if (!/^[0-9a-f]+$/.test(hex)) return `${algorithm} digest must be lower-case hex`
  if (hex.length !== want) return `${algorithm} digest must have ${want} hex digits, not ${hex.length}`
  return undefined
}

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && digestProblem(s) === undefined
}

/** Split a digest already known to be valid (call `isDigest`/`digestProblem` first for untrusted input). */
export function digestAlgorithm(d: Digest): DigestAlgorithm {
  return d.slice(0, d.indexOf(':')) as DigestAlgorithm
}

export function digestOf(bytes: Buffer, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest
}

/**
 * Check bytes already in memory (manifests, configs) against a digest and,
 * when given, a size. `what` names the object in the error ("manifest sha256:…").
 */
export function verifyBytes(bytes: Buffer, expected: Digest, size: number | undefined, what: string): void {
  if (size !== undefined && bytes.length !== size) {
    throw new ContentError('content.size-mismatch', `${what}: size mismatch (expected ${size} bytes, got ${bytes.length})`, {
      data: { expected: size, found: bytes.length },
    })
  }
  const found = digestOf(bytes, digestAlgorithm(expected))
  if (found !== expected) {
    throw new ContentError('content.digest-mismatch', `${what}: digest mismatch (expected ${expected}, got ${found})`, {
      data: { expected, found },
    })
  }
}
