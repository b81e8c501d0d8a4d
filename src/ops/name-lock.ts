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
import { StoreLock } from '../store/lock'
import type { OpsContext } from './context'

export function nameLockDir(ctx: Pick<OpsContext, 'paths'>, name: string): string {
  return join(ctx.paths.stateDir, 'locks', name)
}

/** Run `fn` holding NAME's lock; a waiter says once per holder what it waits for (reporter.info). */
export async function withNameLock<T>(ctx: Pick<OpsContext, 'paths' | 'reporter'>, name: string, what: string, fn: () => Promise<T>): Promise<T> {
  const dir = nameLockDir(ctx, name)
  let lock: StoreLock | undefined
  // The topmost directory this call created (the state dir itself on a fresh host): removed again when empty.
  let created: string | undefined
  while (!lock) {
    try {
      created = (await fsp.mkdir(dir, { recursive: true, mode: 0o700 })) ?? created
      lock = await StoreLock.acquire(dir, what, {
        onWait: (h) => ctx.reporter.info(`waiting for ${name}: pid ${h.pid} is ${h.what || 'using it'}`),
      })
    } catch (err) {
      // The directory went away under us (its last holder removed it): make it again.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
  try {
    return await fn()
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
