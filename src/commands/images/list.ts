import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { storeRootFlag } from '../../cli/root-flag'
import { parseFilters, passes, table } from '../../cli/filters'
import { listImages, type ImageListing } from '../../ops/images'
import { formatBytes } from '../../util/format-bytes'

/** atomic's `images list --filter` keys (type: the transport; dangling: always false here), and sysctr's own. */
const FILTER_KEYS = ['repo', 'tag', 'id', 'created', 'size', 'type', 'dangling', 'reference', 'used'] as const
const FILTER_ALIASES: Record<string, string> = { repository: 'repo', image: 'id', digest: 'id' }

/** `registry/repo:tag` -> [repo, tag]; a local transport's ref -> [the ref, '']. */
function repoTag(ref: string): [string, string] {
  if (/^(oci|oci-archive|docker-archive|dir):/.test(ref)) return [ref, '']
  const noDigest = ref.replace(/@.*$/, '')
  const colon = noDigest.lastIndexOf(':')
  return colon > noDigest.lastIndexOf('/') ? [noDigest.slice(0, colon), noDigest.slice(colon + 1)] : [noDigest, '']
}

function typeOf(i: ImageListing): string {
  const m = /^(oci|oci-archive|docker-archive|dir):/.exec(typeof i.source === 'string' ? i.source : i.reference)
  return m ? m[1] : 'docker'
}

export default class ImagesList extends BaseCommand {
  static override aliases = ['images:ls']
  static override summary = 'List the images in the store, with the deployments that use them'
  static override description = `Every name printed (REFERENCE, and the ID: the manifest digest's first 12 hex digits) is accepted by images info, images delete, install and mount. --filter KEY=VALUE keeps the images whose KEY contains VALUE (case-insensitive; repeatable, all must match), as atomic's images list did. Keys: repo (or repository), tag, id (or image, digest: the manifest or config digest), created, size, type (the transport it came from: docker, oci, oci-archive, docker-archive, dir), dangling (always false: every stored image has a name), reference, used (true or false: a deployment uses it).`
  static override examples = ['<%= config.bin %> images list', '<%= config.bin %> images list -f repo=etcd', '<%= config.bin %> images list --quiet']
  static override flags = {
    root: storeRootFlag,
    filter: Flags.string({ char: 'f', description: 'KEY=VALUE: only images whose KEY contains VALUE (repeatable)', multiple: true, default: [] }),
    quiet: Flags.boolean({ char: 'q', description: 'print only the image IDs, one a line', default: false }),
    noheading: Flags.boolean({ char: 'n', description: 'do not print the heading line', default: false }),
    'no-trunc': Flags.boolean({ description: 'print whole digests', default: false }),
    all: Flags.boolean({ char: 'a', description: 'accepted for atomic scripts: the store has no intermediate images, every image is listed', default: false }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(ImagesList)
    const filters = parseFilters(flags.filter, FILTER_KEYS, FILTER_ALIASES)
    const all = await listImages(this.contextFor(flags))
    const images = all.filter((i) =>
      passes(filters, (k) => {
        const [repo, tag] = repoTag(i.reference)
        switch (k) {
          case 'repo':
            return repo
          case 'tag':
            return tag
          case 'id':
            return [i.manifestDigest, i.configDigest]
          case 'created':
            return i.created ?? ''
          case 'size':
            return [formatBytes(i.size), String(i.size)]
          case 'type':
            return typeOf(i)
          case 'dangling':
            return 'false'
          case 'used':
            return String(i.usedBy.length > 0)
          default:
            return i.reference
        }
      }),
    )
    const id = (i: ImageListing) => (flags['no-trunc'] ? i.manifestDigest : i.manifestDigest.slice(0, 19))
    if (flags.json) {
      this.output(flags, images, () => [])
      return
    }
    if (flags.quiet) {
      for (const i of images) process.stdout.write(`${id(i)}\n`)
      return
    }
    this.output(flags, images, () => {
      if (all.length === 0) return ['no images']
      if (images.length === 0) return ['no images match']
      const rows = images.map((i) => [i.reference, id(i), formatBytes(i.size), i.created ?? '-', i.usedBy.join(',') || '-'])
      return table(flags.noheading ? undefined : ['REFERENCE', 'ID', 'SIZE', 'CREATED', 'USED BY'], rows)
    })
  }
}
