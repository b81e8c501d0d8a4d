/**
 * `oci-archive:FILE[:TAG]`: an OCI image layout in a tar (what
 * `skopeo copy … oci-archive:` and `podman save --format oci-archive` write).
 * Streamed from the archive through a header index (see file-tree.ts): no
 * extraction, no temp files.
 */
import { TarTree } from './file-tree'
import { LocalSourceOptions, OciLayoutSource } from './oci-layout'

export async function openOciArchive(file: string, tag: string | undefined, opts: LocalSourceOptions = {}): Promise<OciLayoutSource> {
  const tree = await TarTree.open(file)
  return new OciLayoutSource(`oci-archive:${file}${tag !== undefined ? `:${tag}` : ''}`, tree, tag, opts)
}
