import { Args } from '@oclif/core'
import { BaseCommand } from '../cli/base-command'
import { uninstall } from '../ops/uninstall'

export default class Uninstall extends BaseCommand {
  static override summary = 'Stop, disable and remove an installed system container (the image stays in the store)'
  static override args = {
    name: Args.string({ description: 'container name', required: true }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Uninstall)
    const r = await uninstall(this.context(flags), args.name)
    this.output(flags, r, () => [`uninstalled ${r.name}: stopped and disabled ${r.unit}, removed ${r.removedFiles.length} host files and ${r.removedDeployments.length} deployment(s)`])
  }
}
