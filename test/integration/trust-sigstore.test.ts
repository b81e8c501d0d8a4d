/**
 * sigstoreSigned against the real docker-registry: an EC P-256 key made with
 * node:crypto, the cosign payload signed here and pushed as the
 * sha256-HEX.sig attachment (an OCI manifest, PUT through the registry API),
 * read back by the real pull path when registries.d says
 * use-sigstore-attachments: true.
 */
import { createHash, generateKeyPairSync, sign, KeyObject } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { pushLayout, registrySkipReason, RunningRegistry, startRegistry } from '../helpers/registry'
import { PolicyPull, pullUnderPolicy } from '../helpers/trust-fixtures'

const skip = registrySkipReason()
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

async function putBlob(url: string, repo: string, bytes: Buffer): Promise<string> {
  const d = sha(bytes)
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' })
  if (start.status !== 202) throw new Error(`upload start: ${start.status}`)
  const loc = new URL(start.headers.get('location')!, url)
  loc.searchParams.set('digest', d)
  const put = await fetch(loc, { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } })
  if (put.status !== 201) throw new Error(`upload put: ${put.status} ${await put.text()}`)
  return d
}

/** Push a cosign-style signature attachment for `repo`@`digest`. */
async function pushAttachment(url: string, repo: string, digest: string, payload: Buffer, signature: Buffer): Promise<void> {
  const config = Buffer.from('{}')
  const configDigest = await putBlob(url, repo, config)
  const payloadDigest = await putBlob(url, repo, payload)
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: [
      {
        mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json',
        digest: payloadDigest,
        size: payload.length,
        annotations: { 'dev.cosignproject.cosign/signature': signature.toString('base64') },
      },
    ],
  }
  const res = await fetch(`${url}/v2/${repo}/manifests/sha256-${digest.slice(7)}.sig`, {
    method: 'PUT',
    body: JSON.stringify(manifest),
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
  })
  if (res.status !== 201) throw new Error(`manifest put: ${res.status} ${await res.text()}`)
}

function payloadFor(ref: string, digest: string): Buffer {
  return Buffer.from(JSON.stringify({ critical: { identity: { 'docker-reference': ref }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' }, optional: null }))
}

describe.skipIf(skip)(`sigstoreSigned with the real registry${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let reg: RunningRegistry
  let dir: string
  let regsD: string
  let policyFile: string
  let img: WrittenImage
  let key: KeyObject

  const pullWith = (ref: string, registriesD = regsD): Promise<PolicyPull> => pullUnderPolicy(ref, { dir, policyFile, registriesD })

  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-trust-sigstore-'))
    await fsp.mkdir(join(dir, 'root'))
    reg = await startRegistry()
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    key = pair.privateKey
    await fsp.writeFile(join(dir, 'cosign.pub'), pair.publicKey.export({ type: 'spki', format: 'pem' }))
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    await fsp.writeFile(join(dir, 'other.pub'), other.publicKey.export({ type: 'spki', format: 'pem' }))
    policyFile = join(dir, 'policy.json')
    await fsp.writeFile(
      policyFile,
      JSON.stringify({ default: [{ type: 'reject' }], transports: { docker: { [reg.host]: [{ type: 'sigstoreSigned', keyPath: join(dir, 'cosign.pub') }] } } }),
    )
    regsD = join(dir, 'registries.d')
    await fsp.mkdir(regsD)
    await fsp.writeFile(join(regsD, 'sigstore.yaml'), `docker:\n  ${reg.host}:\n    use-sigstore-attachments: true\n    lookaside: file://${join(dir, 'no-lookaside')}\n`)

    const layout = join(dir, 'layout')
    ;[img] = await writeOciLayout(layout, [{ tag: 'one', layers: [[{ path: 'etc/id', content: 'one\n' }]] }])
    const d = img.manifestDigest
    for (const repo of ['good/app', 'tampered/app', 'foreign/app', 'unsigned/app']) await pushLayout(layout, 'one', `${reg.host}/${repo}:v1`)
    const good = payloadFor(`${reg.host}/good/app:v1`, d)
    await pushAttachment(reg.url, 'good/app', d, good, sign('sha256', good, key))
    // signed, then the payload changed (it still names this image, but the signature is over other bytes)
    const orig = payloadFor(`${reg.host}/tampered/app:v1`, d)
    const tampered = payloadFor(`${reg.host}/tampered/app:v2`, d)
    await pushAttachment(reg.url, 'tampered/app', d, tampered, sign('sha256', orig, key))
    const foreign = payloadFor(`${reg.host}/foreign/app:v1`, d)
    await pushAttachment(reg.url, 'foreign/app', d, foreign, sign('sha256', foreign, other.privateKey))
  }, 120_000)

  afterAll(async () => {
    await reg?.stop()
    if (dir) await fsp.rm(dir, { recursive: true, force: true })
  })

  it('pulls an image whose attachment verifies with the key', async () => {
    const r = await pullWith(`${reg.host}/good/app:v1`)
    expect(r.err).toBeUndefined()
    expect(r.stored).toBe(true)
    expect(r.info.join('\n')).toContain(`verified by sigstore key ${join(dir, 'cosign.pub')}`)
  })

  it('refuses a tampered payload (exit 9, nothing stored)', async () => {
    const r = await pullWith(`${reg.host}/tampered/app:v1`)
    expect(r.err?.exitCode).toBe(9)
    expect(r.err?.message).toContain('the signature does not verify')
    expect(r.stored).toBe(false)
  })

  it('refuses a signature by another key', async () => {
    const r = await pullWith(`${reg.host}/foreign/app:v1`)
    expect(r.err?.exitCode).toBe(9)
    expect(r.err?.message).toContain(`does not verify with keyPath ${join(dir, 'cosign.pub')}`)
    expect(r.stored).toBe(false)
  })

  it('refuses an image without attachment, and any image when attachments are off', async () => {
    const r = await pullWith(`${reg.host}/unsigned/app:v1`)
    expect(r.err?.exitCode).toBe(9)
    expect(r.err?.message).toContain('no sigstore signature in sigstore attachment sha256-')
    const empty = join(dir, 'empty.d')
    await fsp.mkdir(empty, { recursive: true })
    const off = await pullWith(`${reg.host}/good/app:v1`, empty)
    expect(off.err?.exitCode).toBe(9)
    expect(off.err?.message).toContain('use-sigstore-attachments is off')
    expect(off.stored).toBe(false)
  })
})
