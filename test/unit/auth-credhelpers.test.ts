/**
 * Credential helpers (containers-auth.json(5) credHelpers / credsStore):
 * shell-script helpers in a temp PATH dir; precedence (the registry's helper,
 * then auths, then credsStore); "not found" means none; a missing helper is a
 * HostError naming it; no secret in any message.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { findCredentials } from '../../src/config/auth'
import { HostError, SysctrError } from '../../src/errors'

const b64 = (s: string) => Buffer.from(s).toString('base64')
let dir: string
let bin: string
let env: NodeJS.ProcessEnv

/** A helper that answers for `registry` only and logs what it was asked to `dir/asked-NAME`. */
function helperScript(name: string, registry: string, user: string, secret: string): string {
  return `#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
echo "$server" >> "${dir}/asked-${name}"
if [ "$server" = "${registry}" ]; then
  printf '{"ServerURL":"%s","Username":"${user}","Secret":"${secret}"}\\n' "$server"
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
`
}

async function install(name: string, script: string): Promise<void> {
  await fsp.writeFile(join(bin, `docker-credential-${name}`), script, { mode: 0o755 })
}

async function authFile(doc: unknown): Promise<string> {
  const f = join(dir, `auth-${Math.random().toString(36).slice(2)}.json`)
  await fsp.writeFile(f, JSON.stringify(doc))
  return f
}

async function asked(name: string): Promise<string[]> {
  try {
    return (await fsp.readFile(join(dir, `asked-${name}`), 'utf8')).split('\n').filter(Boolean)
  } catch {
    return []
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

beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-credhelpers-'))
  bin = join(dir, 'bin')
  await fsp.mkdir(bin)
  env = { PATH: `${bin}:/usr/bin:/bin`, HOME: join(dir, 'home') }
  await install('pass', helperScript('pass', 'reg.example:5000', 'alice', 'helper-s3cret'))
  await install('store', helperScript('store', 'reg.example:5000', 'bob', 'store-s3cret'))
  await install('other', helperScript('other', 'elsewhere.example', 'carol', 'other-s3cret'))
})
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

describe('credential helpers', () => {
  it('credHelpers for the registry: runs docker-credential-NAME get with the registry on stdin', async () => {
    const authfile = await authFile({ credHelpers: { 'reg.example:5000': 'pass' } })
    const r = await findCredentials('reg.example:5000', 'demo/app', { authfile, env })
    expect(r.credentials).toEqual({ username: 'alice', password: 'helper-s3cret' })
    expect(r.from).toBe(`docker-credential-pass (credHelpers in ${authfile})`)
    expect(await asked('pass')).toEqual(['reg.example:5000'])
  })

  it('precedence: the registry helper before auths, auths before credsStore', async () => {
    const both = await authFile({
      credHelpers: { 'reg.example:5000': 'pass' },
      auths: { 'reg.example:5000': { auth: b64('dave:file-s3cret') } },
      credsStore: 'store',
    })
    expect((await findCredentials('reg.example:5000', 'demo/app', { authfile: both, env })).credentials?.username).toBe('alice')
    const noHelper = await authFile({ auths: { 'reg.example:5000': { auth: b64('dave:file-s3cret') } }, credsStore: 'store' })
    const r = await findCredentials('reg.example:5000', 'demo/app', { authfile: noHelper, env })
    expect(r.credentials).toEqual({ username: 'dave', password: 'file-s3cret' })
    expect(r.from).toBe(noHelper)
    expect(await asked('store')).toEqual([])
  })

  it('credsStore answers for registries without an auths entry or helper of their own', async () => {
    const authfile = await authFile({ credHelpers: { 'elsewhere.example': 'other' }, auths: { 'x.example': { auth: b64('x:y') } }, credsStore: 'store' })
    const r = await findCredentials('reg.example:5000', 'demo/app', { authfile, env })
    expect(r.credentials).toEqual({ username: 'bob', password: 'store-s3cret' })
    expect(r.from).toBe(`docker-credential-store (credsStore in ${authfile})`)
    expect(await asked('other')).toEqual([])
  })

  it('"credentials not found" means none: the lookup goes on to the next file', async () => {
    const home = join(dir, 'home')
    await fsp.mkdir(join(home, '.config/containers'), { recursive: true })
    await fsp.writeFile(join(home, '.config/containers/auth.json'), JSON.stringify({ credsStore: 'other' }))
    await fsp.mkdir(join(home, '.docker'), { recursive: true })
    await fsp.writeFile(join(home, '.docker/config.json'), JSON.stringify({ auths: { 'reg.example:5000': { auth: b64('erin:docker-s3cret') } } }))
    const r = await findCredentials('reg.example:5000', 'demo/app', { env, home })
    expect(await asked('other')).toEqual(['reg.example:5000'])
    expect(r.credentials).toEqual({ username: 'erin', password: 'docker-s3cret' })
    expect(r.from).toBe(join(home, '.docker/config.json'))
  })

  it('none anywhere: no credentials, the files tried are listed', async () => {
    const authfile = await authFile({ credsStore: 'other' })
    const r = await findCredentials('reg.example:5000', 'demo/app', { authfile, env })
    expect(r.credentials).toBeUndefined()
    expect(r.tried).toEqual([authfile])
  })

  it('a helper that is not installed is a HostError (exit 7) naming it and the file that names it', async () => {
    const authfile = await authFile({ credHelpers: { 'reg.example:5000': 'nosuch' } })
    const err = await failure(findCredentials('reg.example:5000', 'demo/app', { authfile, env }))
    expect(err).toBeInstanceOf(HostError)
    expect(err.exitCode).toBe(7)
    expect(err.code).toBe('host.credential-helper-missing')
    expect(err.message).toContain('docker-credential-nosuch')
    expect(err.message).toContain(authfile)
  })

  it('a failing helper is a HostError with its exit status and first stderr line; bad output never shows up in the message', async () => {
    await install('broken', '#!/bin/sh\ncat >/dev/null\necho "keychain locked" >&2\nexit 3\n')
    await install('garbage', '#!/bin/sh\ncat >/dev/null\necho "Username alice Secret leaked-s3cret"\n')
    const broken = await failure(findCredentials('reg.example:5000', 'demo/app', { authfile: await authFile({ credsStore: 'broken' }), env }))
    expect(broken).toBeInstanceOf(HostError)
    expect(broken.message).toContain('docker-credential-broken get for reg.example:5000 failed (exit 3): keychain locked')
    const garbage = await failure(findCredentials('reg.example:5000', 'demo/app', { authfile: await authFile({ credsStore: 'garbage' }), env }))
    expect(garbage).toBeInstanceOf(HostError)
    expect(garbage.message).toContain('docker-credential-garbage')
    expect(JSON.stringify({ ...garbage.toJSON(), msg: garbage.message, hint: garbage.hint })).not.toContain('leaked-s3cret')
  })

  it('refuses a helper name that is not a plain name (no paths)', async () => {
    const authfile = await authFile({ credHelpers: { 'reg.example:5000': '../../bin/sh' } })
    const err = await failure(findCredentials('reg.example:5000', 'demo/app', { authfile, env }))
    expect(err.code).toBe('config.bad-credential-helper')
  })

  it('--creds wins over every helper (none is run)', async () => {
    const r = await findCredentials('reg.example:5000', 'demo/app', { creds: 'u:p', env })
    expect(r.credentials).toEqual({ username: 'u', password: 'p' })
    expect(await asked('pass')).toEqual([])
  })
})
