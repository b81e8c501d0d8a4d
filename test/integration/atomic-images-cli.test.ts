/**
 * atomic's image verbs as sysctr has them, in the shape of atomic's
 * tests/integration/test_system_containers_images.sh (pull, list with
 * filters and -q, delete by ID, pull a docker archive, tag, info with labels,
 * version and verify) and the names it accepted (short names, IDs), run with
 * the built CLI as a user runs it (stdout, stderr, exit code), against the
 * real registry (Debian's docker-registry). Installs go into a --root tree
 * (no systemd needed): containers list --root, --filter, --quiet, COMMAND.
 */
import { execFile, spawnSync } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeOciLayout, type LayerEntry, type WrittenImage } from '../../harness/oci-layout-writer'
import { localImageName } from '../../src/ops/source-options'
import { cliSkipReason, startCli } from '../helpers/crash'
import { pushLayout, registrySkipReason, SKOPEO_BIN, startRegistry, type RunningRegistry } from '../helpers/registry'

const execFileP = promisify(execFile)
const skip = registrySkipReason() ?? cliSkipReason()

const dirs = (...p: string[]): LayerEntry[] => p.map((path) => ({ path, type: 'directory' as const }))

/** atomic-test-system as atomic's test image: /exports with a manifest default, the atomic labels, a command. */
function spec(tag: string, version: string, extra: boolean) {
  return {
    tag,
    config: {
      Cmd: ['/usr/bin/greet.sh', '--port', '8081'],
      Env: ['PATH=/usr/bin:/bin'],
      Labels: { 'atomic.type': 'system', Name: 'atomic-test-system', Version: version, Release: '1' },
    },
    layers: [
      [
        ...dirs('usr/', 'usr/bin/', 'exports/'),
        { path: 'usr/bin/greet.sh', content: '#!/bin/sh\necho hi\n', mode: 0o755 },
        { path: 'exports/manifest.json', content: JSON.stringify({ version: '1.0', defaultValues: { PORT: '8081' } }) },
        { path: 'exports/tmpfiles.template', content: 'd ${RUN_DIRECTORY}/$NAME-$PORT 0755 root root -\n' },
      ],
      ...(extra ? [[...dirs('etc/'), { path: 'etc/greet.conf', content: `version=${version}\n` }]] : []),
    ],
  }
}

