import { describe, expect, it } from 'vitest'
import { runCommand } from '../../src/util/run-command'

describe('runCommand', () => {
  it('collects output and the exit code, without a shell', async () => {
    const r = await runCommand('sh', ['-c', 'echo out; echo err >&2; exit 3'])
    expect(r).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' })
  })
  it('survives a program that exits without reading its input (EPIPE)', async () => {
    for (let i = 0; i < 20; i++) {
      const r = await runCommand('true', [], { input: Buffer.alloc(1 << 20) })
      expect(r.code).toBe(0)
    }
  })
  it('names a missing program (exit 7)', async () => {
    await expect(runCommand('no-such-program-sysctr', [])).rejects.toMatchObject({ code: 'host.missing-program', exitCode: 7 })
  })
})
