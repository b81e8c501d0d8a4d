import { Flags } from '@oclif/core'
import { BaseCommand } from '../cli/base-command'
import { provision, provisionFailedError, PROVISION_DIR } from '../ops/provision'

export default class Provision extends BaseCommand {
  static override summary = 'Install (and start) the system containers listed in /etc/sysctr/provision.d'
  static override description = `Reads ${PROVISION_DIR}/*.conf (one container per file, INI: image, name, set.KEY or [values],
enable, start, tls-verify, runtime), installs each one not yet installed (an entry already installed
from the same image with the same values is left alone), then starts those with start = true.
A failing entry is reported on stderr (the journal, under sysctr-provision.service) and the others
go on; the exit code is non-zero when any failed. With --root DIR it provisions the tree at DIR
offline: nothing starts, the enabled units start when DIR boots.`

  static override examples = ['<%= config.bin %> provision', '<%= config.bin %> provision --root /srv/image-root']

  static override flags = {
    root: Flags.string({ description: 'provision the OS tree at DIR (offline: files and enablement links only)' }),
    dir: Flags.string({ description: 'directory of .conf entries, as seen inside the root', default: PROVISION_DIR }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(Provision)
    const ctx = this.contextFor(flags)
    const r = await provision(ctx, { dir: flags.dir })
    this.output(flags, r, () => [
      ...r.entries.map((e) => `${e.file}: ${e.name ?? '?'} ${e.outcome}${e.error ? ` (${e.error.message})` : ''}`),
      ...r.started.map((s) => `${s.unit}: start ${s.result}`),
      r.entries.length === 0 ? `nothing to provision (no .conf in ${flags.dir})` : '',
    ].filter((l) => l !== ''))
    const err = provisionFailedError(r)
    if (err) throw err
  }
}