describe.skipIf(skip)(`atomic's image verbs${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let work: string
  let state: string
  let registry: RunningRegistry
  let v1: WrittenImage
  let v2: WrittenImage
  let env: NodeJS.ProcessEnv
  const REF = () => `${registry.host}/demo/atomic-test-system:latest`
  const run = (...args: string[]) => startCli(args, state, env).done
  const root = () => join(work, 'root')
  const rootState = () => join(root(), 'var/lib/sysctr')
  /** Run with the --root tree's store as the state dir (images verbs have no --root). */
  const runRoot = (...args: string[]) => startCli(args, rootState(), env).done

  beforeAll(async () => {
    work = await fsp.mkdtemp(join(tmpdir(), 'sysctr-atomic-images-'))
    state = join(work, 'state')
    const conf = join(work, 'registries.conf')
    await fsp.writeFile(conf, 'unqualified-search-registries = []\n')
    env = { CONTAINERS_REGISTRIES_CONF: conf, SYSCTR_UNIT_DIR: join(work, 'units'), SYSCTR_TMPFILES_DIR: join(work, 'tmpfiles') }
    ;[v1, v2] = await writeOciLayout(join(work, 'layout'), [spec('v1', '1.0', false), spec('v2', '2.0', true)])
    registry = await startRegistry()
    await pushLayout(join(work, 'layout'), 'v1', REF())
  }, 120_000)
  afterAll(async () => {
    await registry?.stop()
    if (work) await fsp.rm(work, { recursive: true, force: true })
  })

  it('1-2. pull, then list: -q prints one ID a line, -f repo= / type= filter, an unknown key is exit 2', async () => {
    const pull = await run('images', 'pull', '--tls-verify=false', REF())
    expect(pull).toMatchObject({ code: 0 })
    const list = await run('images', 'list')
    expect(list.code).toBe(0)
    expect(list.stdout).toMatch(/^REFERENCE\s+ID\s+SIZE/)
    expect(list.stdout).toContain(`${REF()}  ${v1.manifestDigest.slice(0, 19)}`)

    const q = await run('images', 'list', '-q')
    expect(q).toMatchObject({ code: 0, stdout: `${v1.manifestDigest.slice(0, 19)}\n` })
    expect((await run('images', 'list', '-q', '--no-trunc')).stdout).toBe(`${v1.manifestDigest}\n`)

    expect((await run('images', 'list', '-f', 'repo=atomic-test-system')).stdout).toContain(REF())
    expect((await run('images', 'list', '-f', 'type=docker', '-f', 'repository=atomic-test')).stdout).toContain(REF())
    const none = await run('images', 'list', '-f', 'repo=non-existing-repo')
    expect(none).toMatchObject({ code: 0, stdout: 'no images match\n' })
    const bad = await run('images', 'list', '-f', 'colour=red')
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/unknown filter key "colour"/)
    expect(bad.stderr).toMatch(/hint: keys: repo, tag, id/)
  })

  it('5. info by short name and by ID prefix: labels, platform, layers; --json skopeo-like; no such image is exit 3', async () => {
    const id = v1.manifestDigest.slice(7, 19)
    for (const name of ['atomic-test-system', id, `sha256:${id}`, v1.configDigest.slice(7, 19)]) {
      const r = await run('images', 'info', name)
      expect({ name, code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
      expect(r.stdout).toMatch(/^labels:$/m)
      expect(r.stdout).toMatch(/^ {2}atomic\.type: system$/m)
      expect(r.stdout).toMatch(/^ {2}PORT \[tmpfiles\] manifest: 8081$/m)
    }
    const j = await run('images', 'info', '--json', id)
    const info = JSON.parse(j.stdout)
    expect(info).toMatchObject({
      reference: REF(),
      stored: true,
      digest: v1.manifestDigest,
      manifestDigest: v1.manifestDigest,
      configDigest: v1.configDigest,
      architecture: 'amd64',
      os: 'linux',
      labels: { 'atomic.type': 'system', Name: 'atomic-test-system', Version: '1.0', Release: '1' },
      layers: v1.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
    })
    const missing = await run('images', 'info', 'nosuch')
    expect(missing.code).toBe(3)
    expect(missing.stderr).toMatch(/no image named nosuch in the store/)
    expect(missing.stderr).not.toMatch(/does not name a registry/)
  })

  it('8. version prints NAME-VERSION-RELEASE; verify says up to date, then names the new layer and version after a push, pulling nothing', async () => {
    const ver = await run('images', 'version', 'atomic-test-system')
    expect(ver.code).toBe(0)
    expect(ver.stdout).toMatch(/^IMAGE ID\s+NAME-VERSION-RELEASE\s+IMAGE NAME$/m)
    expect(ver.stdout).toContain(`${v1.manifestDigest.slice(7, 19)}  atomic-test-system-1.0-1  ${REF()}`)

    const same = await run('images', 'verify', '--tls-verify=false', 'atomic-test-system')
    expect(same).toMatchObject({ code: 0 })
    expect(same.stdout).toContain(`${REF()} is up to date with ${REF()}`)

    await pushLayout(join(work, 'layout'), 'v2', REF())
    const newer = await run('images', 'verify', '--tls-verify=false', REF())
    expect(newer).toMatchObject({ code: 0 })
    expect(newer.stdout).toContain(`${REF()} has an update at ${REF()}: ${v1.manifestDigest.slice(0, 19)} -> ${v2.manifestDigest.slice(0, 19)}`)
    expect(newer.stdout).toContain(`'atomic-test-system-1.0-1' has an update to 'atomic-test-system-2.0-1'`)
    expect(newer.stdout).toContain(`layer 2: added ${v2.layers[1].digest}`)
    expect(newer.stdout).not.toContain('layer 1:')
    const js = JSON.parse((await run('images', 'verify', '--json', '--tls-verify=false')).stdout)
    expect(js).toEqual([
      expect.objectContaining({
        reference: REF(),
        upToDate: false,
        localDigest: v1.manifestDigest,
        remoteDigest: v2.manifestDigest,
        layers: [
          { index: 0, local: v1.layers[0].digest, remote: v2.layers[0].digest, status: 'same' },
          { index: 1, remote: v2.layers[1].digest, status: 'added' },
        ],
      }),
    ])
    // Nothing pulled: the store still has v1 only.
    expect((await run('images', 'list', '-q', '--no-trunc')).stdout).toBe(`${v1.manifestDigest}\n`)
  })

  it('6. info of a remote reference reads the registry without pulling (labels, layers, digest)', async () => {
    const r = await run('images', 'info', '--json', '--tls-verify=false', `docker://${REF()}`)
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
    expect(JSON.parse(r.stdout)).toMatchObject({
      reference: REF(),
      stored: false,
      digest: v2.manifestDigest,
      labels: { Version: '2.0' },
      os: 'linux',
      architecture: 'amd64',
      layers: v2.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
    })
    const human = await run('images', 'info', '--tls-verify=false', `docker://${REF()}`)
    expect(human.stdout).toMatch(/not in the store/)
    expect(human.stdout).toMatch(/^ {2}Version: 2\.0$/m)
    expect((await run('images', 'list', '-q', '--no-trunc')).stdout).toBe(`${v1.manifestDigest}\n`)
  })

  it('6. a user who is not root reads a remote reference too (as skopeo inspect); a stored name still needs root (exit 7)', () => {
    // Not the test's env: its registries.conf is in a 0700 temp dir this user cannot read.
    const bin = resolve(__dirname, '../../bin/sysctr')
    const asNobody = (...args: string[]) =>
      spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, bin, ...args], { encoding: 'utf8', cwd: tmpdir(), env: { ...process.env, HOME: tmpdir() } })
    const r = asNobody('images', 'info', '--json', '--tls-verify=false', `docker://${REF()}`)
    expect({ code: r.status, stderr: r.stderr }).toEqual({ code: 0, stderr: '' })
    expect(JSON.parse(r.stdout)).toMatchObject({ reference: REF(), stored: false, digest: v2.manifestDigest })
    const s = asNobody('images', 'info', 'atomic-test-system')
    expect(s.status).toBe(7)
    expect(s.stderr).toMatch(/^error: sysctr images info needs root/)
  })

  it('6. tag gives a second name with the same ID; an ID with two names is not deleted (exit 4); each name is', async () => {
    const t = await run('images', 'tag', 'atomic-test-system:latest', 'atomic-test-ostree:latest')
    expect(t).toMatchObject({ code: 0 })
    expect(t.stdout).toContain(`tagged ${REF()} (${v1.manifestDigest.slice(0, 19)}) as localhost/atomic-test-ostree:latest`)
    const list = (await run('images', 'list')).stdout
    const idOf = (name: string) => list.split('\n').find((l) => l.startsWith(name))?.split(/\s+/)[1]
    expect(idOf('localhost/atomic-test-ostree:latest')).toBe(v1.manifestDigest.slice(0, 19))
    expect(idOf('localhost/atomic-test-ostree:latest')).toBe(idOf(REF()))
    expect((await run('images', 'info', 'atomic-test-ostree')).code).toBe(0)

    const byId = await run('images', 'delete', v1.manifestDigest.slice(0, 19))
    expect(byId.code).toBe(4)
    expect(byId.stderr).toMatch(/has 2 names: .*localhost\/atomic-test-ostree:latest/)
    expect((await run('images', 'delete', 'localhost/atomic-test-ostree:latest')).code).toBe(0)
  })

  it('5/1. install of a short name from the store (nothing fetched), containers list --root: COMMAND, --filter, --quiet, --json names', async () => {
    // Seed the --root tree's store with v1 (the registry has v2 now: an install that asked it would get v2).
    // (images verbs take --root DIR as install and containers list do.)
    expect((await run('images', 'pull', '--root', root(), '--tls-verify=false', `${registry.host}/demo/atomic-test-system@${v1.manifestDigest}`)).code).toBe(0)
    expect((await run('images', 'tag', '--root', root(), `${registry.host}/demo/atomic-test-system@${v1.manifestDigest}`, REF())).code).toBe(0)
    // Two names (the digest and the tag) of one image: its ID a line each.
    expect(new Set((await run('images', 'list', '-q', '--no-trunc', '--root', root())).stdout.trim().split('\n'))).toEqual(new Set([v1.manifestDigest]))
    const dry = await run('install', '--system', '--root', root(), '--dry-run', '--json', 'atomic-test-system')
    expect({ code: dry.code, stderr: dry.stderr }).toMatchObject({ code: 0 })
    expect(JSON.parse(dry.stdout)).toMatchObject({ name: 'atomic-test-system', deployment: 'atomic-test-system.0', image: REF() })
    const inst = await run('install', '--system', '--root', root(), '--json', 'atomic-test-system')
    expect({ code: inst.code, stderr: inst.stderr }).toMatchObject({ code: 0 })
    expect(inst.stderr).toMatch(/atomic-test-system is .* in the store/)
    const r = JSON.parse(inst.stdout)
    expect(r).toMatchObject({ name: 'atomic-test-system', image: REF(), manifestDigest: v1.manifestDigest, deployment: 'atomic-test-system.0', deploymentDir: '/var/lib/sysctr/containers/atomic-test-system.0' })
    expect(r.pull).toMatchObject({ layersFetched: 0 })

    const list = await run('containers', 'list', '--root', root())
    expect(list.code).toBe(0)
    expect(list.stdout).toMatch(/^NAME\s+IMAGE\s+COMMAND\s+DIGEST/)
    expect(list.stdout).toContain('/usr/bin/greet.sh --port 8081')
    const quiet = await run('containers', 'list', '--root', root(), '--quiet')
    expect(quiet).toMatchObject({ code: 0, stdout: 'atomic-test-system\n' })
    const match = await run('containers', 'list', '--root', root(), '-q', '-f', 'image=atomic-test', '-f', 'runtime=runc', '-f', 'command=greet')
    expect(match.stdout).toBe('atomic-test-system\n')
    const nomatch = await run('containers', 'list', '--root', root(), '-f', 'container=etcd')
    expect(nomatch).toMatchObject({ code: 0, stdout: 'no containers match\n' })
    expect((await run('containers', 'list', '--root', root(), '-f', 'flavour=x')).code).toBe(2)
    const js = JSON.parse((await run('containers', 'list', '--root', root(), '--json')).stdout)
    expect(js).toEqual([expect.objectContaining({ name: 'atomic-test-system', deployment: 'atomic-test-system.0', command: '/usr/bin/greet.sh --port 8081', created: '1970-01-01T00:00:00.000Z' })])
    expect(js[0]).not.toHaveProperty('createdAt')
    const used = JSON.parse((await run('images', 'list', '--root', root(), '--json')).stdout) as { usedBy?: string[] }[]
    expect(JSON.stringify(used)).toContain('atomic-test-system.0')
    expect((await run('fsck', '--root', root())).code).toBe(0)
    expect((await run('uninstall', '--root', root(), 'atomic-test-system')).code).toBe(0)
  })

  it('5. mount of a name that is neither a container nor an image is exit 3, not a registry error', async () => {
    const r = await run('mount', 'nosuch', join(work, 'mnt'))
    expect(r.code).toBe(3)
    expect(r.stderr).toMatch(/no container or image named nosuch/)
  })

  it('5. mount and checkout take a short name and an ID prefix (atomic: mount atomic-test-system DIR)', async () => {
    const mnt = join(work, 'mnt-image')
    for (const name of ['atomic-test-system', v1.manifestDigest.slice(7, 19)]) {
      const m = await run('mount', name, mnt)
      try {
        expect({ name, code: m.code, stderr: m.stderr }).toMatchObject({ code: 0 })
        expect(m.stdout).toContain(`mounted image ${REF()} read-only at ${mnt}`)
        expect((await fsp.readFile(join(mnt, 'usr/bin/greet.sh'), 'utf8')).startsWith('#!/bin/sh')).toBe(true)
      } finally {
        expect((await run('umount', mnt)).code).toBe(0)
      }
    }
    const co = await run('images', 'checkout', v1.manifestDigest.slice(0, 19), join(work, 'co'))
    expect({ code: co.code, stderr: co.stderr }).toMatchObject({ code: 0 })
    expect((await fsp.stat(join(work, 'co', 'usr/bin/greet.sh'))).isFile()).toBe(true)
  })

  it('3. delete by the ID images list prints', async () => {
    const id = (await run('images', 'list', '-q')).stdout.trim()
    expect(id).toBe(v1.manifestDigest.slice(0, 19))
    const del = await run('images', 'delete', id)
    expect({ code: del.code, stderr: del.stderr }).toMatchObject({ code: 0 })
    expect(del.stdout).toContain(`deleted ${REF()}`)
    expect((await run('images', 'list')).stdout).toBe('no images\n')
  })

  it('4/3. a docker archive is named after its RepoTags: another file name is the same image; delete and install take it; update reads the archive again', async () => {
    const a = join(work, 'a.tar')
    const b = join(work, 'b.tar')
    await execFileP(SKOPEO_BIN, ['--insecure-policy', 'copy', `oci:${join(work, 'layout')}:v1`, `docker-archive:${a}:example.com/demo/archived:1.0`], { timeout: 60_000 })
    await fsp.copyFile(a, b)
    expect((await run('images', 'pull', `docker-archive:${a}`)).code).toBe(0)
    expect((await run('images', 'pull', `docker-archive:${b}`)).code).toBe(0)
    const list = await run('images', 'list', '-f', 'type=docker-archive')
    expect(list.stdout.split('\n').filter((l) => l.startsWith('example.com/'))).toHaveLength(1)
    expect(list.stdout).toContain('example.com/demo/archived:1.0')
    for (const name of [`docker-archive:${b}`, `docker-archive:${a}`, 'archived:1.0']) expect((await run('images', 'info', name)).code).toBe(0)
    const del = await run('images', 'delete', `docker-archive:${b}`)
    expect({ code: del.code, stderr: del.stderr }).toMatchObject({ code: 0 })
    expect((await run('images', 'list')).stdout).toBe('no images\n')

    const inst = await runRoot('install', '--system', '--root', root(), '--json', `docker-archive:${b}`)
    expect({ code: inst.code, stderr: inst.stderr }).toMatchObject({ code: 0 })
    expect(JSON.parse(inst.stdout)).toMatchObject({ name: 'archived', image: 'example.com/demo/archived:1.0', deployment: 'archived.0' })
    // No registry named example.com is asked: the archive is read again (same image: nothing to do).
    const up = await run('containers', 'update', '--root', root(), 'archived')
    expect({ code: up.code, stderr: up.stderr }).toMatchObject({ code: 0 })
    expect(up.stderr + up.stdout).toMatch(/nothing to do/)
    expect((await run('uninstall', '--root', root(), 'archived')).code).toBe(0)

    // Under --root a provisioning entry's archive is inside the tree: it is named from there too (the booted system reads it at the path as written).
    await fsp.mkdir(join(root(), 'usr/share/images'), { recursive: true })
    await fsp.copyFile(a, join(root(), 'usr/share/images/archived.tar'))
    expect(await localImageName('docker-archive:/usr/share/images/archived.tar', root())).toBe('example.com/demo/archived:1.0')
    expect(await localImageName('docker-archive:/usr/share/images/archived.tar')).toBe('docker-archive:/usr/share/images/archived.tar')
  })
})
