/**
 * Translation of the OCI runtime-spec shapes Project Atomic's images shipped
 * (0.x and 1.0.0-rc) into what today's runtimes read (runc 1.1, crun 1.8).
 *
 * Measured on Debian 12 (runc 1.1.5, crun 1.8.1) with a busybox bundle; see
 * docs/atomic-compat.md:
 * - `ociVersion` "0.x" (hello-world ships "0.3.0"): crun refuses ("unknown
 *   version specified"); runc accepts. Read as "1.0.0".
 * - `process.capabilities` as a list (the pre-1.0 release-candidate shape; older
 *   docker-centos): runc refuses ("cannot unmarshal array into Go struct field
 *   Process.process.capabilities"). The list becomes all five sets, as
 *   Atomic's 1.0.0 images write it.
 * - `linux.capabilities` and `linux.rlimits` (0.x: hello-world): runc ignores
 *   them silently, so the service would run with no capabilities and default
 *   rlimits. Moved to `process.capabilities` (all five sets) and
 *   `process.rlimits` unless those are set.
 * Accepted as they are, not translated: `platform` (ignored by both),
 * `linux.devices: null`, `apparmorProfile: ""`, `mode=755` on bind mounts, a
 * `cgroup` mount (runc binds the container's own cgroups), `process.user: {}`.
 *
 * Pure: the input is not modified; the result lists each change in a line.
 */

export interface LegacyTranslation {
  /** The translated config (the input itself when nothing changed). */
  spec: unknown
  /** One line per change, e.g. `ociVersion "0.3.0" read as "1.0.0" (crun refuses 0.x)`. */
  changes: string[]
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')

const allSets = (caps: string[]) => ({ bounding: [...caps], effective: [...caps], inheritable: [...caps], permitted: [...caps], ambient: [...caps] })

/** Translate legacy shapes (the list in the module comment); anything else passes through untouched. */
export function normaliseLegacySpec(raw: unknown): LegacyTranslation {
  if (!isObject(raw)) return { spec: raw, changes: [] }
  const changes: string[] = []
  const spec: Record<string, unknown> = { ...raw }
  const process = isObject(spec.process) ? { ...spec.process } : undefined
  const linux = isObject(spec.linux) ? { ...spec.linux } : undefined

  if (typeof spec.ociVersion === 'string' && /^0\./.test(spec.ociVersion)) {
    changes.push(`ociVersion ${JSON.stringify(spec.ociVersion)} read as "1.0.0" (crun refuses 0.x versions)`)
    spec.ociVersion = '1.0.0'
  }
  if (process && isStringList(process.capabilities)) {
    changes.push('process.capabilities: a list (runtime-spec before 1.0.0) read as the same list in all five sets (runc refuses a list)')
    process.capabilities = allSets(process.capabilities)
  }
  if (process && linux && isStringList(linux.capabilities)) {
    if (process.capabilities === undefined) {
      changes.push('linux.capabilities (runtime-spec 0.x) moved to process.capabilities, all five sets (runc ignores it: the service would run with none)')
      process.capabilities = allSets(linux.capabilities)
    } else {
      changes.push('linux.capabilities (runtime-spec 0.x) dropped: process.capabilities is set')
    }
    delete linux.capabilities
  }
  if (process && linux && Array.isArray(linux.rlimits)) {
    if (process.rlimits === undefined) {
      changes.push('linux.rlimits (runtime-spec 0.x) moved to process.rlimits (runc ignores it)')
      process.rlimits = linux.rlimits
    } else {
      changes.push('linux.rlimits (runtime-spec 0.x) dropped: process.rlimits is set')
    }
    delete linux.rlimits
  }
  if (changes.length === 0) return { spec: raw, changes }
  if (process) spec.process = process
  if (linux) spec.linux = linux
  return { spec, changes }
}

/**
 * The same for a config.json text: the translated JSON (2-space indented) and
 * the changes, or the text untouched when nothing changed or it is not JSON
 * (checkRuntimeConfig reports that).
 */
export function normaliseLegacyConfigJson(text: string): { text: string; changes: string[] } {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return { text, changes: [] }
  }
  const { spec, changes } = normaliseLegacySpec(raw)
  return changes.length === 0 ? { text, changes } : { text: `${JSON.stringify(spec, null, 2)}\n`, changes }
}
