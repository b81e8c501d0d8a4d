/**
 * The switch between a container's two deployments, and `containers rollback`.
 *
 * A switch puts a deployment's OWN recorded files in place - the unit and
 * tmpfiles entry rendered when that deployment was built, kept in NAME.N/ -
 * never re-rendered. Order: unit and tmpfiles entry (each written to a temp
 * file and renamed), host files (ops/hostfs.ts switchHostFiles: a file the
 * user changed is kept, never re-copied blindly), then the active link
 * (renamed; the slot is then marked activated), then tmpfiles --create and
 * daemon-reload. A crash between the steps leaves files of the new
 * deployment with the old link: running the same command again finishes it.
 *
 * Only activated slots are rollback targets (deployments.ts `activated`).
 * update/rollback hold the container's name lock (ops/name-lock.ts).
 *
 * rollback: make the other slot active (the previous deployment, kept until
 * the next update) and restart the unit if it was running.
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { doing, NotFoundError, withContext } from '../errors'
import { Deployment, Deployments } from '../deployment/deployments'
import type { JobResult, Systemd } from '../systemd/systemd'
import { checkContainerName } from '../deployment/name'
import { sha256File, writeFileAtomic } from '../util/atomic-file'
import { fromRoot, type OpsContext } from './context'
import { cleanInterrupted, switchHostFiles } from './hostfs'
import { withNameLock } from './name-lock'

/** Unit states in which an update or rollback restarts the unit. */
const RUNNING_STATES = ['active', 'activating', 'reloading']

/**
 * The previous deployment of NAME: of the slots other than the active one
 * that were once activated, the most recently built (normally there is
 * exactly one). A slot built but never switched to is not a candidate.
 */
export async function previousDeployment(deployments: Deployments, name: string, activeSlot: number): Promise<Deployment | undefined> {
  let best: Deployment | undefined
  for (const n of await deployments.slots(name)) {
    if (n === activeSlot || !(await deployments.isActivated(name, n))) continue
    const d = await deployments.read(name, n).catch(() => undefined)
    if (d && (!best || d.record.createdAt > best.record.createdAt)) best = d
  }
  return best
}

/** Was the unit running (so that a switch restarts it)? */
export async function unitIsRunning(systemd: Systemd, unit: string, d?: Deployment): Promise<boolean> {
  if (d?.record.noContainerService) return false
  const s = await systemd.unitState(unit)
  return RUNNING_STATES.includes(s.activeState)
}

/**
 * Make deployment `to` the active one of its container: its recorded unit
 * and tmpfiles files, its host files, the link, tmpfiles --create,
 * daemon-reload. `from` is the deployment active until now: a unit or
 * tmpfiles entry the user edited since `from` wrote it is replaced all the
 * same (it is the container's), with a warning; a host file (/exports/hostfs)
 * the user edited is kept. Between a deployment with a service and one
 * without (noContainerService) the unit is stopped/disabled or enabled.
 */
export async function switchDeployment(ctx: OpsContext, deployments: Deployments, to: Deployment, from?: Deployment): Promise<void> {
  const { name, record } = to
  await doing(`switching ${name} to deployment ${name}.${to.slot}`, async () => {
    const hasRole = (d: Deployment | undefined, role: string) => d?.record.files.some((f) => f.role === role) === true
    const unitGoes = hasRole(from, 'unit') && !hasRole(to, 'unit')
    const unitComes = from !== undefined && !hasRole(from, 'unit') && hasRole(to, 'unit')
    if (unitGoes) {
      const systemd = await ctx.systemd()
      await systemd.stopUnit(from!.record.unit).catch(() => {})
      await systemd.disableUnitFiles([from!.record.unit]).catch(() => {})
    }
    for (const f of from?.record.files ?? []) {
      if (f.role === 'hostfs' || record.files.some((g) => g.path === f.path)) continue
      // A unit or tmpfiles entry the new deployment does not have.
      const path = fromRoot(ctx, f.path)
      if (f.role === 'tmpfiles') await ctx.tmpfiles('remove', path).catch((e: Error) => ctx.reporter.warn(e.message))
      await fsp.rm(path, { force: true })
    }
    for (const f of record.files) {
      if (f.role === 'hostfs') continue
      // Records name paths as the host (or, with --root, the composed tree) sees them.
      const path = fromRoot(ctx, f.path)
      const source = f.role === 'unit' ? join(to.dir, record.unit) : join(to.dir, 'tmpfiles.conf')
      const wrote = from?.record.files.find((g) => g.path === f.path)?.sha256
      const have = await sha256File(path)
      if (wrote && have && have !== wrote) ctx.reporter.warn(`${path} was edited since sysctr wrote it; replacing it with ${name}.${to.slot}'s`)
      await fsp.mkdir(join(path, '..'), { recursive: true })
      await writeFileAtomic(path, await fsp.readFile(source), { mode: 0o644 })
    }
    await doing('switching host files', () => switchHostFiles(ctx, to.dir, record.files, from?.record.files ?? []))
    await deployments.activate(name, to.slot)
    const tmpfiles = record.files.find((f) => f.role === 'tmpfiles')
    if (tmpfiles) await doing(`applying ${tmpfiles.path}`, () => ctx.tmpfiles('create', fromRoot(ctx, tmpfiles.path)))
    const systemd = await ctx.systemd()
    await doing('reloading systemd', () => systemd.reload())
    if (unitComes) await doing(`enabling ${record.unit}`, () => systemd.enableUnitFiles([record.unit]))
  })
}

export interface RollbackResult {
  name: string
  unit: string
  /** The deployment now active (`NAME.N`) and the one it replaced. */
  deployment: string
  previousDeployment: string
  image: string
  manifestDigest: string
  /** Set when the unit was running and was restarted. */
  restarted?: JobResult
}

export async function rollback(ctx: OpsContext, name: string): Promise<RollbackResult> {
  checkContainerName(name)
  return doing(`rolling back ${name}`, () => withNameLock(ctx, name, `rolling back ${name}`, async () => {
    const deployments = new Deployments(ctx.paths.containersDir)
    await cleanInterrupted(ctx, deployments, name)
    const current = await deployments.active(name)
    if (!current) {
      throw new NotFoundError('container.not-found', `no container named ${name} is installed`, { hint: 'sysctr containers list shows what is installed' })
    }
    const previous = await previousDeployment(deployments, name, current.slot)
    if (!previous) {
      throw new NotFoundError('deployment.not-found', `${name} has no previous deployment to roll back to`, {
        hint: 'a previous deployment exists after an update (sysctr containers update)',
      })
    }
    const systemd = await ctx.systemd()
    const unit = current.record.unit
    const running = (await unitIsRunning(systemd, unit, current)) && !previous.record.noContainerService
    await switchDeployment(ctx, deployments, previous, current)
    const result: RollbackResult = {
      name,
      unit,
      deployment: `${name}.${previous.slot}`,
      previousDeployment: `${name}.${current.slot}`,
      image: previous.record.image,
      manifestDigest: previous.record.manifestDigest,
    }
    if (running) {
      try {
        result.restarted = await systemd.restartUnit(unit)
      } catch (err) {
        throw withContext(err, `${name} now runs deployment ${name}.${previous.slot}, but restarting ${unit} failed`)
      }
    }
    return result
  }))
}
