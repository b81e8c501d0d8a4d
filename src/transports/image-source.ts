/**
 * Where images come from. One implementation per transport (registry now;
 * OCI layout and archives later), each resolving a reference to a manifest
 * for one platform and streaming blobs.
 *
 * Contract every source keeps:
 * - `resolve` returns a manifest and config whose bytes were checked against
 *   their digests (the manifest against the digest in the reference, when it
 *   had one, or the index entry that named it).
 * - `openBlob` returns a stream that fails (emits an error, never 'end') when
 *   the bytes do not hash to `desc.digest` or their count differs from
 *   `desc.size`. Consumers commit nothing before 'end'.
 */
import type { Readable } from 'node:stream'
import type { Descriptor, Platform, ResolvedImage } from '../oci/types'

export interface ImageSource {
  /** What the user would recognise, e.g. `docker://127.0.0.1:5000/demo/etcd:latest`. */
  readonly name: string
  resolve(platform?: Platform): Promise<ResolvedImage>
  openBlob(desc: Descriptor): Promise<Readable>
  close(): Promise<void>
}
