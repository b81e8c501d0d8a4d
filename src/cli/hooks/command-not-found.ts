/**
 * oclif's command_not_found hook (loaded only when the words typed name no
 * command): `help [COMMAND...]` shows that command's help, anything else is
 * a usage error that names what was typed and the nearest commands
 * (src/cli/suggest.ts).
 */
import { type Hook, loadHelpClass } from '@oclif/core'
import { resolveWords, unknownCommandError } from '../suggest'

const hook: Hook<'command_not_found'> = async function ({ id, argv, config }) {
  const words = [...id.split(':'), ...(argv ?? [])]
  const ids = [...config.commandIDs, 'help']
  if (words[0] === 'help') {
    const rest = words.slice(1).filter((w) => !w.startsWith('-'))
    if (rest.length > 0 && resolveWords(ids, rest).unknown !== undefined) throw unknownCommandError(config.bin, ids, rest, (i) => config.commands.find((c) => c.aliases.includes(i))?.id ?? i)
    const Help = await loadHelpClass(config)
    await new Help(config, config.pjson.oclif.helpOptions).showHelp(rest)
    return
  }
  throw unknownCommandError(config.bin, ids, words, (i) => config.commands.find((c) => c.aliases.includes(i))?.id ?? i)
}

export default hook
