/**
 * signedBy (GPG simple signing) against the real docker-registry: images
 * signed by skopeo (--sign-by, lookaside in a file:// directory), pulled
 * through openImageSource + pullImage into a temp store under policies.
 * A rejection is TrustError (exit 9) and leaves no image ref in the store.
 */
import { execFile } from 'node:child_process'
import { existsSync, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { pullImage } from '../../src/ops/pull-image'
import { Store } from '../../src/store/store'
import { openImageSource } from '../../src/transports/open'
import { pushLayout, registrySkipReason, RunningRegistry, SKOPEO_BIN, startRegistry } from '../helpers/registry'
import { PolicyPull, pullUnderPolicy } from '../helpers/trust-fixtures'

const execFileP = promisify(execFile)
const skip = registrySkipReason() ?? (existsSync('/usr/bin/gpg') ? undefined : 'gpg not installed')
const quiet = { info: () => {}, warn: () => {}, progress: () => {} }

describe.skipIf(skip)(`signedBy with the real registry${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let reg: RunningRegistry
  let dir: string
  let gnupg: string
  let lookaside: string
  let regsD: string
  let keyA: string
  let keyB: string
  let img1: WrittenImage
  let img2: WrittenImage
  let n = 0

  const gpg = (args: string[]) => execFileP('gpg', ['--batch', '--homedir', gnupg, ...args], { env: { ...process.env, GNUPGHOME: gnupg }, encoding: 'buffer', maxBuffer: 1 << 20 })
  async function genKey(uid: string): Promise<string> {
    await gpg(['--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', 'never'])
    const { stdout } = await gpg(['--with-colons', '--list-keys', uid])
    return stdout.toString().split('\n').find((l) => l.startsWith('fpr:'))!.split(':')[9]
  }
  async function policy(json: unknown): Promise<string> {
    const p = join(dir, `policy-${n++}.json`)
    await fsp.writeFile(p, JSON.stringify(json))
    return p
  }
  const signedBy = (keyPath: string, extra: Record<string, unknown> = {}) => ({
    default: [{ type: 'reject' }],
    transports: { docker: { [reg.host]: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath, ...extra }] } },
  })
  const pullWith = (ref: string, policyFile: string): Promise<PolicyPull> => pullUnderPolicy(ref, { dir, policyFile, registriesD: regsD })

  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-trust-gpg-'))
    gnupg = join(dir, 'gnupg')
    await fsp.mkdir(gnupg, { mode: 0o700 })
    lookaside = join(dir, 'lookaside')
    regsD = join(dir, 'registries.d')
    await fsp.mkdir(regsD)
    await fsp.mkdir(join(dir, 'root'))
    reg = await startRegistry()
    await fsp.writeFile(join(regsD, 'test.yaml'), `docker:\n  ${reg.host}:\n    lookaside: file://${lookaside}\n    lookaside-staging: file://${lookaside}\n`)
    const fprA = await genKey('alice <a@example.com>')
    const fprB = await genKey('bob <b@example.com>')
    keyA = join(dir, 'a.gpg') // binary keyring, as gpg --export writes
    await fsp.writeFile(keyA, (await gpg(['--export', fprA])).stdout)
    keyB = join(dir, 'b.asc')
    await fsp.writeFile(keyB, (await gpg(['--armor', '--export', fprB])).stdout)

    const layout = join(dir, 'layout')
    ;[img1, img2] = await writeOciLayout(layout, [
      { tag: 'one', layers: [[{ path: 'etc/id', content: 'one\n' }]] },
      { tag: 'two', layers: [[{ path: 'etc/id', content: 'two\n' }]] },
    ])
    await execFileP(SKOPEO_BIN, ['copy', '--insecure-policy', '--dest-tls-verify=false', '--sign-by', fprA, '--registries.d', regsD, `oci:${layout}:one`, `docker://${reg.host}/signed/app:v1`], {
      env: { ...process.env, GNUPGHOME: gnupg },
      timeout: 60_000,
    })
    await pushLayout(layout, 'one', `${reg.host}/unsigned/app:v1`)
    await pushLayout(layout, 'one', `${reg.host}/copy/app:v1`) // same digest, another repository
    await pushLayout(layout, 'two', `${reg.host}/other/app:v1`) // another digest
    const sig = join(lookaside, 'signed/app@sha256=' + img1.manifestDigest.slice(7), 'signature-1')
    // the signature of signed/app copied onto other/app's digest, and onto copy/app (same digest, other identity)
    for (const [repo, d] of [['other/app', img2.manifestDigest], ['copy/app', img1.manifestDigest]] as const) {
      const to = join(lookaside, `${repo}@sha256=${d.slice(7)}`)
      await fsp.mkdir(to, { recursive: true })
      await fsp.copyFile(sig, join(to, 'signature-1'))
    }
  }, 120_000)

  afterAll(async () => {
    await reg?.stop()
    if (dir) await fsp.rm(dir, { recursive: true, force: true })
  })

  it('skopeo wrote the signature where registries.d says', () => {
    expect(existsSync(join(lookaside, `signed/app@sha256=${img1.manifestDigest.slice(7)}`, 'signature-1'))).toBe(true)
  })

  it('pulls an image signed by the key in keyPath (binary keyring)', async () => {
    const r = await pullWith(`${reg.host}/signed/app:v1`, await policy(signedBy(keyA)))
    expect(r.err).toBeUndefined()
    expect(r.stored).toBe(true)
    expect(r.info.some((m) => /verified by GPG key [0-9A-F]{40}/.test(m))).toBe(true)
  })

  it('refuses a signature by a key not in keyPath (exit 9, nothing stored)', async () => {
    const r = await pullWith(`${reg.host}/signed/app:v1`, await policy(signedBy(keyB)))
    expect(r.err?.exitCode).toBe(9)
    expect(r.err?.code).toBe('trust.rejected')
    expect(r.err?.message).toMatch(/signature by key [0-9A-F]+ not in keyPath .*b\.asc/)
    expect(r.err?.message).toContain(`scope docker:${reg.host}`)
    expect(r.stored).toBe(false)
  })

  it('refuses an unsigned image', async () => {
    const r = await pullWith(`${reg.host}/unsigned/app:v1`, await policy(signedBy(keyA)))
    expect(r.err?.exitCode).toBe(9)
    expect(r.err?.message).toContain('no signature in file://')
    expect(r.stored).toBe(false)
  })

  it('refuses under a reject scope', async () => {
    const r = await pullWith(`${reg.host}/signed/app:v1`, await policy({ default: [{ type: 'insecureAcceptAnything' }], transports: { docker: { [`${reg.host}/signed`]: [{ type: 'reject' }] } } }))
    expect(r.err?.exitCode).toBe(9)
    expect(r.err?.message).toContain(`scope docker:${reg.host}/signed`)
    expect(r.stored).toBe(false)
  })

  it('refuses a signature copied onto another image', async () => {
    const r = await pullWith(`${reg.host}/other/app:v1`, await policy(signedBy(keyA)))
    expect(r.err?.exitCode).toBe(9)
    expect(r.err?.message).toContain(`signature is for ${img1.manifestDigest}, image is ${img2.manifestDigest}`)
    expect(r.stored).toBe(false)
  })

  it('refuses a signature for repository A used for repository B; exactRepository A accepts it', async () => {
    const r = await pullWith(`${reg.host}/copy/app:v1`, await policy(signedBy(keyA)))
    expect(r.err?.exitCode).toBe(9)
    expect(r.err?.message).toContain(`signed identity ${reg.host}/signed/app:v1 does not match ${reg.host}/copy/app:v1`)
    expect(r.stored).toBe(false)
    const ok = await pullWith(`${reg.host}/copy/app:v1`, await policy(signedBy(keyA, { signedIdentity: { type: 'exactRepository', dockerRepository: `${reg.host}/signed/app` } })))
    expect(ok.err).toBeUndefined()
    expect(ok.stored).toBe(true)
  })

  it('with no policy file at all: accepts and says so', async () => {
    const storeDir = await fsp.mkdtemp(join(dir, 'store-'))
    const info: string[] = []
    const opened = await openImageSource(`docker://${reg.host}/unsigned/app:v1`, { tlsVerify: false, configRoot: join(dir, 'root'), reporter: { info: (m) => info.push(m) } })
    const store = await Store.open(storeDir)
    try {
      await pullImage(store, opened.source, opened.refName, { reporter: quiet })
      expect(await store.getImageRef(opened.refName)).toBeDefined()
    } finally {
      await opened.source.close()
      await store.close()
    }
    expect(info).toEqual(['no signature policy (containers-policy.json) found: images are not verified'])
  })
})
