import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../cli/base-command'
import { sourceFlags, sourceFlagValues } from '../cli/source-flags'
import { UsageError } from '../errors'
import { install } from '../ops/install'
import { formatBytes } from '../util/format-bytes'
import { describeSteps, installDryRun, type InstallDryRun } from '../ops/dry-run'
import { DEFAULT_RUNTIME } from '../runtime/default-runtime'
import { settleFlag, settleFlagValue, strictFlag } from '../cli/unit-flags'

export default class Install extends BaseCommand {
  static override summary = 'Install an image as a system container run by systemd'
  static override description = `Pulls IMAGE into the store, checks it out read-only into /var/lib/sysctr/containers/NAME.0, renders the unit, runc config.json and tmpfiles entry from the image's /exports templates (or sysctr's defaults), writes /etc/systemd/system/NAME.service and enables it over D-Bus. With --now it also starts the unit and waits for the job's result.

IMAGE is a registry reference (registry.example.com/ns/repo[:tag][@digest]), a short name (etcd:3.5, resolved through registries.conf short-name aliases and unqualified-search-registries), or a local image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:TAG], dir:DIR (see README "Where images come from").`

  static override examples = [
    '<%= config.bin %> install --system --tls-verify=false 127.0.0.1:5000/demo/etcd:latest',
    '<%= config.bin %> install --system --name etcd2 --set ETCD_PORT=2380 --now registry.example.com/etcd:3.5',
  ]

  static override args = {
    image: Args.string({ description: 'image: registry reference, short name, or oci:/oci-archive:/docker-archive: path', required: true }),
  }

