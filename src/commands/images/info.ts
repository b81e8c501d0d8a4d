import { Args } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { imageInfo } from '../../ops/image-info'

export default class ImagesInfo extends BaseCommand {
  static override summary = "Show an image's /exports files, its template values with their defaults, and those that need --set"
  static override description = `Reads the image from the store (no checkout, nothing written). The image must have been pulled
(sysctr images pull IMAGE); exit 3 otherwise. Computed values are shown as they would be for a
container named after the image; keys marked fixed cannot be changed with --set.`
  static override examples = ['<%= config.bin %> images info 127.0.0.1:5000/demo/etcd:latest', '<%= config.bin %> images info --json oci:/srv/layout:etcd']
  static override args = { image: Args.string({ description: 'image reference as pulled', required: true }) }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesInfo)
    const r = await imageInfo(this.context(flags), args.image)
    this.output(flags, r, () => {
      const t = r.templates
      const lines = [
        `${r.reference} (${r.manifestDigest.slice(0, 19)})`,
        `exports: ${r.hasExports ? `${r.files.length} entries` : 'none (sysctr defaults apply)'}`,
        ...r.files.map((f) => `  ${f.path}${f.type === 'file' ? '' : ` (${f.type})`}`),
        `templates: config.json from ${t.configJson.origin} ${t.configJson.file}, unit from ${t.service.origin} ${t.service.file}, tmpfiles from ${t.tmpfiles.origin} ${t.tmpfiles.file}`,
      ]
      if (r.manifest.present) {
        lines.push(`manifest.json: noContainerService=${r.manifest.noContainerService}`)
        for (const [from, to] of Object.entries(r.manifest.renameFiles)) lines.push(`  renameFiles: ${from} -> ${to}`)
        for (const f of r.manifest.installedFilesTemplate) lines.push(`  installedFilesTemplate: ${f}`)
      }
      lines.push('values:')
      for (const v of r.variables) {
        const where = v.usedBy.length > 0 ? ` [${v.usedBy.join(', ')}]` : ' [unused]'
        const d = v.source === 'none' ? 'NEEDS --set' : `${v.source}${v.fixed ? ', fixed' : ''}: ${v.default}`
        lines.push(`  ${v.name}${where} ${d}`)
      }
      lines.push(r.needsSet.length > 0 ? `install needs: ${r.needsSet.map((k) => `--set ${k}=...`).join(' ')}` : 'install needs no --set')
      if (r.hostAsks) {
        const a = r.hostAsks
        lines.push(`host: own namespaces ${a.ownNamespaces.join(', ') || 'none'}; shared with the host ${a.sharedNamespaces.join(', ') || 'none'}`)
        lines.push(`capabilities: ${a.capabilities.map((c) => c.replace(/^CAP_/, '')).join(' ') || 'none'}`)
        for (const b of a.binds) lines.push(`bind: ${b.source} -> ${b.destination} (${b.readOnly ? 'ro' : 'rw'})${b.beyondDefault ? ' beyond the default grant' : ''}`)
        lines.push(a.flags.length > 0 ? `install needs beyond the default grant: ${a.flags.join(' ')}` : 'install needs no --grant (the default grant covers it)')
        if (r.hostAsksNote) lines.push(`  (${r.hostAsksNote})`)
      } else if (r.hostAsksNote) lines.push(`host: ${r.hostAsksNote}`)
      return lines
    })
  }
}
