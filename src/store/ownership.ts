/**
 * Who owns the store's files on disk, and where an object's image metadata
 * lives (the hook points for --user in layer-import, transaction, checkout
 * and fsck; ostree's `bare` and `bare-user` repository modes):
 *
 * - `bare` (root): an object file carries the image's owner, group, mode
 *   (setuid/setgid/sticky too) and xattrs itself.
 * - `bare-user` (any other user, who cannot chown): the object belongs to
 *   the user, its mode on disk is the image's permission bits with owner
 *   read added and setuid/setgid/sticky dropped, and the image's owner,
 *   group, full mode and xattrs are kept, as canonical JSON, in the
 *   `user.sysctr.meta` xattr (ostree bare-user: `user.ostreemeta`). The
 *   object's name (hash of header + content) is the same in both modes, so
 *   fsck checks it against that xattr. A checkout of a bare-user store
 *   belongs to the user (directories get owner rwx, so the user can remove
 *   it); the container's user namespace shows it as root's. README "User
 *   mode" says what that means for images with files of other owners.
 *
 * The mode follows the process: root writes and reads `bare` stores, a user
 * `bare-user` ones. The two never share a store: root's is under
 * /var/lib/sysctr, a user's under the user's $XDG_DATA_HOME (mode 0700).
 */
import { promises as fsp } from 'node:fs'
import { ContentError, HostError } from '../errors'
import { canonicalJson } from './canonical'
import type { Xattrs } from './xattr'

export type Ownership = 'bare' | 'bare-user'

export const META_XATTR = 'user.sysctr.meta'

export interface ImageFileMeta {
  mode: number
  uid: number
  gid: number
  xattrs?: Xattrs
}

/** This process's store mode: root keeps owners on the files, anyone else as metadata. */
export function processOwnership(): Ownership {
  return (process.getuid?.() ?? 0) === 0 ? 'bare' : 'bare-user'
}

/**
 * A store is written only by the user it belongs to: root's objects in a
 * user's store would be `bare` among `bare-user` ones (and root's), a user's
 * in root's cannot be written at all. Called by Store.open.
 */
export async function checkStoreOwner(root: string): Promise<void> {
  const uid = process.getuid?.() ?? 0
  const owner = (await fsp.stat(root)).uid
  if (owner === uid) return
  throw new HostError('store.foreign-owner', `store ${root} belongs to uid ${owner}, not to this process (uid ${uid})`, {
    hint: uid === 0 ? "a user's store is that user's alone: run sysctr --user as the user" : 'the system store needs root; your own containers and store are under --user',
    data: { root, owner, uid },
  })
}

/** Whether checkouts and objects get the image's owners (chown): only in `bare`. */
export function setsOwners(): boolean {
  return processOwnership() === 'bare'
}

/** A bare-user file's mode on disk: the permission bits, owner-readable, no setuid/setgid/sticky. */
export function userFileMode(mode: number): number {
  return (mode & 0o777) | 0o400
}

/** A bare-user directory's mode on disk: the user can always enter, list and remove it. */
export function userDirMode(mode: number): number {
  return (mode & 0o777) | 0o700
}

/**
 * What a file object gets on disk for image metadata `meta`: the owner to
 * set (none in bare-user), the mode, and the xattrs to set once its content
 * is written.
 */
export function fileObjectOnDisk(meta: ImageFileMeta): { owner?: { uid: number; gid: number }; mode: number; xattrs?: Xattrs } {
  const hasX = meta.xattrs !== undefined && Object.keys(meta.xattrs).length > 0
  if (processOwnership() === 'bare') return { owner: { uid: meta.uid, gid: meta.gid }, mode: meta.mode, ...(hasX ? { xattrs: meta.xattrs } : {}) }
  const record = canonicalJson({ mode: meta.mode & 0o7777, uid: meta.uid, gid: meta.gid, ...(hasX ? { xattrs: meta.xattrs } : {}) })
  return { mode: userFileMode(meta.mode), xattrs: { [META_XATTR]: Buffer.from(record).toString('base64') } }
}

/**
 * The image metadata of a file object, from its stat and xattrs: in `bare`,
 * the file itself (an image may carry any xattr, even one named like ours);
 * in `bare-user`, META_XATTR, which every object of such a store has.
 */
export function fileObjectMeta(st: { mode: number; uid: number; gid: number }, xattrs: Xattrs, object: string, ownership: Ownership = processOwnership()): ImageFileMeta {
  if (ownership === 'bare') return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, xattrs }
  const rec = xattrs[META_XATTR]
  try {
    if (rec === undefined) throw new Error('it is missing')
    const m = JSON.parse(Buffer.from(rec, 'base64').toString('utf8')) as ImageFileMeta
    if (!Number.isInteger(m.mode) || !Number.isInteger(m.uid) || !Number.isInteger(m.gid)) throw new Error('mode, uid and gid must be integers')
    return { mode: m.mode, uid: m.uid, gid: m.gid, xattrs: m.xattrs ?? {} }
  } catch (err) {
    throw new ContentError('store.corrupt-object', `file object ${object}: its ${META_XATTR} xattr is not valid metadata (${(err as Error).message})`)
  }
}
