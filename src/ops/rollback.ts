/**
 * containers rollback: make the previous deployment (kept until the next
 * update) the active one again, with the unit, tmpfiles entry and host files
 * it was rendered with (its records, never re-rendered), and restart the
 * unit if it was running. The switch is deployment/switch.ts's, journaled as
 * for install and update; rollback holds the container's name lock.
 */
import { doing, NotFoundError, withContext } from '../errors'
import { Deployments, previousDeployment } from '../deployment/deployments'
import { planSwitchTo } from '../deployment/plan'
import { applySwitch, commitSwitch, recover, SimulatedKill, unitIsRunning } from '../deployment/switch'
import type { JobResult } from '../systemd/systemd'
import { checkContainerName } from '../deployment/name'
import type { OpsContext } from './context'
import { withNameLock } from './name-lock'
import { settleCheck, showJournal } from './unit-health'

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

/** settleMs: watch the restarted unit this long (ms, systemd/settle.ts); 0 or undefined: the restart job's result only. */
export async function rollback(ctx: OpsContext, name: string, opts: { settleMs?: number } = {}): Promise<RollbackResult> {
  checkContainerName(name)
  return doing(`rolling back ${name}`, () => withNameLock(ctx, name, `rolling back ${name}`, async () => {
    const deployments = new Deployments(ctx.paths.containersDir)
    await recover(ctx, deployments, name)
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
    const plan = await planSwitchTo(ctx, previous, current)
    try {
      await applySwitch(ctx, deployments, plan, previous, current)
    } catch (err) {
      if (err instanceof SimulatedKill) throw err
      await recover(ctx, deployments, name, 'failed').catch((e) =>
        ctx.reporter.warn(`could not switch ${name} back to ${name}.${current.slot}: ${(e as Error).message}`),
      )
      throw err
    }
    await commitSwitch(deployments, name)
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
        await showJournal(ctx, unit)
        throw withContext(err, `${name} now runs deployment ${name}.${previous.slot}, but restarting ${unit} failed`)
      }
      const failed = await settleCheck(ctx, systemd, unit, opts.settleMs, 'rollback.not-settled', `${name} now runs deployment ${name}.${previous.slot}, but `, `see journalctl -u ${unit}; sysctr containers rollback ${name} again switches back`)
      if (failed) throw failed
    }
    return result
  }))
}
