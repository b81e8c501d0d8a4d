import { describeSteps } from '../../ops/dry-run'
import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { sourceFlags, sourceFlagValues } from '../../cli/source-flags'
import { UsageError } from '../../errors'
import { formatBytes } from '../../util/format-bytes'
import { update, updateAll, UpdateResult } from '../../ops/update'
import { updateDryRun, type UpdateDryRun } from '../../ops/dry-run'
import { settleFlag, settleFlagValue, strictFlag } from '../../cli/unit-flags'

export default class ContainersUpdate extends BaseCommand {
  static override summary = 'Pull the image again (or --rebase to another), switch to a new deployment, restart if running'
  static override description = `A container has two deployment slots, NAME.0 and NAME.1; the active link NAME points to one of them. Update builds the other slot (the one not active: NAME.0 <-> NAME.1, alternating as atomic did) from the newly pulled image with the saved --set values plus the new ones. It then switches the unit, tmpfiles entry and active link to the new slot in one journaled step and restarts the unit if it was running.

If the restart fails, sysctr switches back to the slot that was active, restarts that, and exits 8 saying it rolled back. The previous deployment is kept until the next update: while the slot it is in is being rebuilt it is moved aside (.NAME.N.parked) and put back if the update fails, so after every command only NAME.0 and NAME.1 exist; \`sysctr containers rollback NAME\` switches back to it. When neither the image nor any rendered file changes, nothing is built and nothing is restarted.`

  static override examples = [
    '<%= config.bin %> containers update etcd',
    '<%= config.bin %> containers update etcd --set READY_DELAY=1',
    '<%= config.bin %> containers update etcd --rebase registry.example.com/etcd:3.6',
    '<%= config.bin %> containers update --all',
  ]

  static override args = { name: Args.string({ description: 'container name', required: false }) }
  static override flags = {
    root: Flags.string({ description: 'update inside the OS tree at DIR (no running systemd: files and links only)' }),
    set: Flags.string({ description: 'template value KEY=VALUE (repeatable), added to the saved ones', multiple: true, multipleNonGreedy: true, default: [] }),
    rebase: Flags.string({ description: 'switch to another image reference' }),
    grant: Flags.string({ description: 'grant ITEM (repeatable) beyond what was granted at install, when the new image asks for more (see README "Privileges")', multiple: true, multipleNonGreedy: true, default: [] }),
    privileged: Flags.boolean({ description: 'grant everything from now on (recorded)', default: false }),
    all: Flags.boolean({ description: 'update every installed container, dependencies first', default: false }),
    auto: Flags.boolean({ description: 'with --all: only the containers that opted in (install --autoupdate registry, or the image label sysctr.autoupdate=registry); what units/sysctr-update.service runs', default: false }),
    ...sourceFlags,
    strict: strictFlag,
    settle: settleFlag,
    'dry-run': Flags.boolean({ description: 'show what would be pulled and the unit/config/tmpfiles diffs; change nothing', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ContainersUpdate)
    const source = sourceFlagValues(flags)
    const ctx = this.contextFor(flags)
    if (flags.all && flags['dry-run']) throw new UsageError('usage.update-all-dry-run', '--dry-run takes one NAME, not --all')
    if (flags.all) {
      if (args.name || flags.rebase) throw new UsageError('usage.update-all', '--all takes no NAME and no --rebase')
      const r = await updateAll(ctx, { ...source, set: flags.set, strict: flags.strict, settleMs: settleFlagValue(flags), ...(flags.auto ? { auto: true } : {}) })
      this.output(flags, { order: r.order, results: r.results, failed: r.failed.map((f) => ({ name: f.name, error: f.error.toJSON() })), ...(r.notOptedIn ? { notOptedIn: r.notOptedIn } : {}) }, () => [
        ...(r.notOptedIn && r.notOptedIn.length > 0 ? [`not opted in to automatic updates, left alone: ${r.notOptedIn.join(' ')}`] : []),
        ...(r.order.length === 0 ? ['no container to update'] : []),
        ...r.results.flatMap(describe),
        ...r.failed.map((f) => `${f.name}: failed: ${f.error.fullMessage}`),
      ])
      if (r.failed.length > 0) throw r.failed[0].error
      return
    }
    if (flags.auto) throw new UsageError('usage.auto-without-all', '--auto goes with --all', { hint: 'sysctr containers update --all --auto' })
    if (!args.name) throw new UsageError('usage.name-required', 'name the container to update, or pass --all', { hint: 'sysctr containers list' })
    if (flags['dry-run']) {
      const plan = await updateDryRun(ctx, args.name, { ...source, set: flags.set, rebase: flags.rebase, grant: flags.grant, privileged: flags.privileged, strict: flags.strict })
      this.output(flags, plan, () => describePlan(plan))
      return
    }
    const r = await update(ctx, args.name, { ...source, set: flags.set, rebase: flags.rebase, grant: flags.grant, privileged: flags.privileged, strict: flags.strict, settleMs: settleFlagValue(flags) })
    this.output(flags, r, () => describe(r))
  }
}

function describe(r: UpdateResult): string[] {
  if (r.unchanged && r.unchangedBecause === 'same-rendering') {
    return [`${r.name}: nothing changed: the --set values change no rendered file of ${r.image} (${r.manifestDigest.slice(0, 19)}); no new deployment, ${r.wasRunning ? 'not restarted' : 'not started'}, the values not recorded`]
  }
  if (r.unchanged) return [`${r.name}: already runs ${r.image} (${r.manifestDigest.slice(0, 19)}) with the same values, nothing to do`]
  const p = r.pull
  return [
    `updated ${r.name}: ${r.previousImage} (${r.previousManifestDigest.slice(0, 19)}) -> ${r.image} (${r.manifestDigest.slice(0, 19)})`,
    p ? `  layers: ${p.layersFetched} fetched (${formatBytes(p.bytesFetched)}), ${p.layersReused} already in the store` : '',
    ...r.changedValues.map((c) => `  value ${c.key}: ${c.from ?? '(unset)'} -> ${c.to ?? '(unset)'}`),
    `  deployment: ${r.deployment} (previous: ${r.previousDeployment}, kept for rollback)`,
    `  unit: ${r.unit} ${r.restarted ? `restarted: ${r.restarted}` : 'was not running, not started'}`,
  ].filter((l) => l !== '')
}

function describePlan(p: UpdateDryRun): string[] {
  if (p.unchanged) return ['dry run: nothing was changed', `${p.name}: already runs ${p.image} (${p.manifestDigest.slice(0, 19)}) with the same values, update would do nothing`]
  const lines = [
    'dry run: nothing was changed',
    `would update ${p.name}: ${p.previousImage} (${p.previousManifestDigest.slice(0, 19)}) -> ${p.image} (${p.manifestDigest.slice(0, 19)}), building ${p.deployment} (active: ${p.activeDeployment})`,
    `  pull: ${p.pull.layersToFetch} of ${p.pull.layers.length} layers to fetch (${formatBytes(p.pull.bytesToFetch)})`,
    ...(p.changedValues ?? []).map((c) => `  value ${c.key}: ${c.from ?? '(unset)'} -> ${c.to ?? '(unset)'}`),
    ...p.warnings.map((w) => `  warning: ${w}`),
  ]
  if (p.note) lines.push(`  ${p.note}`)
  const steps = describeSteps(p.changes)
  if (steps) lines.push(steps)
  for (const d of p.diffs ?? []) lines.push(...(d.diff === '' ? [`${d.role}: unchanged`] : d.diff.replace(/\n$/, '').split('\n')))
  return lines
}
