/**
 * The store's writer lock: one exclusive holder at a time across processes.
 *
 * No native modules (no flock), so the lock is a symlink `<root>/lock` whose
 * target text is the holder, JSON {pid, start, what, since}. symlink(2) is an
 * atomic exclusive create that carries its content: a reader never sees a
 * half-written holder. `start` is the holder's start time (field 22 of
 * /proc/PID/stat), so a reused pid is told apart from the holder.
 *
 * A waiter polls. When the holder is dead (no such pid, or same pid with
 * another start time) it breaks the lock: breakers serialise on a second
 * symlink `lock.break`, re-read `lock` and remove it only if it still names
 * the same stale holder, so a live lock is never removed by a breaker (only
 * its holder removes it). A stale `lock.break` (its breaker died in that
 * short window) is removed the same way.
 *
 * Waiting is reported once per holder through `onWait`, e.g. "waiting for store
 * lock held by pid 812 (installing etcd)".
 */
import { promises as fsp, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConflictError, HostError } from '../errors'

/** Immediate retries (the lock vanished or was stale) before giving up. */
const MAX_SPINS = 1000

export interface LockHolder {
  pid: number
  /** Process start time in clock ticks since boot (/proc/PID/stat field 22); 0 if unknown. */
  start: number
  /** What the holder is doing, e.g. "installing etcd". */
  what: string
  /** ISO time the lock was taken. */
  since: string
}

export interface LockOptions {
  /** Called when this process starts waiting, and again whenever the holder changes. */
  onWait?: (holder: LockHolder, message: string) => void
  /** Give up after this many ms with ConflictError 'store.locked' (default: SYSCTR_LOCK_TIMEOUT seconds, else 30 minutes). */
  timeoutMs?: number
  /** Poll interval in ms (default 100, growing to 1000). */
  pollMs?: number
  /** Injected for tests: the clock and the sleep. */
  sleep?: (ms: number) => Promise<void>
}

/** Start time of `pid` (clock ticks since boot), or undefined if no such process. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // comm (field 2) may contain spaces and parens: fields resume after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // rest[0] is field 3 (state); field 22 is rest[19].
    return Number(rest[19])
  } catch {
    return undefined
  }
}

export function isAlive(holder: Pick<LockHolder, 'pid' | 'start'>): boolean {
  const start = processStartTime(holder.pid)
  if (start === undefined) return false
  return holder.start === 0 || start === holder.start
}

export function currentHolder(what: string): LockHolder {
  return { pid: process.pid, start: processStartTime(process.pid) ?? 0, what, since: new Date().toISOString() }
}

async function readHolder(path: string): Promise<{ raw: string; holder: LockHolder } | undefined> {
  let raw: string
  try {
    raw = await fsp.readlink(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  try {
    const h = JSON.parse(raw) as LockHolder
    if (typeof h.pid === 'number' && typeof h.start === 'number') return { raw, holder: h }
  } catch {
    /* fall through */
  }
  // Not ours or garbage: treat as a dead holder so it can be broken.
  return { raw, holder: { pid: 0, start: 0, what: `unreadable lock ${JSON.stringify(raw)}`, since: '' } }
}

async function tryCreate(path: string, raw: string): Promise<boolean> {
  try {
    await fsp.symlink(raw, path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

/** Remove `path` if it still holds exactly `raw`. Only called while holding `lock.break` (or for lock.break itself). */
async function removeIfSame(path: string, raw: string): Promise<void> {
  const now = await readHolder(path)
  if (now && now.raw === raw) await fsp.rm(path, { force: true })
}

/** How long a lock waits for a live holder: SYSCTR_LOCK_TIMEOUT (seconds), default 30 minutes. Every wait in sysctr is bounded. */
export function defaultLockTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const s = Number(env.SYSCTR_LOCK_TIMEOUT)
  return Number.isFinite(s) && s > 0 ? s * 1000 : 30 * 60 * 1000
}

export class StoreLock {
  private constructor(
    private readonly path: string,
    private readonly raw: string,
  ) {}

  /** Take the lock in `root`, waiting as long as it is held by a live process. */
  static async acquire(root: string, what: string, opts: LockOptions = {}): Promise<StoreLock> {
    const path = join(root, 'lock')
    const breakPath = join(root, 'lock.break')
    const me = currentHolder(what)
    const raw = JSON.stringify(me)
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
    const started = Date.now()
    const timeoutMs = opts.timeoutMs ?? defaultLockTimeoutMs()
    let poll = opts.pollMs ?? 100
    let reported: string | undefined
    // Retries without a wait (released or broken between our create and read) are bounded:
    // a lock that keeps vanishing means something else is wrong with the directory.
    let spins = 0
    for (;;) {
      if (await tryCreate(path, raw)) return new StoreLock(path, raw)
      const cur = await readHolder(path)
      if (!cur || !isAlive(cur.holder)) {
        if (++spins > MAX_SPINS)
          throw new HostError('host.lock-unstable', `cannot take the lock ${path}: it was released or broken ${MAX_SPINS} times in a row without being taken`, {
            hint: `check that nothing else removes files in ${root}`,
            data: { path },
          })
        if (cur) await breakStale(path, breakPath, cur.raw, raw)
        continue
      }
      spins = 0
      if (reported !== cur.raw) {
        reported = cur.raw
        const h = cur.holder
        opts.onWait?.(h, `waiting for store lock held by pid ${h.pid}${h.what ? ` (${h.what})` : ''}`)
      }
      if (Date.now() - started >= timeoutMs) {
        throw new ConflictError('store.locked', `${path} is still held by pid ${cur.holder.pid} (${cur.holder.what}) after ${Math.round(timeoutMs / 1000)} s of waiting`, {
          hint: 'wait for the other sysctr command to finish, or set SYSCTR_LOCK_TIMEOUT (seconds) to wait longer',
          data: { holder: cur.holder },
        })
      }
      await sleep(poll)
      poll = Math.min(poll * 2, 1000)
    }
  }

  async release(): Promise<void> {
    await removeIfSame(this.path, this.raw)
  }
}

async function breakStale(path: string, breakPath: string, staleRaw: string, myRaw: string): Promise<void> {
  if (!(await tryCreate(breakPath, myRaw))) {
    const b = await readHolder(breakPath)
    if (b && !isAlive(b.holder)) await removeIfSame(breakPath, b.raw)
    return
  }
  try {
    await removeIfSame(path, staleRaw)
  } finally {
    await removeIfSame(breakPath, myRaw)
  }
}
