/**
 * What --user changes in a rendered unit and tmpfiles entry so they work
 * under the user's own systemd (the image's templates stay as they are;
 * README "User mode"):
 *
 * - [Install] WantedBy=/RequiredBy= multi-user.target or graphical.target
 *   become default.target: the user manager has no multi-user.target, and
 *   default.target is what it starts at its own start (at boot, with
 *   lingering).
 * - [Service] starts with `ExecStartPre=systemd-tmpfiles --user --create
 *   ENTRY`: the user manager applies ~/.config/user-tmpfiles.d only when its
 *   systemd-tmpfiles-setup.service is enabled, which Debian does not do (the
 *   system one always runs at boot), and what the entry makes under
 *   $XDG_RUNTIME_DIR is gone after every reboot or logout.
 * - tmpfiles entries: the user and group columns `root`/`0` become `-`
 *   (the calling user, which is uid 0 inside the container's user
 *   namespace: the same owner as the container sees it); another user or
 *   group cannot be given by a user's systemd-tmpfiles, so it becomes `-`
 *   too, with a warning.
 *
 * Line by line, like unit-adapt.ts: everything else stays byte for byte.
 */
import { systemdQuote } from './unit-quote'

const TMPFILES = '/usr/bin/systemd-tmpfiles'
const SYSTEM_TARGETS = new Set(['multi-user.target', 'graphical.target'])

export interface UserAdapted {
  text: string
  warnings: string[]
}

export function adaptUnitForUser(text: string, opts: { tmpfiles?: string } = {}): UserAdapted {
  let section = ''
  const out = text.split('\n').map((line) => {
    const t = line.trim()
    const m = /^\[(.+)\]$/.exec(t)
    if (m) {
      section = m[1]!
      if (section === 'Service' && opts.tmpfiles) return `${line}\nExecStartPre=${TMPFILES} --user --create ${systemdQuote(opts.tmpfiles)}`
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

/**
 * `dirs`: where the user may create files (the user's runtime, data and
 * config dirs); an entry for a path elsewhere (`d /run/foo`) is refused by
 * the plan, naming it, instead of failing in systemd-tmpfiles later.
 */
export function adaptTmpfilesForUser(text: string, dirs: string[]): UserAdapted & { outside: string[] } {
  const warnings: string[] = []
  const outside: string[] = []
  const within = (p: string) => dirs.some((d) => p === d || p.startsWith(d.replace(/\/+$/, '') + '/'))
  const out = text.split('\n').map((line) => {
    const t = line.trim()
    if (t === '' || t.startsWith('#')) return line
    const cols = t.split(/\s+/)
    if (cols[1] !== undefined && !within(cols[1])) outside.push(cols[1])
    if (cols.length < 4) return line
    for (const i of [3, 4]) {
      const v = cols[i]
      if (v === undefined || v === '-') continue
      if (v !== 'root' && v !== '0') warnings.push(`tmpfiles entry ${cols[1]}: ${i === 3 ? 'user' : 'group'} ${v} cannot be set by a user; the calling user owns it (root inside the container)`)
      cols[i] = '-'
    }
    return cols.join(' ')
  })
  return { text: out.join('\n'), warnings, outside }
}
