/**
 * Where the store keeps content named by an OCI digest: `blobs/<alg>/<hex>`
 * (manifest and config bytes) and `layers/<alg>/<hex>` (layer records), for
 * alg sha256 or sha512 (src/reference/digest.ts). A store without a
 * `<kind>/sha512` directory is valid: an absent directory holds nothing.
 * The store's own object names (files, trees, commits) and diffIDs stay
 * sha256 whatever the blob's algorithm.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { ContentError } from '../errors'
import type { Digest } from '../oci/types'
import { digestAlgorithm, DigestAlgorithm, digestProblem, isDigest } from '../reference/digest'

export type DigestDir = 'blobs' | 'layers'

/** The algorithms the store keeps blobs and layer records for, in listing order. */
export const STORE_ALGORITHMS: readonly DigestAlgorithm[] = ['sha256', 'sha512']

/** Split `d` into algorithm and hex; ContentError 'content.unsupported-digest' unless it is a valid sha256/sha512 digest. */
export function splitDigest(d: string): { algorithm: DigestAlgorithm; hex: string } {
  const problem = digestProblem(d)
  if (problem !== undefined) throw new ContentError('content.unsupported-digest', `unsupported digest ${JSON.stringify(d)}: ${problem}`, { data: { digest: d } })
  const algorithm = digestAlgorithm(d as Digest)
  return { algorithm, hex: d.slice(algorithm.length + 1) }
}

/** `<kind>/<alg>/<hex>`, relative to the store root. */
export function digestRelPath(kind: DigestDir, d: string): string {
  const { algorithm, hex } = splitDigest(d)
  return join(kind, algorithm, hex)
}

/** The digest of a well-formed entry name under `<kind>/<alg>/`, or undefined. */
export function digestOfEntry(algorithm: DigestAlgorithm, name: string): Digest | undefined {
  const d = `${algorithm}:${name}`
  return isDigest(d) ? d : undefined
}

/** Every well-formed entry of `<kind>/sha256` and `<kind>/sha512`, as digests. Anything else is left alone. */
export async function listDigests(root: string, kind: DigestDir): Promise<Digest[]> {
  const out: Digest[] = []
  for (const algorithm of STORE_ALGORITHMS) {
    const names = await fsp.readdir(join(root, kind, algorithm)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[]
      throw err
    })
    for (const n of names.sort()) {
      const d = digestOfEntry(algorithm, n)
      if (d) out.push(d)
    }
  }
  return out
}
