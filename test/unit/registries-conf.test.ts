/**
 * containers-registries.conf v2: parsing, merging of drop-ins and the alias
 * cache, short-name resolution, registry/mirror endpoints.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import {
  emptyRegistriesConf,
  findRegistry,
  isShortName,
  loadRegistriesConf,
  mergeRegistriesConf,
  pullEndpoints,
  resolveShortName,
} from '../../src/config/registries'
import { SysctrError } from '../../src/errors'
import { parseReference } from '../../src/reference/reference'
import { describeInput } from '../../src/transports/open'

const conf = (text: string) => mergeRegistriesConf(emptyRegistriesConf(), text, 'test.conf')
const endpoints = (text: string, ref: string) => pullEndpoints(conf(text), parseReference(ref)).map((e) => `${e.ref.toString()}${e.insecure ? ' insecure' : ''}${e.mirror ? ' mirror' : ''}`)

function errorOf(fn: () => unknown): SysctrError {
  try {
    fn()
  } catch (err) {
    return err as SysctrError
  }
  throw new Error('expected an error')
}

describe('parsing', () => {
  it('reads the v2 fields', () => {
    const c = conf(`
unqualified-search-registries = ["registry.fedoraproject.org", "docker.io"]
short-name-mode = "permissive"
[aliases]
"etcd" = "quay.io/coreos/etcd"
[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar"
insecure = true
[[registry.mirror]]
location = "mirror.example.com/bar"
pull-from-mirror = "digest-only"
`)
    expect(c.unqualifiedSearchRegistries).toEqual(['registry.fedoraproject.org', 'docker.io'])
    expect(c.shortNameMode).toBe('permissive')
    expect(c.aliases).toEqual({ etcd: 'quay.io/coreos/etcd' })
    expect(c.registries).toEqual([
      {
        prefix: 'example.com/foo',
        location: 'internal.example.com/bar',
        insecure: true,
        blocked: false,
        mirrorByDigestOnly: false,
        mirrors: [{ location: 'mirror.example.com/bar', insecure: false, pullFromMirror: 'digest-only' }],
      },
    ])
  })

  it.each([
    ['not toml', 'x = ', 'not valid TOML'],
    ['v1 format', '[registries.search]\nregistries = ["docker.io"]', 'version 1'],
    ['bad mode', 'short-name-mode = "sometimes"', 'short-name-mode'],
    ['bad search list', 'unqualified-search-registries = "docker.io"', 'list of strings'],
    ['registry without prefix or location', '[[registry]]\ninsecure = true', 'neither prefix nor location'],
    ['wildcard with location', '[[registry]]\nprefix = "*.example.com"\nlocation = "x.example.com"', 'wildcard'],
    ['bad pull-from-mirror', '[[registry]]\nlocation = "a.io"\n[[registry.mirror]]\nlocation = "b.io"\npull-from-mirror = "some"', 'pull-from-mirror'],
  ])('refuses %s, naming the file', (_what, text, message) => {
    const err = errorOf(() => conf(text))
    expect(err.code).toBe('config.bad-registries-conf')
    expect(err.message).toContain('test.conf')
    expect(err.message).toContain(message)
  })
})

describe('loading files', () => {
  let root: string | undefined
  afterEach(async () => {
    if (root) await fsp.rm(root, { recursive: true, force: true })
    root = undefined
  })

  it('merges registries.conf, registries.conf.d/*.conf in order and the alias cache', async () => {
    root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-regconf-'))
    await fsp.mkdir(join(root, 'etc/containers/registries.conf.d'), { recursive: true })
    await fsp.mkdir(join(root, 'var/cache/containers'), { recursive: true })
    await fsp.writeFile(join(root, 'etc/containers/registries.conf'), `
unqualified-search-registries = ["a.example.com"]
[aliases]
"one" = "a.example.com/one"
"two" = "a.example.com/two"
[[registry]]
location = "a.example.com"
insecure = true
`)
    await fsp.writeFile(join(root, 'etc/containers/registries.conf.d/10-b.conf'), `
unqualified-search-registries = ["b.example.com", "c.example.com"]
[aliases]
"two" = "b.example.com/two"
[[registry]]
location = "a.example.com"
blocked = true
`)
    await fsp.writeFile(join(root, 'etc/containers/registries.conf.d/20-c.conf'), 'short-name-mode = "permissive"\n')
    await fsp.writeFile(join(root, 'etc/containers/registries.conf.d/README'), 'not a conf file = [')
    await fsp.writeFile(join(root, 'var/cache/containers/short-name-aliases.conf'), '[aliases]\n"one" = "cache.example.com/one"\n')
    const c = await loadRegistriesConf({ configRoot: root, env: {} })
    expect(c.unqualifiedSearchRegistries).toEqual(['b.example.com', 'c.example.com'])
    expect(c.shortNameMode).toBe('permissive')
    expect(c.aliases).toEqual({ one: 'cache.example.com/one', two: 'b.example.com/two' })
    expect(c.registries).toHaveLength(1)
    expect(c.registries[0]).toMatchObject({ prefix: 'a.example.com', blocked: true, insecure: false })
    expect(c.files.map((f) => f.slice(root!.length))).toEqual([
      '/etc/containers/registries.conf',
      '/etc/containers/registries.conf.d/10-b.conf',
      '/etc/containers/registries.conf.d/20-c.conf',
      '/var/cache/containers/short-name-aliases.conf',
    ])
  })

  it('is empty (enforcing, no search registries) when there are no files', async () => {
    root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-regconf-'))
    const c = await loadRegistriesConf({ configRoot: root, env: {} })
    expect(c).toEqual(emptyRegistriesConf())
  })
})

describe('short names', () => {
  it.each([
    ['busybox', true],
    ['library/busybox:1.36', true],
    ['docker.io/library/busybox', false],
    ['localhost/app', false],
    ['127.0.0.1:5000/demo/etcd', false],
  ])('%s is short: %s', (input, short) => {
    expect(isShortName(input)).toBe(short)
  })

  it('uses an alias (keeping the tag) before the search registries', () => {
    const c = conf('unqualified-search-registries = ["a.io", "b.io"]\n[aliases]\n"etcd" = "quay.io/coreos/etcd"\n')
    const r = resolveShortName(c, 'etcd:3.5')
    expect(r.via).toBe('alias')
    expect(r.candidates.map(String)).toEqual(['quay.io/coreos/etcd:3.5'])
    expect(resolveShortName(c, 'etcd').candidates.map(String)).toEqual(['quay.io/coreos/etcd:latest'])
  })

  it('enforcing: refuses an ambiguous name, listing the candidates', () => {
    const c = conf('unqualified-search-registries = ["a.io", "docker.io"]\n')
    const err = errorOf(() => resolveShortName(c, 'busybox'))
    expect(err.code).toBe('reference.ambiguous')
    expect(err.exitCode).toBe(2)
    expect(err.message).toContain('a.io/busybox:latest')
    expect(err.message).toContain('docker.io/library/busybox:latest')
  })

  it('enforcing with one search registry, and permissive: candidates in order', () => {
    expect(resolveShortName(conf('unqualified-search-registries = ["docker.io"]'), 'busybox').candidates.map(String)).toEqual(['docker.io/library/busybox:latest'])
    const p = conf('short-name-mode = "permissive"\nunqualified-search-registries = ["a.io", "b.io"]')
    expect(resolveShortName(p, 'x/y@sha256:' + 'a'.repeat(64)).candidates.map(String)).toEqual(['a.io/x/y@sha256:' + 'a'.repeat(64), 'b.io/x/y@sha256:' + 'a'.repeat(64)])
  })

  it('without search registries or alias: reference.unqualified', () => {
    expect(errorOf(() => resolveShortName(emptyRegistriesConf(), 'busybox')).code).toBe('reference.unqualified')
  })
})

describe('registries and mirrors', () => {
  const text = `
[[registry]]
prefix = "example.com/foo"
location = "internal.example.com/bar"
[[registry.mirror]]
location = "m1.example.com/cache"
insecure = true
[[registry.mirror]]
location = "m2.example.com/bar"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "m3.example.com/bar"
pull-from-mirror = "tag-only"

[[registry]]
prefix = "example.com"
location = "plain.example.com"

[[registry]]
prefix = "*.blocked.io"
blocked = true

[[registry]]
location = "dig.io"
mirror-by-digest-only = true
[[registry.mirror]]
location = "dmirror.io"
`
  const D = '@sha256:' + 'b'.repeat(64)

  it('rewrites the longest matching prefix and tries mirrors first', () => {
    expect(endpoints(text, 'example.com/foo/app:1')).toEqual([
      'm1.example.com/cache/app:1 insecure mirror',
      'm3.example.com/bar/app:1 mirror',
      'internal.example.com/bar/app:1',
    ])
    expect(endpoints(text, `example.com/foo/app${D}`)).toEqual([
      `m1.example.com/cache/app${D} insecure mirror`,
      `m2.example.com/bar/app${D} mirror`,
      `internal.example.com/bar/app${D}`,
    ])
    expect(endpoints(text, 'example.com/other/app:1')).toEqual(['plain.example.com/other/app:1'])
    expect(endpoints(text, 'example.com/foobar/app:1')).toEqual(['plain.example.com/foobar/app:1'])
    expect(endpoints(text, 'quay.io/x/y:1')).toEqual(['quay.io/x/y:1'])
  })

  it('mirror-by-digest-only uses mirrors only for digests', () => {
    expect(endpoints(text, 'dig.io/a:1')).toEqual(['dig.io/a:1'])
    expect(endpoints(text, `dig.io/a${D}`)).toEqual([`dmirror.io/a${D} mirror`, `dig.io/a${D}`])
  })

  it('refuses a blocked registry (wildcard prefix)', () => {
    const c = conf(text)
    expect(findRegistry(c, parseReference('r.blocked.io/a:1'))?.prefix).toBe('*.blocked.io')
    const err = errorOf(() => pullEndpoints(c, parseReference('r.blocked.io/a:1')))
    expect(err.code).toBe('registry.blocked')
    expect(err.message).toContain('r.blocked.io/a:1')
  })
})

describe('describeInput', () => {
  it.each([
    ['docker://quay.io/coreos/etcd:3.5', 'docker', 'quay.io/coreos/etcd:3.5', 'etcd'],
    ['127.0.0.1:5000/demo/etcd', 'docker', '127.0.0.1:5000/demo/etcd:latest', 'etcd'],
    ['oci:/srv/images/etcd:v1', 'oci', 'oci:/srv/images/etcd:v1', 'etcd'],
    ['oci:/srv/images/layout:hello-world', 'oci', 'oci:/srv/images/layout:hello-world', 'hello-world'],
    ['oci:/srv/images/flannel:latest', 'oci', 'oci:/srv/images/flannel:latest', 'flannel'],
    ['oci:/srv/images/layout:docker.io/library/busybox:1.36', 'oci', 'oci:/srv/images/layout:docker.io/library/busybox:1.36', 'busybox'],
    ['oci-archive:/srv/etcd.tar', 'oci-archive', 'oci-archive:/srv/etcd.tar', 'etcd'],
    ['docker-archive:/srv/all.tar:example.com/demo/flannel:1', 'docker-archive', 'docker-archive:/srv/all.tar:example.com/demo/flannel:1', 'flannel'],
    ['docker-archive:/srv/all.tar:@1', 'docker-archive', 'docker-archive:/srv/all.tar:@1', 'all'],
    ['dir:/srv/Etcd Image', 'dir', 'dir:/srv/Etcd Image', 'etcd-image'],
  ])('%s', (input, transport, refName, defaultName) => {
    expect(describeInput(input, '/')).toMatchObject({ transport, refName, defaultName })
  })

  it('makes relative paths absolute', () => {
    expect(describeInput('oci-archive:images/etcd.tar:v1', '/work').refName).toBe('oci-archive:/work/images/etcd.tar:v1')
  })

  it('leaves a short name to resolution and refuses other transports', () => {
    expect(describeInput('busybox:1.36')).toMatchObject({ transport: 'docker', shortName: 'busybox:1.36', defaultName: 'busybox' })
    expect(errorOf(() => describeInput('containers-storage:busybox')).code).toBe('reference.unsupported-transport')
    expect(errorOf(() => describeInput('oci:')).code).toBe('reference.invalid')
  })
})
