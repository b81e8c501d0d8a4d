import { Args } from '@oclif/core'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BaseCommand } from '../cli/base-command'
import { HostError } from '../errors'

export default class Completion extends BaseCommand {
  static override summary = 'Print the shell completion script for bash, zsh or fish'
  static override description = `The scripts are generated from the same command list and help text as --help when sysctr is built. Install one:

  sysctr completion bash > /etc/bash_completion.d/sysctr
  sysctr completion zsh > /usr/local/share/zsh/site-functions/_sysctr
  sysctr completion fish > ~/.config/fish/completions/sysctr.fish

Man pages are built beside them: scripts/install-man installs them (see README "Shell completion and man pages").`
  static override examples = ['<%= config.bin %> completion bash > /etc/bash_completion.d/sysctr']
  static override args = { shell: Args.string({ description: 'the shell', options: ['bash', 'zsh', 'fish'], required: true }) }
  static override needsRoot = false

  async run(): Promise<void> {
    const { args } = await this.parse(Completion)
    const file = join(this.config.root, 'dist', 'completion', `${this.config.bin}.${args.shell}`)
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new HostError('host.no-completion', `${file}: ${err.code === 'ENOENT' ? 'not built' : err.message}`, { hint: 'npm run build writes the completion scripts' })
    })
    process.stdout.write(text)
  }
}
