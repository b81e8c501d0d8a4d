/**
 * Applying a plan, and the one undo path.
 *
 * `buildDeployment` turns a plan's first half into NAME.N (checkout done by
 * the caller into the staged dir; the rendered files, host-file copies and
 * info.json written; renamed into place). `applySwitch` carries out a
 * SwitchPlan (deployment/plan.ts) on the host, journaled:
 *
 *   1. the undo journal `containers/.NAME.journal/` is written first (temp
 *      dir, fsync, rename): every host path the switch may touch with a copy
 *      of what is there now (a hardlink, or a copy across filesystems) or
 *      "absent", the active link's target, the slot being switched to and
 *      whether this operation built it, the units it enables or disables;
 *   2. stop/disable a unit that goes, remove files, write the unit and
 *      tmpfiles entry (temp + rename), the host files (a file the user
 *      changed is kept: deployment/host-files.ts), switch the active link
 *      (rename; the slot is then marked activated), tmpfiles --create,
 *      daemon-reload, enable a unit that comes;
 *   3. the caller finishes its systemd part (install: nothing more; update
 *      and rollback: the restart) and then `commitSwitch` removes the journal.
 *
 * `recover(name)` replays a journal that is still there: after a failure in
 * 2 or 3 (install's failure path, update's automatic rollback) and after a
 * crash anywhere (the next install, update, rollback or uninstall of NAME
 * calls it first, under NAME's lock). It puts every journaled path back as it
 * was unless it was changed since by someone else (then it is kept, with a
 * warning), points the link back (or removes it), removes the slot the
 * operation built, undoes enable/disable, re-applies the old tmpfiles entry,
 * reloads, and restarts the unit if the operation had restarted it. A
 * journal whose replay was interrupted is replayed again: each step is
 * idempotent.
 *
 * Kill points (`killPoint`): named steps where a test can stop the process
 * (SYSCTR_KILL_AT=POINT: SIGKILL; in-process tests: ctx.killAt throws
 * SimulatedKill, which no failure path handles, as after a real crash).
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { doing, SysctrError } from '../errors'
import type { Store } from '../store/store'
import { fsyncDir, removeTempSiblings, sha256File, symlinkAtomic, writeFileAtomic } from '../util/atomic-file'
import { makeDirs } from '../util/make-dirs'
import { fromRoot, type OpsContext } from '../ops/context'
import { Deployments, removeTree, type Deployment } from './deployments'
import { putHostEntry, removeHostEntry, switchHostFiles, writeDeploymentCopy } from './host-files'
import { deploymentFileName, type DeploymentPlan, type SwitchPlan } from './plan'
import type { Systemd } from '../systemd/systemd'

/** Unit states in which an update or rollback restarts the unit. */
const RUNNING_STATES = ['active', 'activating', 'reloading']

/** Was the unit running (so that a switch restarts it)? */
export async function unitIsRunning(systemd: Systemd, unit: string, d?: Deployment): Promise<boolean> {
  if (d?.record.noContainerService) return false
  const s = await systemd.unitState(unit)
  return RUNNING_STATES.includes(s.activeState)
}

/** Thrown at a kill point by in-process tests (ctx.killAt): like a crash, nothing undoes it. */
export class SimulatedKill extends SysctrError {
  constructor(readonly point: string) {
    super('test.killed', `simulated kill at ${point}`)
  }
}

/** Stop here if a test asked to (SYSCTR_KILL_AT or ctx.killAt). */
export function killPoint(ctx: Pick<OpsContext, 'killAt'>, point: string): void {
  if (process.env.SYSCTR_KILL_AT === point) process.kill(process.pid, 'SIGKILL')
  if (ctx.killAt === point) throw new SimulatedKill(point)
}

/**
 * Build NAME.N from a plan: `staged` holds the checkout (rootfs/) already;
 * the deployment's files and record are written and the directory renamed
 * into place. Touches nothing outside the deployments dir.
 */
