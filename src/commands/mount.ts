import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../cli/base-command'
import { mount } from '../ops/mount'

export default class Mount extends BaseCommand {
  static override summary = "Mount a container's rootfs or an image read-only at DIR (for scanners)"
  static override description = `NAME: a read-only bind of the container's active rootfs. IMAGE: a fresh hardlink checkout of an
image in the store, bound read-only. While mounted, images delete and images prune keep the image.
--shared is Atomic's flag (a shared SELinux label): sysctr labels nothing, so it makes the same view on a
host without SELinux and is refused on one with SELinux enabled. --live is refused, as Atomic refused it
for system containers.`
  static override args = {
    target: Args.string({ description: 'installed container name, or a stored image: reference, short name or ID', required: true }),
    dir: Args.string({ description: 'mount point (created if missing)', required: true }),
  }

  static override flags = {
    shared: Flags.boolean({ description: "Atomic's --shared: a view other containers may read (see the description)", default: false }),
    live: Flags.boolean({ description: 'refused: system containers are mounted read-only only (as Atomic)', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Mount)
    const r = await mount(this.context(flags), args.target, args.dir, { shared: flags.shared, live: flags.live })
    // JSON field names as everywhere: `created` (the record on disk keeps createdAt).
    const { createdAt, ...rest } = r
    this.output(flags, { ...rest, created: createdAt }, () => [`mounted ${r.kind} ${r.target} read-only${r.shared ? ', shared (no SELinux on this host: nothing to label)' : ''} at ${r.dir}`])
  }
}
