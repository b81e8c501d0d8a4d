import { Args } from '@oclif/core'
import { BaseCommand } from '../cli/base-command'
import { stopContainer } from '../ops/run'

export default class Stop extends BaseCommand {
  static override summary = "Stop an installed container's unit over D-Bus, waiting for the job"
  static override args = { name: Args.string({ description: 'container name', required: true }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Stop)
    const r = await stopContainer(this.context(flags), args.name)
    this.output(flags, r, () => [`stopped ${r.unit}: ${r.result} (${r.activeState}/${r.subState})`])
  }
}
