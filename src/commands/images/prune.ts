import { BaseCommand } from '../../cli/base-command'
import { storeRootFlag } from '../../cli/root-flag'
import { pruneStore } from '../../ops/store-maintenance'
import { formatBytes } from '../../util/format-bytes'

export default class ImagesPrune extends BaseCommand {
  static override summary = 'Remove objects, layers and blobs that no image ref or deployment reaches'
  static override description = 'Mark and sweep under the store lock; waits until no other sysctr process is using the store.'

  static override flags = { root: storeRootFlag }

  async run(): Promise<void> {
    const { flags } = await this.parse(ImagesPrune)
    const r = await pruneStore(this.contextFor(flags))
    this.output(flags, r, () => [
      `removed ${r.objectsRemoved} entries (${r.commitsRemoved} commits, ${r.treesRemoved} trees, ${r.filesRemoved} files, ${r.layersRemoved} layer records, ${r.blobsRemoved} blobs), freed ${formatBytes(r.bytesFreed)}` +
        (r.stillLinked ? `; ${r.stillLinked} removed files are still linked by a checkout` : ''),
    ])
  }
}
