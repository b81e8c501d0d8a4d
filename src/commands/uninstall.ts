import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../cli/base-command'
import { uninstall } from '../ops/uninstall'

export default class Uninstall extends BaseCommand {
  static override aliases = ['rm']
  static override summary = 'Stop, disable and remove an installed system container (the image stays in the store)'
  static override args = {
    name: Args.string({ description: 'container name', required: true }),
  }

  static override flags = {
    root: Flags.string({ description: 'uninstall from the OS tree at DIR (no running systemd: files and enablement links only)' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Uninstall)
    const ctx = this.contextFor(flags)
    const r = await uninstall(ctx, args.name)
    this.output(flags, r, () => [
      `uninstalled ${r.name}: stopped and disabled ${r.unit}, removed ${r.removedFiles.length} file(s) sysctr had written and ${r.removedDeployments.length} deployment(s)${r.keptFiles.length ? `; kept ${r.keptFiles.length} changed file(s)` : ''}`,
    ])
  }
}
