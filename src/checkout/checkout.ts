/**
 * Hardlink checkout of an image commit into a new directory, like ostree's.
 *
 * Invariants:
 * - The target must not exist; it is created and filled, and on any failure
 *   everything made is removed.
 * - Paths are never resolved through symlinks: every entry is created by name
 *   inside a directory this checkout created itself (tree names are checked:
 *   no `/`, `.`, `..`, NUL), and a symlink is only ever a leaf.
 * - Regular files are hardlinks to the store's objects (bare mode: the object
 *   carries mode, owner and xattrs), so all files with the same object share
 *   one inode. EMLINK falls back to copying that file.
 * - The device is checked first: store and target on different filesystems
 *   is HostError 'checkout.cross-device' naming both, unless `copy` (then
 *   every file is copied with its metadata).
 * - Directory modes, owners and xattrs are applied after their content, so a
 *   read-only directory can be filled.
 * - Timestamps are not kept (objects have mtime 0).
 */
import { execFile } from 'node:child_process'
import { chmodSync, constants as fsc, lchownSync, linkSync, mkdirSync, promises as fsp, readFileSync, symlinkSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { ConflictError, ContentError, HostError, toSysctrError } from '../errors'
import { mapLimit } from '../store/durable'
import type { Commit, DirMeta, Tree } from '../store/tree'
import { getXattrs, setXattrs, Xattrs } from '../store/xattr'
import { setsOwners, userDirMode, userFileMode } from '../store/ownership'

export interface CheckoutOptions {
  /** Copy files instead of hardlinking (needed across filesystems). */
  copy?: boolean
}

export interface CheckoutStats {
  /** Regular files created (hardlinked + copied). */
  files: number
  dirs: number
  symlinks: number
  /** Char/block devices and fifos. */
  special: number
  /** Files hardlinked to store objects. */
  hardlinks: number
  /** Files copied (copy mode, or EMLINK fallback). */
  copied: number
}

/** What checkout needs from the store. */
export interface CheckoutSource {
  readCommit(hex: string): Promise<Commit>
  /** An image tree, validated (names, entry types, object ids: store/tree.ts decodeTree). */
  readTreeSync(hex: string, layer: false): Tree
  objectPath(hex: string, ext: 'file'): string
  readonly objectsDir: string
}

/** `major:minor` of a st_dev, and the mount source naming it in /proc/self/mountinfo if found. */
export function describeDevice(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn)
  const mm = `${major}:${minor}`
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ')
      if (f[2] !== mm) continue
      const sep = f.indexOf('-')
      const source = sep > 0 ? f[sep + 2] : undefined
      if (source && source !== 'none') return `${source} (${mm})`
      return `${f[sep + 1] ?? 'device'} ${mm} at ${f[4]}`
    }
  } catch {
    /* no /proc */
  }
  return `device ${mm}`
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((res, rej) => {
    execFile(cmd, args, (err, _o, stderr) => {
      if (!err) return res()
      const path = args[args.length - (cmd === 'mknod' ? 4 : 1)]
      rej(new HostError('checkout.special-file', `creating ${path} with ${cmd}: ${String(stderr).trim() || err.message}`, { cause: err, data: { path } }))
    })
  })
}

async function applyOwnerMode(path: string, m: { uid: number; gid: number; mode: number }, dir = false): Promise<void> {
  if (setsOwners()) {
    await fsp.lchown(path, m.uid, m.gid)
    await fsp.chmod(path, m.mode & 0o7777)
  } else await fsp.chmod(path, dir ? userDirMode(m.mode) : userFileMode(m.mode))
}

