import { Args } from '@oclif/core'
import { BaseCommand } from '../cli/base-command'
import { umount } from '../ops/mount'

export default class Umount extends BaseCommand {
  static override summary = 'Undo a sysctr mount (and remove the checkout it made)'
  static override args = { dir: Args.string({ description: 'mount point', required: true }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Umount)
    const r = await umount(this.context(flags), args.dir)
    // JSON field names as everywhere: `created` (the record on disk keeps createdAt).
    const { createdAt, ...rest } = r
    this.output(flags, { ...rest, created: createdAt }, () => [`unmounted ${r.dir} (${r.kind} ${r.target})`])
  }
}
