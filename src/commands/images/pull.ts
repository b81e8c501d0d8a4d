import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { pull } from '../../ops/images'
import { formatBytes } from '../../ops/pull'

export default class ImagesPull extends BaseCommand {
  static override summary = 'Pull an image into the store (layers already stored are not fetched again)'
  static override args = { image: Args.string({ description: 'image reference, fully qualified', required: true }) }
  static override flags = {
    'tls-verify': Flags.string({ description: 'require HTTPS and verify certificates', options: ['true', 'false'], default: 'true' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesPull)
    const r = await pull(this.context(flags), args.image, { tlsVerify: flags['tls-verify'] !== 'false' })
    this.output(flags, r, () => [
      `pulled ${r.reference} (${r.manifestDigest.slice(0, 19)})`,
      `  layers: ${r.layersFetched} fetched (${formatBytes(r.bytesFetched)}), ${r.layersReused} already in the store; ${r.objectsAdded} new file objects (${formatBytes(r.bytesAdded)})`,
    ])
  }
}
