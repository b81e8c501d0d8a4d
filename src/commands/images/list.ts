import { BaseCommand } from '../../cli/base-command'
import { listImages } from '../../ops/images'
import { formatBytes } from '../../util/format-bytes'

export default class ImagesList extends BaseCommand {
  static override aliases = ['images:ls']
  static override summary = 'List the images in the store, with the deployments that use them'

  async run(): Promise<void> {
    const { flags } = await this.parse(ImagesList)
    const images = await listImages(this.context(flags))
    this.output(flags, images, () => {
      if (images.length === 0) return ['no images']
      const rows = images.map((i) => [i.reference, i.manifestDigest.slice(0, 19), formatBytes(i.size), i.created ?? '-', i.usedBy.join(',') || '-'])
      const head = ['REFERENCE', 'DIGEST', 'SIZE', 'CREATED', 'USED BY']
      const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)))
      return [head, ...rows].map((r) => r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]))).join('  '))
    })
  }
}