export async function buildDeployment(deployments: Deployments, plan: DeploymentPlan, staged: string): Promise<Deployment> {
  for (const f of plan.deploymentFiles) {
    const dest = join(staged, f.name)
    if (f.name.startsWith('hostfs/')) await fsp.mkdir(join(dest, '..'), { recursive: true, mode: 0o700 })
    await writeDeploymentCopy(dest, f)
  }
  await deployments.writeRecord(staged, plan.record)
  const dir = await deployments.publish(staged, plan.name, plan.slot)
  return { name: plan.name, slot: plan.slot, dir, record: plan.record }
}

/** Check out the plan's image commit into a fresh staged dir for NAME.N (removed again on failure). */
export async function stageCheckout(store: Store, deployments: Deployments, name: string, slot: number, commit: string): Promise<string> {
  const staged = await deployments.stage(name, slot)
  try {
    await doing('checking out the image', () => store.checkout(commit, join(staged, 'rootfs')))
    return staged
  } catch (err) {
    await removeTree(staged).catch(() => {})
    throw err
  }
}

interface JournalEntry {
  /** Host path. */
  path: string
  role: string
  /** What was there: a copy in the journal (`saved/N`) or nothing. */
  before: 'absent' | string
  /** sha256 of what this switch puts there; undefined: removed. */
  after?: string
}

interface Journal {
  format: 1
  name: string
  toSlot: number
  fromSlot?: number
  newSlot: boolean
  /** The active link's target before the switch (`NAME.M`), or null. */
  link: string | null
  entries: JournalEntry[]
  enables: string[]
  disables: string[]
  /** The old deployment's tmpfiles entry, re-applied after a replay. */
  tmpfiles?: string
  /** Set before the caller restarts the unit: a replay restarts it on the old deployment. */
  restart?: string
  createdAt: string
}

export function journalDir(deployments: Deployments, name: string): string {
  return join(deployments.dir, `.${name}.journal`)
}

