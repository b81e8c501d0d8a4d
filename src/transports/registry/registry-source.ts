/**
 * RegistrySource: an ImageSource for `docker://registry/repository[:tag][@digest]`.
 *
 * resolve():
 *   1. GET the manifest by digest (when the reference has one) or tag; check
 *      the bytes against the reference's digest, and against the registry's
 *      Docker-Content-Digest when sent. A registry is never trusted for a digest.
 *   2. An index (OCI or Docker list): pick os/architecture/variant (the
 *      `platform` argument, else the option, else linux/<host arch>); GET that
 *      manifest by digest and check it against the index entry (digest, size).
 *   3. Refuse media types that are not image manifests / configs (ContentError).
 *   4. GET the config blob through the digest check and parse it.
 * Nothing is returned unless every byte handed over was verified.
 */
import type { Readable } from 'node:stream'
import { ContentError } from '../../errors'
import type { Descriptor, Digest, Platform, ResolvedImage } from '../../oci/types'
import { digestOf, digestProblem, verifyBytes, digestAlgorithm } from '../../reference/digest'
import type { ImageReference } from '../../reference/reference'
import type { ImageSource } from '../image-source'
import { parseManifestBytes, ParsedManifest, resolveImage } from '../resolve'
import { MANIFEST_SIZE_LIMIT, RegistryClient, RegistryClientOptions } from './client'
import { hostPlatform } from './platform'

export { CONFIG_SIZE_LIMIT } from '../resolve'

export interface RegistrySourceOptions extends RegistryClientOptions {
  /** Platform to pick from an index when resolve() is given none. Default linux/<host arch>. */
  platform?: Platform
}

export class RegistrySource implements ImageSource {
  readonly name: string
  readonly ref: ImageReference
  private readonly client: RegistryClient
  private readonly platform?: Platform

  constructor(ref: ImageReference, opts: RegistrySourceOptions = {}) {
    this.ref = ref
    this.name = `docker://${ref.toString()}`
    this.platform = opts.platform
    this.client = new RegistryClient(ref.registry, opts)
  }

  async resolve(platform?: Platform): Promise<ResolvedImage> {
    const want = platform ?? this.platform ?? hostPlatform()
    const top = await this.fetchManifest(this.ref.digest ?? (this.ref.tag as string), this.ref.digest ? { digest: this.ref.digest } : undefined)
    return resolveImage({
      top,
      display: this.ref.toString(),
      want,
      fetchManifest: (d) => this.fetchManifest(d.digest, { digest: d.digest, size: d.size }),
      openBlob: (d) => this.openBlob(d),
    })
  }

  openBlob(desc: Descriptor): Promise<Readable> {
    return this.client.getBlob(this.ref.repository, desc)
  }

  async close(): Promise<void> {
    this.client.close()
  }

  private async fetchManifest(reference: string, expect?: { digest: Digest; size?: number }): Promise<ParsedManifest> {
    const display = expect && reference === expect.digest && this.ref.digest !== expect.digest
      ? `${this.ref.registry}/${this.ref.repository}@${reference}`
      : this.ref.toString()
    if (expect?.size !== undefined && expect.size > MANIFEST_SIZE_LIMIT) {
      throw new ContentError('content.too-large', `manifest ${expect.digest}: ${expect.size} bytes is more than ${MANIFEST_SIZE_LIMIT}`, {
        data: { limit: MANIFEST_SIZE_LIMIT, size: expect.size },
      })
    }
    const fetched = await this.client.getManifest(this.ref.repository, reference, display)
    const bytes = fetched.bytes
    let digest: Digest
    if (expect) {
      verifyBytes(bytes, expect.digest, expect.size, `manifest ${expect.digest}`)
      digest = expect.digest
    } else {
      digest = digestOf(bytes, 'sha256')
    }
    const claimed = fetched.dockerContentDigest
    if (claimed !== undefined) {
      if (digestProblem(claimed) === undefined) {
        const found = digestOf(bytes, digestAlgorithm(claimed as Digest))
        if (found !== claimed) {
          throw new ContentError('content.digest-mismatch', `manifest ${reference} of ${this.ref.repository}: registry says ${claimed}, bytes hash to ${found}`, {
            data: { expected: claimed, found },
          })
        }
        if (!expect && digestAlgorithm(claimed as Digest) !== 'sha256') digest = claimed as Digest
      }
    }

    return parseManifestBytes(bytes, digest, fetched.contentType)
  }
}

/** Open a source for a registry reference. Nothing is fetched until resolve()/openBlob(). */
export function openRegistrySource(ref: ImageReference, opts: RegistrySourceOptions = {}): RegistrySource {
  return new RegistrySource(ref, opts)
}
