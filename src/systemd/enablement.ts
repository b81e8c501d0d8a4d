/**
 * Unit-file enablement done on files, as `systemctl --root=DIR enable|disable`
 * does it offline (systemd 252, src/shared/install.c), for a tree standing
 * for `/`. Shared by FakeSystemd (tests) and OfflineSystemd (--root).
 *
 * enable UNIT (a name found on the unit path, or an absolute path, which is
 * linked into the config dir first):
 * - Alias=X         -> <configdir>/X -> <unit file path>
 * - WantedBy=T      -> <configdir>/T.wants/UNIT -> <unit file path>
 * - RequiredBy=T    -> <configdir>/T.requires/UNIT -> <unit file path>
 * - Also=U          -> U is enabled as well
 * Link targets are absolute paths as seen inside the tree (never the host's
 * path to the tree). An identical existing link is left alone; a different
 * one is an error (systemctl without --force).
 * disable UNIT: removes, from the config dir, every .wants/.requires link named
 * UNIT and every link named by its Alias=, for UNIT and its Also= units, and
 * then the .wants/.requires directories left empty (systemctl does too).
 * Not handled: template instances (foo@bar.service, DefaultInstance=),
 * drop-ins, masking, presets, `Also=` cycles beyond one visit each.
 */
import { promises as fs, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { SystemdError } from '../errors'
import { unitNotFoundError, type UnitFileChange } from './systemd'
import { splitUnitList, UnitFile } from './unit-file'

export interface UnitTree {
  /** The directory standing for `/`. */
  root: string
  /** Unit search path inside root, highest priority first; the first is where links are written. */
  unitDirs: string[]
}

export const DEFAULT_UNIT_DIRS = ['/etc/systemd/system', '/run/systemd/system', '/usr/lib/systemd/system', '/lib/systemd/system']

export function treePath(tree: UnitTree, p: string): string {
  return path.join(tree.root, p)
}

/** The unit file NAME on the unit path: its path inside the tree and its parsed content. */
export async function findUnitFile(tree: UnitTree, name: string): Promise<{ path: string; file: UnitFile } | undefined> {
  for (const dir of tree.unitDirs) {
    const p = path.posix.join(dir, name)
    // Synchronous: a unit file is small, and containers list reads one per container.
    let text: string | undefined
    try {
      text = readFileSync(treePath(tree, p), 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err
    }
    if (text !== undefined) return { path: p, file: UnitFile.parse(text, p) }
  }
  return undefined
}

export async function enableUnits(tree: UnitTree, files: string[]): Promise<UnitFileChange[]> {
  const changes: UnitFileChange[] = []
  const configDir = tree.unitDirs[0]!
  const queue = [...files]
  const done = new Set<string>()
  while (queue.length > 0) {
    const spec = queue.shift()!
    const name = path.basename(spec)
    if (done.has(name)) continue
    done.add(name)
    let target: string
    if (path.isAbsolute(spec) && !tree.unitDirs.includes(path.dirname(spec))) {
      // systemctl enable /some/path/x.service: link it into the config dir, then enable.
      target = path.posix.join(configDir, name)
      await link(tree, target, spec, changes)
    } else {
      const found = await findUnitFile(tree, name)
      if (!found) throw unitNotFoundError(name)
      target = found.path
    }
    const file = UnitFile.parse(await fs.readFile(treePath(tree, target), 'utf8'), name)
    for (const alias of file.getAll('Install', 'Alias').flatMap(splitUnitList)) {
      if (alias !== name) await link(tree, path.posix.join(configDir, alias), target, changes)
    }
    for (const [key, suffix] of [
      ['WantedBy', 'wants'],
      ['RequiredBy', 'requires'],
    ] as const) {
      for (const owner of file.getAll('Install', key).flatMap(splitUnitList)) {
        await link(tree, path.posix.join(configDir, `${owner}.${suffix}`, name), target, changes)
      }
    }
    for (const also of file.getAll('Install', 'Also').flatMap(splitUnitList)) queue.push(also)
  }
  return changes
}

export async function disableUnits(tree: UnitTree, files: string[]): Promise<UnitFileChange[]> {
  const changes: UnitFileChange[] = []
  const configDir = tree.unitDirs[0]!
  // The names to unlink: each unit, its aliases, and the same for its Also= units.
  const names = new Set<string>()
  const queue = files.map((f) => path.basename(f))
  const seen = new Set<string>()
  while (queue.length > 0) {
    const name = queue.shift()!
    if (seen.has(name)) continue
    seen.add(name)
    names.add(name)
    const found = await findUnitFile(tree, name)
    if (!found) continue
    for (const alias of found.file.getAll('Install', 'Alias').flatMap(splitUnitList)) names.add(alias)
    for (const also of found.file.getAll('Install', 'Also').flatMap(splitUnitList)) queue.push(also)
  }
  const entries = await fs.readdir(treePath(tree, configDir), { withFileTypes: true }).catch(() => [])
  for (const e of entries) {
    const file = path.posix.join(configDir, e.name)
    if (e.isSymbolicLink() && names.has(e.name)) {
      await fs.unlink(treePath(tree, file))
      changes.push({ type: 'unlink', file, dest: '' })
      continue
    }
    if (!e.isDirectory() || !/\.(wants|requires)$/.test(e.name)) continue
    const links = await fs.readdir(treePath(tree, file))
    let left = links.length
    for (const l of links) {
      if (!names.has(l)) continue
      const lf = path.posix.join(file, l)
      await fs.unlink(treePath(tree, lf))
      changes.push({ type: 'unlink', file: lf, dest: '' })
      left--
    }
    if (left === 0 && links.length > 0) await fs.rmdir(treePath(tree, file)).catch(() => undefined)
  }
  return changes
}

/** enabled | disabled | static, from the links on disk (as `systemctl is-enabled` for these cases). */
export async function unitFileState(tree: UnitTree, name: string, file: UnitFile, linked?: Set<string>): Promise<string> {
  const hasInstall = ['WantedBy', 'RequiredBy', 'Also', 'Alias'].some((k) => file.getAll('Install', k).length > 0)
  if ((linked ?? (await linkedUnits(tree))).has(name)) return 'enabled'
  return hasInstall ? 'disabled' : 'static'
}

/**
 * Every unit name linked from a `*.wants`/`*.requires` directory of the tree:
 * one walk of the unit directories, so that the state of N units (containers
 * list) costs one walk, not N (OfflineSystemd keeps it until it changes links).
 */
export async function linkedUnits(tree: UnitTree): Promise<Set<string>> {
  const out = new Set<string>()
  for (const dir of tree.unitDirs) {
    const entries = await fs.readdir(treePath(tree, dir), { withFileTypes: true }).catch(() => [])
    for (const e of entries) {
      if (!e.isDirectory() || !/\.(wants|requires)$/.test(e.name)) continue
      for (const l of await fs.readdir(treePath(tree, path.posix.join(dir, e.name))).catch(() => [] as string[])) out.add(l)
    }
  }
  return out
}

/** Make a symlink `file` -> `dest` (paths inside the tree), recording the change; an identical link is left alone. */
async function link(tree: UnitTree, file: string, dest: string, changes: UnitFileChange[]): Promise<void> {
  const host = treePath(tree, file)
  const existing = await fs.readlink(host).catch(() => undefined)
  if (existing === dest) return
  if (existing !== undefined) {
    throw new SystemdError('systemd.dbus', `cannot enable: ${file} already exists and points to ${existing}`, {
      data: { dbusError: 'org.freedesktop.DBus.Error.FileExists', file },
    })
  }
  await fs.mkdir(path.dirname(host), { recursive: true })
  await fs.symlink(dest, host)
  changes.push({ type: 'symlink', file, dest })
}
