/** Run a helper program (systemd-tmpfiles, setfattr…) and collect its output. Never via a shell. */
import { spawn } from 'node:child_process'
import { HostError } from '../errors'

export interface CommandResult {
  code: number
  stdout: string
  stderr: string
}

export function runCommand(cmd: string, args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const input = opts.input
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: opts.env ?? process.env })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout?.on('data', (d: Buffer) => out.push(d))
    child.stderr?.on('data', (d: Buffer) => err.push(d))
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new HostError('host.missing-program', `${cmd} is not installed (needed to run ${cmd} ${args.join(' ')})`) : e),
    )
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    )
    if (input !== undefined && child.stdin) {
      // A program that exits without reading its input must not crash us with EPIPE.
      child.stdin.on('error', () => {})
      child.stdin.end(input)
    }
  })
}
