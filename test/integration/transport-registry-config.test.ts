/**
 * openImageSource against the real registry (docker-registry 2.8): htpasswd
 * auth with credentials from an auth.json file, --authfile and --creds, a 401
 * that names the file tried (and no password); registries.conf mirrors tried
 * in order, an alias and a permissive short name (also through install).
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { openImageSource, OpenImageOptions } from '../../src/transports/open'
import { pushLayout, registrySkipReason, RunningRegistry, startRegistry } from '../helpers/registry'
import { buildRootContext } from '../../src/ops/context'
import { install } from '../../src/ops/install'
import { TEMPLATES } from '../helpers/test-paths'

const skip = registrySkipReason()
const USER = { user: 'alice', password: 's3cret-pw' }
const b64 = (s: string) => Buffer.from(s).toString('base64')

describe.skipIf(skip)(`registry configuration against the real registry${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string
  let secured: RunningRegistry
  let open1: RunningRegistry
  let open2: RunningRegistry
  let img: WrittenImage
  let base: OpenImageOptions

  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-regconf-it-'))
    ;[img] = await writeOciLayout(join(dir, 'layout'), [{ tag: 'v1', layers: [[{ path: 'hello', content: 'world\n' }]], config: { Cmd: ['/hello'] } }])
    ;[secured, open1, open2] = await Promise.all([startRegistry({ htpasswd: USER }), startRegistry(), startRegistry()])
    await pushLayout(join(dir, 'layout'), 'v1', `${secured.host}/private/app:v1`, { credentials: USER })
    await pushLayout(join(dir, 'layout'), 'v1', `${open2.host}/cache/app:v1`)
    await pushLayout(join(dir, 'layout'), 'v1', `${open2.host}/library/short:v1`)
    await fsp.mkdir(join(dir, 'root/etc/containers'), { recursive: true })
    await fsp.mkdir(join(dir, 'home'), { recursive: true })
    await fsp.writeFile(
      join(dir, 'root/etc/containers/registries.conf'),
      `unqualified-search-registries = ["${open1.host}", "${open2.host}"]
short-name-mode = "permissive"
[aliases]
"aliased" = "${open2.host}/cache/app"

[[registry]]
prefix = "upstream.example.com/proj"
location = "${open1.host}/proj"
insecure = true
[[registry.mirror]]
location = "${open1.host}/nothing-here"
insecure = true
[[registry.mirror]]
location = "${open2.host}/cache"
insecure = true

[[registry]]
location = "${secured.host}"
insecure = true

[[registry]]
location = "${open1.host}"
insecure = true

[[registry]]
location = "${open2.host}"
insecure = true
`,
    )
    base = { configRoot: join(dir, 'root'), env: {}, home: join(dir, 'home'), registry: { timeoutMs: 10_000, retries: 0 } }
  }, 60_000)
  afterAll(async () => {
    await Promise.all([secured?.stop(), open1?.stop(), open2?.stop()])
    await fsp.rm(dir, { recursive: true, force: true })
  })

  async function resolveDigest(input: string, opts: OpenImageOptions): Promise<{ refName: string; digest: string; name: string }> {
    const o = await openImageSource(input, opts)
    try {
      const r = await o.source.resolve()
      return { refName: o.refName, digest: r.manifestDigest, name: o.defaultName }
    } finally {
      await o.source.close()
    }
  }

  it('uses credentials from auth.json (most specific entry) and from --creds', async () => {
    const authfile = join(dir, 'home/.config/containers/auth.json')
    await fsp.mkdir(join(dir, 'home/.config/containers'), { recursive: true })
    await fsp.writeFile(authfile, JSON.stringify({ auths: { [secured.host]: { auth: b64('alice:wrong') }, [`${secured.host}/private`]: { auth: b64(`${USER.user}:${USER.password}`) } } }))
    const r = await resolveDigest(`${secured.host}/private/app:v1`, base)
    expect(r.digest).toBe(img.manifestDigest)
    await fsp.rm(authfile)
    const c = await resolveDigest(`docker://${secured.host}/private/app:v1`, { ...base, creds: `${USER.user}:${USER.password}` })
    expect(c.digest).toBe(img.manifestDigest)
  })

  it('a refusal names the registry and the credential file, never the password', async () => {
    const authfile = join(dir, 'bad-auth.json')
    await fsp.writeFile(authfile, JSON.stringify({ auths: { [secured.host]: { auth: b64('alice:not-the-pw-xyz') } } }))
    const err = (await resolveDigest(`${secured.host}/private/app:v1`, { ...base, authfile }).catch((e: unknown) => e)) as SysctrError
    expect(err).toBeInstanceOf(SysctrError)
    expect(err.code).toBe('registry.unauthorized')
    expect(err.exitCode).toBe(5)
    expect(err.fullMessage).toContain(secured.host)
    expect(err.fullMessage).toContain(authfile)
    const all = JSON.stringify({ m: err.fullMessage, h: err.hint, d: err.data, s: err.stack })
    expect(all).not.toContain('not-the-pw-xyz')
    expect(all).not.toContain(b64('alice:not-the-pw-xyz'))
    const none = (await resolveDigest(`${secured.host}/private/app:v1`, base).catch((e: unknown) => e)) as SysctrError
    expect(none.code).toBe('registry.unauthorized')
    expect(none.fullMessage).toContain('no credentials for this registry')
  })

  it('tries mirrors in order and falls through one without the image', async () => {
    const r = await resolveDigest('upstream.example.com/proj/app:v1', base)
    expect(r.digest).toBe(img.manifestDigest)
    expect(r.refName).toBe('upstream.example.com/proj/app:v1')
  })

  it('resolves an alias, and a permissive short name to the first registry that has it', async () => {
    const a = await resolveDigest('aliased:v1', base)
    expect(a.refName).toBe(`${open2.host}/cache/app:v1`)
    const s = await resolveDigest('library/short:v1', base)
    expect(s.refName).toBe(`${open2.host}/library/short:v1`)
    expect(s.name).toBe('short')
  })

  it('install (into a composed root) resolves a permissive short name and records the qualified name', async () => {
    const saved = process.env.CONTAINERS_REGISTRIES_CONF
    process.env.CONTAINERS_REGISTRIES_CONF = join(dir, 'root/etc/containers/registries.conf')
    const target = join(dir, 'composed')
    try {
      const messages: string[] = []
      const ctx = buildRootContext(target, { reporter: { info: (m) => messages.push(m), warn: () => {} }, templatesDir: TEMPLATES })
      const r = await install(ctx, { image: 'library/short:v1', tlsVerify: false })
      expect(r.name).toBe('short')
      expect(r.image).toBe(`${open2.host}/library/short:v1`)
      expect(r.manifestDigest).toBe(img.manifestDigest)
      const info = JSON.parse(await fsp.readFile(join(target, 'var/lib/sysctr/containers/short.0/info.json'), 'utf8'))
      expect(info.image).toBe(`${open2.host}/library/short:v1`)
      expect(messages).toContain(`short name library/short:v1 resolved to ${open2.host}/library/short:v1 (unqualified-search-registries in ${process.env.CONTAINERS_REGISTRIES_CONF})`)
    } finally {
      if (saved === undefined) delete process.env.CONTAINERS_REGISTRIES_CONF
      else process.env.CONTAINERS_REGISTRIES_CONF = saved
    }
  })
})
