/**
 * Host files from an image's /exports/hostfs, as Atomic system containers
 * defined them: every regular file under /exports/hostfs/P is copied to the
 * host at /P; manifest.json `renameFiles` maps /P to a destination template
 * (`$VAR` syntax, rendered with the container's values); paths listed in
 * `installedFilesTemplate` (by their /P name) have their content rendered as
 * `$VAR` templates too. `noContainerService` is read by the caller.
 *
 This is the one module that writes, compares and removes files sysctr puts
 * on the host (host files, and the unit and tmpfiles entry through
 * `removeIfUnchanged`): every verb goes through it.
 *
 * Wiring: the plan (deployment/plan.ts) plans the files (`planHostFiles`,
 * from a checkout or the image commit in the store) and the apply keeps them
 * in NAME.N/hostfs/ (`stageHostFiles`, recorded with role 'hostfs' and their
 * sha256); install and update refuse foreign destinations first
 * (`checkHostFileConflicts`); every switch (deployment/switch.ts: install,
 * update, rollback) brings the host from one deployment's files to the
 * other's with `switchHostFiles`; uninstall removes what still matches
 * (`removeHostFiles`). (`writeHostFiles` is the same rule for in-memory plans.)
 *
 * Invariants:
 * - Destinations are absolute, normalised, without `..`, NUL or newlines.
 * - Regular files, symlinks and empty directories under hostfs are copied
 *   (devices and fifos are refused). A symlink is copied as a symlink, its
 *   target as the image has it (dangling is fine: Atomic's examples ship
 *   one), never followed; only one that would make sysctr write outside the
 *   destination is refused: an entry whose destination lies below another
 *   entry that is a symlink (`hostfs.through-symlink`). An empty directory
 *   is created on the host and removed (uninstall, or an update that no
 *   longer ships it) only while it is still empty. Both are recorded by
 *   their fingerprint (util/atomic-file.ts sha256File: the link's target, or
 *   "a directory"), so the rules below apply to them unchanged.
 * - A host file is written only when it does not exist, or when it is
 *   byte-for-byte what sysctr last wrote there (its recorded sha256). A file
 *   the user changed is kept (warning) and its record keeps sysctr's old
 *   checksum, so uninstall keeps it too. A file sysctr never wrote is never
 *   overwritten (warning, not recorded).
 * - Removal (uninstall, or a file an update no longer ships) happens only
 *   when the file is still exactly what sysctr wrote; otherwise a warning.
 * - Writes are atomic (temp, fsync, rename) with the image file's mode.
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join, posix } from 'node:path'
import { ConflictError, ContentError } from '../errors'
import type { HostFile } from './deployments'
import { legacyVariables, renderLegacy } from '../templates/legacy'
import type { ExportsManifest } from '../templates/exports'
import type { Store } from '../store/store'
import { DIRECTORY_MARK, sha256File, symlinkAtomic, symlinkFingerprint, writeFileAtomic } from '../util/atomic-file'
import { fromRoot, type OpsContext } from '../ops/context'

export interface HostFilePlan {
  /** Where it comes from in the image, e.g. `/exports/hostfs/etc/web.conf`. */
  source: string
  /** Destination as the running system sees it (with --root: inside the root). */
  path: string
  content: Buffer
  /** Permission bits of the image's file. */
  mode: number
  /** Content was rendered (installedFilesTemplate). */
  template: boolean
  /** A symlink (content: its fingerprint, `target` the link) or an empty directory; absent: a regular file. */
  kind?: 'symlink' | 'dir'
  target?: string
}

/** A host file sysctr wrote: what deployment records keep. */
export interface RecordedHostFile {
  path: string
  sha256: string
}

export interface HostFilesResult {
  /** Files now recorded as sysctr's (written, or kept after a user edit with the old checksum). */
  files: RecordedHostFile[]
  written: string[]
  /** Edited by the user since sysctr wrote them: left alone. */
  keptEdited: string[]
  /** Existing files sysctr did not write: left alone, not recorded. */
  skippedForeign: string[]
  removed: string[]
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex')
}

