/**
 * containers-auth.json lookup: file order, most specific key first, Docker's
 * key forms, --authfile and --creds, and no secret in any message.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { credentialsIn, defaultAuthFiles, findCredentials, lookupKeys, parseCreds } from '../../src/config/auth'
import { SysctrError } from '../../src/errors'

const b64 = (s: string) => Buffer.from(s).toString('base64')
let home: string
let run: string

beforeEach(async () => {
  home = await fsp.mkdtemp(join(tmpdir(), 'sysctr-auth-home-'))
  run = await fsp.mkdtemp(join(tmpdir(), 'sysctr-auth-run-'))
})
afterEach(async () => {
  await fsp.rm(home, { recursive: true, force: true })
  await fsp.rm(run, { recursive: true, force: true })
})

async function write(path: string, doc: unknown): Promise<void> {
  await fsp.mkdir(join(path, '..'), { recursive: true })
  await fsp.writeFile(path, typeof doc === 'string' ? doc : JSON.stringify(doc))
}

describe('keys and files', () => {
  it('looks up the most specific namespace first', () => {
    expect(lookupKeys('quay.io', 'a/b/c')).toEqual(['quay.io/a/b/c', 'quay.io/a/b', 'quay.io/a', 'quay.io'])
  })

  it('reads XDG_RUNTIME_DIR (else /run/containers/UID), then ~/.config, ~/.docker, ~/.dockercfg', () => {
    expect(defaultAuthFiles({ XDG_RUNTIME_DIR: '/run/user/0' }, '/root')).toEqual([
      '/run/user/0/containers/auth.json',
      '/root/.config/containers/auth.json',
      '/root/.docker/config.json',
      '/root/.dockercfg',
    ])
    expect(defaultAuthFiles({}, '/root', { uid: 0 })).toEqual([
      '/run/containers/0/auth.json',
      '/root/.config/containers/auth.json',
      '/root/.docker/config.json',
      '/root/.dockercfg',
    ])
  })

  it('matches Docker key forms and user/password fields', () => {
    const doc = {
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hub:h') },
        'http://reg.example.com:5000': { username: 'u', password: 'p:w' },
        'quay.io/team': { auth: b64('team:t') },
        'quay.io': { auth: b64('all:a') },
      },
    }
    expect(credentialsIn(doc, 'f', lookupKeys('docker.io', 'library/busybox'))).toEqual({ username: 'hub', password: 'h' })
    expect(credentialsIn(doc, 'f', lookupKeys('reg.example.com:5000', 'x'))).toEqual({ username: 'u', password: 'p:w' })
    expect(credentialsIn(doc, 'f', lookupKeys('quay.io', 'team/app'))).toEqual({ username: 'team', password: 't' })
    expect(credentialsIn(doc, 'f', lookupKeys('quay.io', 'other/app'))).toEqual({ username: 'all', password: 'a' })
    expect(credentialsIn(doc, 'f', lookupKeys('ghcr.io', 'x'))).toBeUndefined()
  })
})

describe('findCredentials', () => {
  it('takes the first file with an entry, and reports the files tried', async () => {
    await write(join(run, 'containers/auth.json'), { auths: { 'other.io': { auth: b64('o:o') } } })
    await write(join(home, '.config/containers/auth.json'), { auths: { 'reg.io/ns': { auth: b64('ns:secret1') } } })
    await write(join(home, '.docker/config.json'), { auths: { 'reg.io': { auth: b64('docker:secret2') } } })
    const env = { XDG_RUNTIME_DIR: run }
    const found = await findCredentials('reg.io', 'ns/app', { env, home })
    expect(found.credentials).toEqual({ username: 'ns', password: 'secret1' })
    expect(found.from).toBe(join(home, '.config/containers/auth.json'))
    expect(found.tried).toEqual([join(run, 'containers/auth.json'), join(home, '.config/containers/auth.json')])
    const docker = await findCredentials('reg.io', 'other/app', { env, home })
    expect(docker.from).toBe(join(home, '.docker/config.json'))
    const none = await findCredentials('nowhere.io', 'x', { env, home })
    expect(none.credentials).toBeUndefined()
    expect(none.tried).toHaveLength(4) // XDG_RUNTIME_DIR, ~/.config, ~/.docker, ~/.dockercfg
  })

  it('--authfile alone, --creds without files', async () => {
    await write(join(home, '.config/containers/auth.json'), { auths: { 'reg.io': { auth: b64('home:h') } } })
    const file = join(run, 'mine.json')
    await write(file, { auths: { 'reg.io': { auth: b64('mine:m') } } })
    expect((await findCredentials('reg.io', 'a', { authfile: file, env: {}, home })).credentials).toEqual({ username: 'mine', password: 'm' })
    expect((await findCredentials('reg.io', 'a', { env: { REGISTRY_AUTH_FILE: file }, home })).credentials?.username).toBe('mine')
    expect(await findCredentials('reg.io', 'a', { creds: 'cli:pass:word', authfile: file, env: {}, home })).toEqual({
      credentials: { username: 'cli', password: 'pass:word' },
      from: '--creds',
      tried: [],
    })
    const missing = await findCredentials('reg.io', 'a', { authfile: join(run, 'nope.json'), env: {}, home }).catch((e: unknown) => e)
    expect((missing as SysctrError).code).toBe('usage.authfile-missing')
  })

  it('refuses bad files and bad --creds without printing secrets', async () => {
    const file = join(run, 'bad.json')
    await write(file, { auths: { 'reg.io': { auth: b64('no-colon-secretvalue') } } })
    const err = (await findCredentials('reg.io', 'a', { authfile: file, env: {}, home }).catch((e: unknown) => e)) as SysctrError
    expect(err.code).toBe('config.bad-auth-file')
    expect(JSON.stringify({ m: err.message, h: err.hint, d: err.data })).not.toContain('secretvalue')
    await write(file, '{not json')
    expect(((await findCredentials('reg.io', 'a', { authfile: file, env: {}, home }).catch((e: unknown) => e)) as SysctrError).code).toBe('config.bad-auth-file')
    let e: SysctrError | undefined
    try {
      parseCreds('justauser')
    } catch (x) {
      e = x as SysctrError
    }
    expect(e?.code).toBe('usage.bad-creds')
  })
})
