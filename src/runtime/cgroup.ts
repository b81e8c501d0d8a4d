import type { UnitFile } from '../systemd/unit-file'

/**
 * Keep the container inside its service's cgroup: when the unit delegates its
 * cgroup (`Delegate=yes`) and the image's config names no cgroupsPath, use
 * `/<slice path>/NAME.service/container` (the unit's Slice=, default
 * system.slice). The path is absolute: runc and crun read relative paths
 * differently (runc from its parent cgroup, crun from the root). systemd then
 * tracks, stops and accounts the container's processes as the service's own,
 * and accepts sd_notify from them. Without delegation the runtime's default
 * (a cgroup beside the service) is left alone, as Atomic had it.
 */
export function keepContainerInService(configJson: string, name: string, unit: UnitFile, manager: { cgroup: string; defaultSlice: string } = SYSTEM_MANAGER): string {
  const delegate = (unit.get('Service', 'Delegate') ?? 'no').trim().toLowerCase()
  if (!['yes', 'true', 'on', '1'].includes(delegate)) return configJson
  const spec = JSON.parse(configJson) as { linux?: { cgroupsPath?: string } }
  spec.linux ??= {}
  if (spec.linux.cgroupsPath) return configJson
  spec.linux.cgroupsPath = `${manager.cgroup}${slicePath(unit.get('Service', 'Slice') ?? manager.defaultSlice)}/${name}.service/container`
  return JSON.stringify(spec, null, 2) + '\n'
}

/** The system manager: units under the root cgroup, services in system.slice by default. */
export const SYSTEM_MANAGER = { cgroup: '', defaultSlice: 'system.slice' }

/** A user's manager (--user): its units under user@UID.service, services in app.slice by default. */
export function userManager(uid: number): { cgroup: string; defaultSlice: string } {
  return { cgroup: `/user.slice/user-${uid}.slice/user@${uid}.service`, defaultSlice: 'app.slice' }
}

/** The cgroup path of a slice unit: `a-b.slice` -> `/a.slice/a-b.slice`, `-.slice` -> ``. */
export function slicePath(slice: string): string {
  const base = slice.trim().replace(/\.slice$/, '')
  if (base === '' || base === '-') return ''
  const parts = base.split('-')
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('-')}.slice`).join('')
}
