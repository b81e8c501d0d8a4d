/**
 * Operations never print; they report through this. Messages go to stderr
 * (stdout carries only the result): as lines, or with --json as JSON lines;
 * --quiet drops everything but warnings and errors. Pull progress: see
 * progress.ts (redrawn in place on a terminal, a line per layer start and
 * end on a pipe, JSON lines with --json, nothing with --quiet).
 */
import type { Reporter } from '../ops/context'
import { ProgressRenderer, ProgressStream } from './progress'

export function makeReporter(opts: { json: boolean; quiet: boolean; stream?: ProgressStream; now?: () => number }): Reporter {
  const out: ProgressStream = opts.stream ?? process.stderr
  if (opts.quiet) return { info() {}, warn: (m) => void out.write(`warning: ${m}\n`) }
  if (opts.json) {
    const progress = new ProgressRenderer(out, { mode: 'json', now: opts.now })
    return {
      info: (message) => void out.write(JSON.stringify({ level: 'info', message }) + '\n'),
      warn: (message) => void out.write(JSON.stringify({ level: 'warning', message }) + '\n'),
      progress: (e) => progress.event(e),
    }
  }
  const progress = new ProgressRenderer(out, { mode: 'human', now: opts.now })
  return {
    info: (m) => progress.message(m),
    warn: (m) => progress.message(`warning: ${m}`),
    progress: (e) => progress.event(e),
  }
}
