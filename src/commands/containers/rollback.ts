import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { rollback } from '../../ops/rollback'
import { settleFlag, settleFlagValue } from '../../cli/unit-flags'

export default class ContainersRollback extends BaseCommand {
  static override summary = 'Switch a container back to its previous deployment (its own recorded files and values)'
  static override args = { name: Args.string({ description: 'container name', required: true }) }
  static override flags = {
    root: Flags.string({ description: 'roll back inside the OS tree at DIR (no running systemd: files and links only)' }),
    settle: settleFlag,
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ContainersRollback)
    const r = await rollback(this.contextFor(flags), args.name, { settleMs: flags.root ? 0 : settleFlagValue(flags) })
    this.output(flags, r, () => [
      `rolled back ${r.name} to ${r.deployment}: ${r.image} (${r.manifestDigest.slice(0, 19)})`,
      `  unit: ${r.unit} ${r.restarted ? `restarted: ${r.restarted}` : 'was not running, not started'}`,
    ])
  }
}
