import { Args } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { storeRootFlag } from '../../cli/root-flag'
import { table } from '../../cli/filters'
import { imageVersion } from '../../ops/image-tags'

export default class ImagesVersion extends BaseCommand {
  static override summary = "Show a stored image's name, version and release labels (as atomic images version)"
  static override description = `Reads the labels Name, Version and Release (or name, version, release; the OCI org.opencontainers.image.title and .version) of the image's config, and prints them as atomic did: NAME-VERSION-RELEASE, or REFERENCE-Version unavailable when one is missing.`
  static override args = { image: Args.string({ description: 'a stored image: reference, short name or ID', required: true }) }

  static override flags = { root: storeRootFlag }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesVersion)
    const r = await imageVersion(this.contextFor(flags), args.image)
    this.output(flags, r, () => table(['IMAGE ID', 'NAME-VERSION-RELEASE', 'IMAGE NAME'], [[r.manifestDigest.slice(7, 19), r.nvr, r.reference]]))
  }
}
