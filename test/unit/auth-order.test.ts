/**
 * containers-auth.json(5) file order, as containers/image reads it: the
 * primary file ($XDG_RUNTIME_DIR/containers/auth.json, else
 * /run/containers/UID/auth.json, where a root `podman login` writes), then
 * $XDG_CONFIG_HOME (~/.config)/containers/auth.json, $DOCKER_CONFIG
 * (~/.docker)/config.json, ~/.dockercfg (legacy format); an explicit
 * --authfile or $REGISTRY_AUTH_FILE is the only file read.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { findCredentials } from '../../src/config/auth'

const b64 = (s: string) => Buffer.from(s).toString('base64')
let dir: string
let home: string
let runDir: string

beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-auth-order-'))
  home = join(dir, 'home')
  runDir = join(dir, 'run-containers')
  await fsp.mkdir(home, { recursive: true })
})
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

async function write(path: string, doc: unknown): Promise<void> {
  await fsp.mkdir(join(path, '..'), { recursive: true })
  await fsp.writeFile(path, JSON.stringify(doc))
}
const entry = (user: string) => ({ auths: { 'reg.io': { auth: b64(`${user}:pw`) } } })

describe('containers-auth.json(5) order', () => {
  it('root without XDG_RUNTIME_DIR reads /run/containers/0/auth.json first (podman login as root)', async () => {
    await write(join(runDir, '0/auth.json'), entry('podman-root'))
    await write(join(home, '.config/containers/auth.json'), entry('config'))
    const found = await findCredentials('reg.io', 'app', { env: {}, home, runDir, uid: 0 })
    expect(found.credentials?.username).toBe('podman-root')
    expect(found.from).toBe(join(runDir, '0/auth.json'))
  })

  it('each file in turn when the earlier ones lack the registry, and tried lists them in order', async () => {
    const env = { XDG_CONFIG_HOME: join(dir, 'xdg-config') }
    const none = await findCredentials('reg.io', 'app', { env, home, runDir, uid: 1000 })
    expect(none.credentials).toBeUndefined()
    expect(none.tried).toEqual([
      join(runDir, '1000/auth.json'),
      join(dir, 'xdg-config/containers/auth.json'),
      join(home, '.docker/config.json'),
      join(home, '.dockercfg'),
    ])
    // The legacy ~/.dockercfg: the registry map at the top level.
    await fsp.writeFile(join(home, '.dockercfg'), JSON.stringify({ 'https://reg.io': { auth: b64('legacy:pw') } }))
    expect((await findCredentials('reg.io', 'app', { env, home, runDir, uid: 1000 })).credentials?.username).toBe('legacy')
    await write(join(home, '.docker/config.json'), entry('docker'))
    expect((await findCredentials('reg.io', 'app', { env, home, runDir, uid: 1000 })).credentials?.username).toBe('docker')
    await write(join(dir, 'xdg-config/containers/auth.json'), entry('xdg-config'))
    expect((await findCredentials('reg.io', 'app', { env, home, runDir, uid: 1000 })).credentials?.username).toBe('xdg-config')
    await write(join(runDir, '1000/auth.json'), entry('primary'))
    expect((await findCredentials('reg.io', 'app', { env, home, runDir, uid: 1000 })).credentials?.username).toBe('primary')
  })

  it('XDG_RUNTIME_DIR replaces /run/containers/UID as the primary file', async () => {
    await write(join(runDir, '0/auth.json'), entry('per-uid'))
    await write(join(dir, 'xdg-run/containers/auth.json'), entry('xdg-run'))
    const found = await findCredentials('reg.io', 'app', { env: { XDG_RUNTIME_DIR: join(dir, 'xdg-run') }, home, runDir, uid: 0 })
    expect(found.credentials?.username).toBe('xdg-run')
    expect(found.tried).not.toContain(join(runDir, '0/auth.json'))
  })

  it('DOCKER_CONFIG replaces ~/.docker', async () => {
    await write(join(dir, 'dc/config.json'), entry('docker-config'))
    await write(join(home, '.docker/config.json'), entry('home-docker'))
    const found = await findCredentials('reg.io', 'app', { env: { DOCKER_CONFIG: join(dir, 'dc') }, home, runDir, uid: 0 })
    expect(found.credentials?.username).toBe('docker-config')
  })

  it('--authfile and REGISTRY_AUTH_FILE are the only file read', async () => {
    await write(join(runDir, '0/auth.json'), entry('primary'))
    await write(join(dir, 'explicit.json'), { auths: { 'other.io': { auth: b64('x:y') } } })
    const viaFlag = await findCredentials('reg.io', 'app', { authfile: join(dir, 'explicit.json'), env: {}, home, runDir, uid: 0 })
    expect(viaFlag.credentials).toBeUndefined()
    expect(viaFlag.tried).toEqual([join(dir, 'explicit.json')])
    const viaEnv = await findCredentials('reg.io', 'app', { env: { REGISTRY_AUTH_FILE: join(dir, 'explicit.json') }, home, runDir, uid: 0 })
    expect(viaEnv.credentials).toBeUndefined()
    expect(viaEnv.tried).toEqual([join(dir, 'explicit.json')])
  })
})
