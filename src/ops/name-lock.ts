/**
 * The per-name lock: install, update, rollback and uninstall of one container
 * NAME run one at a time across processes. The lock is the store's lock
 * primitive (store/lock.ts: a symlink naming the holder, stale holders broken)
 * at STATE/locks/NAME/lock (beside containers/, so that taking the lock
 * creates nothing an operation or its tests see there). When free, the lock
 * leaves no trace: its directories (and any it had to create above them)
 * are removed again when empty.
 *
 * Order: the name lock is always taken before the store lock, never the other
 * way round, so two operations cannot wait on each other.
 */
import { promises as fsp } from 'node:fs'
import { dirname, join } from 'node:path'
import { HostError } from '../errors'
import { StoreLock } from '../store/lock'
import { hostFault, readOnlyError } from '../util/host-faults'
import { makeDirs } from '../util/make-dirs'
import type { OpsContext } from './context'

export function nameLockDir(ctx: Pick<OpsContext, 'paths'>, name: string): string {
  return join(ctx.paths.stateDir, 'locks', name)
}

/** How often the lock directory may vanish under us (its last holder removed it) before we give up. */
const MAX_RECREATE = 100

/** Run `fn` holding NAME's lock; a waiter says once per holder what it waits for (reporter.info). */
export async function withNameLock<T>(ctx: Pick<OpsContext, 'paths' | 'reporter'>, name: string, what: string, fn: () => Promise<T>): Promise<T> {
  const dir = nameLockDir(ctx, name)
  let lock: StoreLock | undefined
  // The topmost directory this call created (the state dir itself on a fresh host): removed again when empty.
  let created: string | undefined
  for (let attempt = 0; !lock; attempt++) {
    try {
      created = (await makeDirs(dir)) ?? created
      lock = await StoreLock.acquire(dir, what, {
        onWait: (h) => ctx.reporter.info(`waiting for ${name}: pid ${h.pid} is ${h.what || 'using it'}`),
      })
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EROFS') throw readOnlyError(err, ctx.paths.stateDir)
      if (code === 'ENOSPC' || code === 'EDQUOT') throw hostFault(err, ctx.paths.stateDir, `the lock ${dir}`)
      // The directory went away under us (its last holder removed it): make it again, a bounded number of times.
      if (code !== 'ENOENT') throw err
      if (attempt >= MAX_RECREATE)
        throw new HostError('host.lock-dir', `cannot take the lock of ${name}: ${dir} keeps disappearing (${attempt} attempts)`, {
          hint: `check that ${ctx.paths.stateDir} is writable and that nothing else removes files there`,
          cause: err,
          data: { path: dir },
        })
    }
  }
  try {
    return await fn()
  } catch (err) {
    // A full disk anywhere under the state dir (checkout, records, the store) is said once, with the filesystem.
    throw hostFault(err, ctx.paths.stateDir)
  } finally {
    await lock.release()
    // Leave no trace once free: rmdir only removes an empty directory, so a
    // lock another process has taken meanwhile is never lost.
    const top = created && created.length < join(dir, '..').length ? created : join(dir, '..')
    for (let d = dir; d.length >= top.length; d = dirname(d)) {
      try {
        await fsp.rmdir(d)
      } catch {
        break
      }
    }
  }
}
