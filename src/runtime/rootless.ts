/**
 * The runtime config of a --user container: the checked config.json (the
 * privilege check of the system mode has run on it already, with the user's
 * own paths as the container's) turned rootless, the way `runc spec
 * --rootless` shapes it:
 *
 * - a user namespace: the user's uid and gid are 0 inside; with a range in
 *   /etc/subuid and /etc/subgid, container IDs 1..count map onto it (runc
 *   and crun set such a mapping through the setuid newuidmap/newgidmap of
 *   Debian's `uidmap`). Capabilities the config grants are the namespace's:
 *   nothing beyond what the user has on the host.
 * - sysfs cannot be mounted without a network namespace of the user's own:
 *   /sys is bound read-only instead; devpts gets no `gid=` (gid 5 is not
 *   mapped without a range); cgroup resource limits are dropped (a user's
 *   runtime cannot set them, runc spec --rootless has none).
 * - the sd_notify socket an image binds (/run/systemd/notify, the system
 *   manager's) is the user manager's: $XDG_RUNTIME_DIR/systemd/notify.
 *
 * A process user (process.user.uid/gid, additionalGids) the mapping does
 * not cover is refused here, at plan time, naming the range it needs.
 */
import { ContentError } from '../errors'
import type { IdRange, UserMode } from '../ops/context'

interface Mapping {
  containerID: number
  hostID: number
  size: number
}

interface Spec {
  process?: { user?: { uid?: number; gid?: number; additionalGids?: number[] } }
  mounts?: Array<{ destination?: string; type?: string; source?: string; options?: string[] }>
  linux?: {
    namespaces?: Array<{ type: string; path?: string }>
    uidMappings?: Mapping[]
    gidMappings?: Mapping[]
    resources?: unknown
  }
}

export function idMappings(own: number, range: IdRange | undefined): Mapping[] {
  return [{ containerID: 0, hostID: own, size: 1 }, ...(range ? [{ containerID: 1, hostID: range.start, size: range.count }] : [])]
}

function covered(id: number, maps: Mapping[]): boolean {
  return maps.some((m) => id >= m.containerID && id < m.containerID + m.size)
}

export interface RootlessResult {
  configJson: string
  warnings: string[]
}

export function rootlessConfig(configJson: string, user: UserMode, name: string): RootlessResult {
  const spec = JSON.parse(configJson) as Spec
  const warnings: string[] = []
  spec.linux ??= {}
  const ns = (spec.linux.namespaces ??= [])
  if (ns.some((n) => n.type === 'user' && n.path)) {
    throw new ContentError('config.rootless-userns-path', `config.json of ${name} joins an existing user namespace: a --user container gets its own`, {
      hint: 'remove the path of the user namespace from linux.namespaces',
    })
  }
  if (!ns.some((n) => n.type === 'user')) ns.push({ type: 'user' })
  const uids = idMappings(user.uid, user.subuid)
  const gids = idMappings(user.gid, user.subgid)
  spec.linux.uidMappings = uids
  spec.linux.gidMappings = gids
  const pu = spec.process?.user ?? {}
  for (const [kind, id, maps, file] of [
    ['uid', pu.uid ?? 0, uids, '/etc/subuid'],
    ['gid', pu.gid ?? 0, gids, '/etc/subgid'],
    ...(pu.additionalGids ?? []).map((g) => ['gid', g, gids, '/etc/subgid'] as const),
  ] as const) {
    if (!covered(id, maps)) {
      throw new ContentError('config.rootless-unmapped', `config.json of ${name} runs its process as ${kind} ${id}, which ${user.userName}'s user namespace does not map (${maps.map((m) => `${m.containerID}-${m.containerID + m.size - 1}`).join(', ')})`, {
        hint: `have root add a range for ${user.userName} to ${file} (e.g. \`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user.userName}\`), or run it as root inside (uid 0)`,
        data: { kind, id },
      })
    }
  }
  if (spec.linux.resources !== undefined) {
    const r = spec.linux.resources as Record<string, unknown>
    const limits = Object.keys(r).filter((k) => k !== 'devices')
    if (limits.length > 0) warnings.push(`config.json: resource limits (${limits.join(', ')}) are dropped: a user's runtime cannot set them`)
    delete spec.linux.resources
  }
  const notify = `${user.runtimeDir.replace(/\/+$/, '')}/systemd/notify`
  for (const m of spec.mounts ?? []) {
    if (m.type === 'sysfs') {
      m.type = 'none'
      m.source = '/sys'
      m.options = ['rbind', ...(m.options ?? []).filter((o) => o !== 'rbind' && o !== 'bind')]
      if (!m.options.includes('ro')) m.options.push('ro')
    }
    if (m.type === 'devpts' && m.options && !user.subgid) m.options = m.options.filter((o) => !o.startsWith('gid='))
    if (m.source === '/run/systemd/notify') m.source = notify
  }
  return { configJson: JSON.stringify(spec, null, 2) + '\n', warnings }
}
