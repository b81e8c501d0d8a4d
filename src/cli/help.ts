/**
 * sysctr's help class (package.json oclif.helpClass; loaded only when help is
 * shown): descriptions unwrapped (src/cli/help-text.ts), no `[default: ]`
 * for flags without a default, and help for words that name no command is
 * the same "did you mean" usage error as running them (src/cli/suggest.ts).
 */
import { type Command, Help } from '@oclif/core'
import { shownDefault, unwrap } from './help-text'
import { resolveWords, unknownCommandError } from './suggest'

export default class SysctrHelp extends Help {
  override async showHelp(argv: string[]): Promise<void> {
    // `sysctr help COMMAND --help`: the same as `sysctr COMMAND --help`.
    if (argv[0] === 'help') argv = argv.slice(1)
    const words = argv.filter((a) => !a.startsWith('-'))
    const ids = [...this.config.commandIDs, 'help']
    if (words.length > 0 && resolveWords(ids, words).unknown !== undefined) throw unknownCommandError(this.config.bin, ids, words, (i) => this.config.commands.find((c) => c.aliases.includes(i))?.id ?? i)
    return super.showHelp(argv)
  }

  override formatCommand(command: Command.Loadable): string {
    const flags: Command.Loadable['flags'] = {}
    for (const [name, f] of Object.entries(command.flags ?? {})) {
      const copy = { ...f, description: unwrap(f.description), ...(f.summary ? { summary: unwrap(f.summary) } : {}) } as typeof f
      if ('default' in copy && shownDefault(copy.default) === undefined) delete (copy as { default?: unknown }).default
      flags[name] = copy
    }
    const args: Command.Loadable['args'] = {}
    for (const [name, a] of Object.entries(command.args ?? {})) args[name] = { ...a, description: unwrap(a.description) }
    return super.formatCommand({ ...command, description: unwrap(command.description), flags, args })
  }
}
