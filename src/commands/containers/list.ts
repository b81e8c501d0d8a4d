import { BaseCommand } from '../../cli/base-command'
import { listContainers } from '../../ops/containers'

export default class ContainersList extends BaseCommand {
  static override summary = 'List installed system containers: image, digest, active deployment, unit state, runtime'

  async run(): Promise<void> {
    const { flags } = await this.parse(ContainersList)
    const list = await listContainers(this.context(flags))
    this.output(flags, list, () => {
      if (list.length === 0) return ['no containers installed']
      const rows = list.map((c) => c.broken ? [c.name, `BROKEN: ${c.broken.path}: ${c.broken.error}`, '', c.deployment, 'unknown', '', ''] : [
        c.name,
        c.image,
        c.manifestDigest.slice(0, 19),
        c.deployment + (c.previousDeployment ? ` (prev ${c.previousDeployment})` : '') + (c.rootfs ? ` (remote rootfs ${c.rootfs})` : ''),
        `${c.activeState}/${c.subState}`,
        c.runtime,
        c.privileged ? 'privileged' : (c.asked ?? []).join(' ') || '-',
      ])
      const head = ['NAME', 'IMAGE', 'DIGEST', 'DEPLOYMENT', 'STATE', 'RUNTIME', 'GRANTED']
      const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)))
      return [head, ...rows].map((r) => r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]))).join('  '))
    })
  }
}