export async function checkout(src: CheckoutSource, commitHex: string, target: string, opts: CheckoutOptions = {}): Promise<CheckoutStats> {
  target = resolve(target)
  const commit = await src.readCommit(commitHex)
  if (commit.kind !== 'image') throw new ContentError('checkout.not-image', `commit ${commitHex} is a layer commit; only image commits can be checked out`)
  try {
    await fsp.lstat(target)
    throw new ConflictError('checkout.target-exists', `checkout target ${target} already exists`, { data: { path: target } })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const storeDev = (await fsp.stat(src.objectsDir, { bigint: true })).dev
  const targetDev = (await fsp.stat(dirname(target), { bigint: true })).dev
  const copy = opts.copy === true
  if (storeDev !== targetDev && !copy) {
    throw new HostError(
      'checkout.cross-device',
      `hardlinks need one filesystem (store on ${describeDevice(storeDev)}, target on ${describeDevice(targetDev)})`,
      { hint: 'put the checkout directory on the store\'s filesystem, or check out with copies', data: { store: src.objectsDir, target } },
    )
  }

  const owners = setsOwners()
  const stats: CheckoutStats = { files: 0, dirs: 0, symlinks: 0, special: 0, hardlinks: 0, copied: 0 }
  const xattrItems: { path: string; xattrs: Xattrs }[] = []
  /** Objects copied: their xattrs are read from the object in one batch at the end. */
  const copiedObjects: { path: string; object: string }[] = []
  const dirsToFinish: { path: string; meta: DirMeta }[] = []

  const copyFile = async (object: string, dest: string): Promise<void> => {
    const obj = src.objectPath(object, 'file')
    await fsp.copyFile(obj, dest, fsc.COPYFILE_EXCL)
    const st = await fsp.stat(obj)
    await applyOwnerMode(dest, { uid: st.uid, gid: st.gid, mode: st.mode })
    copiedObjects.push({ path: dest, object: obj })
    stats.copied++
  }

  /** Every directory of the image, parents before children (breadth first), with its tree read. */
  interface DirJob {
    path: string
    treeHex: string
    tree?: Tree
    meta?: DirMeta
  }
  // Synchronous reads, one after another: a tree is a few hundred bytes, and a
  // promise per tree cost more than the read (the checkout profile).
  const readAllTrees = (rootHex: string): DirJob[] => {
    const all: DirJob[] = [{ path: target, treeHex: rootHex }]
    for (let i = 0; i < all.length; i++) {
      const d = all[i]
      // Names were checked by decodeTree (no '/', '.', '..', NUL).
      const entries = (d.tree = src.readTreeSync(d.treeHex, false)).entries
      for (const name in entries) {
        const e = entries[name]
        if (e.type === 'dir') all.push({ path: `${d.path}/${name}`, treeHex: e.tree, meta: e })
      }
    }
    return all
  }

  await fsp.mkdir(target, { mode: 0o700 })
  try {
    const dirs = readAllTrees(commit.root.tree)
    // Synchronous calls, one thread, as `cp -al`: a few microseconds each, where
    // each promise call is a threadpool round trip. Dirs come before their content.
    const slow: (() => Promise<void>)[] = []
    for (const d of dirs) {
      if (d.meta) {
        mkdirSync(d.path, { mode: 0o700 })
        stats.dirs++
        dirsToFinish.push({ path: d.path, meta: d.meta })
      }
      const entries = d.tree!.entries
      for (const name in entries) {
        const e = entries[name]
        // Names were checked by decodeTree (no '/', '.', '..', NUL); d.path is resolved: no join needed.
        const p = `${d.path}/${name}`
        switch (e.type) {
          case 'dir':
            break
          case 'file':
            stats.files++
            if (copy) {
              slow.push(() => copyFile(e.object, p))
              break
            }
            try {
              linkSync(src.objectPath(e.object, 'file'), p)
              stats.hardlinks++
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code !== 'EMLINK') throw err
              slow.push(() => copyFile(e.object, p))
            }
            break
          case 'symlink':
            symlinkSync(e.target, p)
            if (owners) lchownSync(p, e.uid, e.gid)
            stats.symlinks++
            break
          case 'char':
          case 'block':
            slow.push(async () => {
              await run('mknod', [p, e.type === 'char' ? 'c' : 'b', String(e.major), String(e.minor)])
              await applyOwnerMode(p, e)
              if (e.xattrs) xattrItems.push({ path: p, xattrs: e.xattrs })
              stats.special++
            })
            break
          case 'fifo':
            slow.push(async () => {
              await run('mkfifo', [p])
              await applyOwnerMode(p, e)
              if (e.xattrs) xattrItems.push({ path: p, xattrs: e.xattrs })
              stats.special++
            })
            break
          default:
            throw new ContentError('store.corrupt-object', `image tree ${d.treeHex} holds a ${(e as { type: string }).type} entry ${JSON.stringify(name)}`)
        }
      }
    }
    await mapLimit(slow, 16, (f) => f())
    if (copiedObjects.length) {
      const xs = await getXattrs(copiedObjects.map((c) => c.object))
      for (const c of copiedObjects) {
        const x = xs.get(c.object)
        if (x && Object.keys(x).length) xattrItems.push({ path: c.path, xattrs: x })
      }
    }
    // bare-user (store/ownership.ts): image xattrs stay in the store's metadata, not on the user's files.
    if (!owners) xattrItems.length = 0
    for (const d of dirsToFinish) if (owners && d.meta.xattrs) xattrItems.push({ path: d.path, xattrs: d.meta.xattrs })
    if (owners && commit.root.xattrs) xattrItems.push({ path: target, xattrs: commit.root.xattrs })
    await setXattrs(xattrItems)
    // Deepest first (reverse breadth-first order), so a read-only parent is finished after its children.
    for (let i = dirsToFinish.length - 1; i >= 0; i--) {
      const d = dirsToFinish[i]
      if (owners) {
        lchownSync(d.path, d.meta.uid, d.meta.gid)
        chmodSync(d.path, d.meta.mode & 0o7777)
      } else chmodSync(d.path, userDirMode(d.meta.mode))
    }
    await applyOwnerMode(target, commit.root, true)
  } catch (err) {
    await fsp.rm(target, { recursive: true, force: true }).catch(() => undefined)
    const e = toSysctrError(err)
    if (e.code === 'host.eperm' || e.code === 'host.eacces') e.hint ??= 'a checkout sets owners and device nodes: run as root'
    throw e
  }
  return stats
}
