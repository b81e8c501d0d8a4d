/**
 * Fixtures for the test/unit/security-*.test.ts files: hostile layers built in
 * code (layout-writer + tar-stream), run through the real import, commit and
 * checkout path of a Store in a temp dir.
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { afterEach, beforeEach, expect } from 'vitest'
import { SysctrError } from '../../src/errors'
import { LayerEntry, writeLayer } from '../../harness/oci-layout-writer'
import { Descriptor, Digest, MediaType } from '../../src/oci/types'
import { LayerRecord, Store } from '../../src/store/store'

export interface Blob {
  desc: Descriptor
  bytes: Buffer
}

export interface SecurityEnv {
  /** The temp dir: `co/` is the checkout, `outside/` a host dir that must stay empty. */
  dir: string
  store: Store
  outside: string
  checkoutDir: string
}

/** A fresh temp dir and store per test; `outside/` exists and must stay empty. */
export function useSecurityEnv(): SecurityEnv {
  const env = {} as SecurityEnv
  beforeEach(async () => {
    env.dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-security-'))
    env.outside = join(env.dir, 'outside')
    env.checkoutDir = join(env.dir, 'co')
    await fsp.mkdir(join(env.dir, 'blobs', 'sha256'), { recursive: true })
    await fsp.mkdir(env.outside)
    env.store = await Store.open(join(env.dir, 'store'))
  })
  afterEach(async () => {
    await env.store?.close()
    await fsp.rm(env.dir, { recursive: true, force: true })
  })
  return env
}

const sha256 = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest

/** A layer blob from entries (layout-writer, tar-stream). */
export async function layer(env: SecurityEnv, entries: LayerEntry[], compression: 'gzip' | 'none' = 'gzip'): Promise<Blob> {
  const { descriptor } = await writeLayer(env.dir, entries, compression)
  return { desc: descriptor, bytes: await fsp.readFile(join(env.dir, 'blobs', 'sha256', descriptor.digest.slice(7))) }
}

/** A blob of raw bytes with a correct descriptor (so only the content is hostile). */
export function rawBlob(bytes: Buffer, compression: 'gzip' | 'none'): Blob {
  return { desc: { mediaType: compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayer, digest: sha256(bytes), size: bytes.length }, bytes }
}

/** The uncompressed tar of a gzip blob. */
export async function tarOf(env: SecurityEnv, entries: LayerEntry[]): Promise<Buffer> {
  return (await layer(env, entries, 'none')).bytes
}

export const gzip = (b: Buffer): Buffer => gzipSync(b)

/** A 512-byte ustar header for `name` (raw bytes: NUL and odd names included), with `size` bytes of data following. */
export function ustarHeader(name: Buffer, opts: { type?: string; size?: number; linkname?: Buffer } = {}): Buffer {
  const h = Buffer.alloc(512)
  name.copy(h, 0, 0, Math.min(100, name.length))
  h.write('0000644\0', 100, 'latin1')
  h.write('0000000\0', 108, 'latin1')
  h.write('0000000\0', 116, 'latin1')
  h.write(`${(opts.size ?? 0).toString(8).padStart(11, '0')}\0`, 124, 'latin1')
  h.write('00000000000\0', 136, 'latin1')
  h.write(opts.type ?? '0', 156, 'latin1')
  opts.linkname?.copy(h, 157, 0, Math.min(100, opts.linkname.length))
  h.write('ustar\0', 257, 'latin1')
  h.write('00', 263, 'latin1')
  h.fill(0x20, 148, 156)
  let sum = 0
  for (const b of h) sum += b
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1')
  return h
}

/** A PAX extended header ('x') with the given records, as raw bytes. */
export function paxHeader(records: Record<string, Buffer | string>): Buffer {
  const recs: Buffer[] = []
  for (const [k, v] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from('\n')])
    let len = body.length + 1
    while (String(len).length + body.length !== len) len = String(len).length + body.length
    recs.push(Buffer.concat([Buffer.from(String(len)), body]))
  }
  const data = Buffer.concat(recs)
  return Buffer.concat([ustarHeader(Buffer.from('PaxHeader'), { type: 'x', size: data.length }), pad(data)])
}

export const pad = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)])
export const END = Buffer.alloc(1024)

/** Import `blobs` (bottom first), commit them and check the image out to env.checkoutDir. */
export async function importAndCheckout(env: SecurityEnv, blobs: Blob[]): Promise<string> {
  const layers: LayerRecord[] = []
  for (const b of blobs) layers.push((await env.store.importLayer(b.desc, Readable.from([b.bytes]))).record)
  const { commit } = await env.store.commitImage({ manifestDigest: sha256(Buffer.from('m')), configDigest: sha256(Buffer.from('c')), layers })
  await env.store.checkout(commit, env.checkoutDir)
  return env.checkoutDir
}

/** Expect `p` to fail with a SysctrError of `code` (exit 6 for content errors); returns it. */
export async function expectRefused(p: Promise<unknown>, code: string | RegExp): Promise<SysctrError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(SysctrError)
  const e = err as SysctrError
  expect(e.code).toMatch(code)
  expect(e.exitCode).toBe(6)
  return e
}

/** Nothing was written outside the checkout, and no layer of `blobs` is in the store. */
export async function expectNothingPublished(env: SecurityEnv, blobs: Blob[]): Promise<void> {
  expect(await fsp.readdir(env.outside)).toEqual([])
  for (const b of blobs) expect(await env.store.getLayer(b.desc.digest)).toBeUndefined()
}

/** Every path under `root`, relative, sorted (symlinks not followed). */
export async function listTree(root: string): Promise<string[]> {
  const out: string[] = []
  async function walk(d: string, rel: string): Promise<void> {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name
      out.push(r)
      if (e.isDirectory()) await walk(join(d, e.name), r)
    }
  }
  await walk(root, '')
  return out.sort()
}
