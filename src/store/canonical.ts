/**
 * Canonical JSON and hashing for store objects. Trees, commits and file
 * object headers are hashed over canonical JSON: object keys sorted by code
 * unit, no whitespace, integers only. The same value always gives the same
 * bytes, so the same content always gives the same object name.
 */
import { createHash } from 'node:crypto'

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new Error(`canonical json: not an integer: ${value}`)
    return JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const obj = value as Record<string, unknown>
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex')
}

export const HEX64 = /^[0-9a-f]{64}$/

/** Regular-file metadata that is part of a file object's name (bare mode). */
export interface FileMeta {
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number
  uid: number
  gid: number
  /** xattr name -> value, base64. */
  xattrs?: Record<string, string>
}

/**
 * The header hashed before a file's content, like ostree's content checksum
 * (file header GVariant, then the bytes): "sysctr-file 1\n" + canonical JSON
 * of {gid, mode, uid, xattrs?} + "\n".
 */
export function fileObjectHeader(meta: FileMeta): Buffer {
  const xattrs = meta.xattrs && Object.keys(meta.xattrs).length > 0 ? meta.xattrs : undefined
  if (xattrs) return Buffer.from(`sysctr-file 1\n${canonicalJson({ mode: meta.mode & 0o7777, uid: meta.uid, gid: meta.gid, xattrs })}\n`)
  // Without xattrs (nearly every file) a layer has few distinct (mode, uid, gid):
  // the header bytes are built once per triple (the pull profile showed one
  // canonicalJson per file). Same bytes as canonicalJson, which also refuses non-integers.
  const key = `${meta.mode & 0o7777}:${meta.uid}:${meta.gid}`
  let h = headerCache.get(key)
  if (!h) {
    h = Buffer.from(`sysctr-file 1\n${canonicalJson({ mode: meta.mode & 0o7777, uid: meta.uid, gid: meta.gid })}\n`)
    if (headerCache.size >= 4096) headerCache.clear()
    headerCache.set(key, h)
  }
  return h
}

/** Header bytes by `mode:uid:gid` (callers only read them: hash.update). */
const headerCache = new Map<string, Buffer>()
