/**
 * Pull progress on stderr, in three shapes:
 * - a terminal (`isTTY`): one line per layer being fetched (bytes, total,
 *   rate) and an overall line, redrawn in place with ANSI cursor movement at
 *   most every `intervalMs` (default 100 ms; starts and ends always redraw);
 *   messages printed meanwhile appear above the block;
 * - a pipe: one line when a layer starts and one when it is done;
 * - JSON lines (`{"level":"progress",...event}`), byte events thinned to the
 *   same interval.
 * The clock and the stream are injected (tests use a fake of each).
 */
import type { ProgressEvent } from '../ops/context'
import { formatBytes } from '../util/format-bytes'

export interface ProgressStream {
  write(chunk: string): unknown
  isTTY?: boolean
  columns?: number
}

interface LayerState {
  digest: string
  index: number
  count: number
  total: number
  bytes: number
  started: number
  done: boolean
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12)

export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`
}

export class ProgressRenderer {
  private readonly layers = new Map<string, LayerState>()
  private drawnLines = 0
  private lastDraw = -Infinity
  private lastJson = -Infinity
  private readonly intervalMs: number
  private readonly now: () => number
  private readonly tty: boolean
  private count = 0
  private skipped = 0
  private firstStart?: number

  constructor(
    private readonly out: ProgressStream,
    private readonly opts: { mode: 'human' | 'json'; now?: () => number; intervalMs?: number } = { mode: 'human' },
  ) {
    this.now = opts.now ?? Date.now
    this.intervalMs = opts.intervalMs ?? 100
    this.tty = opts.mode === 'human' && out.isTTY === true
  }

  /** A message line (info/warning), kept above the progress block on a terminal. */
  message(line: string): void {
    if (!this.tty || this.drawnLines === 0) {
      this.out.write(`${line}\n`)
      return
    }
    this.out.write(this.clearBlock() + `${line}\n` + this.block())
  }

  event(e: ProgressEvent): void {
    const t = this.now()
    this.count = e.count
    if (this.opts.mode === 'json') return this.json(e, t)
    if (e.kind === 'skipped') {
      this.skipped++
      if (!this.tty) this.out.write(`layer ${e.index + 1}/${e.count} ${short(e.digest)} already in the store\n`)
      else {
        this.redraw(t)
        this.finishIfComplete()
      }
      return
    }
    if (e.kind === 'start') {
      this.firstStart ??= t
      this.layers.set(e.digest, { digest: e.digest, index: e.index, count: e.count, total: e.total, bytes: 0, started: t, done: false })
      if (!this.tty) this.out.write(`fetching layer ${e.index + 1}/${e.count} ${short(e.digest)} (${formatBytes(e.total)})\n`)
      else this.redraw(t)
      return
    }
    const l = this.layers.get(e.digest)
    if (!l) return
    l.bytes = e.bytes
    if (e.kind === 'bytes') {
      if (this.tty && t - this.lastDraw >= this.intervalMs) this.redraw(t)
      return
    }
    l.done = true
    if (!this.tty) {
      const secs = Math.max(0, t - l.started) / 1000
      this.out.write(`fetched layer ${e.index + 1}/${e.count} ${short(e.digest)} (${formatBytes(e.total)} in ${secs.toFixed(1)} s)\n`)
    } else {
      this.redraw(t)
      this.finishIfComplete()
    }
  }

  private finishIfComplete(): void {
    const done = [...this.layers.values()].filter((l) => l.done).length
    if (this.count > 0 && done + this.skipped >= this.count) this.finish()
  }

  /** Leave the block as it is (final state drawn) and start fresh below it. */
  finish(): void {
    if (this.tty && this.drawnLines > 0) this.out.write(this.clearBlock() + this.block(true))
    this.drawnLines = 0
    this.layers.clear()
    this.skipped = 0
    this.firstStart = undefined
  }

  private json(e: ProgressEvent, t: number): void {
    if (e.kind === 'bytes') {
      if (t - this.lastJson < this.intervalMs) return
      this.lastJson = t
    }
    this.out.write(JSON.stringify({ level: 'progress', ...e }) + '\n')
  }

  private redraw(t: number): void {
    this.lastDraw = t
    this.out.write(this.clearBlock() + this.block())
  }

  /** Move to the first line of the block drawn last and clear to the end of the screen. */
  private clearBlock(): string {
    const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}F` : ''
    this.drawnLines = 0
    return `${up}\x1b[0J`
  }

  private block(final = false): string {
    const t = this.now()
    const lines: string[] = []
    let bytes = 0
    let total = 0
    let done = 0
    const sorted = [...this.layers.values()].sort((a, b) => a.index - b.index)
    for (const l of sorted) {
      bytes += l.bytes
      total += l.total
      if (l.done) done++
      if (final && l.done) continue
      lines.push(this.layerLine(l, t))
    }
    const elapsed = this.firstStart === undefined ? 0 : (t - this.firstStart) / 1000
    const rate = elapsed > 0 ? ` ${formatRate(bytes / elapsed)}` : ''
    const reused = this.skipped ? `, ${this.skipped} already in the store` : ''
    lines.push(`${done}/${sorted.length} layers fetched${reused}: ${formatBytes(bytes)} / ${formatBytes(total)}${rate}`)
    this.drawnLines = final ? 0 : lines.length
    // A terminal that reports 0 columns (some serial consoles, `script`) gets 80.
    const width = Math.max(20, (this.out.columns || 80) - 1)
    return lines.map((s) => (s.length > width ? s.slice(0, width) : s) + '\n').join('')
  }

  private layerLine(l: LayerState, t: number): string {
    const secs = (t - l.started) / 1000
    const pct = l.total > 0 ? Math.floor((l.bytes / l.total) * 100) : 100
    const barWidth = 20
    const filled = Math.min(barWidth, Math.floor((pct / 100) * barWidth))
    const bar = '='.repeat(filled) + (filled < barWidth ? '>' : '') + ' '.repeat(Math.max(0, barWidth - filled - 1))
    const state = l.done ? 'done' : secs > 0 ? formatRate(l.bytes / secs) : ''
    return `${short(l.digest)} [${bar}] ${formatBytes(l.bytes)} / ${formatBytes(l.total)} ${state}`.trimEnd()
  }
}
