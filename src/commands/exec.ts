import { Args, Flags } from '@oclif/core'
import { BaseCommand, commandAfterName } from '../cli/base-command'
import { execInContainer } from '../ops/run'

export default class Exec extends BaseCommand {
  static override summary = 'Run COMMAND inside a running container (the same as sysctr run NAME COMMAND...)'
  static override description = `Runs RUNTIME exec NAME COMMAND... with stdin, stdout and stderr passed through (a TTY when stdin
is one); sysctr exits with COMMAND's status.`

  static override examples = ['<%= config.bin %> exec etcd etcdctl endpoint health', '<%= config.bin %> exec etcd sh']
  static override strict = false
  static override args = {
    name: Args.string({ description: 'container name', required: true }),
    command: Args.string({ description: 'command (and its arguments)', required: true }),
  }

  static override flags = {
    tty: Flags.boolean({ description: 'allocate a TTY (default: when stdin is a TTY)', allowNo: true }),
  }

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Exec, commandAfterName(this.argv))
    process.exitCode = await execInContainer(this.context(flags), args.name, (argv as string[]).slice(1), { tty: flags.tty })
  }
}
