/**
 * What --user changes in a rendered unit and tmpfiles entry so they work
 * under the user's own systemd (the image's templates stay as they are;
 * README "User mode"):
 *
 * - [Install] WantedBy=/RequiredBy= multi-user.target or graphical.target
 *   become default.target: the user manager has no multi-user.target, and
 *   default.target is what it starts at its own start (at boot, with
 *   lingering).
 * - tmpfiles entries: the user and group columns `root`/`0` become `-`
 *   (the calling user, which is uid 0 inside the container's user
 *   namespace: the same owner as the container sees it); another user or
 *   group cannot be given by a user's systemd-tmpfiles, so it becomes `-`
 *   too, with a warning.
 *
 * Line by line, like unit-adapt.ts: everything else stays byte for byte.
 */
const SYSTEM_TARGETS = new Set(['multi-user.target', 'graphical.target'])

export interface UserAdapted {
  text: string
  warnings: string[]
}

export function adaptUnitForUser(text: string): UserAdapted {
  let section = ''
  const out = text.split('\n').map((line) => {
    const t = line.trim()
    const m = /^\[(.+)\]$/.exec(t)
    if (m) {
      section = m[1]!
      return line
    }
    if (section !== 'Install') return line
    const kv = /^(WantedBy|RequiredBy)\s*=\s*(.*)$/.exec(t)
    if (!kv) return line
    const targets = kv[2]!.split(/\s+/).filter((x) => x !== '')
    if (!targets.some((x) => SYSTEM_TARGETS.has(x))) return line
    const mapped = [...new Set(targets.map((x) => (SYSTEM_TARGETS.has(x) ? 'default.target' : x)))]
    return `${kv[1]}=${mapped.join(' ')}`
  })
  return { text: out.join('\n'), warnings: [] }
}

export function adaptTmpfilesForUser(text: string): UserAdapted {
  const warnings: string[] = []
  const out = text.split('\n').map((line) => {
    const t = line.trim()
    if (t === '' || t.startsWith('#')) return line
    const cols = t.split(/\s+/)
    if (cols.length < 4) return line
    for (const i of [3, 4]) {
      const v = cols[i]
      if (v === undefined || v === '-') continue
      if (v !== 'root' && v !== '0') warnings.push(`tmpfiles entry ${cols[1]}: ${i === 3 ? 'user' : 'group'} ${v} cannot be set by a user; the calling user owns it (root inside the container)`)
      cols[i] = '-'
    }
    return cols.join(' ')
  })
  return { text: out.join('\n'), warnings }
}
