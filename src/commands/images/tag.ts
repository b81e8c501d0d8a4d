import { Args } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { storeRootFlag } from '../../cli/root-flag'
import { tagImage } from '../../ops/image-tags'

export default class ImagesTag extends BaseCommand {
  static override summary = 'Give a stored image a second local name (a ref in the store; nothing is copied or pulled)'
  static override description = `SOURCE is any name images list prints (reference, short name, ID). NEW is a reference; a short one is stored under localhost/ as podman tags (atomic-test:latest -> localhost/atomic-test:latest). A NEW that names another image is moved to SOURCE's image, unless a deployment was installed by that name. containers update and images verify of an image installed by such a name ask where SOURCE came from.`
  static override examples = ['<%= config.bin %> images tag 127.0.0.1:5000/demo/etcd:latest etcd:stable', '<%= config.bin %> images tag cffe142b9565 registry.example.com/etcd:pinned']
  static override args = {
    source: Args.string({ description: 'a stored image: reference, short name or ID', required: true }),
    new: Args.string({ description: 'the new name', required: true }),
  }

  static override flags = { root: storeRootFlag }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesTag)
    const r = await tagImage(this.contextFor(flags), args.source, args.new)
    this.output(flags, r, () => [`tagged ${r.source} (${r.manifestDigest.slice(0, 19)}) as ${r.reference}${r.previous ? ` (it named ${r.previous.slice(0, 19)} before)` : ''}`])
  }
}
