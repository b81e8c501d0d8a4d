/**
 * Deployments: where an installed container lives.
 *
 *   containers/NAME.0/            a deployment (slot 0 or 1: an update builds in the slot
 *                                 that is not active, NAME.0 <-> NAME.1, as Atomic did)
 *   containers/.NAME.N.parked/    the previous deployment NAME.N, moved aside while an
 *                                 update builds the new NAME.N (so a failed update still
 *                                 has it): put back by `cleanLeftovers` when the update
 *                                 did not happen, removed once it did
 *       rootfs/                   read-only hardlink checkout of the image commit
 *       config.json               rendered runc config
 *       NAME.service              the unit as rendered for this deployment
 *       tmpfiles.conf             the tmpfiles.d entry as rendered
 *       info.json                 the record: image, digests, values, files written
 *       hostfs/PATH               host files (/exports/hostfs, renamed and rendered) as
 *                                 this deployment installs them at PATH
 *       activated                 written when the deployment first becomes active
 *   containers/NAME -> NAME.0     the active deployment, switched atomically
 *   (the per-name lock is beside containers/: STATE/locks/NAME, ops/name-lock.ts)
 *
 * Invariants:
 * - A deployment directory is built under a temp name (`.NAME.N.tmp-…`) and
 *   renamed into place only when complete: `NAME.N` is always whole.
 * - The active link is replaced by rename, never rewritten in place.
 * - Records are written once with the deployment and never re-derived.
 * - Leftover temp dirs (a crash mid-install) are removed by `cleanLeftovers`.
 * - A slot is a rollback target only once it was activated: `activate`
 *   writes NAME.N/activated after the link switch. A slot built but never
 *   activated (a crash between an update's build and its switch) is a
 *   leftover: `cleanLeftovers(NAME)` removes it, `isActivated` says no.
 *   Records of format 1 (before the marker existed) count as activated.
 */
import { randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import type { Digest } from '../oci/types'
import { fsyncDir, symlinkAtomic, writeFileAtomic } from '../util/atomic-file'
import { makeDirs } from '../util/make-dirs'
import { fieldsCheck, readRecord } from '../util/read-record'

/** 2: slots carry the `activated` marker (format 1 slots count as activated). */
export const RECORD_FORMAT = 2

export type TemplateOrigin = 'image' | 'default'

export interface HostFile {
  /** Absolute path on the host. */
  path: string
  /** sha256 hex of what sysctr wrote, so later changes by the user are noticed. */
  sha256: string
  /** hostfs: a file from the image's /exports/hostfs, kept in NAME.N/hostfs/PATH. */
  role: 'unit' | 'tmpfiles' | 'hostfs' | 'socket'
  /** hostfs: where it came from in the image (`/exports/hostfs/...`). */
  source?: string
}

export interface DeploymentRecord {
  format: number
  name: string
  slot: number
  /** The image reference as the user gave it, normalised. */
  image: string
  manifestDigest: Digest
  configDigest: Digest
  /** The image commit (hex) in the store. */
  imageCommit: string
  runtime: string
  /** Every value the templates were rendered with. */
  values: Record<string, string>
  /** The values the user gave with --set (kept for updates). */
  setValues: Record<string, string>
  templates: { configJson: TemplateOrigin; service: TemplateOrigin; tmpfiles: TemplateOrigin }
  unit: string
  files: HostFile[]
  createdAt: string
  /** Installed with --privileged: config.json may ask for more of the host than the defaults (see runtime/config-check.ts). */
  privileged?: boolean
  /** `--grant ITEM`s given at install (and added by updates): what config.json may ask beyond the default grant. */
  grants?: string[]
  /** What this deployment's config.json asks beyond the default grant (ITEMs). */
  asked?: string[]
  /** manifest.json noContainerService: host files (and tmpfiles) only; no unit written, enabled or started. */
  noContainerService?: boolean
  /**
   * `install --autoupdate MODE` (kept by updates): `registry` opts in to
   * `containers update --all --auto` (units/sysctr-update.timer), `disabled`
   * opts out even when the image has the label sysctr.autoupdate=registry.
   */
  autoupdate?: AutoUpdateMode
  /**
   * install --rootfs DIR (Atomic's remote rootfs): the host directory the container runs on; NAME.N has
   * no rootfs/ of its own, and nothing sysctr does (update, rollback, uninstall) writes or removes under DIR.
   */
  rootfs?: string
}

export type AutoUpdateMode = 'registry' | 'disabled'

/** What `Deployments.scan` found in one read of the containers directory. */
export interface DeploymentsScan {
  /** Names with an active link, sorted. */
  names: string[]
  /** NAME -> the slot its link names (undefined: the link names no slot). */
  active: Map<string, number | undefined>
  /** NAME -> its slot directories NAME.N, sorted (only those that are directories). */
  slots: Map<string, number[]>
  /** NAME -> its parked previous deployments .NAME.N.parked (an update in progress or interrupted). */
  parked: Map<string, number[]>
}

export interface Deployment {
  name: string
  slot: number
  dir: string
  record: DeploymentRecord
}

export class Deployments {
  constructor(readonly dir: string) {}

  slotDir(name: string, slot: number): string {
    return join(this.dir, `${name}.${slot}`)
  }

  linkPath(name: string): string {
    return join(this.dir, name)
  }

  async ensure(): Promise<void> {
    await makeDirs(this.dir) // not a recursive mkdir: that reports ENOSPC and EROFS as ENOENT
  }

  /** The active deployment of NAME, or undefined when NAME is not installed. */
  async active(name: string): Promise<Deployment | undefined> {
    let target: string
    try {
      target = await fsp.readlink(this.linkPath(name))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    const m = /\.(\d+)$/.exec(target)
    if (!m) return undefined
    const slot = Number(m[1])
    return this.read(name, slot)
  }

  /**
   * The deployment NAME.N with its record, or undefined when NAME.N has no
   * record. A record that cannot be read is HostError `record.damaged` (exit
   * 7) naming info.json: every verb on NAME refuses rather than guess.
   */
  async read(name: string, slot: number): Promise<Deployment | undefined> {
    const dir = this.slotDir(name, slot)
    const record = await readRecord<DeploymentRecord>(join(dir, 'info.json'), RECORD_CHECK, damagedHint(this.dir, name))
    return record && { name, slot, dir, record }
  }

  /** Every slot directory NAME.N that exists, active or not. */
  async slots(name: string): Promise<number[]> {
    const entries = await readdirOrEmpty(this.dir)
    const out: number[] = []
    for (const e of entries) {
      const m = /^(.*)\.(\d+)$/.exec(e)
      if (m && m[1] === name) out.push(Number(m[2]))
    }
    return out.sort()
  }

  /**
   * One read of the containers directory: every name with an active link
   * (and the link's target slot, undefined when it names no slot) and every
   * slot directory NAME.N. Listing verbs call this once per command instead
   * of `names()` + `slots(name)` per name (a readdir per container).
   */
  async scan(): Promise<DeploymentsScan> {
    const entries = await fsp.readdir(this.dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return []
      throw err
    })
    const slots = new Map<string, number[]>()
    const linked: string[] = []
    const parked = new Map<string, number[]>()
    for (const e of entries) {
      if (e.name.startsWith('.')) {
        const p = /^\.(.+)\.(\d+)\.parked$/.exec(e.name)
        if (p && e.isDirectory()) parked.set(p[1], [...(parked.get(p[1]) ?? []), Number(p[2])])
        continue
      }
      if (e.isSymbolicLink()) {
        linked.push(e.name)
        continue
      }
      const m = /^(.*)\.(\d+)$/.exec(e.name)
      if (!m || !e.isDirectory()) continue
      const list = slots.get(m[1]) ?? []
      list.push(Number(m[2]))
      slots.set(m[1], list)
    }
    for (const list of slots.values()) list.sort((a, b) => a - b)
    const active = new Map<string, number | undefined>()
    await Promise.all(linked.map(async (name) => active.set(name, await this.activeSlot(name))))
    return { names: linked.sort(), active, slots, parked }
  }

  /** Names with an active link. */
  async names(): Promise<string[]> {
    const entries = await fsp.readdir(this.dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return []
      throw err
    })
    return entries.filter((e) => e.isSymbolicLink() && !e.name.startsWith('.')).map((e) => e.name).sort()
  }

  /** A fresh temp directory to build deployment NAME.N in. */
  async stage(name: string, slot: number): Promise<string> {
    await this.ensure()
    const tmp = join(this.dir, `.${name}.${slot}.tmp-${randomBytes(4).toString('hex')}`)
    await fsp.mkdir(tmp, { mode: 0o700 })
    return tmp
  }

  async writeRecord(dir: string, record: DeploymentRecord): Promise<void> {
    await writeFileAtomic(join(dir, 'info.json'), JSON.stringify(record, null, 2) + '\n', { mode: 0o600 })
  }

  /** Rename a complete staged directory to NAME.N. NAME.N must not exist. */
  async publish(staged: string, name: string, slot: number): Promise<string> {
    const dest = this.slotDir(name, slot)
    await fsp.rename(staged, dest)
    await fsyncDir(this.dir)
    return dest
  }

  /** Make NAME.N the active deployment (atomic), then mark it activated. */
  async activate(name: string, slot: number): Promise<void> {
    await symlinkAtomic(`${name}.${slot}`, this.linkPath(name))
    const marker = join(this.slotDir(name, slot), 'activated')
    // Empty: a --root tree stays reproducible.
    if (!(await exists(marker))) await writeFileAtomic(marker, '', { mode: 0o600 })
  }

  /** Was NAME.N ever the active deployment (so that it can be rolled back to)? */
  async isActivated(name: string, slot: number): Promise<boolean> {
    if (await exists(join(this.slotDir(name, slot), 'activated'))) return true
    const d = await this.read(name, slot)
    return d !== undefined && (d.record.format ?? 1) < 2
  }

  /** The slot the active link names, if any. */
  async activeSlot(name: string): Promise<number | undefined> {
    const target = await fsp.readlink(this.linkPath(name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'EINVAL') return undefined
      throw err
    })
    const m = target === undefined ? null : /\.(\d+)$/.exec(target)
    return m ? Number(m[1]) : undefined
  }

  /** Remove NAME entirely: the link first (so NAME reads as not installed), then every slot. */
  async remove(name: string): Promise<void> {
    await fsp.rm(this.linkPath(name), { force: true })
    await fsyncDir(this.dir).catch(() => {})
    for (const slot of await this.slots(name)) await removeTree(this.slotDir(name, slot))
    for (const slot of await this.parkedSlots(name)) await removeTree(this.parkedDir(name, slot))
  }

  /** Where the previous deployment NAME.N waits while an update builds the new NAME.N. */
  parkedDir(name: string, slot: number): string {
    return join(this.dir, `.${name}.${slot}.parked`)
  }

  /** A parked deployment's record (prune keeps its image while it may come back). */
  async readParked(name: string, slot: number): Promise<DeploymentRecord | undefined> {
    return readRecord<DeploymentRecord>(join(this.parkedDir(name, slot), 'info.json'), RECORD_CHECK, damagedHint(this.dir, name))
  }

  /** Slots of NAME moved aside by an update in progress (or interrupted). */
  async parkedSlots(name: string): Promise<number[]> {
    const out: number[] = []
    for (const e of await readdirOrEmpty(this.dir)) {
      const m = /^\.(.*)\.(\d+)\.parked$/.exec(e)
      if (m && m[1] === name) out.push(Number(m[2]))
    }
    return out.sort()
  }

  /**
   * Move NAME.N (the previous deployment, not active) aside so that an update
   * can build the new NAME.N; `cleanLeftovers(NAME)` puts it back if the
   * update does not complete, `dropParked` removes it once it did.
   */
  async park(name: string, slot: number): Promise<void> {
    await removeTree(this.parkedDir(name, slot))
    await fsp.rename(this.slotDir(name, slot), this.parkedDir(name, slot))
    await fsyncDir(this.dir)
  }

  /** The update that parked NAME's previous deployment is done: remove it. */
  async dropParked(name: string): Promise<void> {
    for (const slot of await this.parkedSlots(name)) await removeTree(this.parkedDir(name, slot))
  }

  /**
   * Parked slots whose update did not complete: NAME.N is absent (never built,
   * or removed as never activated, or removed by the journal's replay): the
   * parked deployment goes back to NAME.N. When NAME.N exists and was
   * activated, the update happened: the parked one goes.
   */
  private async settleParked(name: string, removed: string[]): Promise<void> {
    for (const slot of await this.parkedSlots(name)) {
      const parked = this.parkedDir(name, slot)
      if (await exists(this.slotDir(name, slot))) {
        await removeTree(parked)
        removed.push(`.${name}.${slot}.parked`)
      } else {
        await fsp.rename(parked, this.slotDir(name, slot))
        await fsyncDir(this.dir)
      }
    }
  }

  /**
   * Remove temp dirs left by an interrupted run (none of them is ever
   * referenced). With NAME (the caller holds NAME's lock): also the slots of
   * NAME that were built but never activated, when NAME has an active link
   * (without one, install's own clean-up handles the slots and their files).
   */
  async cleanLeftovers(name?: string): Promise<string[]> {
    const entries = await readdirOrEmpty(this.dir)
    const removed: string[] = []
    for (const e of entries) {
      if (!e.startsWith('.') || !/\.tmp-[0-9a-z-]+$/.test(e)) continue
      if (name && !e.startsWith(`.${name}.`)) continue
      await removeTree(join(this.dir, e))
      removed.push(e)
    }
    if (name) {
      const active = await this.activeSlot(name)
      if (active === undefined) {
        // Not installed (a crashed install): nothing was parked for it to keep.
        for (const slot of await this.parkedSlots(name)) await removeTree(this.parkedDir(name, slot))
        return removed
      }
      for (const slot of await this.slots(name)) {
        if (slot === active || (await this.isActivated(name, slot))) continue
        await removeTree(this.slotDir(name, slot))
        removed.push(`${name}.${slot}`)
      }
      await this.settleParked(name, removed)
    }
    return removed
  }
}

