/**
 * Where signatures come from, per transport:
 *   docker:  the lookaside store (containers-registries.d(5)):
 *              BASE/REPOSITORY@sha256=HEX/signature-N, N = 1, 2, … until the
 *              first missing one (ENOENT / 404), file:// or http(s)://;
 *            and, when `use-sigstore-attachments: true`, the registry tag
 *              sha256-HEX.sig in the image's repository (on the endpoint that
 *              served the image, with the same credentials): an OCI manifest
 *              whose layers of type application/vnd.dev.cosign.simplesigning.v1+json
 *              are payloads, each with its signature in the annotation
 *              dev.cosignproject.cosign/signature (base64). The payload blob
 *              is checked against its descriptor's digest.
 *   dir:     DIR/signature-N (skopeo's dir: format).
 *   others:  none (an OCI layout or archive carries no signatures).
 * Signatures are looked up for every digest asked (the top-level manifest the
 * reference named and, when an index was resolved, the platform manifest).
 * Nothing here decides trust: verify.ts does.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Readable } from 'node:stream'
import { ContentError, NotFoundError, RegistryError } from '../errors'
import type { Descriptor, Digest } from '../oci/types'
import type { ImageReference } from '../reference/reference'
import type { RegistryClient } from '../transports/registry/client'

/** Signatures bigger than this are refused (containers/image uses the same limit). */
export const SIGNATURE_SIZE_LIMIT = 4 << 20
/** At most this many lookaside signatures per digest are read. */
export const MAX_SIGNATURES = 128

export const COSIGN_PAYLOAD_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json'
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature'

export type FoundSignature =
  | { kind: 'simple-signing'; bytes: Buffer; from: string; digest: Digest }
  | { kind: 'sigstore'; payload: Buffer; signature: Buffer; from: string; digest: Digest }

export interface SignatureSource {
  /** Simple-signing (GPG) signatures for any of `digests`. */
  simpleSigning(digests: Digest[]): Promise<FoundSignature[]>
  /** Sigstore signatures for any of `digests`. */
  sigstore(digests: Digest[]): Promise<FoundSignature[]>
  /** Where it looked, for "no signature in …" messages. */
  where(kind: 'simple-signing' | 'sigstore', digests: Digest[]): string
}

function hexOf(d: Digest): { algo: string; hex: string } {
  const i = d.indexOf(':')
  return { algo: d.slice(0, i), hex: d.slice(i + 1) }
}

/** The lookaside URL of signature `n` (1-based) of `repository`@`digest` under `base`. */
export function lookasideUrl(base: string, repository: string, digest: Digest, n: number): string {
  const { algo, hex } = hexOf(digest)
  return `${base.replace(/\/+$/, '')}/${repository}@${algo}=${hex}/signature-${n}`
}

/** One lookaside signature: the bytes, or undefined when it does not exist. */
async function readLookaside(url: string, timeoutMs: number): Promise<Buffer | undefined> {
  const u = new URL(url)
  if (u.protocol === 'file:') {
    try {
      const path = fileURLToPath(u)
      const st = await fsp.stat(path)
      if (st.size > SIGNATURE_SIZE_LIMIT) throw new ContentError('trust.signature-too-big', `signature ${url} is bigger than ${SIGNATURE_SIZE_LIMIT} bytes`)
      return await fsp.readFile(path)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
      throw err
    }
  }
  let res: Response
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' })
  } catch (err) {
    throw new RegistryError('trust.lookaside-unreachable', `signature ${url}: ${(err as Error).message}`, { cause: err })
  }
  if (res.status === 404) {
    await res.body?.cancel()
    return undefined
  }
  if (res.status !== 200) {
    await res.body?.cancel()
    throw new RegistryError('trust.lookaside-status', `signature ${url}: HTTP ${res.status}`, { data: { status: res.status } })
  }
  const len = Number(res.headers.get('content-length') ?? '0')
  if (len > SIGNATURE_SIZE_LIMIT) {
    await res.body?.cancel()
    throw new ContentError('trust.signature-too-big', `signature ${url} is bigger than ${SIGNATURE_SIZE_LIMIT} bytes`)
  }
  const buf = Buffer.from(await res.arrayBuffer())
  if (buf.length > SIGNATURE_SIZE_LIMIT) throw new ContentError('trust.signature-too-big', `signature ${url} is bigger than ${SIGNATURE_SIZE_LIMIT} bytes`)
  return buf
}

/** Every lookaside signature of `repository`@`digest`: signature-1, -2, … until the first missing. */
export async function lookasideSignatures(base: string, repository: string, digest: Digest, opts: { timeoutMs?: number } = {}): Promise<FoundSignature[]> {
  const out: FoundSignature[] = []
  for (let n = 1; n <= MAX_SIGNATURES; n++) {
    const url = lookasideUrl(base, repository, digest, n)
    const bytes = await readLookaside(url, opts.timeoutMs ?? 30_000)
    if (!bytes) break
    out.push({ kind: 'simple-signing', bytes, from: url, digest })
  }
  return out
}

