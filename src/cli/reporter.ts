/**
 * Operations never print; they report through this. On a terminal the
 * messages go to stderr as lines; with --json as JSON lines on stderr (stdout
 * carries only the result); --quiet drops everything but errors.
 */
import type { Reporter } from '../ops/context'

export function makeReporter(opts: { json: boolean; quiet: boolean }): Reporter {
  if (opts.quiet) return { info() {}, warn: (m) => process.stderr.write(`warning: ${m}\n`) }
  if (opts.json) {
    return {
      info: (message) => process.stderr.write(JSON.stringify({ level: 'info', message }) + '\n'),
      warn: (message) => process.stderr.write(JSON.stringify({ level: 'warning', message }) + '\n'),
    }
  }
  return {
    info: (m) => process.stderr.write(`${m}\n`),
    warn: (m) => process.stderr.write(`warning: ${m}\n`),
  }
}
