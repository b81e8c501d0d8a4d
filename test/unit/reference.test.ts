import { describe, expect, it } from 'vitest'
import { UsageError } from '../../src/errors'
import { parseReference } from '../../src/reference/reference'

const H64 = 'a'.repeat(64)
const H128 = 'b'.repeat(128)

describe('parseReference: valid references', () => {
  const cases: Array<[string, { registry: string; repository: string; tag?: string; digest?: string; name: string; canonical: string }]> = [
    ['127.0.0.1:5000/demo/etcd', { registry: '127.0.0.1:5000', repository: 'demo/etcd', tag: 'latest', name: 'etcd', canonical: '127.0.0.1:5000/demo/etcd:latest' }],
    ['quay.io/coreos/etcd:v3.5.0', { registry: 'quay.io', repository: 'coreos/etcd', tag: 'v3.5.0', name: 'etcd', canonical: 'quay.io/coreos/etcd:v3.5.0' }],
    ['localhost/app', { registry: 'localhost', repository: 'app', tag: 'latest', name: 'app', canonical: 'localhost/app:latest' }],
    ['localhost:5000/a/b/c:1', { registry: 'localhost:5000', repository: 'a/b/c', tag: '1', name: 'c', canonical: 'localhost:5000/a/b/c:1' }],
    [`reg.example.com/app@sha256:${H64}`, { registry: 'reg.example.com', repository: 'app', digest: `sha256:${H64}`, name: 'app', canonical: `reg.example.com/app@sha256:${H64}` }],
    [`reg.example.com/app:1.0@sha512:${H128}`, { registry: 'reg.example.com', repository: 'app', tag: '1.0', digest: `sha512:${H128}`, name: 'app', canonical: `reg.example.com/app:1.0@sha512:${H128}` }],
    ['docker.io/busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', name: 'busybox', canonical: 'docker.io/library/busybox:latest' }],
    ['index.docker.io/library/busybox:1', { registry: 'docker.io', repository: 'library/busybox', tag: '1', name: 'busybox', canonical: 'docker.io/library/busybox:1' }],
    ['Registry/app', { registry: 'Registry', repository: 'app', tag: 'latest', name: 'app', canonical: 'Registry/app:latest' }],
    ['[::1]:5000/app:x', { registry: '[::1]:5000', repository: 'app', tag: 'x', name: 'app', canonical: '[::1]:5000/app:x' }],
    ['r.io/a_b/c__d/e-f/g--h/i.j:T_a.g-1', { registry: 'r.io', repository: 'a_b/c__d/e-f/g--h/i.j', tag: 'T_a.g-1', name: 'i.j', canonical: 'r.io/a_b/c__d/e-f/g--h/i.j:T_a.g-1' }],
    [`r.io/app:${'t'.repeat(128)}`, { registry: 'r.io', repository: 'app', tag: 't'.repeat(128), name: 'app', canonical: `r.io/app:${'t'.repeat(128)}` }],
  ]
  it.each(cases)('%s', (input, want) => {
    const ref = parseReference(input)
    expect(ref.registry).toBe(want.registry)
    expect(ref.repository).toBe(want.repository)
    expect(ref.tag).toBe(want.tag)
    expect(ref.digest).toBe(want.digest)
    expect(ref.name).toBe(want.name)
    expect(ref.toString()).toBe(want.canonical)
    expect(String(ref)).toBe(want.canonical)
    // canonical form parses back to the same reference
    expect(parseReference(ref.toString()).toString()).toBe(want.canonical)
  })

  it('is immutable', () => {
    const ref = parseReference('r.io/app:1') as { tag?: string }
    expect(() => {
      ref.tag = '2'
    }).toThrow(TypeError)
    expect(ref.tag).toBe('1')
  })

  it('familiar form drops docker.io and library/', () => {
    expect(parseReference('docker.io/library/busybox:1').familiar).toBe('busybox:1')
    expect(parseReference('docker.io/coreos/etcd').familiar).toBe('coreos/etcd:latest')
    expect(parseReference('quay.io/coreos/etcd:1').familiar).toBe('quay.io/coreos/etcd:1')
  })

  it('withDigest pins the reference and keeps the tag', () => {
    const ref = parseReference('r.io/app:1').withDigest(`sha256:${H64}` as never)
    expect(ref.toString()).toBe(`r.io/app:1@sha256:${H64}`)
    expect(() => parseReference('r.io/app').withDigest('md5:abc' as never)).toThrow(UsageError)
  })

  it('short names only with shortNames: docker-hub', () => {
    expect(parseReference('busybox', { shortNames: 'docker-hub' }).toString()).toBe('docker.io/library/busybox:latest')
    expect(parseReference('coreos/etcd:1', { shortNames: 'docker-hub' }).toString()).toBe('docker.io/coreos/etcd:1')
  })
})

describe('parseReference: refused references', () => {
  const invalid: Array<[string, RegExp]> = [
    ['', /empty/],
    ['r.io/App', /lower case/],
    ['r.io/app:', /empty tag/],
    ['r.io/app:-x', /bad tag/],
    ['r.io/app:.x', /bad tag/],
    [`r.io/app:${'t'.repeat(129)}`, /bad tag/],
    ['r.io/app:a/b', /bad repository path component|bad tag/],
    ['r.io/a..b', /bad repository path component/],
    ['r.io/a___b', /bad repository path component/],
    ['r.io/-a', /bad repository path component/],
    ['r.io/a-', /bad repository path component/],
    ['r.io//a', /empty path component/],
    ['r.io/a/', /empty path component/],
    ['r.io/', /no repository name/],
    ['r.io:99999/a', /bad registry port/],
    ['r.io:x/a', /bad registry port/],
    ['-r.io/a', /bad registry host|bad repository/],
    ['r.io/a@sha256:abc', /64 hex digits/],
    [`r.io/a@sha256:${'A'.repeat(64)}`, /lower-case hex/],
    [`r.io/a@md5:${'a'.repeat(32)}`, /unsupported digest algorithm "md5"/],
    [`r.io/a@sha512:${H64}`, /128 hex digits/],
    ['r.io/a@', /algorithm:hex/],
    ['docker://r.io/a', /transport prefix/],
    ['r.io/a b', /white space/],
    [`r.io/${'a'.repeat(256)}`, /longer than 255/],
  ]
  it.each(invalid)('%j', (input, why) => {
    let err: unknown
    try {
      parseReference(input)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(UsageError)
    expect((err as UsageError).code).toBe('reference.invalid')
    expect((err as UsageError).message).toMatch(why)
    if (input) expect((err as UsageError).message).toContain(`"${input}"`)
  })

  it.each(['busybox', 'coreos/etcd:v1', `app@sha256:${H64}`])('unqualified %s', (input) => {
    let err: UsageError | undefined
    try {
      parseReference(input)
    } catch (e) {
      err = e as UsageError
    }
    expect(err).toBeInstanceOf(UsageError)
    expect(err?.code).toBe('reference.unqualified')
    expect(err?.hint).toMatch(/docker\.io\//)
  })
})
