/**
 * The one base command: shared flags (--json, --debug), the operations
 * context built once from flags and environment, and error reporting.
 * Commands stay thin: parse, call one operation, print a summary or JSON.
 */
import { Command, Flags, Interfaces } from '@oclif/core'
import { buildContext, buildRootContext, ContextOptions, OpsContext } from '../ops/context'
import { buildUserContext } from '../ops/user-context'
import { UsageError } from '../errors'
import { makeReporter } from './reporter'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>

export abstract class BaseCommand extends Command {
  static override baseFlags = {
    json: Flags.boolean({ description: 'print the result (or the error) as JSON on stdout', default: false }),
    debug: Flags.boolean({ description: 'print the cause chain of an error', default: false }),
    quiet: Flags.boolean({ char: 'q', description: 'print nothing but errors', default: false }),
    user: Flags.boolean({
      description: "user mode: the calling user's own containers, store and systemd (rootless; see README \"User mode\")",
      default: false,
    }),
  }

  /** Build the operations context (paths, systemd connection, reporter). */
  protected context(flags: { json?: boolean; quiet?: boolean; user?: boolean }, opts: Partial<ContextOptions> = {}): OpsContext {
    if (flags.user) return buildUserContext({ ...opts, reporter: makeReporter({ json: !!flags.json, quiet: !!flags.quiet }) })
    return buildContext({ ...opts, reporter: makeReporter({ json: !!flags.json, quiet: !!flags.quiet }) })
  }

  /** The context for `--root DIR` (a composed OS tree, no running systemd) when given, else the host's. */
  protected contextFor(flags: { json?: boolean; quiet?: boolean; root?: string; user?: boolean }): OpsContext {
    if (flags.root && flags.user) throw new UsageError('usage.root-user', '--root and --user cannot be used together', { hint: '--root composes an OS tree (system containers); --user installs for the calling user' })
    if (!flags.root) return this.context(flags)
    return buildRootContext(flags.root, { reporter: makeReporter({ json: !!flags.json, quiet: !!flags.quiet }) })
  }

  /** Print a result: JSON when asked, else the human lines. */
  protected output(flags: { json?: boolean; quiet?: boolean }, data: unknown, human: () => string[]): void {
    if (flags.json) {
      process.stdout.write(JSON.stringify(data, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n')
      return
    }
    if (flags.quiet) return
    for (const line of human()) process.stdout.write(line + '\n')
  }
}
