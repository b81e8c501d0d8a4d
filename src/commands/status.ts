import { Args } from '@oclif/core'
import { BaseCommand } from '../cli/base-command'
import { containerStatus } from '../ops/status'

export default class Status extends BaseCommand {
  static override summary = "Show one container: unit state (over D-Bus), active deployment, image, digest, granted privileges, last start result"
  static override examples = ['<%= config.bin %> status etcd', '<%= config.bin %> status etcd --json']
  static override args = { name: Args.string({ description: 'container name', required: true }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Status)
    const s = await containerStatus(this.context(flags), args.name)
    this.output(flags, s, () => {
      const st = s.state
      const granted = s.privileged ? 'everything (--privileged)' : s.asked.length > 0 ? s.asked.join(' ') : 'the default grant only'
      return [
        `${s.name}: ${s.noContainerService ? 'no service (host files only)' : st ? `${st.activeState} (${st.subState})` : 'state unknown'}`,
        `  unit:       ${s.unit}${st ? ` (${st.loadState}, ${st.unitFileState || 'unknown'})` : ''}`,
        ...(st?.mainPid ? [`  main pid:   ${st.mainPid}`] : []),
        ...(st?.result ? [`  last result: ${st.result}`] : []),
        `  deployment: ${s.deployment}${s.previousDeployment ? ` (previous: ${s.previousDeployment}, kept for rollback)` : ''}`,
        `  image:      ${s.image}`,
        `  digest:     ${s.manifestDigest}`,
        `  created:    ${s.created}`,
        `  runtime:    ${s.runtime}`,
        `  granted:    ${granted}`,
        ...(s.noContainerService ? [] : [`  journal:    sysctr logs ${s.name} (journalctl -u ${s.unit})`]),
      ]
    })
  }
}
