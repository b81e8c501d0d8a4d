/**
 * Process entry: run oclif, turn any error into one line on stderr (or a JSON
 * object on stdout with --json) and a documented exit code. A stack trace is
 * printed only for internal errors (exit 1) or with --debug.
 */
import { flush, run } from '@oclif/core'
import { ExitCode, SysctrError, toSysctrError, UsageError } from '../errors'

interface OclifLikeError {
  oclif?: { exit?: number }
  code?: string
  message: string
}

export function normaliseCliError(err: unknown): SysctrError {
  if (err instanceof SysctrError) return err
  const o = err as OclifLikeError
  if (o && typeof o === 'object' && o.oclif && typeof o.oclif.exit === 'number') {
    // oclif's own parse errors (unknown flag, missing argument, command not found).
    // One line: oclif spreads some messages (missing argument: its name and description) over several.
    const line = String(o.message ?? 'bad usage')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('See more help'))
      .join(' ')
      .replace(/^Error: /, '')
      .replace(/ Note: .*$/, '')
    return new UsageError('usage', line, { hint: 'see sysctr --help' })
  }
  return toSysctrError(err)
}

export function printError(err: SysctrError, opts: { json: boolean; debug: boolean }): void {
  if (opts.json) {
    process.stdout.write(JSON.stringify({ error: err.toJSON() }) + '\n')
    return
  }
  process.stderr.write(`error: ${err.fullMessage}\n`)
  if (err.hint) process.stderr.write(`hint: ${err.hint}\n`)
  if (opts.debug || err.exitCode === ExitCode.internal) {
    let cause: unknown = err
    while (cause) {
      const c = cause as Error
      process.stderr.write(`${c.stack ?? String(c)}\n`)
      cause = c.cause
      if (cause) process.stderr.write('caused by: ')
    }
  }
}

export async function main(argv: string[], root: string): Promise<void> {
  let code: number = ExitCode.ok
  try {
    await run(argv, root)
  } catch (err) {
    // ExitError from this.exit(): already reported.
    const o = err as OclifLikeError
    if (o && o.code === 'EEXIT' && typeof o.oclif?.exit === 'number') {
      code = o.oclif.exit
    } else {
      const e = normaliseCliError(err)
      printError(e, { json: argv.includes('--json'), debug: argv.includes('--debug') })
      code = e.exitCode
    }
  }
  if (process.exitCode !== undefined && code === ExitCode.ok) code = Number(process.exitCode)
  await flush()
  process.exit(code)
}
