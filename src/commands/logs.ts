import { Args, Flags } from '@oclif/core'
import { spawn } from 'node:child_process'
import { BaseCommand } from '../cli/base-command'
import { HostError } from '../errors'
import { containerUnit, journalArgs } from '../ops/status'

export default class Logs extends BaseCommand {
  static override summary = "Show a container's journal (journalctl -u NAME.service), like podman logs"
  static override description = `Runs journalctl for the container's unit: what the service wrote to stdout and stderr and what systemd logged about it. The exit code is journalctl's. With --json, one JSON object per entry (journalctl -o json).`
  static override examples = ['<%= config.bin %> logs etcd', '<%= config.bin %> logs -f etcd', '<%= config.bin %> logs -n 20 etcd']
  static override args = { name: Args.string({ description: 'container name', required: true }) }
  static override flags = {
    follow: Flags.boolean({ char: 'f', description: 'keep printing new entries (journalctl -f)', default: false }),
    lines: Flags.integer({ char: 'n', description: 'show the last N entries (journalctl -n)', min: 0 }),
    since: Flags.string({ description: 'entries since this time (journalctl --since, e.g. "10 min ago")' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Logs)
    const unit = await containerUnit(this.context(flags), args.name)
    const argv = journalArgs(unit, { follow: flags.follow, lines: flags.lines, since: flags.since, json: flags.json })
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn('journalctl', argv, { stdio: 'inherit' })
      child.on('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'ENOENT' ? new HostError('host.no-journalctl', 'journalctl not found', { hint: 'install systemd (journalctl) or read the journal another way' }) : err),
      )
      // -f ends on ^C (the terminal sends SIGINT to journalctl too) or a signal to sysctr: pass it on, wait for journalctl.
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig))
      child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)))
    })
    if (code !== 0) process.exitCode = code
  }
}
