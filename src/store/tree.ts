/**
 * Tree and commit objects: the shapes, canonical encoding and validation.
 *
 * A tree is one directory: {entries: {name: entry}} in canonical JSON (keys
 * sorted). A directory's own metadata lives in its parent's entry (the root's
 * in the commit), like ostree's dirmeta. Image trees hold only file, dir,
 * symlink, char, block and fifo entries. Layer trees may also hold
 * {type:'whiteout'}, {type:'hardlink', target} (a link to a path of a lower
 * layer, resolved at merge) and dirs flagged opaque (hide everything below)
 * or implicit (not in the tar: keep the lower dir's metadata).
 *
 * File timestamps are not kept (all objects have mtime 0, like ostree); dir
 * mtimes are not recorded either.
 */
import { ContentError } from '../errors'
import { canonicalJson, HEX64, sha256Hex } from './canonical'
import type { Digest } from '../oci/types'

export type Xattrs = Record<string, string>

export interface DirMeta {
  mode: number
  uid: number
  gid: number
  xattrs?: Xattrs
}

export type TreeEntry =
  | { type: 'file'; object: string }
  | ({ type: 'dir'; tree: string; opaque?: true; implicit?: true } & DirMeta)
  | { type: 'symlink'; target: string; uid: number; gid: number }
  | { type: 'char' | 'block'; major: number; minor: number; mode: number; uid: number; gid: number; xattrs?: Xattrs }
  | { type: 'fifo'; mode: number; uid: number; gid: number; xattrs?: Xattrs }
  | { type: 'whiteout' }
  | { type: 'hardlink'; target: string }

export type DirEntry = Extract<TreeEntry, { type: 'dir' }>

export interface Tree {
  entries: Record<string, TreeEntry>
}

export interface RootMeta extends DirMeta {
  tree: string
  /** Layer commits only: the tar had no entry for the root. */
  implicit?: true
}

export interface LayerCommit {
  kind: 'layer'
  root: RootMeta
  blobDigest: Digest
  diffID: Digest
}

export interface ImageCommit {
  kind: 'image'
  root: RootMeta
  manifestDigest: Digest
  configDigest: Digest
  layers: { blobDigest: Digest; diffID: Digest; commit: string }[]
}

export type Commit = LayerCommit | ImageCommit

export const DEFAULT_DIR_META: DirMeta = { mode: 0o755, uid: 0, gid: 0 }

export function encodeObject(value: Tree | Commit): { hex: string; bytes: Buffer } {
  const bytes = Buffer.from(canonicalJson(value))
  return { hex: sha256Hex(bytes), bytes }
}

export function isValidName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0')
}

function bad(what: string): never {
  throw new ContentError('store.corrupt-object', `corrupt store object: ${what}`)
}

const ENTRY_TYPES = new Set(['file', 'dir', 'symlink', 'char', 'block', 'fifo', 'whiteout', 'hardlink'])

/** Parse and check a tree object; `layer` allows the layer-only entry types. */
export function decodeTree(hex: string, bytes: Buffer, layer: boolean): Tree {
  let t: Tree
  try {
    t = JSON.parse(bytes.toString('utf8')) as Tree
  } catch {
    bad(`tree ${hex} is not JSON`)
  }
  if (!t || typeof t.entries !== 'object' || t.entries === null) bad(`tree ${hex} has no entries`)
  // for-in, not Object.entries: no [name, entry] array per entry (a checkout decodes every tree of an image).
  const entries = t.entries as Record<string, TreeEntry>
  for (const name in entries) {
    const e = entries[name]
    if (!isValidName(name)) bad(`tree ${hex} has an invalid name ${JSON.stringify(name)}`)
    if (!e || !ENTRY_TYPES.has(e.type)) bad(`tree ${hex} entry ${JSON.stringify(name)} has an unknown type`)
    if (!layer && (e.type === 'whiteout' || e.type === 'hardlink' || (e.type === 'dir' && (e.opaque || e.implicit))))
      bad(`image tree ${hex} holds a layer-only entry ${JSON.stringify(name)}`)
    if (e.type === 'file' && !HEX64.test(e.object)) bad(`tree ${hex} entry ${JSON.stringify(name)} names no object`)
    if (e.type === 'dir' && !HEX64.test(e.tree)) bad(`tree ${hex} entry ${JSON.stringify(name)} names no tree`)
  }
  return t
}

export function decodeCommit(hex: string, bytes: Buffer): Commit {
  let c: Commit
  try {
    c = JSON.parse(bytes.toString('utf8')) as Commit
  } catch {
    bad(`commit ${hex} is not JSON`)
  }
  if (!c || (c.kind !== 'layer' && c.kind !== 'image') || !c.root || !HEX64.test(c.root.tree)) bad(`commit ${hex} is malformed`)
  return c
}

export function dirMetaOf(e: DirMeta): DirMeta {
  return { mode: e.mode, uid: e.uid, gid: e.gid, ...(e.xattrs && Object.keys(e.xattrs).length ? { xattrs: e.xattrs } : {}) }
}
