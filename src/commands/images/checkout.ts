import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { storeRootFlag } from '../../cli/root-flag'
import { checkoutImage } from '../../ops/images'

export default class ImagesCheckout extends BaseCommand {
  static override summary = 'Check an image out of the store into a new directory (hardlinks to store objects)'
  static override description = 'DIR must not exist. The files are hardlinks to store objects: do not modify them (sysctr fsck finds objects that were changed).'
  static override args = {
    image: Args.string({ description: 'a stored image: reference, short name or ID (as images list prints it)', required: true }),
    dir: Args.string({ description: 'target directory (must not exist)', required: true }),
  }
  static override flags = {
    root: storeRootFlag,
    copy: Flags.boolean({ description: 'copy files instead of hardlinking (needed when DIR is on another filesystem)', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesCheckout)
    const s = await checkoutImage(this.contextFor(flags), args.image, args.dir, { copy: flags.copy })
    this.output(flags, s, () => [`checked out ${args.image} into ${args.dir}: ${s.files} files (${s.hardlinks} hardlinked, ${s.copied} copied), ${s.dirs} dirs, ${s.symlinks} symlinks`])
  }
}
