/**
 * `dir:DIR`: skopeo's directory format (containers/image `directory`):
 * `version`, `manifest.json` (an image manifest, or an index with
 * `<hex>.manifest.json` per instance when copied with --all), and every blob
 * named by its hex digest (`<alg>-<hex>` for other algorithms than sha256).
 * The top manifest has no descriptor to check against: its digest is the
 * hash of its bytes; everything below is verified against its descriptor.
 */
import type { Readable } from 'node:stream'
import { NotFoundError } from '../errors'
import type { Descriptor, Digest, Platform, ResolvedImage } from '../oci/types'
import { digestAlgorithm, digestOf } from '../reference/digest'
import { hostPlatform } from './registry/platform'
import type { ImageSource } from './image-source'
import { DirTree } from './file-tree'
import { LOCAL_MANIFEST_LIMIT, openVerified, readManifest } from './local-blob'
import type { LocalSourceOptions } from './oci-layout'
import { parseManifestBytes, resolveImage } from './resolve'

function blobName(d: Digest): string {
  const hex = d.slice(d.indexOf(':') + 1)
  return digestAlgorithm(d) === 'sha256' ? hex : `${digestAlgorithm(d)}-${hex}`
}

export class DirSource implements ImageSource {
  readonly name: string
  private readonly tree: DirTree

  constructor(
    dir: string,
    private readonly opts: LocalSourceOptions = {},
  ) {
    this.name = `dir:${dir}`
    this.tree = new DirTree(dir)
  }

  async resolve(platform?: Platform): Promise<ResolvedImage> {
    if ((await this.tree.size('manifest.json')) === undefined) {
      throw new NotFoundError('image.not-found', `${this.tree.where} is not an image directory (no manifest.json)`, { data: { where: this.tree.where } })
    }
    const bytes = await this.tree.read('manifest.json', LOCAL_MANIFEST_LIMIT)
    const top = parseManifestBytes(bytes, digestOf(bytes, 'sha256'))
    return resolveImage({
      top,
      display: this.name,
      want: platform ?? this.opts.platform ?? hostPlatform(),
      fetchManifest: (d) => readManifest(this.tree, `${blobName(d.digest)}.manifest.json`, d),
      openBlob: (d) => this.openBlob(d),
    })
  }

  openBlob(desc: Descriptor): Promise<Readable> {
    return openVerified(this.tree, blobName(desc.digest), desc)
  }

  async close(): Promise<void> {}
}

export function openDir(dir: string, opts: LocalSourceOptions = {}): DirSource {
  return new DirSource(dir, opts)
}
