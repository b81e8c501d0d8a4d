/**
 * Registry TLS with a private CA against the real registry (docker-registry
 * 2.8 serving https with a certificate from a throwaway CA): untrusted ->
 * registry.tls-untrusted (exit 5) naming host:port and where the CA goes;
 * trusted through certs.d under a test config root, or --cert-dir; a registry
 * that requires a client certificate (http.tls.clientcas).
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RegistryError, SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { openImageSource, OpenImageOptions } from '../../src/transports/open'
import { cliSkipReason, runCli } from '../helpers/crash'
import { pushLayout, registrySkipReason, RunningRegistry, startRegistry } from '../helpers/registry'
import { makeTestCerts, TestCerts } from '../helpers/tls-certs'

const skip = registrySkipReason()

async function pullDigests(input: string, opts: OpenImageOptions): Promise<string[]> {
  const { source } = await openImageSource(input, { registry: { timeoutMs: 10_000, retries: 0 }, ...opts })
  try {
    const r = await source.resolve()
    const out: string[] = [r.manifestDigest]
    for (const l of r.manifest.layers) {
      const h = createHash('sha256')
      for await (const c of await source.openBlob(l)) h.update(c as Buffer)
      out.push(`sha256:${h.digest('hex')}`)
    }
    return out
  } finally {
    await source.close()
  }
}

async function failure(p: Promise<unknown>): Promise<SysctrError> {
  return p.then(
    () => {
      throw new Error('expected a failure')
    },
    (e) => e as SysctrError,
  )
}

describe.skipIf(skip)(`registry TLS with a private CA${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string
  let certs: TestCerts
  let reg: RunningRegistry
  let mtls: RunningRegistry
  let image: WrittenImage
  /** A config root and a home with nothing in them (no certs.d, no registries.conf, no auth). */
  let emptyRoot: string
  let caOnly: string
  let withClient: string

  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-registry-tls-'))
    certs = await makeTestCerts(join(dir, 'pki'))
    emptyRoot = join(dir, 'empty')
    await fsp.mkdir(emptyRoot)
    caOnly = join(dir, 'ca-only')
    await fsp.mkdir(caOnly)
    await fsp.copyFile(certs.caCrt, join(caOnly, 'ca.crt'))
    withClient = join(dir, 'with-client')
    await fsp.mkdir(withClient)
    await fsp.copyFile(certs.caCrt, join(withClient, 'ca.crt'))
    await fsp.copyFile(certs.clientCert, join(withClient, 'client.cert'))
    await fsp.copyFile(certs.clientKey, join(withClient, 'client.key'))

    ;[reg, mtls] = await Promise.all([
      startRegistry({ tls: { cert: certs.serverCrt, key: certs.serverKey } }),
      startRegistry({ tls: { cert: certs.serverCrt, key: certs.serverKey, clientCas: [certs.caCrt] } }),
    ])
    const layout = join(dir, 'layout')
    ;[image] = await writeOciLayout(layout, [{ tag: 'v1', layers: [[{ path: 'etc/tls-test', content: 'private CA\n' }]] }])
    await pushLayout(layout, 'v1', `${reg.host}/demo/app:v1`, { certDir: caOnly })
    await pushLayout(layout, 'v1', `${mtls.host}/demo/app:v1`, { certDir: withClient })
  }, 60_000)

  afterAll(async () => {
    await Promise.all([reg?.stop(), mtls?.stop()])
    if (dir) await fsp.rm(dir, { recursive: true, force: true })
  })

  const expected = () => [image.manifestDigest, ...image.manifest.layers.map((l) => l.digest)]

  it('refuses the untrusted certificate: one line naming host:port and the reason, exit 5, hint on where the CA goes', async () => {
    const err = await failure(pullDigests(`${reg.host}/demo/app:v1`, { configRoot: emptyRoot, home: emptyRoot }))
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.code).toBe('registry.tls-untrusted')
    expect(err.exitCode).toBe(5)
    expect(err.message).toContain(`TLS certificate of ${reg.host} is not trusted (`)
    expect(err.message).toMatch(/self[- ]signed certificate in certificate chain|unable to/i)
    expect(err.message).not.toContain('\n')
    expect(err.hint).toContain(`/etc/containers/certs.d/${reg.host}/ca.crt`)
    expect(err.hint).toContain('--tls-verify=false')
  })

  it('trusts the CA from certs.d under the config root (added to the default roots)', async () => {
    const root = join(dir, 'root-containers')
    await fsp.mkdir(join(root, 'etc/containers/certs.d', reg.host), { recursive: true })
    await fsp.copyFile(certs.caCrt, join(root, 'etc/containers/certs.d', reg.host, 'ca.crt'))
    expect(await pullDigests(`${reg.host}/demo/app:v1`, { configRoot: root, home: emptyRoot })).toEqual(expected())
  })

  it('also reads /etc/docker/certs.d and ~/.config/containers/certs.d', async () => {
    const root = join(dir, 'root-docker')
    await fsp.mkdir(join(root, 'etc/docker/certs.d', reg.host), { recursive: true })
    await fsp.copyFile(certs.caCrt, join(root, 'etc/docker/certs.d', reg.host, 'myca.crt'))
    expect(await pullDigests(`${reg.host}/demo/app:v1`, { configRoot: root, home: emptyRoot })).toEqual(expected())
    const home = join(dir, 'home')
    await fsp.mkdir(join(home, '.config/containers/certs.d', reg.host), { recursive: true })
    await fsp.copyFile(certs.caCrt, join(home, '.config/containers/certs.d', reg.host, 'ca.crt'))
    expect(await pullDigests(`${reg.host}/demo/app:v1`, { configRoot: emptyRoot, home })).toEqual(expected())
  })

  it('trusts the CA given with --cert-dir', async () => {
    expect(await pullDigests(`${reg.host}/demo/app:v1`, { certDir: caOnly, configRoot: emptyRoot, home: emptyRoot })).toEqual(expected())
  })

  it('--tls-verify=false still works without the CA', async () => {
    expect(await pullDigests(`${reg.host}/demo/app:v1`, { tlsVerify: false, configRoot: emptyRoot, home: emptyRoot })).toEqual(expected())
  })

  it('a registry that requires a client certificate: refused without one (hint names certs.d), works with NAME.cert/NAME.key', async () => {
    const err = await failure(pullDigests(`${mtls.host}/demo/app:v1`, { certDir: caOnly, configRoot: emptyRoot, home: emptyRoot }))
    expect(err).toBeInstanceOf(RegistryError)
    expect(err.exitCode).toBe(5)
    expect(err.message).toContain(mtls.host)
    expect(`${err.message} ${err.hint}`).toMatch(/client certificate/)
    expect(await pullDigests(`${mtls.host}/demo/app:v1`, { certDir: withClient, configRoot: emptyRoot, home: emptyRoot })).toEqual(expected())
  })

  it.skipIf(cliSkipReason())(`the CLI: exit 5 with one error line, then --cert-dir pulls${cliSkipReason() ? ` (skipped: ${cliSkipReason()})` : ''}`, async () => {
    const state = join(dir, 'state')
    const bad = await runCli(['images', 'pull', `${reg.host}/demo/app:v1`], state)
    expect(bad.code).toBe(5)
    expect(bad.stderr.split('\n').filter((l) => l.startsWith('error:'))).toHaveLength(1)
    expect(bad.stderr).toContain(`TLS certificate of ${reg.host} is not trusted`)
    expect(bad.stderr).toMatch(/hint:.*certs\.d/)
    const good = await runCli(['images', 'pull', '--cert-dir', caOnly, `${reg.host}/demo/app:v1`], state)
    expect(good.code, good.stderr).toBe(0)
    expect(good.stdout).toContain(`pulled ${reg.host}/demo/app:v1`)
  })
})
