/**
 * oclif's parse errors (missing argument, unknown flag, bad option value) as
 * one-line usage errors (exit 2) that name the command as typed and end with
 * a hint naming that command's own --help.
 */
import { UsageError } from '../errors'
import { editDistance } from './suggest'

interface ParseErrorLike {
  message: string
  parse?: unknown
  oclif?: { exit?: number }
  args?: unknown[]
  flags?: unknown[]
}

const isParseError = (err: unknown): err is ParseErrorLike =>
  !!err && typeof err === 'object' && 'parse' in err && typeof (err as ParseErrorLike).message === 'string'

/** One line from oclif's multi-line message (drops its "See more help" and "Note:" lines). */
export function oneLine(message: string): string {
  return message
    .replace(/\n\s*Note: [\s\S]*$/, '')
    .split('\n')
    .map((l) => l.replace(/\x1b\[[0-9;]*m/g, '').trim())
    .filter((l) => l !== '' && !l.startsWith('See more help'))
    .join(' ')
    .replace(/^The following errors? occurred: /, '')
}

/**
 * The usage error for a parse error of `command` (as typed, e.g. "images
 * info"), or undefined when `err` is not one. `flagNames` are the command's
 * flags, for a "did you mean" on an unknown one.
 */
export function usageFromParseError(err: unknown, bin: string, command: string, flagNames: string[] = []): UsageError | undefined {
  if (!isParseError(err)) return undefined
  const hint = `see \`${bin} ${command} --help\``
  const args = Array.isArray(err.args) ? err.args : []
  if (args.length > 0 && typeof args[0] === 'object') {
    const missing = (args as { name?: string; description?: string }[]).map((a) => `missing argument ${String(a.name ?? '').toUpperCase()}${a.description ? ` (${a.description})` : ''}`)
    return new UsageError('usage.missing-argument', missing.join('; '), { hint, data: { missing: args.map((a) => (a as { name?: string }).name) } })
  }
  const flags = Array.isArray(err.flags) ? (err.flags as string[]) : []
  if (flags.length > 0) {
    const near = flags
      .map((f) => {
        const bare = f.replace(/^-+/, '').replace(/=.*$/, '')
        const best = flagNames.map((n) => ({ n, d: editDistance(bare, n) })).sort((a, b) => a.d - b.d)[0]
        return best && best.d <= Math.max(1, Math.floor(bare.length / 3)) ? `--${best.n}` : undefined
      })
      .filter((n): n is string => n !== undefined)
    const msg = `unknown flag${flags.length === 1 ? '' : 's'} ${flags.join(', ')} for \`${bin} ${command}\``
    return new UsageError('usage.unknown-flag', msg, { hint: near.length > 0 ? `did you mean ${near.join(' or ')}? ${hint}` : hint })
  }
  return new UsageError('usage', oneLine(err.message), { hint })
}
