/**
 * Process entry: run oclif, turn any error into one line on stderr (or a JSON
 * object on stdout with --json) and a documented exit code. A stack trace is
 * printed only for internal errors (exit 1) or with --debug.
 */
import { Config, flush, Interfaces, Plugin, run, settings } from '@oclif/core'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ExitCode, SysctrError, toSysctrError, UsageError } from '../errors'

/**
 * Startup: `npm run build` bundles this module with every command
 * (scripts/bundle.js: dist/bundle/sysctr.js, which package.json's
 * `oclif.commands` names, strategy 'explicit') and writes
 * `oclif.manifest.json` in the package root; with both, oclif evaluates only
 * the command that runs. Without the bundle (dist/ from `tsc` alone, or newer
 * than the bundle: bin/sysctr decides) oclif loads the commands from
 * dist/commands instead, and uses the manifest only if its fingerprint (sha256
 * of dist/commands and dist/cli) matches the compiled code; a stale one is
 * ignored, so a new or changed command is never hidden.
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

/** The package.json of `root` with oclif finding the commands in dist/commands (no bundle). */
function unbundledPjson(root: string): Record<string, unknown> & { oclif: Record<string, unknown> } {
  const pjson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, unknown> & { oclif?: Record<string, unknown> }
  // The hook and help class from dist/ too (package.json names them in the bundle).
  return {
    ...pjson,
    oclif: { ...pjson.oclif, commands: './dist/commands', hooks: { command_not_found: './dist/cli/hooks/command-not-found' }, helpClass: './dist/cli/help' },
  }
}

/** What to hand oclif's run() without the bundle: a config whose commands come from dist/commands. */
async function loadOptions(root: string): Promise<Config> {
  const pjson = unbundledPjson(root) as ConstructorParameters<typeof Plugin>[0]['pjson']
  const plugin = new Plugin({ root, type: 'core', isRoot: true, pjson, ignoreManifest: manifestState(root) !== 'fresh' })
  await plugin.load()
  return Config.load({ root, pjson, plugins: new Map([[plugin.name, plugin]]) })
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

/** `bundled`: running from dist/bundle/sysctr.js (bin/sysctr), whose COMMANDS package.json names. */
export async function main(argv: string[], root: string, opts: { bundled?: boolean } = {}): Promise<void> {
  let code: number = ExitCode.ok
  // Compiled JavaScript only: oclif would otherwise look for TypeScript sources
  // (tsconfig.json, ts-node) when NODE_ENV is test or development.
  settings.enableAutoTranspile = false
  try {
    // Bundled: package.json read here, in one synchronous call (oclif would look for the
    // package root and read it with a few asynchronous calls).
    await run(argv, opts.bundled ? { root, pjson: JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Interfaces.PJSON } : await loadOptions(root))
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
