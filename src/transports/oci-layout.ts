/**
 * OciLayoutSource: `oci:DIR[:TAG]` (an OCI image layout directory) and, on a
 * TarTree, `oci-archive:FILE[:TAG]` (the same layout in a tar).
 *
 * The image is the index.json entry whose `org.opencontainers.image.ref.name`
 * is TAG; without TAG, the only entry (several entries without a tag are
 * refused, naming the tags). Every manifest and blob is read from
 * `blobs/<alg>/<hex>` and verified against the descriptor that named it.
 */
import type { Readable } from 'node:stream'
import { ContentError, NotFoundError, UsageError } from '../errors'
import type { Descriptor, ImageIndex, Platform, ResolvedImage } from '../oci/types'
import { hostPlatform } from './registry/platform'
import type { ImageSource } from './image-source'
import { DirTree, FileTree, TarTree } from './file-tree'
import { layoutBlobPath, LOCAL_MANIFEST_LIMIT, openVerified, readManifest } from './local-blob'
import { checkDescriptor, resolveImage } from './resolve'

export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name'

export interface LocalSourceOptions {
  /** Platform to pick from an index when resolve() is given none. Default linux/<host arch>. */
  platform?: Platform
}

export class OciLayoutSource implements ImageSource {
  constructor(
    readonly name: string,
    private readonly tree: FileTree,
    private readonly tag: string | undefined,
    private readonly opts: LocalSourceOptions = {},
  ) {}

  async resolve(platform?: Platform): Promise<ResolvedImage> {
    const entry = await this.chooseEntry()
    const top = await readManifest(this.tree, layoutBlobPath(entry.digest), entry)
    return resolveImage({
      top,
      display: this.name,
      want: platform ?? this.opts.platform ?? hostPlatform(),
      fetchManifest: (d) => readManifest(this.tree, layoutBlobPath(d.digest), d),
      openBlob: (d) => this.openBlob(d),
    })
  }

  openBlob(desc: Descriptor): Promise<Readable> {
    return openVerified(this.tree, layoutBlobPath(desc.digest), desc)
  }

  async close(): Promise<void> {
    await this.tree.close()
  }

  private async chooseEntry(): Promise<Descriptor> {
    if ((await this.tree.size('oci-layout')) === undefined) {
      throw new NotFoundError('image.not-found', `${this.tree.where} is not an OCI image layout (no oci-layout file)`, { data: { where: this.tree.where } })
    }
    const bytes = await this.tree.read('index.json', LOCAL_MANIFEST_LIMIT)
    let index: ImageIndex
    try {
      index = JSON.parse(bytes.toString('utf8')) as ImageIndex
    } catch {
      throw new ContentError('content.bad-manifest', `${this.tree.where}: index.json is not JSON`)
    }
    if (!index || !Array.isArray(index.manifests)) throw new ContentError('content.bad-manifest', `${this.tree.where}: index.json has no manifests list`)
    const tags = index.manifests.map((d) => d?.annotations?.[REF_NAME_ANNOTATION]).filter((t): t is string => typeof t === 'string')
    let found: Descriptor[]
    if (this.tag !== undefined) {
      found = index.manifests.filter((d) => d?.annotations?.[REF_NAME_ANNOTATION] === this.tag)
      if (found.length === 0) {
        throw new NotFoundError('image.not-found', `${this.tree.where} has no image tagged ${this.tag} (tags: ${tags.length ? tags.join(', ') : 'none'})`, {
          data: { where: this.tree.where, tag: this.tag, tags },
        })
      }
    } else {
      found = index.manifests
      if (found.length === 0) throw new NotFoundError('image.not-found', `${this.tree.where} holds no image`)
      if (found.length > 1) {
        throw new UsageError('image.ambiguous', `${this.tree.where} holds ${found.length} images: name one with :TAG`, {
          hint: tags.length ? `tags: ${tags.join(', ')}` : undefined,
          data: { tags },
        })
      }
    }
    const entry = found[0]
    checkDescriptor(entry, `${this.tree.where} index.json entry`)
    return entry
  }
}

export function openOciLayout(dir: string, tag: string | undefined, opts: LocalSourceOptions = {}): OciLayoutSource {
  return new OciLayoutSource(`oci:${dir}${tag !== undefined ? `:${tag}` : ''}`, new DirTree(dir), tag, opts)
}
