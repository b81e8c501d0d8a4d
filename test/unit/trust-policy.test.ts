/**
 * containers-policy.json parsing, scope lookup and signedIdentity matching;
 * registries.d scope choice. Pure (temp dirs for file lookup).
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ContentError, NotFoundError } from '../../src/errors'
import { parseReference } from '../../src/reference/reference'
import { loadPolicy, locatePolicy, parsePolicy, requirementsFor } from '../../src/trust/policy'
import { mergeRegistriesDFile, RegistriesD, signatureStorageFor } from '../../src/trust/registries-d'
import { identityProblem } from '../../src/trust/verify'

const ref = (s: string) => parseReference(s)
const accept = [{ type: 'insecureAcceptAnything' }]
const reject = [{ type: 'reject' }]

describe('scope lookup', () => {
  const policy = parsePolicy(
    JSON.stringify({
      default: reject,
      transports: {
        docker: {
          'quay.io/coreos/etcd:v3': accept,
          'quay.io/coreos/etcd': [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: '/k' }],
          'quay.io/coreos': accept,
          'registry.example.com:5000': accept,
          '*.example.org': accept,
          '': [{ type: 'sigstoreSigned', keyPath: '/p.pem' }],
        },
        oci: { '/srv/images': accept },
      },
    }),
    '/etc/containers/policy.json',
  )
  it.each([
    ['quay.io/coreos/etcd:v3', 'docker:quay.io/coreos/etcd:v3'],
    ['quay.io/coreos/etcd:v4', 'docker:quay.io/coreos/etcd'],
    ['quay.io/coreos/flannel:1', 'docker:quay.io/coreos'],
    ['quay.io/other/x:1', 'docker:""'],
    ['registry.example.com:5000/a/b:1', 'docker:registry.example.com:5000'],
    ['a.b.example.org/x:1', 'docker:*.example.org'],
  ])('%s -> %s', (r, scope) => {
    expect(requirementsFor(policy, { transport: 'docker', reference: ref(r) }).scope).toBe(scope)
  })
  it('local transports look up the path and its parents, then the default', () => {
    expect(requirementsFor(policy, { transport: 'oci', path: '/srv/images/etcd', tag: 'v1' }).scope).toBe('oci:/srv/images')
    expect(requirementsFor(policy, { transport: 'oci', path: '/home/x', tag: 'v1' }).scope).toBe('default')
    expect(requirementsFor(policy, { transport: 'dir', path: '/srv/images/etcd' }).scope).toBe('default')
  })
  it('parses requirement details: keyPath made a list, signedIdentity defaulted', () => {
    const r = requirementsFor(policy, { transport: 'docker', reference: ref('quay.io/coreos/etcd:v4') }).requirements[0]
    expect(r).toEqual({ type: 'signedBy', keyType: 'GPGKeys', keyPaths: ['/k'], signedIdentity: { type: 'matchRepoDigestOrExact' } })
  })
})

describe('malformed policies are refused, naming the file', () => {
  it.each([
    ['not json', '{', /not valid JSON/],
    ['no default', '{"transports": {}}', /no "default"/],
    ['empty list', '{"default": []}', /has no requirements/],
    ['unknown type', '{"default": [{"type": "trustMe"}]}', /unknown requirement type "trustMe"/],
    ['unknown key', '{"default": [{"type": "reject", "keyPath": "/k"}]}', /unknown key "keyPath"/],
    ['keyType', '{"default": [{"type": "signedBy", "keyType": "X509Certificates", "keyPath": "/k"}]}', /keyType "X509Certificates" is not supported/],
    ['two key sources', '{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "keyData": "AA=="}]}', /exactly one of keyPath/],
    ['no key', '{"default": [{"type": "sigstoreSigned"}]}', /exactly one of keyPath/],
    ['fulcio', '{"default": [{"type": "sigstoreSigned", "fulcio": {}}]}', /Fulcio\/Rekor\/PKI verification\) is not supported/],
    ['rekor', '{"default": [{"type": "sigstoreSigned", "keyPath": "/k", "rekorPublicKeyPath": "/r"}]}', /not supported/],
    ['bad identity', '{"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k", "signedIdentity": {"type": "any"}}]}', /unknown signedIdentity type "any"/],
    ['relative oci scope', '{"default": [{"type": "reject"}], "transports": {"oci": {"images": [{"type": "reject"}]}}}', /must be an absolute path/],
  ])('%s', (_n, text, re) => {
    let err: unknown
    try {
      parsePolicy(text, '/etc/containers/policy.json')
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ContentError)
    expect((err as Error).message).toMatch(re)
    expect((err as Error).message).toContain('/etc/containers/policy.json')
  })
  it('relative key paths are taken from the policy file directory', () => {
    const p = parsePolicy('{"default": [{"type": "sigstoreSigned", "keyPath": "keys/a.pem"}]}', '/etc/containers/policy.json')
    expect(p.default[0]).toMatchObject({ keyPaths: ['/etc/containers/keys/a.pem'] })
  })
})

describe('which file', () => {
  it('home first, then /etc (under configRoot), --signature-policy over both; a missing named file is an error', async () => {
    const root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-trust-policy-'))
    try {
      const home = join(root, 'home')
      expect(await locatePolicy({ configRoot: root })).toBeUndefined()
      expect(await loadPolicy({ configRoot: root })).toBeUndefined()
      await fsp.mkdir(join(root, 'etc/containers'), { recursive: true })
      await fsp.writeFile(join(root, 'etc/containers/policy.json'), JSON.stringify({ default: reject }))
      expect(await locatePolicy({ configRoot: root })).toBe(join(root, 'etc/containers/policy.json'))
      await fsp.mkdir(join(home, '.config/containers'), { recursive: true })
      await fsp.writeFile(join(home, '.config/containers/policy.json'), JSON.stringify({ default: accept }))
      expect(await locatePolicy({ home })).toBe(join(home, '.config/containers/policy.json'))
      expect(await locatePolicy({ home, signaturePolicy: join(root, 'x.json') })).toBe(join(root, 'x.json'))
      await expect(loadPolicy({ signaturePolicy: join(root, 'x.json') })).rejects.toBeInstanceOf(NotFoundError)
    } finally {
      await fsp.rm(root, { recursive: true, force: true })
    }
  })
})

describe('signedIdentity', () => {
  const signed = 'quay.io/coreos/etcd:v3'
  it.each([
    [{ type: 'matchRepoDigestOrExact' as const }, 'quay.io/coreos/etcd:v3', true],
    [{ type: 'matchRepoDigestOrExact' as const }, 'quay.io/coreos/etcd:v4', false],
    [{ type: 'matchRepoDigestOrExact' as const }, `quay.io/coreos/etcd@sha256:${'a'.repeat(64)}`, true],
    [{ type: 'matchExact' as const }, `quay.io/coreos/etcd@sha256:${'a'.repeat(64)}`, false],
    [{ type: 'matchRepository' as const }, 'quay.io/coreos/etcd:v9', true],
    [{ type: 'matchRepository' as const }, 'quay.io/other/etcd:v3', false],
    [{ type: 'exactReference' as const, dockerReference: 'quay.io/coreos/etcd:v3' }, 'example.com/x:1', true],
    [{ type: 'exactRepository' as const, dockerRepository: 'quay.io/coreos/etcd' }, 'example.com/x:1', true],
    [{ type: 'exactRepository' as const, dockerRepository: 'quay.io/coreos/flannel' }, 'example.com/x:1', false],
    [{ type: 'remapIdentity' as const, prefix: 'mirror.local/q', signedPrefix: 'quay.io' }, 'mirror.local/q/coreos/etcd:v3', true],
    [{ type: 'remapIdentity' as const, prefix: 'mirror.local/q', signedPrefix: 'quay.io' }, 'mirror.local/qq/coreos/etcd:v3', false],
  ])('%j for image %s -> %s', (si, image, ok) => {
    expect(identityProblem(si, ref(image), signed) === undefined).toBe(ok)
  })
  it('a local image has no identity to match', () => {
    expect(identityProblem({ type: 'matchRepoDigestOrExact' }, undefined, signed)).toMatch(/no docker reference/)
  })
})

describe('registries.d', () => {
  it('most specific scope wins per setting; sigstore is the old name of lookaside; duplicates are refused', () => {
    const c: RegistriesD = { docker: {}, sources: {} }
    mergeRegistriesDFile(c, 'default-docker:\n  lookaside: https://sigs.example.com\n', '/d/default.yaml')
    mergeRegistriesDFile(c, 'docker:\n  quay.io/coreos:\n    sigstore: file:///srv/sigs\n  quay.io:\n    use-sigstore-attachments: true\n', '/d/quay.yaml')
    expect(signatureStorageFor(c, ref('quay.io/coreos/etcd:v3'))).toMatchObject({ lookaside: 'file:///srv/sigs', useSigstoreAttachments: true })
    expect(signatureStorageFor(c, ref('quay.io/x/y:1'))).toMatchObject({ lookaside: 'https://sigs.example.com', useSigstoreAttachments: true })
    expect(signatureStorageFor(c, ref('docker.io/library/busybox:1'))).toMatchObject({ lookaside: 'https://sigs.example.com', useSigstoreAttachments: false })
    expect(() => mergeRegistriesDFile(c, 'docker:\n  quay.io:\n    lookaside: file:///x\n', '/d/again.yaml')).toThrow(/also set in \/d\/quay.yaml/)
    expect(() => mergeRegistriesDFile(c, 'docker:\n  x.io:\n    lookaside: ftp://x\n', '/d/ftp.yaml')).toThrow(/not supported/)
  })
})
