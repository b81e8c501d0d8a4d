import { Args, Flags } from '@oclif/core'
import { BaseCommand, commandAfterName } from '../cli/base-command'
import { execInContainer, startContainer } from '../ops/run'

export default class Run extends BaseCommand {
  static override summary = 'Start an installed container (over D-Bus, waiting for the job), or run COMMAND inside the running one'
  static override description = `Without COMMAND: starts NAME's unit as systemctl start does and waits for the job's result.
With COMMAND: runs it in the running container (RUNTIME exec NAME COMMAND...), with stdin, stdout and
stderr passed through (a TTY when stdin is one) and its exit status as sysctr's.`

  static override examples = ['<%= config.bin %> run etcd', '<%= config.bin %> run etcd etcdctl endpoint health']
  static override strict = false
  static override args = {
    name: Args.string({ description: 'container name', required: true }),
    command: Args.string({ description: 'command (and its arguments) to run inside the running container', required: false }),
  }

  static override flags = {
    tty: Flags.boolean({ description: 'allocate a TTY for COMMAND (default: when stdin is a TTY)', allowNo: true }),
  }

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Run, commandAfterName(this.argv))
    const command = (argv as string[]).slice(1)
    const ctx = this.context(flags)
    if (command.length > 0) {
      process.exitCode = await execInContainer(ctx, args.name, command, { tty: flags.tty })
      return
    }
    const r = await startContainer(ctx, args.name)
    this.output(flags, r, () => [`started ${r.unit}: ${r.result} (${r.activeState}/${r.subState})`])
  }
}
