import { describe, expect, it } from 'vitest'
import { ProgressRenderer } from '../../src/cli/progress'
import { makeReporter } from '../../src/cli/reporter'
import type { ProgressEvent } from '../../src/ops/context'

function fakeStream(isTTY: boolean) {
  const writes: string[] = []
  return { isTTY, columns: 120, writes, write: (s: string) => writes.push(s), text: () => writes.join('') }
}

function fakeClock() {
  let t = 1_000_000
  return { now: () => t, advance: (ms: number) => (t += ms) }
}

const A = 'sha256:' + 'a'.repeat(64)
const B = 'sha256:' + 'b'.repeat(64)
const C = 'sha256:' + 'c'.repeat(64)
const base = (digest: string, index: number, total: number) => ({ digest, index, count: 3, total })

/** A pull of three layers: C already in the store, A and B fetched side by side. */
function script(r: { event(e: ProgressEvent): void }, clock: ReturnType<typeof fakeClock>): void {
  r.event({ kind: 'skipped', ...base(C, 2, 10) })
  r.event({ kind: 'start', ...base(A, 0, 2048) })
  r.event({ kind: 'start', ...base(B, 1, 4096) })
  for (let i = 1; i <= 8; i++) {
    clock.advance(25) // 40 byte events a second: more than the redraw limit
    r.event({ kind: 'bytes', ...base(A, 0, 2048), bytes: i * 256 })
  }
  r.event({ kind: 'done', ...base(A, 0, 2048), bytes: 2048 })
  clock.advance(1000)
  r.event({ kind: 'bytes', ...base(B, 1, 4096), bytes: 4096 })
  r.event({ kind: 'done', ...base(B, 1, 4096), bytes: 4096 })
}

describe('progress renderer', () => {
  it('on a terminal: a line per layer and an overall line, redrawn in place at most every 100 ms', () => {
    const out = fakeStream(true)
    const clock = fakeClock()
    const r = new ProgressRenderer(out, { mode: 'human', now: clock.now })
    script(r, clock)
    const text = out.text()
    // cursor up to the start of the block, then clear below
    expect(text).toMatch(/\x1b\[\d+F\x1b\[0J/)
    expect(text).toContain('aaaaaaaaaaaa [')
    expect(text).toMatch(/1\.0 KiB \/ 2\.0 KiB \d+(\.\d)? KiB\/s/)
    expect(text).toContain('1 already in the store')
    // 8 byte events over 200 ms: 2 redraws from bytes, plus skipped, 2 starts, 2 dones, the last bytes, and the final one
    const redraws = out.writes.filter((w) => w.includes('\x1b[0J')).length
    expect(redraws).toBeLessThanOrEqual(9)
    const last = out.writes[out.writes.length - 1]!
    expect(last).toContain('2/2 layers fetched, 1 already in the store: 6.0 KiB / 6.0 KiB')
    expect(last).not.toContain('aaaaaaaaaaaa [') // the final state keeps only the overall line
  })

  it('on a pipe: one line per layer start and end, no escape sequences', () => {
    const out = fakeStream(false)
    const clock = fakeClock()
    script(new ProgressRenderer(out, { mode: 'human', now: clock.now }), clock)
    expect(out.text()).not.toContain('\x1b')
    expect(out.text().trimEnd().split('\n')).toEqual([
      'layer 3/3 cccccccccccc already in the store',
      'fetching layer 1/3 aaaaaaaaaaaa (2.0 KiB)',
      'fetching layer 2/3 bbbbbbbbbbbb (4.0 KiB)',
      'fetched layer 1/3 aaaaaaaaaaaa (2.0 KiB in 0.2 s)',
      'fetched layer 2/3 bbbbbbbbbbbb (4.0 KiB in 1.2 s)',
    ])
  })


  it('--json reporter: progress as JSON lines on the stream', () => {
    const out = fakeStream(true)
    const clock = fakeClock()
    const rep = makeReporter({ json: true, quiet: false, stream: out, now: clock.now })
    script({ event: (e) => rep.progress!(e) }, clock)
    const lines = out.text().trimEnd().split('\n').map((l) => JSON.parse(l) as ProgressEvent & { level: string })
    expect(lines.every((l) => l.level === 'progress')).toBe(true)
    expect(lines.filter((l) => l.kind === 'done').map((l) => l.digest)).toEqual([A, B])
    const bytes = lines.filter((l) => l.kind === 'bytes')
    expect(bytes.length).toBeGreaterThan(0)
    expect(bytes.length).toBeLessThan(9)
  })

  it('--quiet: nothing', () => {
    const out = fakeStream(true)
    const clock = fakeClock()
    const rep = makeReporter({ json: false, quiet: true, stream: out, now: clock.now })
    script({ event: (e) => rep.progress?.(e) }, clock)
    rep.info('hello')
    expect(out.writes).toEqual([])
  })

  it('messages on a terminal appear above the block', () => {
    const out = fakeStream(true)
    const clock = fakeClock()
    const rep = makeReporter({ json: false, quiet: false, stream: out, now: clock.now })
    rep.progress!({ kind: 'start', ...base(A, 0, 2048) })
    rep.warn('slow registry')
    const last = out.writes[out.writes.length - 1]!
    expect(last).toMatch(/^\x1b\[2F\x1b\[0Jwarning: slow registry\naaaaaaaaaaaa \[/)
  })
})
