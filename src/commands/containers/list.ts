import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { parseFilters, passes, table } from '../../cli/filters'
import { listContainers, type ContainerListing } from '../../ops/containers'

/** atomic's `containers list --filter` keys, and sysctr's own (unit, deployment). */
const FILTER_KEYS = ['container', 'image', 'command', 'created', 'state', 'runtime', 'backend', 'unit', 'deployment'] as const
const FILTER_ALIASES: Record<string, string> = { name: 'container', id: 'container' }

/** The command the active deployment's config.json runs (process.args), or '' when there is none. */
async function commandOf(containersDir: string, c: ContainerListing): Promise<string> {
  if (!c.deployment || c.noContainerService) return ''
  try {
    const spec = JSON.parse(readFileSync(join(containersDir, c.deployment, 'config.json'), 'utf8')) as { process?: { args?: unknown } }
    const args = spec.process?.args
    return Array.isArray(args) ? args.map(String).join(' ') : ''
  } catch {
    return ''
  }
}

export default class ContainersList extends BaseCommand {
  static override summary = 'List installed system containers: image, command, digest, active deployment, unit state, runtime'
  static override description = `--filter KEY=VALUE keeps the containers whose KEY contains VALUE (case-insensitive; repeatable, all must match), as atomic's containers list did. Keys: container (the name), image, command, created, state (ActiveState/SubState), runtime, backend (always "sysctr"), unit, deployment. --quiet prints only the names, one a line.`
  static override examples = [
    '<%= config.bin %> containers list',
    '<%= config.bin %> containers list -f image=etcd -f state=running',
    '<%= config.bin %> containers list --quiet --root /mnt/sysroot',
  ]
  static override flags = {
    filter: Flags.string({ char: 'f', description: 'KEY=VALUE: only containers whose KEY contains VALUE (repeatable)', multiple: true, default: [] }),
    quiet: Flags.boolean({ char: 'q', description: 'print only the container names, one a line', default: false }),
    noheading: Flags.boolean({ char: 'n', description: 'do not print the heading line', default: false }),
    'no-trunc': Flags.boolean({ description: 'do not shorten digests and commands', default: false }),
    all: Flags.boolean({ char: 'a', description: 'accepted for atomic scripts: every installed container is always listed, running or not', default: false }),
    root: Flags.string({ description: 'list the containers installed into the OS tree at DIR (see README "Composing a root")' }),
  }

  static override aliases = ['containers:ls', 'ps']

  async run(): Promise<void> {
    const { flags } = await this.parse(ContainersList)
    const filters = parseFilters(flags.filter, FILTER_KEYS, FILTER_ALIASES)
    // --quiet here means "names only" (atomic's and podman's -q); only errors otherwise go to stderr.
    const ctx = this.contextFor({ ...flags, quiet: flags.quiet })
    const all = await listContainers(ctx)
    const rows: (ContainerListing & { command: string })[] = []
    for (const c of all) rows.push({ ...c, command: await commandOf(ctx.paths.containersDir, c) })
    const list = rows.filter((c) =>
      passes(filters, (k) => {
        switch (k) {
          case 'container':
            return c.name
          case 'state':
            return [c.activeState, c.subState, `${c.activeState}/${c.subState}`]
          case 'backend':
            return 'sysctr'
          default:
            return String((c as unknown as Record<string, unknown>)[k] ?? '')
        }
      }),
    )
    if (flags.json) {
      this.output(flags, list, () => [])
      return
    }
    if (flags.quiet) {
      for (const c of list) process.stdout.write(`${c.name}\n`)
      return
    }
    this.output(flags, list, () => {
      if (all.length === 0) return ['no containers installed']
      if (list.length === 0) return ['no containers match']
      const cut = (s: string, n: number) => (flags['no-trunc'] || s.length <= n ? s : `${s.slice(0, n - 1)}…`)
      const body = list.map((c) =>
        c.broken
          ? [c.name, `BROKEN: ${c.broken.path}: ${c.broken.error}`, '', '', c.deployment, 'unknown', '', '']
          : [
              c.name,
              c.image,
              cut(c.command, 30) || '-',
              flags['no-trunc'] ? c.manifestDigest : c.manifestDigest.slice(0, 19),
              c.deployment + (c.previousDeployment ? ` (prev ${c.previousDeployment})` : '') + (c.rootfs ? ` (remote rootfs ${c.rootfs})` : ''),
              `${c.activeState}/${c.subState}`,
              c.runtime,
              c.privileged ? 'privileged' : (c.asked ?? []).join(' ') || '-',
            ],
      )
      return table(flags.noheading ? undefined : ['NAME', 'IMAGE', 'COMMAND', 'DIGEST', 'DEPLOYMENT', 'STATE', 'RUNTIME', 'GRANTED'], body)
    })
  }
}
