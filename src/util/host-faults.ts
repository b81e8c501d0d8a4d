/**
 * Host faults that deserve their own message: a full filesystem (ENOSPC,
 * EDQUOT) and a read-only one (EROFS). Node reports them as bare system
 * errors, often without a path (write(2) has none) and sometimes behind a
 * stream's "Premature close"; these helpers find the errno in the cause chain
 * and say where it happened: the filesystem holding DIR, how much is free,
 * and what was being written when that is known.
 */
import { accessSync, constants, existsSync, statfsSync } from 'node:fs'
import { dirname } from 'node:path'
import { HostError, SysctrError } from '../errors'
import { formatBytes } from './format-bytes'

/** The errno code (`ENOSPC`, ...) of `err` or of anything in its cause chain. */
export function errnoOf(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; syscall?: unknown; cause?: unknown } | undefined, i = 0; e && typeof e === 'object' && i < 10; e = e.cause as typeof e, i++) {
    if (e.code === 'ENOENT' && e.syscall === 'mkdir') {
      const real = mkdirTruth((e as { path?: unknown }).path)
      if (real) return real
    }
    if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code) && (typeof e.syscall === 'string' || e.code === 'ENOSPC' || e.code === 'EROFS')) return e.code
    if (e instanceof HostError && /^host\.e[a-z]+$/.test(e.code)) return e.code.slice('host.'.length).toUpperCase()
  }
  return undefined
}

/**
 * A recursive mkdir reports ENOENT when it could not make a level for another
 * reason (EROFS, ENOSPC). When the parent of `path` exists, ask the filesystem:
 * not writable (EROFS), or no blocks or inodes left (ENOSPC).
 */
function mkdirTruth(path: unknown): string | undefined {
  if (typeof path !== 'string') return undefined
  for (let d = dirname(path); d !== dirname(d); d = dirname(d)) {
    if (!existsSync(d)) continue
    try {
      accessSync(d, constants.W_OK)
    } catch (err) {
      const c = (err as NodeJS.ErrnoException).code
      return c === 'EROFS' ? c : undefined
    }
    const space = statfsOf(d)
    return space && (space.bavail === 0 || space.ffree === 0) ? 'ENOSPC' : undefined
  }
  return undefined
}

function statfsOf(dir: string): { bavail: number; ffree: number } | undefined {
  try {
    return statfsSync(dir)
  } catch {
    return undefined
  }
}

export function isDiskFull(err: unknown): boolean {
  const c = errnoOf(err)
  return c === 'ENOSPC' || c === 'EDQUOT'
}

export function isReadOnly(err: unknown): boolean {
  return errnoOf(err) === 'EROFS'
}

/** `12 KiB free of 2.0 MiB`, or undefined when DIR's filesystem cannot be asked. */
export function spaceOf(dir: string): { free: number; total: number; freeInodes: number; inodes: number } | undefined {
  try {
    const s = statfsSync(dir)
    return { free: s.bavail * s.bsize, total: s.blocks * s.bsize, freeInodes: s.ffree, inodes: s.files }
  } catch {
    return undefined
  }
}

function keepContext(from: unknown, to: SysctrError): SysctrError {
  if (from instanceof SysctrError) to.context.push(...from.context)
  return to
}

/**
 * If `err` is a full or read-only filesystem, a HostError saying so for the
 * filesystem holding `dir` (`needed`: what was being written, e.g. "a layer of
 * 3.2 MiB compressed"); otherwise `err` unchanged. The inner context
 * ("pulling layer …") is kept.
 */
export function hostFault(err: unknown, dir: string, needed?: string): unknown {
  if (err instanceof HostError && (err.code === 'host.enospc' || err.code === 'host.erofs') && err.data?.filesystem) return err
  if (isDiskFull(err)) {
    const space = spaceOf(dir)
    const room = !space
      ? ''
      : space.inodes > 0 && space.freeInodes === 0
        ? ` (no inodes left of ${space.inodes}; ${formatBytes(space.free)} free)`
        : ` (${formatBytes(space.free)} free of ${formatBytes(space.total)})`
    return keepContext(
      err,
      new HostError('host.enospc', `no space left on device: the filesystem holding ${dir} is full${room}${needed ? `; needed: ${needed}` : ''}`, {
        hint: `free space on that filesystem (or set SYSCTR_STATE_DIR to a bigger one) and run the command again; nothing half-written was kept`,
        cause: err,
        data: { filesystem: dir, ...(space ?? {}), ...(needed ? { needed } : {}) },
      }),
    )
  }
  if (isReadOnly(err)) return readOnlyError(err, dir)
  return err
}

export function readOnlyError(err: unknown, dir: string): HostError {
  const path = (err as { path?: unknown })?.path
  const where = typeof path === 'string' ? path : dir
  return keepContext(
    err,
    new HostError('host.erofs', `cannot write ${where}: read-only file system`, {
      hint: `sysctr keeps its state in ${dir}: remount that filesystem read-write (or set SYSCTR_STATE_DIR to a writable directory)`,
      cause: err,
      data: { filesystem: dir, path: where },
    }),
  ) as HostError
}
