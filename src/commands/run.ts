import { Args, Flags } from '@oclif/core'
import { BaseCommand, commandAfterName } from '../cli/base-command'
import { execInContainer, runImage, startContainer } from '../ops/run'
import { Deployments } from '../deployment/deployments'

export default class Run extends BaseCommand {
  static override summary = 'Start an installed container (over D-Bus, waiting for the job), or run COMMAND inside the running one'
  static override description = `Without COMMAND: starts NAME's unit as systemctl start does and waits for the job's result.
With COMMAND: runs it in the running container (RUNTIME exec NAME COMMAND...), with stdin, stdout and
stderr passed through (a TTY when stdin is one) and its exit status as sysctr's. NAME may also be an
image in the store that is not installed (Atomic's atomic run IMAGE): it runs once on a throwaway copy,
with COMMAND as its process when given, and nothing is installed.`

  static override examples = ['<%= config.bin %> run etcd', '<%= config.bin %> run etcd etcdctl endpoint health']
  static override strict = false
  static override args = {
    name: Args.string({ description: 'container name', required: true }),
    command: Args.string({ description: 'command (and its arguments) to run inside the running container', required: false }),
  }

  static override flags = {
    tty: Flags.boolean({ description: 'allocate a TTY for COMMAND (default: when stdin is a TTY)', allowNo: true }),
    set: Flags.string({ description: 'IMAGE only: template value KEY=VALUE (repeatable), as at install', multiple: true, multipleNonGreedy: true, default: [] }),
  }

  async run(): Promise<void> {
    const { args, argv, flags } = await this.parse(Run, commandAfterName(this.argv, ['--set']))
    const command = (argv as string[]).slice(1)
    const ctx = this.context(flags)
    // Not an installed container: an image in the store, run once (Atomic's atomic run IMAGE [COMMAND]).
    const installed = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(args.name) && (await new Deployments(ctx.paths.containersDir).active(args.name)) !== undefined
    if (!installed && (command.length > 0 || /[/:@]/.test(args.name) || flags.set.length > 0)) {
      process.exitCode = await runImage(ctx, args.name, command, { set: flags.set })
      return
    }
    if (command.length > 0) {
      process.exitCode = await execInContainer(ctx, args.name, command, { tty: flags.tty })
      return
    }
    const r = await startContainer(ctx, args.name)
    this.output(flags, r, () => [`started ${r.unit}: ${r.result} (${r.activeState}/${r.subState})`])
  }
}