function checkDest(p: string, from: string): string {
  if (!p.startsWith('/') || /[\0\n\r]/.test(p) || p.split('/').some((c) => c === '..')) {
    throw new ContentError('hostfs.bad-destination', `${from}: destination ${JSON.stringify(p)} must be an absolute path without ..`, { data: { path: p } })
  }
  const n = posix.normalize(p)
  if (n === '/') throw new ContentError('hostfs.bad-destination', `${from}: destination is /`, { data: { path: p } })
  return n
}

/**
 * What planHostFiles reads, by image path (`/exports/hostfs/...`): a
 * checked-out rootfs (install, update), or an image commit in the store (dry
 * runs, src/ops/dry-run.ts), so both plan the same files.
 */
export interface ImageTreeReader {
  /** Undefined when absent; symlinks are `other` (never followed). */
  stat(path: string): Promise<{ kind: 'dir' | 'file' | 'symlink' | 'other'; mode: number } | undefined>
  /** The target of a symlink (stat said 'symlink'). */
  readlink(path: string): Promise<string>
  list(dir: string): Promise<string[]>
  read(path: string): Promise<Buffer>
}

/** An ImageTreeReader over a checked-out rootfs directory. */
export function rootfsReader(rootfs: string): ImageTreeReader {
  return {
    stat: async (p) => {
      const st = await fsp.lstat(join(rootfs, p)).catch(() => undefined)
      if (!st) return undefined
      return { kind: st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other', mode: st.mode }
    },
    readlink: (p) => fsp.readlink(join(rootfs, p)),
    list: (d) => fsp.readdir(join(rootfs, d)),
    read: (p) => fsp.readFile(join(rootfs, p)),
  }
}

/**
 * The host files of an image: `/exports/hostfs` walked (names sorted),
 * destinations renamed and templates rendered with `values`. `image` is a
 * checked-out rootfs directory or an ImageTreeReader.
 */
export async function planHostFiles(
  image: string | ImageTreeReader,
  manifest: ExportsManifest,
  values: Record<string, string>,
  /** Collects the variables the renamed destinations and templates use (the unused --set check). */
  used?: Set<string>,
): Promise<HostFilePlan[]> {
  const reader = typeof image === 'string' ? rootfsReader(image) : image
  const top = await reader.stat('/exports/hostfs')
  if (!top) return []
  if (top.kind !== 'dir') throw new ContentError('hostfs.not-a-directory', '/exports/hostfs is not a directory')
  const templates = new Set(manifest.installedFilesTemplate.map((p) => posix.normalize('/' + p.replace(/^\/+/, ''))))
  const out: HostFilePlan[] = []
  const walk = async (rel: string): Promise<void> => {
    const names = (await reader.list(`/exports/hostfs${rel}`)).sort()
    if (names.length === 0 && rel !== '') {
      // An empty directory: created on the host, removed again only while it is empty.
      const st = (await reader.stat(`/exports/hostfs${rel}`))!
      const dest = checkDest(rel, `/exports/hostfs${rel}`)
      out.push({ source: `/exports/hostfs${rel}`, path: dest, content: DIRECTORY_MARK, mode: st.mode & 0o7777, template: false, kind: 'dir' })
      return
    }
    for (const n of names) {
      const r = `${rel}/${n}`
      const st = (await reader.stat(`/exports/hostfs${r}`))!
      if (st.kind === 'dir') {
        await walk(r)
        continue
      }
      const renamed = manifest.renameFiles[r]
      if (renamed !== undefined && used) for (const v of legacyVariables(renamed, { file: `manifest.json renameFiles[${r}]` })) used.add(v)
      const dest = checkDest(renamed === undefined ? r : renderLegacy(renamed, values, { file: `manifest.json renameFiles[${r}]` }), `/exports/hostfs${r}`)
      if (st.kind === 'symlink') {
        // Copied as a symlink, never followed (its target may dangle on the host, as in Atomic's examples).
        const target = await reader.readlink(`/exports/hostfs${r}`)
        if (/[\0\n\r]/.test(target)) throw new ContentError('hostfs.bad-symlink', `/exports/hostfs${r}: symlink target ${JSON.stringify(target)} has a NUL or newline`, { data: { file: r } })
        out.push({ source: `/exports/hostfs${r}`, path: dest, content: symlinkFingerprint(target), mode: 0o777, template: false, kind: 'symlink', target })
        continue
      }
      if (st.kind !== 'file') {
        throw new ContentError('hostfs.not-a-file', `/exports/hostfs${r} is not a regular file, a symlink or a directory (sysctr does not create devices or fifos on the host)`, { data: { file: r } })
      }
      const raw = await reader.read(`/exports/hostfs${r}`)
      const template = templates.has(r)
      if (template && used) for (const v of legacyVariables(raw.toString('utf8'), { file: `/exports/hostfs${r}` })) used.add(v)
      const content = template ? Buffer.from(renderLegacy(raw.toString('utf8'), values, { file: `/exports/hostfs${r}` })) : raw
      out.push({ source: `/exports/hostfs${r}`, path: dest, content, mode: st.mode & 0o7777, template })
    }
  }
  await walk('')
  const seen = new Set<string>()
  for (const f of out) {
    if (seen.has(f.path)) throw new ContentError('hostfs.duplicate-destination', `two /exports/hostfs files go to ${f.path}`, { data: { path: f.path } })
    seen.add(f.path)
  }
  // Writing below one of our own symlinks would write wherever it points: refused (creating the link itself is safe).
  const links = out.filter((f) => f.kind === 'symlink')
  for (const f of out) {
    const through = links.find((l) => f.path.startsWith(`${l.path}/`))
    if (through) {
      throw new ContentError('hostfs.through-symlink', `${f.source} goes to ${f.path}, below ${through.source}'s symlink ${through.path} -> ${through.target}: sysctr would write outside its destination`, {
        data: { path: f.path, symlink: through.path },
      })
    }
  }
  return out
}

/**
 * Bring the host to `plans`, given the files the previous deployment recorded
 * (none on install). See the invariants at the top for what is (not) touched.
 */
export async function writeHostFiles(
  ctx: Pick<OpsContext, 'root' | 'reporter'>,
  plans: HostFilePlan[],
  previous: RecordedHostFile[] = [],
): Promise<HostFilesResult> {
  const res: HostFilesResult = { files: [], written: [], keptEdited: [], skippedForeign: [], removed: [] }
  const prev = new Map(previous.map((f) => [f.path, f.sha256]))
  for (const f of plans) {
    const host = fromRoot(ctx, f.path)
    const have = await sha256File(host)
    const wrote = prev.get(f.path)
    if (have !== undefined && wrote === undefined) {
      ctx.reporter.warn(`${f.path} exists and was not written by sysctr: not overwriting it with ${f.source}`)
      res.skippedForeign.push(f.path)
      continue
    }
    if (have !== undefined && have !== wrote) {
      ctx.reporter.warn(`${f.path} was changed since sysctr wrote it: keeping it (the image's version is not installed)`)
      res.keptEdited.push(f.path)
      res.files.push({ path: f.path, sha256: wrote! })
      continue
    }
    await fsp.mkdir(join(host, '..'), { recursive: true })
    if (f.kind === 'symlink') await symlinkAtomic(f.target!, host)
    else if (f.kind === 'dir') await fsp.mkdir(host, { recursive: true, mode: f.mode })
    else await writeFileAtomic(host, f.content, { mode: f.mode })
    res.written.push(f.path)
    res.files.push({ path: f.path, sha256: sha256(f.content) })
  }
  const now = new Set(plans.map((p) => p.path))
  const gone = previous.filter((f) => !now.has(f.path))
  res.removed = await removeHostFiles(ctx, gone)
  return res
}

/** Remove recorded host files that are still exactly what sysctr wrote; warn about changed ones. Returns the removed paths. */
export async function removeHostFiles(ctx: Pick<OpsContext, 'root' | 'reporter'>, files: RecordedHostFile[]): Promise<string[]> {
  const removed: string[] = []
  for (const f of files) {
    const r = await removeIfUnchanged(fromRoot(ctx, f.path), f.sha256)
    const dir = r === 'changed' && (await fsp.lstat(fromRoot(ctx, f.path)).catch(() => undefined))?.isDirectory()
    if (r === 'changed') ctx.reporter.warn(dir ? `${f.path} is a directory that is not empty: not removing it` : `${f.path} was changed since sysctr wrote it: not removing it`)
    if (r === 'removed') removed.push(f.path)
  }
  return removed
}

/** Where a deployment keeps the content of host file PATH. */
export function stagedHostFile(deploymentDir: string, path: string): string {
  return join(deploymentDir, 'hostfs', path)
}

/** Keep the planned files in a (staged) deployment directory; returns their records. */
export async function stageHostFiles(deploymentDir: string, plans: HostFilePlan[]): Promise<HostFile[]> {
  const out: HostFile[] = []
  for (const f of plans) {
    const dest = stagedHostFile(deploymentDir, f.path)
    await fsp.mkdir(join(dest, '..'), { recursive: true, mode: 0o700 })
    await writeDeploymentCopy(dest, f)
    out.push({ path: f.path, sha256: sha256(f.content), role: 'hostfs', source: f.source })
  }
  return out
}

/**
 * Refuse (ConflictError 'host.file-exists') a host file of `to` that exists
 * on the host, that `from` (the active deployment, none on install) did not
 * record, and whose content is not already exactly the new one: sysctr never
 * overwrites a host file it did not write. Checked before anything changes.
 */
export async function checkHostFileConflicts(ctx: Pick<OpsContext, 'root'>, name: string, to: HostFile[], from: HostFile[] = []): Promise<void> {
  const known = new Set(from.filter((f) => f.role === 'hostfs').map((f) => f.path))
  for (const f of to) {
    if (f.role !== 'hostfs' || known.has(f.path)) continue
    const have = await sha256File(fromRoot(ctx, f.path))
    if (have === undefined || have === f.sha256) continue
    throw new ConflictError('host.file-exists', `${f.path} exists and was not written by sysctr; refusing to overwrite it with ${name}'s ${f.source ?? 'host file'}`, {
      hint: 'move the file away, or remove it if it is not needed',
      data: { path: f.path },
    })
  }
}

export interface HostSwitchResult {
  written: string[]
  /** Changed by the user since sysctr wrote them: left as they are. */
  keptEdited: string[]
  removed: string[]
}

/**
 * Bring the host files from deployment `from`'s (its records; none on
 * install) to `to`'s (kept in `toDir`/hostfs). Per file:
 * - missing on the host -> written;
 * - exactly `to`'s content -> left;
 * - exactly what `from` wrote -> replaced by `to`'s;
 * - anything else: the user changed it -> kept, one warning (Atomic kept the
 *   user's file too). Foreign files were refused before (checkHostFileConflicts).
 * Files `from` had and `to` has not are removed when unchanged, else kept.
 * Host paths written are pushed to `written` as they are written (so a
 * caller can undo a partial run).
 */
export async function switchHostFiles(
  ctx: Pick<OpsContext, 'root' | 'reporter'>,
  toDir: string,
  to: HostFile[],
  from: HostFile[] = [],
  written: string[] = [],
): Promise<HostSwitchResult> {
  const res: HostSwitchResult = { written, keptEdited: [], removed: [] }
  const prev = new Map(from.filter((f) => f.role === 'hostfs').map((f) => [f.path, f.sha256]))
  const next = to.filter((f) => f.role === 'hostfs')
  for (const f of next) {
    const host = fromRoot(ctx, f.path)
    const have = await sha256File(host)
    if (have === f.sha256) continue
    if (have !== undefined && have !== prev.get(f.path)) {
      ctx.reporter.warn(`${f.path} was changed since sysctr wrote it: keeping it (the new version is in ${stagedHostFile(toDir, f.path)})`)
      res.keptEdited.push(f.path)
      continue
    }
    const src = stagedHostFile(toDir, f.path)
    await fsp.mkdir(join(host, '..'), { recursive: true })
    written.push(f.path)
    await putHostEntry(host, src)
  }
  const now = new Set(next.map((f) => f.path))
  res.removed = await removeHostFiles(
    ctx,
    [...prev].filter(([p]) => !now.has(p)).map(([path, sha]) => ({ path, sha256: sha })),
  )
  return res
}

/**
 * Put at host path HOST what the deployment's copy SRC is: a symlink as the
 * same symlink (temp + rename), an empty directory as a directory (its mode),
 * a file by temp + rename with its mode.
 */
export async function putHostEntry(host: string, src: string): Promise<void> {
  const st = await fsp.lstat(src)
  if (st.isSymbolicLink()) {
    // Replacing a file (or an old link) by rename; a directory in the way makes the rename fail.
    await symlinkAtomic(await fsp.readlink(src), host)
    return
  }
  if (st.isDirectory()) {
    await fsp.mkdir(host, { recursive: true, mode: st.mode & 0o7777 })
    return
  }
  await writeFileAtomic(host, await fsp.readFile(src), { mode: st.mode & 0o7777 })
}

/** Remove a host entry: a directory only while it is empty (false: it is not, kept), anything else unlinked (never followed). */
export async function removeHostEntry(path: string): Promise<boolean> {
  const st = await fsp.lstat(path).catch(() => undefined)
  if (!st) return true
  if (!st.isDirectory()) {
    await fsp.rm(path, { force: true })
    return true
  }
  try {
    await fsp.rmdir(path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTEMPTY' || (err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

/**
 * Remove PATH (a host path) when its content is still `sha256` (what sysctr
 * wrote); a missing file counts as removed. Returns 'removed', 'absent' or
 * 'changed' (left alone; for a directory sysctr created: it is not empty).
 */
export async function removeIfUnchanged(path: string, sha256: string | readonly string[]): Promise<'removed' | 'absent' | 'changed'> {
  const have = await sha256File(path)
  if (have === undefined) return 'absent'
  if (!(typeof sha256 === 'string' ? [sha256] : sha256).includes(have)) return 'changed'
  return (await removeHostEntry(path)) ? 'removed' : 'changed'
}

/** A deployment's own copy of a host entry (NAME.N/hostfs/PATH): the symlink, the empty directory, or the file. */
export async function writeDeploymentCopy(dest: string, f: { content: Buffer; mode: number; kind?: 'symlink' | 'dir'; target?: string }): Promise<void> {
  if (f.kind === 'symlink') await symlinkAtomic(f.target!, dest)
  else if (f.kind === 'dir') await fsp.mkdir(dest, { recursive: true, mode: f.mode })
  else await writeFileAtomic(dest, f.content, { mode: f.mode })
}

/** An image commit in the store, read as planHostFiles reads a checkout (dry runs: no checkout is made). */
export function storeReader(store: Store, commit: string): ImageTreeReader {
  return {
    stat: async (p) => {
      const e = await store.lookup(commit, p)
      if (!e) return undefined
      if (e.type === 'dir') return { kind: 'dir', mode: e.mode }
      if (e.type === 'file') return { kind: 'file', mode: (await fsp.stat(store.objectPath(e.object, 'file'))).mode }
      if (e.type === 'symlink') return { kind: 'symlink', mode: 0o777 }
      return { kind: 'other', mode: 0 }
    },
    readlink: async (p) => {
      const e = await store.lookup(commit, p)
      if (e?.type !== 'symlink') throw new ContentError('hostfs.not-a-symlink', `${p} is not a symlink`)
      return e.target
    },
    list: async (d) => {
      const e = await store.lookup(commit, d)
      return e?.type === 'dir' ? Object.keys((await store.readTree(e.tree, false)).entries) : []
    },
    read: (p) => store.readFile(commit, p),
  }
}