async function readJournal(deployments: Deployments, name: string): Promise<Journal | undefined> {
  try {
    return JSON.parse(await fsp.readFile(join(journalDir(deployments, name), 'journal.json'), 'utf8')) as Journal
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

async function writeJournal(deployments: Deployments, plan: SwitchPlan, from: Deployment | undefined, ctx: OpsContext): Promise<void> {
  const dir = journalDir(deployments, plan.name)
  const tmp = `${dir}.tmp-${randomBytes(4).toString('hex')}`
  await makeDirs(join(tmp, 'saved')) // not a recursive mkdir: that reports ENOSPC and EROFS as ENOENT
  const entries: JournalEntry[] = []
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
  const paths = [...plan.writes.map((w) => ({ path: w.path, role: w.role, after: sha(w.content) as string | undefined })), ...plan.removes.map((r) => ({ path: r.path, role: r.role, after: undefined }))]
  for (const [i, p] of paths.entries()) {
    const saved = join(tmp, 'saved', String(i))
    let before = 'absent'
    const st = await fsp.lstat(p.path).catch(() => undefined)
    if (st?.isDirectory()) {
      // A host directory (an empty one of /exports/hostfs): saved as a directory, never its content.
      await fsp.mkdir(saved, { mode: st.mode & 0o7777 })
      before = `saved/${i}`
    } else if (st?.isSymbolicLink()) {
      await fsp.symlink(await fsp.readlink(p.path), saved)
      before = `saved/${i}`
    } else if (st) {
      try {
        await fsp.link(p.path, saved)
        before = `saved/${i}`
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'EXDEV' || code === 'EMLINK' || code === 'EPERM') {
          await fsp.copyFile(p.path, saved)
          before = `saved/${i}`
        } else if (code !== 'ENOENT') throw err
      }
    }
    entries.push({ path: p.path, role: p.role, before, ...(p.after !== undefined ? { after: p.after } : {}) })
  }
  const link = await fsp.readlink(deployments.linkPath(plan.name)).catch(() => null)
  const oldTmpfiles = from?.record.files.find((f) => f.role === 'tmpfiles')
  const journal: Journal = {
    format: 1,
    name: plan.name,
    toSlot: plan.toSlot,
    ...(plan.fromSlot !== undefined ? { fromSlot: plan.fromSlot } : {}),
    newSlot: plan.newSlot,
    link,
    entries,
    enables: plan.steps.flatMap((s) => (s.op === 'enable' ? [s.unit] : [])),
    disables: plan.steps.flatMap((s) => (s.op === 'disable' ? [s.unit] : [])),
    ...(oldTmpfiles ? { tmpfiles: fromRoot(ctx, oldTmpfiles.path) } : {}),
    createdAt: new Date().toISOString(),
  }
  await writeFileAtomic(join(tmp, 'journal.json'), JSON.stringify(journal, null, 2) + '\n', { mode: 0o600 })
  await fsyncDir(join(tmp, 'saved'))
  await fsp.rm(dir, { recursive: true, force: true })
  await fsp.rename(tmp, dir)
  await fsyncDir(deployments.dir)
}

/**
 * Carry out a switch plan (journal first). `to` is the deployment switched
 * to (published), `from` the one active until now. On return the journal is
 * still there: the caller commits (commitSwitch) or recovers.
 */
export async function applySwitch(ctx: OpsContext, deployments: Deployments, plan: SwitchPlan, to: Deployment, from?: Deployment): Promise<void> {
  const { name } = plan
  await doing(`switching ${name} to deployment ${name}.${plan.toSlot}`, async () => {
    await writeJournal(deployments, plan, from, ctx)
    killPoint(ctx, 'switch:journal')
    const systemd = await ctx.systemd()
    for (const s of plan.steps) {
      if (s.op === 'stop') await systemd.stopUnit(s.unit).catch(() => {})
      if (s.op === 'disable') await systemd.disableUnitFiles([s.unit]).catch(() => {})
    }
    for (const s of plan.steps) if (s.op === 'tmpfiles-remove') await ctx.tmpfiles('remove', s.path).catch((e: Error) => ctx.reporter.warn(e.message))
    // A unit or tmpfiles entry the new deployment does not have (host files: removed by switchHostFiles when unchanged).
    for (const r of plan.removes) if (r.role !== 'hostfs') await fsp.rm(r.path, { force: true })
    for (const w of plan.writes) {
      if (w.role === 'hostfs') continue
      const have = await sha256File(w.path)
      if (w.previousSha256 && have && have !== w.previousSha256) ctx.reporter.warn(`${w.path} was edited since sysctr wrote it; replacing it with ${name}.${plan.toSlot}'s`)
      await fsp.mkdir(join(w.path, '..'), { recursive: true, ...(ctx.user ? { mode: 0o700 } : {}) })
      await writeFileAtomic(w.path, w.content, { mode: w.mode })
    }
    killPoint(ctx, 'switch:unit')
    await doing('switching host files', () => switchHostFiles(ctx, to.dir, to.record.files, from?.record.files ?? []))
    killPoint(ctx, 'switch:hostfs')
    await deployments.activate(name, plan.toSlot)
    killPoint(ctx, 'switch:link')
    for (const s of plan.steps) {
      if (s.op === 'tmpfiles-create') await doing(`applying ${s.path}`, () => ctx.tmpfiles('create', s.path))
      if (s.op === 'reload') await doing('reloading systemd', () => systemd.reload())
      if (s.op === 'enable') await doing(`enabling ${s.unit}`, () => systemd.enableUnitFiles([s.unit]))
    }
    killPoint(ctx, 'switch:systemd')
  })
}

/** The switch is complete (and the caller's restart, if any, succeeded): drop the journal. */
export async function commitSwitch(deployments: Deployments, name: string): Promise<void> {
  await fsp.rm(journalDir(deployments, name), { recursive: true, force: true })
  await fsyncDir(deployments.dir).catch(() => {})
}

/** Note in the journal that the caller restarts UNIT now (a replay then restarts it on the old deployment). */
export async function journalRestart(deployments: Deployments, name: string, unit: string): Promise<void> {
  const j = await readJournal(deployments, name)
  if (!j) return
  j.restart = unit
  await writeFileAtomic(join(journalDir(deployments, name), 'journal.json'), JSON.stringify(j, null, 2) + '\n', { mode: 0o600 })
}

export interface RecoverResult {
  /** A journal was replayed. */
  replayed: boolean
  /** Host paths put back (rewritten or removed). */
  restored: string[]
  /** Paths changed by someone else since the switch: left as they are. */
  kept: string[]
  /** Leftover directories removed (temp dirs, slots never activated). */
  removed: string[]
}

/**
 * Put NAME back to the state before an interrupted or failed switch (see the
 * top of this file), then remove what interrupted runs left (temp dirs,
 * slots never activated, and with no active link every slot together with
 * the host files it recorded that are still exactly sysctr's, unless
 * `unlinkedSlots: false`: uninstall removes those itself). `why`:
 * 'interrupted' reports what it put back; 'failed' (the caller's own
 * failure path) only warns about what it could not.
 */
export async function recover(
  ctx: OpsContext,
  deployments: Deployments,
  name: string,
  why: 'interrupted' | 'failed' = 'interrupted',
  opts: { unlinkedSlots?: boolean; restart?: boolean } = {},
): Promise<RecoverResult> {
  const res: RecoverResult = { replayed: false, restored: [], kept: [], removed: [] }
  const j = await readJournal(deployments, name)
  if (j) {
    res.replayed = true
    const jdir = journalDir(deployments, name)
    // Files and link are put back even when systemd cannot be reached; what is skipped is said.
    const systemd = await ctx.systemd().catch((e: Error) => {
      ctx.reporter.warn(`putting ${name} back without systemd (${e.message}): enablement and reload skipped; run the command again once systemd answers`)
      return undefined
    })
    for (const u of j.enables) await systemd?.disableUnitFiles([u]).catch(() => {})
    for (const e of [...j.entries].reverse()) {
      // A write killed between its temp file and the rename leaves `.NAME.tmp-…` beside the file.
      await removeTempSiblings(e.path)
      const have = await sha256File(e.path)
      const saved = e.before === 'absent' ? undefined : join(jdir, e.before)
      const beforeSha = saved ? await sha256File(saved) : undefined
      if (have === beforeSha) continue
      const ours = have === undefined || have === e.after
      if (!ours && e.role === 'hostfs') {
        ctx.reporter.warn(`${e.path} was changed since sysctr wrote it: keeping it`)
        res.kept.push(e.path)
        continue
      }
      if (saved) {
        await fsp.mkdir(join(e.path, '..'), { recursive: true, ...(ctx.user ? { mode: 0o700 } : {}) })
        // A file, a symlink (never followed) or a directory, as it was.
        if ((await fsp.lstat(e.path).catch(() => undefined))?.isDirectory() && !(await fsp.lstat(saved)).isDirectory()) await removeHostEntry(e.path)
        await putHostEntry(e.path, saved)
      } else if (!(await removeHostEntry(e.path))) {
        ctx.reporter.warn(`${e.path} is a directory that is no longer empty: keeping it`)
        res.kept.push(e.path)
        continue
      }
      res.restored.push(e.path)
    }
    if (j.link) await symlinkAtomic(j.link, deployments.linkPath(name))
    else await fsp.rm(deployments.linkPath(name), { force: true })
    if (j.newSlot) await removeTree(deployments.slotDir(name, j.toSlot))
    if (j.tmpfiles) await ctx.tmpfiles('create', j.tmpfiles).catch((e: Error) => ctx.reporter.warn(e.message))
    for (const u of j.disables) await systemd?.enableUnitFiles([u]).catch(() => {})
    await systemd?.reload().catch(() => {})
    if (j.restart && systemd && j.link && opts.restart !== false) {
      const s = await systemd.unitState(j.restart).catch(() => undefined)
      if (s && ['active', 'activating', 'reloading', 'failed'].includes(s.activeState)) {
        await systemd.restartUnit(j.restart).catch((e: Error) => ctx.reporter.warn(`restarting ${j.restart} on ${j.link}: ${e.message}`))
      }
    }
    await commitSwitch(deployments, name)
    if (why === 'interrupted') {
      const hostfs = res.restored.filter((p) => j.entries.some((e) => e.path === p && e.role === 'hostfs'))
      const as = j.link ? `${j.link} has them` : 'before the install'
      if (hostfs.length) ctx.reporter.info(`host files of an interrupted operation on ${name} put back as ${as}: ${hostfs.join(', ')}`)
      ctx.reporter.info(`an interrupted operation on ${name} was rolled back (${j.link ? `active: ${j.link}` : 'not installed'}${res.restored.length ? `; files put back: ${res.restored.length}` : ''})`)
    }
  }
  res.removed.push(...(await cleanSlots(ctx, deployments, name, opts.unlinkedSlots !== false)))
  return res
}

/** Leftovers of runs that left no journal (a crash before it was written, or a sysctr without journals). */
async function cleanSlots(ctx: OpsContext, deployments: Deployments, name: string, unlinked: boolean): Promise<string[]> {
  const removed = await deployments.cleanLeftovers(name)
  if (!unlinked || (await deployments.activeSlot(name)) !== undefined) return removed
  // No active link: every slot of NAME is what a crashed install left.
  for (const slot of await deployments.slots(name)) {
    // A slot of a crashed install was never activated: it goes even when its record cannot be read.
    const d = await deployments.read(name, slot).catch(() => undefined)
    for (const f of d?.record.files ?? []) {
      const host = fromRoot(ctx, f.path)
      if ((await sha256File(host)) === f.sha256) await fsp.rm(host, { force: true })
    }
    await removeTree(deployments.slotDir(name, slot))
    removed.push(`${name}.${slot}`)
  }
  return removed
}

/**
 * The no-op path of install: check that what is on the host is what the
 * record of the active deployment says (unit, socket and tmpfiles entry
 * byte for byte, the units enabled), and put back what is not, from the
 * deployment's own copies. Returns what it repaired (empty: all as recorded).
 */
export async function repairInstalled(ctx: OpsContext, active: Deployment): Promise<string[]> {
  const repaired: string[] = []
  const { record } = active
  for (const f of record.files) {
    if (f.role === 'hostfs') continue
    const path = fromRoot(ctx, f.path)
    await removeTempSiblings(path)
    if ((await sha256File(path)) === f.sha256) continue
    const copy = join(active.dir, deploymentFileName(f, record.unit))
    await fsp.mkdir(join(path, '..'), { recursive: true, ...(ctx.user ? { mode: 0o700 } : {}) })
    await writeFileAtomic(path, await fsp.readFile(copy), { mode: 0o644 })
    if (f.role === 'tmpfiles') await ctx.tmpfiles('create', path).catch((e: Error) => ctx.reporter.warn(e.message))
    repaired.push(path)
  }
  const units = record.files.flatMap((f) => (f.role === 'unit' ? [record.unit] : f.role === 'socket' ? [record.unit.replace(/\.service$/, '.socket')] : []))
  if (units.length > 0) {
    const systemd = await ctx.systemd()
    if (repaired.length > 0) await systemd.reload()
    for (const u of units) {
      const state = (await systemd.unitState(u).catch(() => undefined))?.unitFileState
      if (state === undefined || ['enabled', 'enabled-runtime', 'static', 'alias', 'indirect', 'generated'].includes(state)) continue
      await doing(`enabling ${u}`, () => systemd.enableUnitFiles([u]))
      repaired.push(`${u} (not enabled)`)
    }
  }
  return repaired
}
