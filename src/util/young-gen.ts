/**
 * Keep V8's young generation at its initial size for the rest of the process.
 *
 * A layer import allocates fast (stream chunks, tar headers, one tree entry
 * per file), and V8 answers by doubling the semi-spaces up to 16 MiB each:
 * 32 MiB of new space that stays resident, the growth of a large pull's peak
 * RSS from about 75 MiB (small) to 130 MiB (docs/benchmarks.md, 2026-12-03,
 * perf-store2). `--max-semi-space-size` is read only when the heap is set up
 * (node's command line), but the growth factor is read at each resize, so
 * setting it to 1 after start-up stops the growth: 1 MiB semi-spaces, peak
 * 105 MiB, CPU within the noise of paired runs. Only memory depends on it: a
 * V8 that ignores the flag grows the young generation as before.
 */
import { setFlagsFromString } from 'node:v8'

let done = false

export function limitYoungGeneration(): void {
  if (done) return
  done = true
  try {
    setFlagsFromString('--semi-space-growth-factor=1')
  } catch {
    /* a V8 without the flag: memory only */
  }
}
