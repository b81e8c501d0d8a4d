import { Flags } from '@oclif/core'
import { BaseCommand } from '../cli/base-command'
import { storeRootFlag } from '../cli/root-flag'
import { ExitCode } from '../errors'
import { fsckStore } from '../ops/store-maintenance'

export default class Fsck extends BaseCommand {
  static override summary = 'Check every object, tree, commit, layer record, blob and image ref of the store'
  static override description = `Re-hashes every object against its name and checks every reference. Exit 0 when the store is
sound, 6 when problems remain. With --repair, corrupt entries are removed together with everything
that depends on them (image refs, layer records, commits, trees): pull those images again. A deployment
whose checkout shares a corrupt object is named; reinstall it.`
  static override flags = {
    root: storeRootFlag,
    repair: Flags.boolean({ description: 'remove corrupt objects and what depends on them (waits until no other sysctr uses the store)', default: false }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Fsck)
    const r = await fsckStore(this.contextFor(flags), { repair: flags.repair })
    this.output(flags, r, () => {
      const lines = [
        r.problems.length === 0
          ? `store is sound: ${r.objectsChecked} entries checked`
          : `${r.problems.length} problem${r.problems.length === 1 ? '' : 's'} in ${r.objectsChecked} entries checked` +
            (flags.repair ? `; ${r.removed.length} entries removed, ${r.remaining} problem${r.remaining === 1 ? '' : 's'} remain` : ''),
      ]
      for (const p of r.problems) lines.push(`  ${p.kind}: ${p.path}: ${p.what}${p.repaired ? ' (removed)' : ''}`)
      for (const x of r.removed) if (!r.problems.some((p) => p.path === x.path)) lines.push(`  removed ${x.path} (${x.why})`)
      const refs = r.removed.filter((x) => x.path.startsWith('refs/'))
      if (refs.length) lines.push(`pull again: ${refs.map((x) => decodeURIComponent(x.path.slice('refs/images/'.length))).join(', ')}`)
      if (r.affected.length) lines.push(`reinstall: ${r.affected.map((a) => a.name).join(', ')}`)
      if (!flags.repair && r.problems.length) lines.push('run sysctr fsck --repair to remove what is corrupt')
      return lines
    })
    if (r.remaining > 0) process.exitCode = ExitCode.content
  }
}
