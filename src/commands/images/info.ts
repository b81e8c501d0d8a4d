import { Args } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { storeRootFlag } from '../../cli/root-flag'
import { requireRoot } from '../../cli/privilege'
import { sourceFlags, sourceFlagValues } from '../../cli/source-flags'
import { imageInfo, type ImageFacts } from '../../ops/image-info'
import { formatBytes } from '../../util/format-bytes'

/** The skopeo-inspect-like lines: platform, created, labels, layers. */
function factLines(r: ImageFacts): string[] {
  const lines = [`os/arch: ${r.os || '?'}/${r.architecture || '?'}${r.variant ? `/${r.variant}` : ''}`, `created: ${r.created ?? '-'}`]
  const labels = Object.entries(r.labels).sort(([a], [b]) => (a < b ? -1 : 1))
  lines.push(labels.length > 0 ? 'labels:' : 'labels: none')
  for (const [k, v] of labels) lines.push(`  ${k}: ${v}`)
  lines.push(`layers: ${r.layers.length}`)
  for (const l of r.layers) lines.push(`  ${l.digest} (${formatBytes(l.size)})`)
  return lines
}

export default class ImagesInfo extends BaseCommand {
  static override summary = "Show an image's labels, platform, layers, /exports files and template values (those that need --set too)"
  static override description = `A stored image (any name images list prints: the reference, a short name, the image ID or a prefix of it) is read from the store: no checkout, nothing written. docker://REF, or a registry name the store does not have, is read from the registry without pulling (manifest and config: labels, platform, layers, digest; /exports is known once pulled). No such image: exit 3. Computed values are shown as they would be for a container named after the image; keys marked fixed cannot be changed with --set.`
  static override examples = ['<%= config.bin %> images info 127.0.0.1:5000/demo/etcd:latest', '<%= config.bin %> images info --json oci:/srv/layout:etcd']
  static override args = { image: Args.string({ description: 'image: a stored name or ID, or docker://REF', required: true }) }
  static override flags = { ...sourceFlags, root: storeRootFlag }
  // docker://REF reads only the registry (as skopeo inspect): no root needed. Anything else may read the store.
  static override needsRoot = false

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesInfo)
    if (!args.image.startsWith('docker://') && !flags.user && !flags.root) requireRoot({ command: 'images info' })
    const r = await imageInfo(this.contextFor(flags), args.image, sourceFlagValues(flags))
    this.output(flags, r, () => {
      if (!r.stored) return [`${r.reference} (${r.manifestDigest.slice(0, 19)}, not in the store)`, ...factLines(r), r.note]
      const t = r.templates
      const lines = [
        `${r.reference} (${r.manifestDigest.slice(0, 19)})`,
        ...factLines(r),
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
