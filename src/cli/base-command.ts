/**
 * The one base command: shared flags (--json, --debug), the operations
 * context built once from flags and environment, and error reporting.
 * Commands stay thin: parse, call one operation, print a summary or JSON.
 */
import { Command, Flags, Interfaces } from '@oclif/core'
import { UsageError } from '../errors'
import { requireRoot } from './privilege'
import { buildContext, buildRootContext, ContextOptions, OpsContext } from '../ops/context'
import { buildUserContext } from '../ops/user-context'
import { makeReporter } from './reporter'
import { bareBooleanFlags } from './source-flags'

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

  /** A bare --tls-verify means =true, as in skopeo (source-flags.ts). */
  protected override async init(): Promise<void> {
    await super.init()
    this.argv = bareBooleanFlags(this.argv)
  }

  /** Build the operations context (paths, systemd connection, reporter). */
  protected context(flags: { json?: boolean; quiet?: boolean; user?: boolean }, opts: Partial<ContextOptions> = {}): OpsContext {
    if (flags.user) return buildUserContext({ ...opts, reporter: makeReporter({ json: !!flags.json, quiet: !!flags.quiet }) })
    if ((this.constructor as typeof BaseCommand).needsRoot) requireRoot({ command: this.commandName })
    return buildContext({ ...opts, reporter: makeReporter({ json: !!flags.json, quiet: !!flags.quiet }) })
  }

  /**
   * Whether the command works on the host's system state (store, containers,
   * units, the system bus) and so needs root without --root DIR. Checked when
   * the context is built, before anything is touched (src/cli/privilege.ts).
   */
  static needsRoot = true

  /** The command as typed ("containers list"), for messages. */
  protected get commandName(): string {
    return (this.id ?? '').replaceAll(':', ' ')
  }

  /** The context for `--root DIR` (a composed OS tree, no running systemd) when given, else the host's. */
  protected contextFor(flags: { json?: boolean; quiet?: boolean; root?: string; user?: boolean }): OpsContext {
    if (flags.root && flags.user) throw new UsageError('usage.root-user', '--root and --user cannot be used together', { hint: '--root composes an OS tree (system containers); --user installs for the calling user' })
    if (!flags.root) return this.context(flags)
    return buildRootContext(flags.root, { reporter: makeReporter({ json: !!flags.json, quiet: !!flags.quiet }) })
  }

  /** Parse errors become one-line usage errors naming this command's --help; the rest go to main (src/cli/main.ts). */
  override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    // Loaded on the error path only (CLI start time).
    const { usageFromParseError } = await import('./parse-errors')
    const ctor = this.constructor as typeof BaseCommand
    const flagNames = Object.keys({ ...ctor.baseFlags, ...(ctor.flags ?? {}) })
    const usage = usageFromParseError(err, this.config.bin, this.commandName, flagNames)
    if (usage) throw usage
    // A usage error the command raised without a hint of its own points at its --help.
    if (err instanceof UsageError && !err.hint) err.hint = `see \`${this.config.bin} ${this.commandName} --help\``
    throw err
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

/**
 * `sysctr run|exec [FLAGS] NAME COMMAND...`: everything after NAME is the
 * command's, flags included (`sh -c ...`), as Atomic's `run` took it: a `--`
 * is put after NAME unless there is one already.
 */
export function commandAfterName(argv: string[], valueFlags: readonly string[] = []): string[] {
  // The first argument that is neither a flag nor the value of a flag that takes one (`--set KEY=VALUE`).
  let at = -1
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') break
    if (valueFlags.includes(argv[i])) {
      i++
      continue
    }
    if (!argv[i].startsWith('-')) {
      at = i
      break
    }
  }
  if (at < 0 || argv.slice(0, at).includes('--') || argv[at + 1] === '--' || at === argv.length - 1) return argv
  return [...argv.slice(0, at + 1), '--', ...argv.slice(at + 1)]
}
