/**
 * The built CLI as an operator runs it (stdout, stderr, exit code) against
 * the real registry (Debian's docker-registry), for what needs no running
 * systemd (install and update with --root):
 * - a bare --tls-verify means true, as in skopeo (and takes no value from the next word);
 * - --platform of a single-platform image for another platform: one warning, pull and install go on;
 * - --set of a key sysctr fixes is refused before any network access (a counting server sees nothing);
 * - --set of a key no template uses: a warning naming the nearest used key, --strict refuses it,
 *   and an update whose --set changes no rendered file builds no deployment ("nothing changed");
 * - update --all --auto: only the containers that opted in (label sysctr.autoupdate=registry or
 *   install --autoupdate registry; --autoupdate disabled wins over the label).
 */
import { spawn } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeOciLayout } from '../../harness/oci-layout-writer'
import { pushLayout, registrySkipReason, type RunningRegistry, startRegistry } from '../helpers/registry'
import { buildUpdateImages } from '../helpers/update-images'
import { busyboxLayer } from '../helpers/busybox-layer'

const BIN = resolve(__dirname, '../../bin/sysctr')
const skip = registrySkipReason()

interface Run {
  code: number
  stdout: string
  stderr: string
}

describe.skipIf(skip)(`the CLI against the real registry${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string
  let reg: RunningRegistry
  let amd64Ref: string
  let svcRef: string

  const sysctr = (args: string[], env: Record<string, string> = {}): Promise<Run> =>
    new Promise((done, fail) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'home'), SYSCTR_STATE_DIR: join(dir, 'state'), ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      let stderr = ''
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
      child.once('error', fail)
      child.once('close', (code) => done({ code: code ?? -1, stdout, stderr }))
    })

  beforeAll(async () => {
    await fsp.access(resolve(__dirname, '../../dist/cli/main.js'))
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-ops-ux-it-'))
    await fsp.mkdir(join(dir, 'home'), { recursive: true })
    reg = await startRegistry()
    const base = await busyboxLayer('/bin/busybox', ['sh', 'sleep'])
    await writeOciLayout(join(dir, 'amd64'), [
      { tag: 'v1', layers: [base], config: { Cmd: ['/bin/sh', '-c', 'sleep 1000'] }, platform: { os: 'linux', architecture: 'amd64' } },
    ])
    amd64Ref = `${reg.host}/demo/amd64-only:v1`
    await pushLayout(join(dir, 'amd64'), 'v1', amd64Ref)
    await buildUpdateImages(join(dir, 'svc'))
    svcRef = `${reg.host}/demo/svc:v1`
    await pushLayout(join(dir, 'svc'), 'svc-v1', svcRef)
  }, 120_000)
  afterAll(async () => {
    await reg?.stop()
    if (dir) await fsp.rm(dir, { recursive: true, force: true })
  })

  it('update --all --auto updates the containers that opted in by label or flag, and no other', async () => {
    const base = await busyboxLayer('/bin/busybox', ['sh', 'sleep'])
    const spec = (tag: string, labels: Record<string, string>) => ({
      tag,
      layers: [base, [{ path: 'etc/version', content: `${tag}\n` }]],
      config: { Cmd: ['/bin/sh', '-c', 'sleep 1000'], Labels: labels },
    })
    await writeOciLayout(join(dir, 'labels'), [
      spec('labeled-v1', { 'sysctr.autoupdate': 'registry' }),
      spec('labeled-v2', { 'sysctr.autoupdate': 'registry' }),
      spec('plain-v1', {}),
      spec('plain-v2', {}),
    ])
    const labeled = `${reg.host}/demo/labeled:latest`
    const plain = `${reg.host}/demo/plain:latest`
    await pushLayout(join(dir, 'labels'), 'labeled-v1', labeled)
    await pushLayout(join(dir, 'labels'), 'plain-v1', plain)
    const root = join(dir, 'root-auto')
    const installs: [string, string, string[]][] = [
      ['labeled', labeled, []],
      ['optout', labeled, ['--autoupdate', 'disabled']],
      ['flagged', plain, ['--autoupdate', 'registry']],
      ['plain', plain, []],
    ]
    for (const [name, ref, extra] of installs) {
      const r = await sysctr(['install', '--system', '--root', root, '--tls-verify=false', '--name', name, ...extra, ref])
      expect(r.stderr).not.toMatch(/^error:/m)
      expect(r.code).toBe(0)
    }
    const bad = await sysctr(['containers', 'update', '--root', root, '--auto', 'plain'])
    expect(bad.code).toBe(2)
    await pushLayout(join(dir, 'labels'), 'labeled-v2', labeled)
    await pushLayout(join(dir, 'labels'), 'plain-v2', plain)
    const r = await sysctr(['containers', 'update', '--root', root, '--tls-verify=false', '--all', '--auto', '--json'])
    expect(r.stderr).not.toMatch(/^error:/m)
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout) as { order: string[]; notOptedIn: string[]; results: { name: string; unchanged: boolean; deployment: string }[] }
    expect(out.order).toEqual(['flagged', 'labeled'])
    expect(out.notOptedIn).toEqual(['optout', 'plain'])
    expect(out.results.map((x) => [x.name, x.unchanged, x.deployment])).toEqual([
      ['flagged', false, 'flagged.1'],
      ['labeled', false, 'labeled.1'],
    ])
    const human = await sysctr(['containers', 'update', '--root', root, '--tls-verify=false', '--all', '--auto'])
    expect(human.stdout).toContain('not opted in to automatic updates, left alone: optout plain')
    const left = await fsp.readdir(join(root, 'var/lib/sysctr/containers'))
    expect(left.filter((d) => /^(optout|plain)\./.test(d)).sort()).toEqual(['optout.0', 'plain.0'])
  })

  it('a bare --tls-verify is --tls-verify=true (HTTPS required: this plain-HTTP registry fails, exit 5); =false pulls', async () => {
    const bare = await sysctr(['images', 'pull', '--tls-verify', amd64Ref])
    expect(bare.stderr).not.toMatch(/expects a value|Expected --tls-verify/i)
    expect(bare.code).toBe(5)
    // The word after a bare --tls-verify is not its value: the flag that follows is parsed as a flag.
    const then = await sysctr(['images', 'pull', '--tls-verify', '--platform', 'linux/amd64', amd64Ref])
    expect(then.code).toBe(5)
    const explicit = await sysctr(['images', 'pull', '--tls-verify=true', amd64Ref])
    expect(explicit.code).toBe(5)
    const off = await sysctr(['images', 'pull', '--tls-verify=false', amd64Ref])
    expect(off.stderr).not.toMatch(/^error:/m)
    expect(off.code).toBe(0)
  })

  it('images pull --platform linux/s390x of a single-platform amd64 image: one warning naming both, exit 0', async () => {
    const r = await sysctr(['images', 'pull', '--tls-verify=false', '--platform', 'linux/s390x', amd64Ref])
    expect(r.code).toBe(0)
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning:'))
    expect(warnings).toEqual([`warning: ${amd64Ref} is a single-platform image for linux/amd64, not linux/s390x (the platform asked for): pulled anyway`])
    const matching = await sysctr(['images', 'pull', '--tls-verify=false', '--platform', 'linux/amd64', amd64Ref])
    expect(matching.code).toBe(0)
    expect(matching.stderr).not.toContain('warning:')
    // install in the same case: the same warning, and it installs (what runc will do is said).
    const root = join(dir, 'root-platform')
    const i = await sysctr(['install', '--system', '--root', root, '--tls-verify=false', '--platform', 'linux/s390x', amd64Ref])
    expect(i.stderr).toContain(`warning: ${amd64Ref} is a single-platform image for linux/amd64, not linux/s390x (the platform asked for): installing anyway:`)
    expect(i.stderr).toContain('exec format error')
    expect(i.code).toBe(0)
    await fsp.access(join(root, 'etc/systemd/system/amd64-only.service'))
  })

  it('--set NAME=x is refused (exit 2) before any network access: the registry gets no request', async () => {
    let requests = 0
    const server: Server = createServer((req, res) => {
      requests++
      res.statusCode = 500
      res.end()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
    const port = (server.address() as { port: number }).port
    try {
      const ref = `127.0.0.1:${port}/demo/svc:v1`
      const i = await sysctr(['install', '--system', '--tls-verify=false', '--set', 'NAME=x', ref])
      expect(i.stderr).toMatch(/^error: .*NAME is set by sysctr for every container and cannot be changed with --set/m)
      expect(i.code).toBe(2)
      const j = await sysctr(['install', '--system', '--tls-verify=false', '--set', 'NAME=x', '--json', ref])
      expect(JSON.parse(j.stdout).error.code).toBe('values.fixed')
      const dry = await sysctr(['install', '--system', '--dry-run', '--tls-verify=false', '--set', 'IMAGE_ID=1', ref])
      expect(dry.code).toBe(2)
      const u = await sysctr(['containers', 'update', '--tls-verify=false', '--set', 'DESTDIR=/x', 'svc'])
      expect(u.stderr).toMatch(/DESTDIR is set by sysctr/)
      expect(u.code).toBe(2)
      expect(requests).toBe(0)
      // Nothing was created for it either: no state directory.
      await expect(fsp.access(join(dir, 'state/containers'))).rejects.toThrow()
    } finally {
      await new Promise((r) => server.close(r))
    }
  })

  it('--set of a key no template uses: a warning naming the nearest used key; --strict refuses (exit 2) and installs nothing', async () => {
    const strictRoot = join(dir, 'root-strict')
    const s = await sysctr(['install', '--system', '--root', strictRoot, '--tls-verify=false', '--strict', '--set', 'GRETING=hi', svcRef])
    expect(s.stderr).toMatch(/^error: .*--set GRETING: no template of the image uses GRETING \(nearest used key: GREETING\)/m)
    expect(s.code).toBe(2)
    await expect(fsp.access(join(strictRoot, 'etc/systemd/system/svc.service'))).rejects.toThrow()

    const root = join(dir, 'root-unused')
    const i = await sysctr(['install', '--system', '--root', root, '--tls-verify=false', '--set', 'GRETING=hi', svcRef])
    expect(i.stderr.split('\n').filter((l) => l.includes('GRETING'))).toEqual(['warning: --set GRETING: no template of the image uses GRETING (nearest used key: GREETING)'])
    expect(i.code).toBe(0)
    const before = (await fsp.readdir(join(root, 'var/lib/sysctr/containers'))).sort()

    // update with a --set that changes no rendered file: nothing built, nothing recorded.
    const u = await sysctr(['containers', 'update', '--root', root, '--tls-verify=false', '--set', 'UNUSED_KEY=1', 'svc'])
    expect(u.stderr).toContain('warning: --set UNUSED_KEY: no template of the image uses UNUSED_KEY')
    expect(u.stdout).toMatch(/^svc: nothing changed: the --set values change no rendered file/m)
    expect(u.code).toBe(0)
    expect((await fsp.readdir(join(root, 'var/lib/sysctr/containers'))).sort()).toEqual(before)
    const uj = await sysctr(['containers', 'update', '--root', root, '--tls-verify=false', '--set', 'UNUSED_KEY=1', '--json', 'svc'])
    expect(JSON.parse(uj.stdout)).toMatchObject({ unchanged: true, unchangedBecause: 'same-rendering', deployment: 'svc.0' })
    const strict = await sysctr(['containers', 'update', '--root', root, '--tls-verify=false', '--strict', '--set', 'UNUSED_KEY=1', 'svc'])
    expect(strict.code).toBe(2)

    // A --set that does change a file still builds a new deployment, and prints each changed value once (stdout).
    const g = await sysctr(['containers', 'update', '--root', root, '--tls-verify=false', '--set', 'GREETING=hey', 'svc'])
    expect(g.stderr).not.toMatch(/^error:/m)
    expect(g.code).toBe(0)
    expect(g.stdout.split('\n').filter((l) => l.includes('value GREETING'))).toEqual(['  value GREETING: hello -> hey'])
    expect(g.stderr).not.toContain('value GREETING')
    expect((await fsp.readdir(join(root, 'var/lib/sysctr/containers'))).sort()).toEqual(['svc', 'svc.0', 'svc.1'])
    // And the same again is "already runs ... nothing to do", once, on stdout only.
    const again = await sysctr(['containers', 'update', '--root', root, '--tls-verify=false', 'svc'])
    expect(again.stdout).toContain('nothing to do')
    expect(again.stderr).not.toContain('nothing to do')
  })
})
