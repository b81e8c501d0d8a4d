/**
 * Process entry: run oclif, turn any error into one line on stderr (or a JSON
 * object on stdout with --json) and a documented exit code. A stack trace is
 * printed only for internal errors (exit 1) or with --debug.
 */
import { Config, flush, Plugin, run } from '@oclif/core'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ExitCode, SysctrError, toSysctrError, UsageError } from '../errors'

/**
 * Startup: with `oclif.manifest.json` in the package root (written by
 * `npm run build`, see writeManifest) oclif requires only the command that
 * runs; without it, every command module (and handlebars, dbus-next) to list
 * them. The manifest records a fingerprint (sha256 of dist/commands and
 * dist/cli); one that does not match the compiled code (`tsc` run without the
 * build script) is ignored, so a new or changed command is never hidden.
 */
export const MANIFEST = 'oclif.manifest.json'

/** sha256 over the names and contents of the compiled commands and CLI base (a few ms). */
export function commandsFingerprint(root: string): string | undefined {
  const h = createHash('sha256')
  try {
    for (const sub of ['commands', 'cli']) {
      const dir = join(root, 'dist', sub)
      const files = (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.js')).sort()
      for (const f of files) h.update(`${sub}/${f}\0`).update(readFileSync(join(dir, f))).update('\0')
    }
  } catch {
    return undefined
  }
  return h.digest('hex')
}

/** Write the oclif manifest of the package at `root` (its compiled commands). */
export async function writeManifest(root: string): Promise<string> {
  const plugin = new Plugin({ root, type: 'core', isRoot: true, ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true })
  await plugin.load()
  const path = join(root, MANIFEST)
  writeFileSync(path, JSON.stringify({ ...plugin.manifest, sysctrFingerprint: commandsFingerprint(root) }, null, 2) + '\n')
  return path
}

/** 'fresh', 'stale' (does not match dist/), or 'absent'. */
export function manifestState(root: string): 'fresh' | 'stale' | 'absent' {
  let recorded: unknown
  try {
    recorded = (JSON.parse(readFileSync(join(root, MANIFEST), 'utf8')) as { sysctrFingerprint?: unknown }).sysctrFingerprint
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : 'stale'
  }
  return typeof recorded === 'string' && recorded === commandsFingerprint(root) ? 'fresh' : 'stale'
}

/** What to hand oclif's run(): the root, or a config loaded without a stale manifest. */
async function loadOptions(root: string): Promise<string | Config> {
  if (manifestState(root) !== 'stale') return root
  const plugin = new Plugin({ root, type: 'core', isRoot: true, ignoreManifest: true })
  await plugin.load()
  return Config.load({ root, plugins: new Map([[plugin.name, plugin]]) })
}

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
    await run(argv, await loadOptions(root))
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
