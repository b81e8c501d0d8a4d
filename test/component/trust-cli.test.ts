/**
 * `sysctr trust add` then `trust show`, run as a user runs them (the built
 * bin/sysctr; `npm run build` first): the policy file is created, edited in
 * place with other scopes and keys kept, replaced by rename (new inode, no
 * temp file left), and refuses to edit a malformed policy.
 */
import { execFile } from 'node:child_process'
import { existsSync, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parse as parseYaml } from 'yaml'

const execFileP = promisify(execFile)
const BIN = resolve(__dirname, '../../bin/sysctr')
const built = existsSync(resolve(__dirname, '../../dist/commands/trust/add.js'))

async function sysctr(args: string[], home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await execFileP(process.execPath, [BIN, ...args], { env: { ...process.env, HOME: home } })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe.skipIf(!built)(`trust add / trust show${built ? '' : ' (skipped: run npm run build first)'}`, () => {
  let dir: string
  let policy: string
  let regsD: string
  beforeEach(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-trust-cli-'))
    policy = join(dir, 'policy.json')
    regsD = join(dir, 'registries.d')
    await fsp.writeFile(join(dir, 'a.gpg'), 'not read by trust add')
  })
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true })
  })
  const files = () => ['--signature-policy', policy, '--registries.d', regsD]

  it('creates the policy, keeps unrelated scopes and keys, and show reads it back', async () => {
    const a = await sysctr(['trust', 'add', '--type', 'signedBy', '--lookaside', 'https://sigs.example.com/', ...files(), '--pubkeys', join(dir, 'a.gpg'), 'registry.example.com/acme'], dir)
    expect(a.stderr).toBe('')
    expect(a.code).toBe(0)
    expect(a.stdout).toContain(`created ${policy}`)
    const first = JSON.parse(await fsp.readFile(policy, 'utf8'))
    expect(first).toEqual({
      default: [{ type: 'insecureAcceptAnything' }],
      transports: { docker: { 'registry.example.com/acme': [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: join(dir, 'a.gpg') }] } },
    })
    expect(parseYaml(await fsp.readFile(join(regsD, 'sysctr-registry.example.com-acme.yaml'), 'utf8'))).toEqual({
      docker: { 'registry.example.com/acme': { lookaside: 'https://sigs.example.com/' } },
    })

    // an unrelated scope and transport written by someone else, two-space indented
    first.transports.docker['quay.io'] = [{ type: 'insecureAcceptAnything' }]
    first.transports.oci = { '/srv/images': [{ type: 'reject' }] }
    await fsp.writeFile(policy, JSON.stringify(first, null, 2) + '\n')
    const inode = (await fsp.stat(policy)).ino
    const r = await sysctr(['trust', 'add', '--type', 'reject', ...files(), 'default'], dir)
    expect(r.code).toBe(0)
    const text = await fsp.readFile(policy, 'utf8')
    expect(text).toMatch(/^\{\n {2}"default"/)
    const second = JSON.parse(text)
    expect(second.default).toEqual([{ type: 'reject' }])
    expect(second.transports.docker['quay.io']).toEqual([{ type: 'insecureAcceptAnything' }])
    expect(second.transports.oci).toEqual({ '/srv/images': [{ type: 'reject' }] })
    expect(second.transports.docker['registry.example.com/acme']).toEqual(first.transports.docker['registry.example.com/acme'])
    expect((await fsp.stat(policy)).ino).not.toBe(inode) // replaced by rename
    expect((await fsp.readdir(dir)).filter((f) => f.startsWith('.') || f.includes('tmp'))).toEqual([])

    const show = await sysctr(['trust', 'show', '--json', ...files()], dir)
    expect(show.code).toBe(0)
    const j = JSON.parse(show.stdout)
    expect(j.policy).toBe(policy)
    expect(j.scopes).toContainEqual({
      transport: 'docker',
      scope: 'registry.example.com/acme',
      type: 'signedBy',
      keys: [join(dir, 'a.gpg')],
      signedIdentity: 'matchRepoDigestOrExact',
      lookaside: 'https://sigs.example.com/',
    })
    expect(j.scopes).toContainEqual({ transport: 'default', scope: 'default', type: 'reject', keys: [] })
    const human = await sysctr(['trust', 'show', ...files()], dir)
    expect(human.stdout).toMatch(/docker\s+registry\.example\.com\/acme\s+signedBy\s+\S*a\.gpg\s+https:\/\/sigs\.example\.com\//)
  })

  it('refuses bad input without touching the file', async () => {
    await fsp.writeFile(policy, '{"default": [{"type": "trustMe"}]}')
    const r = await sysctr(['trust', 'add', '--type', 'reject', ...files(), 'quay.io'], dir)
    expect(r.code).toBe(6)
    expect(r.stderr).toContain(`signature policy ${policy}: scope default, requirement 1: unknown requirement type "trustMe"`)
    expect(await fsp.readFile(policy, 'utf8')).toBe('{"default": [{"type": "trustMe"}]}')
    const noKey = await sysctr(['trust', 'add', '--type', 'signedBy', ...files(), 'quay.io'], dir)
    expect(noKey.code).toBe(2)
    expect(noKey.stderr).toContain('signedBy needs --pubkeys')
  })
})
