/**
 * Blob streams for the on-disk transports: the file is looked up in a
 * FileTree, its size checked against the descriptor before a byte is read,
 * and its bytes piped through a DigestStream (fails, never ends, on a
 * mismatch), as the ImageSource contract asks.
 */
import type { Readable } from 'node:stream'
import { ContentError, NotFoundError } from '../errors'
import type { Descriptor, Digest } from '../oci/types'
import { digestAlgorithm, isDigest, verifyBytes } from '../reference/digest'
import { DigestStream } from '../util/digest-stream'
import type { FileTree } from './file-tree'
import { parseManifestBytes, ParsedManifest } from './resolve'

/** Manifests bigger than this are refused (as from a registry). */
export const LOCAL_MANIFEST_LIMIT = 4 << 20

export function checkBlobDescriptor(desc: Descriptor): void {
  if (!isDigest(desc.digest) || !Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new ContentError('content.bad-descriptor', `bad blob descriptor (digest ${String(desc.digest)}, size ${String(desc.size)})`)
  }
}

/** Stream `path` of `tree` as blob `desc`, verified. */
export async function openVerified(tree: FileTree, path: string, desc: Descriptor): Promise<Readable> {
  checkBlobDescriptor(desc)
  const what = `blob ${desc.digest}`
  const size = await tree.size(path)
  if (size === undefined) {
    throw new NotFoundError('blob.not-found', `${what} not found in ${tree.where} (no ${path})`, { data: { digest: desc.digest, where: tree.where } })
  }
  if (size !== desc.size) {
    throw new ContentError('content.size-mismatch', `${what} in ${tree.where}: size mismatch (expected ${desc.size} bytes, file has ${size})`, {
      data: { expected: desc.size, found: size },
    })
  }
  const file = await tree.open(path)
  const verify = new DigestStream({ digest: desc.digest, size: desc.size, what })
  file.on('error', (err) => verify.destroy(err))
  verify.on('close', () => file.destroy())
  file.pipe(verify)
  return verify
}

/** Read a manifest the caller holds a descriptor for, verify and parse it. */
export async function readManifest(tree: FileTree, path: string, desc: Descriptor): Promise<ParsedManifest> {
  checkBlobDescriptor(desc)
  const bytes = await tree.read(path, LOCAL_MANIFEST_LIMIT)
  verifyBytes(bytes, desc.digest, desc.size, `manifest ${desc.digest}`)
  return parseManifestBytes(bytes, desc.digest, desc.mediaType)
}

/** `blobs/sha256/<hex>` (OCI image layout). */
export function layoutBlobPath(d: Digest): string {
  return `blobs/${digestAlgorithm(d)}/${d.slice(d.indexOf(':') + 1)}`
}
