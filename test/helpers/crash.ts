/**
 * Helpers for the crash and concurrency tests: run the built CLI (bin/sysctr)
 * as a child process, kill it with SIGKILL after a delay or when a stderr line
 * appears, and build test images big enough (a few thousand files) that a
 * pull takes long enough to be killed in the middle.
 */
import { spawn, ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { LayerEntry, writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'

export const REPO_ROOT = resolve(__dirname, '..', '..')
export const CLI = join(REPO_ROOT, 'bin', 'sysctr')

/** Why the built CLI cannot be run, or undefined. */
export function cliSkipReason(): string | undefined {
  for (const f of ['dist/cli/main.js', 'dist/commands/fsck.js', 'dist/commands/images/pull.js', 'dist/commands/images/prune.js'])
    if (!existsSync(join(REPO_ROOT, f))) return `${f} missing: run npm run build first`
  if (process.getuid?.() !== 0) return 'needs root (checkouts set owners)'
  return undefined
}

export interface CliRun {
  child: ChildProcess
  /** Resolves when the process exits. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }>
  /** Resolves when a stderr line matches (or never). */
  waitForLine(re: RegExp): Promise<string>
  kill(): void
}

export function startCli(args: string[], stateDir: string, env: NodeJS.ProcessEnv = {}): CliRun {
  const started = Date.now()
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, SYSCTR_STATE_DIR: stateDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  const watchers: { re: RegExp; resolve: (l: string) => void }[] = []
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d
    for (const w of [...watchers]) {
      const line = stderr.split('\n').find((l) => w.re.test(l))
      if (line !== undefined) {
        watchers.splice(watchers.indexOf(w), 1)
        w.resolve(line)
      }
    }
  })
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }>((res) =>
    child.once('close', (code, signal) => res({ code, signal, stdout, stderr, ms: Date.now() - started })),
  )
  return {
    child,
    done,
    waitForLine: (re) =>
      new Promise((res) => {
        const line = stderr.split('\n').find((l) => re.test(l))
        if (line !== undefined) res(line)
        else watchers.push({ re, resolve: res })
      }),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    },
  }
}

export async function runCli(args: string[], stateDir: string): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return startCli(args, stateDir).done
}

/** `n` files under `dir/` with deterministic, mildly compressible content of 0.2–6 KB. */
export function manyFiles(dir: string, n: number, seed: string): LayerEntry[] {
  const out: LayerEntry[] = [{ path: `${dir}/`, type: 'directory', mode: 0o755 }]
  for (let i = 0; i < n; i += 100) out.push({ path: `${dir}/d${i / 100}/`, type: 'directory', mode: 0o755 })
  for (let i = 0; i < n; i++) {
    const h = createHash('sha256').update(`${seed}/${i}`).digest('hex')
    const size = 200 + (parseInt(h.slice(0, 4), 16) % 6000)
    const content = `${h} ${i}\n`.repeat(Math.ceil(size / (h.length + 8))).slice(0, size)
    out.push({ path: `${dir}/d${Math.floor(i / 100)}/f${i}`, type: 'file', content, mode: i % 7 === 0 ? 0o755 : 0o644 })
  }
  return out
}

export interface CrashImages {
  layout: string
  /** base + lib + app1 */
  v1: WrittenImage
  /** base + lib + app2: shares two layers with v1 */
  v2: WrittenImage
}

/** Two images sharing their lower two layers, `filesPerLayer` files per layer. */
export async function buildCrashImages(layout: string, filesPerLayer = 700): Promise<CrashImages> {
  const base = manyFiles('usr', filesPerLayer, 'base')
  const lib = manyFiles('lib', filesPerLayer, 'lib')
  const [v1, v2] = await writeOciLayout(layout, [
    { tag: 'v1', layers: [base, lib, [...manyFiles('app', filesPerLayer, 'app1'), { path: 'usr/d0/f0', type: 'file', content: 'replaced by v1' }]] },
    { tag: 'v2', layers: [base, lib, manyFiles('app', filesPerLayer, 'app2')] },
  ])
  return { layout, v1, v2 }
}
