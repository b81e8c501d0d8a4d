/**
 * Local names first (src/ops/local-images.ts): every name images list prints
 * resolves to its stored image; different images behind one name are
 * ambiguous (exit 2); nothing matching is undefined (the caller's exit 3).
 */
import { describe, expect, it } from 'vitest'
import { matchLocalImage } from '../../src/ops/local-images'
import type { ImageRecord } from '../../src/store/store'
import type { Digest } from '../../src/oci/types'

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest
const rec = (m: string, c: string, extra: Record<string, unknown> = {}): ImageRecord => ({ reference: '', manifestDigest: d(m), configDigest: d(c), commit: m.repeat(8), layers: [], ...extra })
const refs = [
  { name: '127.0.0.1:5000/demo/etcd:latest', record: rec('a', 'b') },
  { name: 'localhost/etcd:stable', record: rec('a', 'b', { taggedFrom: '127.0.0.1:5000/demo/etcd:latest' }) },
  { name: '127.0.0.1:5000/demo/etcd:3.4', record: rec('c', 'd') },
  { name: 'example.com/demo/archived:1.0', record: rec('e', 'f', { source: 'docker-archive:/srv/archived.tar' }) },
  { name: 'oci:/srv/layout:flannel', record: rec('1', '2') },
  { name: 'quay.io/x/flannel:latest', record: rec('3', '4') },
]

describe('matchLocalImage', () => {
  it.each([
    ['127.0.0.1:5000/demo/etcd:3.4', '127.0.0.1:5000/demo/etcd:3.4', 'name'],
    ['docker://127.0.0.1:5000/demo/etcd:3.4', '127.0.0.1:5000/demo/etcd:3.4', 'name'],
    ['etcd', '127.0.0.1:5000/demo/etcd:latest', 'short-name'],
    ['etcd:3.4', '127.0.0.1:5000/demo/etcd:3.4', 'short-name'],
    ['demo/etcd:3.4', '127.0.0.1:5000/demo/etcd:3.4', 'short-name'],
    ['etcd:stable', 'localhost/etcd:stable', 'short-name'],
    ['aaaaaaaaaaaa', '127.0.0.1:5000/demo/etcd:latest', 'id'],
    [`sha256:${'c'.repeat(12)}`, '127.0.0.1:5000/demo/etcd:3.4', 'id'],
    [d('d'), '127.0.0.1:5000/demo/etcd:3.4', 'id'],
    ['docker-archive:/srv/archived.tar', 'example.com/demo/archived:1.0', 'source'],
    ['archived:1.0', 'example.com/demo/archived:1.0', 'short-name'],
  ])('%s -> %s (%s)', (input, name, by) => {
    const m = matchLocalImage(refs, input)
    expect(m).toMatchObject({ by })
    expect(m!.names).toContain(name)
  })

  it('an ID of an image with two names matches both', () => {
    expect(matchLocalImage(refs, 'aaaa')!.names).toEqual(['127.0.0.1:5000/demo/etcd:latest', 'localhost/etcd:stable'])
  })

  it('a short name of two different images is ambiguous (exit 2), naming both', () => {
    let err: unknown
    try {
      matchLocalImage(refs, 'flannel')
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ code: 'image.ambiguous', exitCode: 2, message: expect.stringContaining('oci:/srv/layout:flannel, quay.io/x/flannel:latest') })
  })

  it('nothing stored by that name: undefined (too short an ID is no ID)', () => {
    for (const n of ['nosuch', 'etcd:9.9', 'aaa', 'sha256:0123', 'docker-archive:/srv/other.tar']) expect(matchLocalImage(refs, n)).toBeUndefined()
  })
})
