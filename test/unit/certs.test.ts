/**
 * containers-certs.d(5) lookup: directory order, --cert-dir alone, CAs added
 * to (not replacing) Node's roots, cert/key pairs, errors naming the file.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { rootCertificates } from 'node:tls'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { certDirsFor, tlsOptionsFor } from '../../src/config/certs'
import { ContentError, UsageError } from '../../src/errors'

const PEM = (tag: string) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(tag).toString('base64')}\n-----END CERTIFICATE-----\n`
const KEY = `-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n`
let root: string
let home: string

beforeEach(async () => {
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-certs-root-'))
  home = await fsp.mkdtemp(join(tmpdir(), 'sysctr-certs-home-'))
})
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true })
  await fsp.rm(home, { recursive: true, force: true })
})

async function put(dir: string, files: Record<string, string>): Promise<void> {
  await fsp.mkdir(dir, { recursive: true })
  for (const [n, c] of Object.entries(files)) await fsp.writeFile(join(dir, n), c)
}

describe('certs.d', () => {
  it('looks in ~/.config/containers, /etc/containers, /etc/docker (in that order); --cert-dir alone', () => {
    expect(certDirsFor('reg:5000', { configRoot: root, home })).toEqual([
      join(home, '.config/containers/certs.d/reg:5000'),
      join(root, 'etc/containers/certs.d/reg:5000'),
      join(root, 'etc/docker/certs.d/reg:5000'),
    ])
    expect(certDirsFor('reg:5000', { certDir: '/x', configRoot: root, home })).toEqual(['/x'])
    expect(certDirsFor('../etc', { configRoot: root, home })).toEqual([])
  })

  it('nothing configured: no options (Node defaults)', async () => {
    expect(await tlsOptionsFor('reg:5000', { configRoot: root, home })).toEqual({})
  })

  it('*.crt are added to the default roots; the first existing directory wins', async () => {
    await put(join(root, 'etc/containers/certs.d/reg:5000'), { 'a.crt': PEM('a'), 'b.crt': PEM('b'), 'README': 'x' })
    await put(join(root, 'etc/docker/certs.d/reg:5000'), { 'c.crt': PEM('c') })
    const o = await tlsOptionsFor('reg:5000', { configRoot: root, home })
    expect(o.certDir).toBe(join(root, 'etc/containers/certs.d/reg:5000'))
    expect(o.ca).toEqual([...rootCertificates, PEM('a'), PEM('b')])
    expect(o.cert).toBeUndefined()
  })

  it('NAME.cert + NAME.key are the client certificate; a lone .key or .cert is an error naming it', async () => {
    const dir = join(root, 'd')
    await put(dir, { 'client.cert': PEM('client'), 'client.key': KEY })
    const o = await tlsOptionsFor('reg:5000', { certDir: dir })
    expect(o.cert).toBe(PEM('client'))
    expect(o.key).toBe(KEY)
    expect(o.ca).toBeUndefined()
    await fsp.rm(join(dir, 'client.key'))
    const e1 = await tlsOptionsFor('reg:5000', { certDir: dir }).catch((e) => e)
    expect(e1).toBeInstanceOf(ContentError)
    expect(e1.message).toContain(join(dir, 'client.cert'))
    await fsp.rm(join(dir, 'client.cert'))
    await put(dir, { 'other.key': KEY })
    const e2 = await tlsOptionsFor('reg:5000', { certDir: dir }).catch((e) => e)
    expect(e2).toBeInstanceOf(ContentError)
    expect(e2.message).toContain(join(dir, 'other.key'))
    expect(e2.message).not.toContain('PRIVATE KEY')
  })

  it('a .crt that is not PEM is refused naming the file; a missing --cert-dir is a usage error', async () => {
    const dir = join(root, 'bad')
    await put(dir, { 'ca.crt': 'not a certificate' })
    const e = await tlsOptionsFor('reg:5000', { certDir: dir }).catch((x) => x)
    expect(e).toBeInstanceOf(ContentError)
    expect(e.message).toContain(join(dir, 'ca.crt'))
    await expect(tlsOptionsFor('reg:5000', { certDir: join(root, 'nope') })).rejects.toBeInstanceOf(UsageError)
  })
})