/** The fields every record has had since format 1. */
const RECORD_CHECK = fieldsCheck({ name: 'string', slot: 'number', image: 'string', imageCommit: 'string', unit: 'string', files: 'array', values: 'object', setValues: 'object' })

/** How to repair NAME when one of its records is damaged. */
export function damagedHint(containersDir: string, name: string): string {
  return (
    `restore the file from a backup; otherwise remove ${name} by hand: stop and disable ${name}'s unit, ` +
    `delete ${join(containersDir, name)} and ${join(containersDir, `${name}.N`)} and the unit's files, then install ${name} again`
  )
}

/** The names in DIR; none when DIR does not exist (any other error is thrown). */
async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fsp.readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}

async function exists(path: string): Promise<boolean> {
  return fsp.lstat(path).then(
    () => true,
    () => false,
  )
}

/** Remove a checkout tree; read-only directories are made writable first (as root this is a no-op). */
export async function removeTree(path: string): Promise<void> {
  try {
    await fsp.rm(path, { recursive: true, force: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw err
    await makeDirsWritable(path)
    await fsp.rm(path, { recursive: true, force: true })
  }
}

async function makeDirsWritable(path: string): Promise<void> {
  const st = await fsp.lstat(path).catch(() => undefined)
  if (!st?.isDirectory()) return
  await fsp.chmod(path, st.mode | 0o700)
  for (const e of await fsp.readdir(path)) await makeDirsWritable(join(path, e))
}

/**
 * The previous deployment of NAME: of the slots other than the active one
 * that were once activated, the most recently built (normally there is
 * exactly one). A slot built but never switched to is not a candidate.
 */
export async function previousDeployment(deployments: Deployments, name: string, activeSlot: number): Promise<Deployment | undefined> {
  let best: Deployment | undefined
  for (const n of await deployments.slots(name)) {
    if (n === activeSlot || !(await deployments.isActivated(name, n))) continue
    const d = await deployments.read(name, n)
    if (d && (!best || d.record.createdAt > best.record.createdAt)) best = d
  }
  return best
}

/** The lowest slot number not in use. */
export function freeSlot(used: number[]): number {
  let n = 0
  while (used.includes(n)) n++
  return n
}

/**
 * The slot an update builds in: the other one of NAME.0/NAME.1 (Atomic's
 * alternation). A host left with a higher slot by an older sysctr goes back
 * to 0/1: the one of them not active.
 */
export function updateSlot(activeSlot: number): number {
  return activeSlot === 0 ? 1 : 0
}