  static override flags = {
    system: Flags.boolean({ description: 'install as a system container (root; or --user for the calling user\'s own)', default: false }),
    name: Flags.string({ description: 'container and unit name (default: the repository\'s last component)' }),
    set: Flags.string({ description: 'template value KEY=VALUE (repeatable); overrides computed and image defaults', multiple: true, multipleNonGreedy: true, default: [] }),
    now: Flags.boolean({ description: 'also start the unit and wait for the result', default: false }),
    runtime: Flags.string({ description: 'OCI runtime binary', default: DEFAULT_RUNTIME }),
    root: Flags.string({ description: 'install into the OS tree at DIR (no running systemd: files and enablement links only; see README "Composing a root")' }),
    ...sourceFlags,
    grant: Flags.string({
      description: 'grant ITEM (repeatable): one thing config.json may ask beyond the default grant, e.g. cap:NET_ADMIN, ns:pid, bind:/dev:rw, device:all (a refused install prints the flags it needs; see README "Privileges")',
      multiple: true,
      multipleNonGreedy: true,
      default: [],
    }),
    privileged: Flags.boolean({
      description: 'grant everything config.json asks (host namespaces, capabilities, binds, devices, hooks; recorded in the deployment)',
      default: false,
    }),
    strict: strictFlag,
    settle: settleFlag,
    autoupdate: Flags.string({
      description: 'registry: let units/sysctr-update.timer update this container (containers update --all --auto); disabled: never, even if the image has the label sysctr.autoupdate=registry (recorded)',
      options: ['registry', 'disabled'],
    }),
    rootfs: Flags.string({ description: "use the existing host directory DIR as the container's root (DIR/rootfs, or DIR itself when it has a /usr) instead of a checkout; the image supplies its /exports only (Atomic's remote rootfs)" }),
    'dry-run': Flags.boolean({ description: 'show what would be pulled and the files that would be written; change nothing (see README "Inspecting an image and dry runs")', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(Install)
    if (flags.system && flags.user) {
      throw new UsageError('usage.system-and-user', '--system and --user cannot be used together', { hint: `sysctr install --user ${args.image} installs for the calling user` })
    }
    if (!flags.system && !flags.user) {
      throw new UsageError('usage.system-required', 'pass --system (a system container, as root) or --user (the calling user\'s own, rootless)', { hint: `sysctr install --system ${args.image}` })
    }
    if (flags.root && flags.now) {
      throw new UsageError('usage.root-now', '--now cannot be used with --root: no systemd runs under the root', { hint: 'the unit is enabled and starts when the root boots' })
    }
    const ctx = this.contextFor(flags)
    const options = {
      image: args.image,
      name: flags.name,
      set: flags.set,
      runtime: flags.runtime,
      ...sourceFlagValues(flags),
      ...(flags.privileged ? { privileged: true } : {}),
      ...(flags.grant.length > 0 ? { grant: flags.grant } : {}),
      ...(flags.strict ? { strict: true } : {}),
      ...(flags.autoupdate ? { autoupdate: flags.autoupdate as 'registry' | 'disabled' } : {}),
    }
    if (flags['dry-run'] && flags.rootfs !== undefined) {
      throw new UsageError('usage.rootfs-dry-run', '--dry-run does not plan a --rootfs install yet', { hint: 'run the dry run without --rootfs: the files differ only in config.json root.path' })
    }
    if (flags['dry-run']) {
      const plan = await installDryRun(ctx, options)
      this.output(flags, plan, () => describeInstallPlan(plan))
      return
    }
    const r = await install(ctx, { ...options, now: flags.now, ...(flags.now ? { settleMs: settleFlagValue(flags) } : {}), ...(flags.rootfs !== undefined ? { rootfs: flags.rootfs } : {}) })
    if (r.runOnce) {
      // A run-once image ran to completion (its output went straight through): its exit status is sysctr's.
      process.exitCode = r.runOnce.exitCode
      this.output(flags, r, () => [`ran ${r.name} once from ${r.image} (${r.manifestDigest.slice(0, 19)}): exit status ${r.runOnce!.exitCode}; nothing was installed`])
      return
    }
    this.output(flags, r, () => {
      if (r.unchanged) return [`${r.name}: already installed from ${r.image} (${r.manifestDigest.slice(0, 19)}), nothing changed`]
      const p = r.pull
      return [
        `installed ${r.name} from ${r.image} (${r.manifestDigest.slice(0, 19)})`,
        p ? `  layers: ${p.layersFetched} fetched (${formatBytes(p.bytesFetched)}), ${p.layersReused} already in the store; ${p.objectsAdded} new objects (${formatBytes(p.bytesAdded)})` : '',
        `  deployment: ${r.deployment} (${r.deploymentDir})`,
        r.rootfs ? `  rootfs: ${r.rootfs} (remote: not a checkout)` : '',
        `  unit: ${r.unit} (enabled${r.started ? `, started: ${r.started}${r.settledMs ? `, still up after ${r.settledMs / 1000} s` : ''}` : ''})`,
        r.privileged ? '  privileged: yes (config.json may use host namespaces, capabilities, binds, devices or hooks)' : '',
        r.asked ? `  granted beyond the default: ${r.asked.join(' ')}` : '',
      ].filter((l) => l !== '')
    })
  }
}

function describeInstallPlan(p: InstallDryRun): string[] {
  const lines = [
    `dry run: nothing was changed`,
    p.unchanged ? `${p.name} is already installed from ${p.image} with the same values: install would do nothing` : `would ${p.deployment ? 'install' : 'run'} ${p.name} from ${p.image} (${p.pull.manifestDigest.slice(0, 19)})${p.deployment ? ` as ${p.deployment}` : ' once'}`,
    `  pull: ${p.pull.layersToFetch} of ${p.pull.layers.length} layers to fetch (${formatBytes(p.pull.bytesToFetch)})`,
    ...(p.privileges && p.privileges.asked.length > 0 ? [`  asks beyond the default grant: ${p.privileges.asked.join(' ')}`] : []),
    ...p.warnings.map((w) => `  warning: ${w}`),
  ]
  if (p.note) lines.push(`  ${p.note}`)
  const steps = describeSteps(p.changes)
  if (steps) lines.push(steps)
  for (const f of p.files ?? []) lines.push(`--- ${f.role}: ${f.path}`, ...f.text.replace(/\n$/, '').split('\n'))
  return lines
}
