import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { storeRootFlag } from '../../cli/root-flag'
import { deleteImage } from '../../ops/images'
import { formatBytes } from '../../util/format-bytes'

export default class ImagesDelete extends BaseCommand {
  static override aliases = ['images:rm', 'rmi']
  static override summary = 'Remove an image from the store (refused while a deployment uses it)'
  static override description = `IMAGE is any name images list prints: the reference, a short name, the ID (sha256:… or a prefix of at least 4 hex digits), or the file a local image was pulled from (docker-archive:FILE). Removes the image ref; its objects are removed by the next sysctr images prune, or right away with --prune. An ID of an image with several names (images tag) is refused: delete each name.`
  static override args = { image: Args.string({ description: 'a stored image: reference, short name, ID or the file it was pulled from', required: true }) }
  static override flags = {
    root: storeRootFlag,
    prune: Flags.boolean({ description: 'prune unreachable objects right away', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesDelete)
    const r = await deleteImage(this.contextFor(flags), args.image, { prune: flags.prune })
    this.output(flags, r, () => [
      `deleted ${r.reference}`,
      r.pruned
        ? `  pruned: removed ${r.pruned.objectsRemoved} entries, freed ${formatBytes(r.pruned.bytesFreed)}`
        : '  its objects stay in the store until `sysctr images prune`',
    ])
  }
}
