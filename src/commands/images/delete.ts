import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { deleteImage } from '../../ops/images'
import { formatBytes } from '../../util/format-bytes'

export default class ImagesDelete extends BaseCommand {
  static override aliases = ['images:rm', 'rmi']
  static override summary = 'Remove an image from the store (refused while a deployment uses it)'
  static override description = 'Removes the image ref. Its objects are removed by the next `sysctr images prune`, or right away with --prune.'
  static override args = { image: Args.string({ description: 'image reference, as pulled', required: true }) }
  static override flags = {
    prune: Flags.boolean({ description: 'prune unreachable objects right away', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesDelete)
    const r = await deleteImage(this.context(flags), args.image, { prune: flags.prune })
    this.output(flags, r, () => [
      `deleted ${r.reference}`,
      r.pruned
        ? `  pruned: removed ${r.pruned.objectsRemoved} entries, freed ${formatBytes(r.pruned.bytesFreed)}`
        : '  its objects stay in the store until `sysctr images prune`',
    ])
  }
}
