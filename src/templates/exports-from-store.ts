/**
 * `exportsFromStore` (dry runs, images info): the top-level /exports entries
 * of a commit are copied into a private temp directory (symlinks as
 * symlinks, directories empty) and read through templates/exports.ts
 * loadExports, so the same choice of templates and the same refusals
 * (symlinks, non-regular files, size) apply as at install.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Store } from '../store/store'
import { loadExports, MAX_EXPORT_FILE_SIZE, type Exports } from './exports'

/**
 * The image's /exports as loadExports reads it, from the store without a
 * checkout. Paths in the result name the image (`/exports/...`).
 */
export async function exportsFromStore(store: Store, commit: string, defaultsDir: string): Promise<Exports> {
  const tmp = await fsp.mkdtemp(join(tmpdir(), 'sysctr-exports-'))
  try {
    const top = await store.lookup(commit, 'exports')
    if (top) {
      const dir = join(tmp, 'exports')
      if (top.type === 'symlink') await fsp.symlink(top.target, dir)
      else if (top.type !== 'dir') await fsp.writeFile(dir, '')
      else {
        await fsp.mkdir(dir)
        const layer = (await store.readCommit(commit)).kind === 'layer'
        const entries = (await store.readTree(top.tree, layer)).entries
        for (const [n, e] of Object.entries(entries)) {
          // Only the files loadExports may read are copied.
          if (!/^(config\.json(\.hbs|\.template)?|(service|tmpfiles|socket)\.(hbs|template)|manifest\.json)$/.test(n)) continue
          const p = join(dir, n)
          if (e.type === 'symlink') await fsp.symlink(e.target, p)
          else if (e.type === 'file') {
            const bytes = await store.readFile(commit, `exports/${n}`)
            // Larger than loadExports accepts: a sparse stand-in of that size makes it refuse the same way.
            if (bytes.length > MAX_EXPORT_FILE_SIZE) {
              await fsp.writeFile(p, '')
              await fsp.truncate(p, bytes.length)
            }
            else await fsp.writeFile(p, bytes)
          } else if (e.type !== 'whiteout') await fsp.mkdir(p)
        }
      }
    }
    const ex = await loadExports(tmp, defaultsDir)
    const rename = <T extends { path: string; origin: string }>(t: T): T => (t.origin === 'image' ? { ...t, path: t.path.replace(tmp, '') } : t)
    return { ...ex, dir: '/exports', configJson: rename(ex.configJson), service: rename(ex.service), tmpfiles: rename(ex.tmpfiles), ...(ex.socket ? { socket: rename(ex.socket) } : {}) }
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true })
  }
}
