import { Args } from '@oclif/core'
import { sourceFlags, sourceFlagValues } from '../../cli/source-flags'
import { BaseCommand } from '../../cli/base-command'
import { storeRootFlag } from '../../cli/root-flag'
import { pull } from '../../ops/images'
import { formatBytes } from '../../util/format-bytes'

export default class ImagesPull extends BaseCommand {
  static override summary = 'Pull an image into the store (layers already stored are not fetched again)'
  static override description = `IMAGE is a registry reference (docker://REF or REF; short names per registries.conf),
oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or dir:DIR.
Registry settings come from /etc/containers/registries.conf(.d), credentials from
containers-auth.json files (or --authfile / --creds). A docker archive is stored under the repository tag it holds (manifest.json RepoTags), as skopeo and podman name it.`
  static override examples = [
    '<%= config.bin %> images pull quay.io/coreos/etcd:v3.5.9',
    '<%= config.bin %> images pull oci-archive:/srv/images/etcd.tar:v3.5.9',
    '<%= config.bin %> images pull --platform linux/arm64 docker-archive:/srv/images/etcd.tar',
  ]
  static override args = { image: Args.string({ description: 'image: REF, docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], dir:DIR', required: true }) }
  static override flags = {
    root: storeRootFlag,
    ...sourceFlags,
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesPull)
    const ctx = this.contextFor(flags)
    const r = await pull(ctx, args.image, sourceFlagValues(flags))
    this.output(flags, r, () => [
      `pulled ${r.reference} (${r.manifestDigest.slice(0, 19)})`,
      `  layers: ${r.layersFetched} fetched (${formatBytes(r.bytesFetched)}), ${r.layersReused} already in the store; ${r.objectsAdded} new file objects (${formatBytes(r.bytesAdded)})`,
    ])
  }
}
