import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { inspectContainer } from '../../ops/status'

export default class ContainersInspect extends BaseCommand {
  static override summary = 'Show what a container runs: its values, the rendered files and unit in use, config.json (--json for all of it)'
  static override examples = ['<%= config.bin %> containers inspect etcd', '<%= config.bin %> containers inspect etcd --json']
  static override args = { name: Args.string({ description: 'container name', required: true }) }
  static override flags = {
    root: Flags.string({ description: 'inspect a container installed in the OS tree at DIR' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ContainersInspect)
    const i = await inspectContainer(this.contextFor(flags), args.name)
    this.output(flags, i, () => [
      `${i.name}: ${i.image} (${i.manifestDigest})`,
      `  deployment: ${i.deployment} at ${i.deploymentDir}${i.previousDeployment ? ` (previous: ${i.previousDeployment})` : ''}`,
      `  unit: ${i.unit}; templates: config.json ${i.templates.configJson}, service ${i.templates.service}, tmpfiles ${i.templates.tmpfiles}`,
      '  values:',
      ...Object.entries(i.values).map(([k, v]) => `    ${k}=${v}${k in i.setValues ? ' (--set)' : ''}`),
      '  files:',
      ...i.files.map((f) => `    ${f.role} ${f.path}${f.missing ? ' (missing)' : f.modified ? ' (changed since sysctr wrote it)' : ''}`),
      ...i.files.filter((f) => f.role === 'unit' && f.text !== undefined).flatMap((f) => [`--- ${f.path}`, ...f.text!.replace(/\n$/, '').split('\n')]),
    ])
  }
}