async function readAll(stream: Readable, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const c of stream) {
    n += (c as Buffer).length
    if (n > limit) {
      stream.destroy()
      throw new ContentError('trust.signature-too-big', `${what} is bigger than ${limit} bytes`)
    }
    chunks.push(c as Buffer)
  }
  return Buffer.concat(chunks)
}

/** The sigstore attachments of `repository`@`digest` (tag sha256-HEX.sig), payloads verified against their descriptors. */
export async function sigstoreAttachments(client: RegistryClient, repository: string, digest: Digest): Promise<FoundSignature[]> {
  const { algo, hex } = hexOf(digest)
  const tag = `${algo}-${hex}.sig`
  const display = `${client.registry}/${repository}:${tag}`
  let bytes: Buffer
  try {
    bytes = (await client.getManifest(repository, tag, display)).bytes
  } catch (err) {
    if (err instanceof NotFoundError) return []
    throw err
  }
  let manifest: { layers?: unknown }
  try {
    manifest = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new ContentError('trust.bad-attachment', `sigstore attachment ${display} is not JSON`)
  }
  if (!manifest || !Array.isArray(manifest.layers)) throw new ContentError('trust.bad-attachment', `sigstore attachment ${display} has no layers`)
  const out: FoundSignature[] = []
  for (const l of manifest.layers as Array<Record<string, unknown>>) {
    if (!l || l.mediaType !== COSIGN_PAYLOAD_MEDIA_TYPE) continue
    const ann = (l.annotations ?? {}) as Record<string, unknown>
    const sig = ann[COSIGN_SIGNATURE_ANNOTATION]
    if (typeof sig !== 'string') continue
    if (typeof l.size !== 'number' || l.size > SIGNATURE_SIZE_LIMIT) throw new ContentError('trust.signature-too-big', `sigstore payload ${String(l.digest)} in ${display} is too big`)
    const desc = { mediaType: l.mediaType, digest: l.digest, size: l.size } as Descriptor
    const payload = await readAll(await client.getBlob(repository, desc), SIGNATURE_SIZE_LIMIT, `sigstore payload ${String(l.digest)}`)
    out.push({ kind: 'sigstore', payload, signature: Buffer.from(sig, 'base64'), from: `${display} (layer ${String(l.digest)})`, digest })
  }
  return out
}

export interface RegistrySignatureOptions {
  /** The user-facing reference: lookaside paths use its repository. */
  reference: ImageReference
  lookaside: string
  useSigstoreAttachments: boolean
  /** The endpoint that served the image (a mirror, maybe) and a client for it with the same credentials. */
  attachments?: () => { client: RegistryClient; repository: string } | undefined
  timeoutMs?: number
}

/** Signatures of a registry image (see the top of this file). */
export function registrySignatureSource(o: RegistrySignatureOptions): SignatureSource {
  const memo = new Map<string, Promise<FoundSignature[]>>()
  const once = (key: string, f: () => Promise<FoundSignature[]>) => {
    if (!memo.has(key)) memo.set(key, f())
    return memo.get(key)!
  }
  return {
    simpleSigning: (digests) =>
      once(`ss ${digests.join(',')}`, async () => (await Promise.all(digests.map((d) => lookasideSignatures(o.lookaside, o.reference.repository, d, { timeoutMs: o.timeoutMs })))).flat()),
    sigstore: (digests) =>
      once(`sig ${digests.join(',')}`, async () => {
        if (!o.useSigstoreAttachments) return []
        const a = o.attachments?.()
        if (!a) return []
        const out: FoundSignature[] = []
        try {
          for (const d of digests) out.push(...(await sigstoreAttachments(a.client, a.repository, d)))
        } finally {
          a.client.close()
        }
        return out
      }),
    where: (kind, digests) => {
      const look = `${lookasideUrl(o.lookaside, o.reference.repository, digests[0], 1)}`
      const tags = digests.map((d) => `${hexOf(d).algo}-${hexOf(d).hex.slice(0, 12)}….sig`).join(', ')
      const att = o.useSigstoreAttachments ? `sigstore attachment ${tags}` : 'sigstore attachment (use-sigstore-attachments is off)'
      return kind === 'simple-signing' ? `${look} nor ${att}` : `${att}`
    },
  }
}

/** Signatures stored in a dir: image (DIR/signature-N). */
export function dirSignatureSource(dir: string): SignatureSource {
  return {
    simpleSigning: async (digests) => {
      const out: FoundSignature[] = []
      for (let n = 1; n <= MAX_SIGNATURES; n++) {
        const p = join(dir, `signature-${n}`)
        try {
          out.push({ kind: 'simple-signing', bytes: await fsp.readFile(p), from: p, digest: digests[0] })
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break
          throw err
        }
      }
      return out
    },
    sigstore: async () => [],
    where: () => `${join(dir, 'signature-1')}`,
  }
}

/** A transport that carries no signatures. */
export function noSignatureSource(what: string): SignatureSource {
  return { simpleSigning: async () => [], sigstore: async () => [], where: () => `${what} (this transport carries no signatures)` }
}
