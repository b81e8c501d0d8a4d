import { promises as fsp } from 'node:fs'
import { dirname } from 'node:path'

/**
 * mkdir -p of `dir`, one level at a time, so that the
 * real error of the level that fails is seen (a recursive mkdir on a
 * read-only filesystem reports ENOENT for the level it could not make).
 * Returns the topmost directory created, if any.
 */
export async function makeDirs(dir: string, mode = 0o700): Promise<string | undefined> {
  const missing: string[] = []
  for (let d = dir; d !== dirname(d); d = dirname(d)) {
    const st = await fsp.lstat(d).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    if (st) break
    missing.unshift(d)
  }
  let created: string | undefined
  for (const d of missing) {
    try {
      await fsp.mkdir(d, { mode })
      created ??= d
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
  return created
}

