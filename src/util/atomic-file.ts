/**
 * Crash-safe file replacement: write a temp file in the same directory, fsync
 * it, rename it over the target, fsync the directory. A reader sees the old
 * file or the new one, never a mix; a crash leaves at most a `.tmp-` file
 * that the next run may remove.
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { basename, dirname, join } from 'node:path'

export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`)
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/**
 * Replace `path` with `data` crash-safely. `opts.tmp` names the temp file (it
 * must be on the same filesystem; the store keeps its temp files in its own
 * tmp/ so that leftovers are found and removed there); default: beside `path`.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, opts: { mode?: number; tmp?: string } = {}): Promise<void> {
  const tmp = opts.tmp ?? tempPathFor(path)
  const fh = await fsp.open(tmp, 'wx', opts.mode ?? 0o644)
  try {
    await fh.writeFile(data)
    await fh.chmod(opts.mode ?? 0o644)
    await fh.sync()
  } catch (err) {
    await fh.close().catch(() => {})
    await fsp.rm(tmp, { force: true })
    throw err
  }
  await fh.close()
  try {
    await fsp.rename(tmp, path)
  } catch (err) {
    await fsp.rm(tmp, { force: true })
    throw err
  }
  await fsyncDir(dirname(path))
}

/** Point `link` at `target` atomically (symlink at a temp name, rename over). */
export async function symlinkAtomic(target: string, link: string): Promise<void> {
  const tmp = tempPathFor(link)
  await fsp.symlink(target, tmp)
  try {
    await fsp.rename(tmp, link)
  } catch (err) {
    await fsp.rm(tmp, { force: true })
    throw err
  }
  await fsyncDir(dirname(link))
}

/**
 * What a host path holds, as one sha256: a regular file's content; a symlink
 * (never followed) as SYMLINK_MARK + its target; a directory as DIRECTORY_MARK
 * (host files: deployment/host-files.ts records symlinks and empty directories
 * by the same fingerprint). undefined when absent.
 */
export async function sha256File(path: string): Promise<string | undefined> {
  try {
    const st = await fsp.lstat(path)
    if (st.isSymbolicLink()) return createHash('sha256').update(symlinkFingerprint(await fsp.readlink(path))).digest('hex')
    if (st.isDirectory()) return createHash('sha256').update(DIRECTORY_MARK).digest('hex')
    return createHash('sha256').update(await fsp.readFile(path)).digest('hex')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** The bytes a symlink is fingerprinted by (sha256File), and a directory's. */
export const SYMLINK_MARK = '\0sysctr-symlink\0'
export const DIRECTORY_MARK = Buffer.from('\0sysctr-directory\0')
export function symlinkFingerprint(target: string): Buffer {
  return Buffer.from(SYMLINK_MARK + target)
}

/**
 * Remove the temp files writeFileAtomic leaves beside PATH when it is killed
 * between creating and renaming (`.NAME.tmp-PID-RANDOM`). Only for a path
 * whose writer holds a lock that keeps others from writing it meanwhile.
 */
export async function removeTempSiblings(path: string): Promise<string[]> {
  const prefix = `.${basename(path)}.tmp-`
  const entries = await fsp.readdir(dirname(path)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[]
    throw err
  })
  const removed: string[] = []
  for (const e of entries) {
    if (!e.startsWith(prefix)) continue
    await fsp.rm(join(dirname(path), e), { force: true })
    removed.push(join(dirname(path), e))
  }
  return removed
}
