/**
 * uninstall: stop and disable over D-Bus, undo and remove the tmpfiles entry,
 * remove the unit, remove every deployment of NAME, reload. The image stays
 * in the store (`images prune` removes what nothing uses).
 *
 * Order matters for crash safety: host files go before the deployments, and
 * the deployments' records are what tells a rerun which files are sysctr's,
 * so an interrupted uninstall can simply be run again.
 *
 * Host files from /exports/hostfs are removed only when their content is
 * still what some deployment of NAME wrote (its recorded sha256); a file the
 * user changed is kept and reported (keptFiles). The unit and tmpfiles entry
 * go even when edited. A container without a service (noContainerService)
 * has nothing to stop or disable. Holds NAME's lock (ops/name-lock.ts).
 */
import { promises as fsp } from 'node:fs'
import { ConflictError, doing, NotFoundError } from '../errors'
import { listMounts } from './mount'
import { checkContainerName } from '../deployment/name'
import { Deployments } from '../deployment/deployments'
import { removeIfUnchanged } from '../deployment/host-files'
import { killPoint, recover } from '../deployment/switch'
import { sha256File } from '../util/atomic-file'
import { fromRoot, type OpsContext } from './context'
import { withNameLock } from './name-lock'

export interface UninstallResult {
  name: string
  unit: string
  removedFiles: string[]
  /** Directories the tmpfiles entry had created, removed because they were empty. */
  removedDirs?: string[]
  keptFiles: string[]
  removedDeployments: number[]
}

function ignoreCode(code: string) {
  return (err: unknown) => {
    if ((err as { code?: string }).code !== code) throw err
  }
}

export async function uninstall(ctx: OpsContext, name: string): Promise<UninstallResult> {
  checkContainerName(name)
  return doing(`uninstalling ${name}`, () => withNameLock(ctx, name, `uninstalling ${name}`, async () => {
    const deployments = new Deployments(ctx.paths.containersDir)
    // An interrupted install, update or rollback is undone first (its journal), so the records say what is on the host.
    await recover(ctx, deployments, name, 'interrupted', { unlinkedSlots: false })
    const slots = await deployments.slots(name)
    const active = await deployments.active(name)
    const records = (await Promise.all(slots.map((s) => deployments.read(name, s)))).filter((d) => d !== undefined)
    if (!active && records.length === 0) {
      // An uninstall killed while removing the slots leaves slot directories without records: finish it.
      if (slots.length > 0) {
        await deployments.remove(name)
        ctx.reporter.info(`removed what an interrupted uninstall of ${name} left: ${slots.map((s) => `${name}.${s}`).join(', ')}`)
        return { name, unit: `${name}.service`, removedFiles: [], keptFiles: [], removedDeployments: slots }
      }
      throw new NotFoundError('container.not-found', `no container named ${name} is installed`, { hint: 'sysctr containers list shows what is installed' })
    }
    const mounted = (await listMounts(ctx)).filter((m) => m.kind === 'container' && m.target === name)
    if (mounted.length > 0) {
      throw new ConflictError('container.mounted', `${name} is mounted at ${mounted.map((m) => m.dir).join(', ')}`, {
        hint: `sysctr umount ${mounted[0]!.dir} first`,
      })
    }
    const unit = (active ?? records[0]).record.unit
    const systemd = await ctx.systemd()
    const hasUnit = records.some((d) => d.record.files.some((f) => f.role === 'unit'))
    if (hasUnit) {
      // A unit systemd no longer knows (its file already gone) has nothing to stop.
      // Under --root (OfflineSystemd) nothing runs: nothing to stop.
      await doing(`stopping ${unit}`, () => systemd.stopUnit(unit))
        .catch(ignoreCode('systemd.unit-not-found'))
        .catch(ignoreCode('systemd.offline'))
      await doing(`disabling ${unit}`, () => systemd.disableUnitFiles([unit])).catch(ignoreCode('systemd.unit-not-found'))
    }
    if (records.some((d) => d.record.files.some((f) => f.role === 'socket'))) {
      const socket = unit.replace(/\.service$/, '.socket')
      await doing(`stopping ${socket}`, () => systemd.stopUnit(socket))
        .catch(ignoreCode('systemd.unit-not-found'))
        .catch(ignoreCode('systemd.offline'))
      await doing(`disabling ${socket}`, () => systemd.disableUnitFiles([socket])).catch(ignoreCode('systemd.unit-not-found'))
    }

    killPoint(ctx, 'uninstall:disabled')
    const result: UninstallResult = { name, unit, removedFiles: [], keptFiles: [], removedDeployments: slots }
    const files = new Map<string, { sha: Set<string>; role: string }>()
    for (const d of records) {
      for (const f of d.record.files) {
        const e = files.get(f.path) ?? { sha: new Set<string>(), role: f.role }
        e.sha.add(f.sha256)
        files.set(f.path, e)
      }
    }
    for (const [path, f] of files) {
      // Records name paths as seen inside --root; on the host they are under it.
      const host = fromRoot(ctx, path)
      if (f.role === 'hostfs') {
        const r = await removeIfUnchanged(host, [...f.sha])
        if (r === 'changed') {
          const dir = (await fsp.lstat(host).catch(() => undefined))?.isDirectory()
          ctx.reporter.warn(dir ? `${path} is a directory that is not empty: keeping it` : `${path} was changed since sysctr wrote it: keeping it`)
          result.keptFiles.push(path)
        }
        if (r === 'removed') result.removedFiles.push(path)
        continue
      }
      if ((await sha256File(host)) === undefined) continue
      if (f.role === 'tmpfiles') {
        const entry = await fsp.readFile(host, 'utf8').catch(() => '')
        await ctx.tmpfiles('remove', host).catch((e: Error) => ctx.reporter.warn(e.message))
        // `systemd-tmpfiles --remove` leaves the directories of d lines: remove those still empty.
        result.removedDirs = await removeEmptyTmpfilesDirs(ctx, entry)
      }
      // The unit and tmpfiles entry are sysctr's even when edited: they belong to
      // this container and go with it. (Host files copied from /exports/hostfs
      // that the user changed are kept, above; see README.)
      await fsp.rm(host, { force: true })
      result.removedFiles.push(path)
    }
    killPoint(ctx, 'uninstall:files')
    await deployments.remove(name)
    await doing('reloading systemd', () => systemd.reload())
    return result
  }))
}

/**
 * The directories of a tmpfiles entry's `d`/`D` lines (as seen inside
 * --root), deepest first, removed when empty. A directory with anything in
 * it stays, and so does any top-level directory (/etc, /run, /var/lib...).
 */
async function removeEmptyTmpfilesDirs(ctx: OpsContext, entry: string): Promise<string[]> {
  const dirs = entry
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((w) => (w[0] === 'd' || w[0] === 'D') && w[1]?.startsWith('/'))
    .map((w) => w[1]!.replace(/\/+$/, ''))
    .filter((d) => d.split('/').filter(Boolean).length >= 2 && !d.split('/').includes('..'))
  const removed: string[] = []
  for (const d of [...new Set(dirs)].sort((a, b) => b.length - a.length)) {
    try {
      await fsp.rmdir(fromRoot(ctx, d))
      removed.push(d)
    } catch {
      /* not empty, or gone: left as it is */
    }
  }
  return removed
}
