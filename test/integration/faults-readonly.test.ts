/**
 * A read-only state directory (SYSCTR_STATE_DIR on a tmpfs remounted `ro`):
 * every verb that writes fails at once with HostError host.erofs (exit 7),
 * naming the path and "read-only file system"; none of them waits or retries.
 * (Before: install, update and rollback looped forever on the per-name lock
 * directory, whose mkdir failed with EROFS reported as ENOENT.)
 */
import { execFileSync } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliSkipReason, startCli } from '../helpers/crash'

const skip = cliSkipReason()

/** Run the CLI; a run still going after 30 s is killed (and then fails the exit-code check). */
async function run(args: string[], stateDir: string) {
  const r = startCli(args, stateDir)
  const guard = setTimeout(() => r.kill(), 30_000)
  try {
    return await r.done
  } finally {
    clearTimeout(guard)
  }
}

describe.skipIf(skip)('read-only state directory', () => {
  let mnt: string
  beforeAll(async () => {
    mnt = await fsp.mkdtemp(join(tmpdir(), 'sysctr-ro-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt])
    // A state dir that exists (with a containers/ dir) and one that does not: both on the read-only filesystem.
    await fsp.mkdir(join(mnt, 'state', 'containers'), { recursive: true })
    execFileSync('mount', ['-o', 'remount,ro', mnt])
  })
  afterAll(async () => {
    if (mnt) {
      execFileSync('umount', [mnt])
      await fsp.rm(mnt, { recursive: true, force: true })
    }
  })

  for (const [label, args] of [
    ['install', ['install', '--system', '--name', 'ro1', '--tls-verify=false', '127.0.0.1:9/none/app:v1']],
    ['containers update', ['containers', 'update', 'ro1']],
    ['containers rollback', ['containers', 'rollback', 'ro1']],
    ['uninstall', ['uninstall', 'ro1']],
    ['images pull', ['images', 'pull', '--tls-verify=false', '127.0.0.1:9/none/app:v1']],
  ] as const) {
    for (const sub of ['state', 'missing/state']) {
      it(`${label} with ${sub === 'state' ? 'an existing' : 'a missing'} state dir exits 7 at once, naming the path`, async () => {
        const state = join(mnt, sub)
        const r = await run([...args], state)
        expect(r.signal).toBeNull()
        expect(r.code).toBe(7)
        const lines = r.stderr.trim().split('\n')
        expect(lines[0]).toMatch(/^error: .*cannot write \/.*: read-only file system$/)
        expect(lines[0]).toContain(mnt)
        expect(lines[1]).toMatch(/^hint: .*remount/)
        expect(r.stderr).not.toMatch(/\n\s+at /) // no stack trace
      })
    }
  }

  it('--json gives the code host.erofs and exit code 7', async () => {
    const r = await run(['install', '--system', '--json', '--name', 'ro1', '127.0.0.1:9/none/app:v1'], join(mnt, 'state'))
    expect(r.code).toBe(7)
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!)
    const err = out.error ?? out
    expect(err.code).toBe('host.erofs')
    expect(err.exitCode).toBe(7)
  })
})
