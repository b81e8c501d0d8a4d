/**
 * Atomic's system-container verbs that sysctr took over, in the shape of
 * projectatomic/atomic's tests/integration/test_system_containers*.sh: images
 * written here with the same /exports shapes and labels
 * (test/helpers/atomic-lifecycle-images.ts, test/helpers/update-images.ts),
 * pushed with skopeo to the real registry inside a real systemd (the demo
 * environment), driven by the built CLI, run by runc. One boot for the file.
 *
 * - run-once (atomic.run=once): runs to completion at install, its output
 *   and exit status passed on, nothing installed, the store untouched;
 * - remote rootfs (install --rootfs DIR): the container runs on DIR, the
 *   image supplies its /exports; list shows it; update and rollback change
 *   the configuration only; uninstall leaves DIR as it was;
 * - host files as atomic-test-system-hostfs ships them: symlinks (one
 *   dangling) copied as symlinks, an empty directory created, both through
 *   update and rollback, removed at uninstall (the directory only while empty).
 */
import { resolve, join } from 'node:path'
import { promises as fsp } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDemoEnvironment, DemoEnvironment, WORK_IN_CONTAINER } from '../../harness/demo-env'
import { systemdSkipReason } from '../../harness/nspawn'
import { buildAtomicLifecycleImages } from '../helpers/atomic-lifecycle-images'
import { buildUpdateImages } from '../helpers/update-images'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()

describe.skipIf(skip !== undefined)(`atomic's run-once images and remote rootfs end to end${skip ? `: skipped, ${skip}` : ''}`, () => {
  let env: DemoEnvironment
  const run = async (args: string[]) => env.sysctr(args)
  const sh = async (cmd: string) => env.box.exec(['sh', '-c', cmd], { timeoutMs: 60_000 })
  const exists = (p: string) => fsp.lstat(env.box.hostPath(p)).then(() => true, () => false)
  const publish = async (layout: string, tag: string, ref: string) => {
    const r = await env.box.exec(
      ['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${WORK_IN_CONTAINER}/${layout}:${tag}`, `docker://${ref}`],
      { timeoutMs: 60_000 },
    )
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  }
  const containersDir = '/var/lib/sysctr/containers'

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
    })
    env = await startDemoEnvironment({ repo })
    await buildAtomicLifecycleImages(join(env.workDir, 'oci-atomic'))
    await buildUpdateImages(join(env.workDir, 'oci-svc'))
  }, 120_000)
  afterAll(async () => {
    await env?.stop()
  })

  describe('run-once (atomic.run=once)', () => {
    let ref: string
    beforeAll(async () => {
      ref = `${env.registry}/atomic/runonce:latest`
      await publish('oci-atomic', 'runonce', ref)
    })

    it('runs to completion at install: its output shown, on a writable root, and nothing installed', async () => {
      const dry = await run(['install', '--system', '--tls-verify=false', '--name', 'hi', '--dry-run', ref])
      expect(dry.code).toBe(0)
      expect(dry.stdout).toContain('is a run-once image (atomic.run=once): install would run it to completion and install nothing')
      expect(dry.stdout).not.toContain('Hi world')
      const r = await run(['install', '--system', '--tls-verify=false', '--name', 'hi', ref])
      expect(r.stderr).not.toMatch(/^error:/m)
      expect(r.code).toBe(0)
      expect(r.stdout).toContain('Hi world from acme, root writable: written by hi\n')
      expect(r.stderr).toContain('to stderr\n')
      expect(r.stdout).toMatch(/ran hi once from .*: exit status 0; nothing was installed/)
      for (const p of ['/etc/systemd/system/hi.service', '/etc/tmpfiles.d/hi.conf', `${containersDir}/hi`, `${containersDir}/hi.0`]) expect(await exists(p)).toBe(false)
      expect((await fsp.readdir(env.box.hostPath('/var/lib/sysctr/run-once'))).length).toBe(0)
      const list = await run(['containers', 'list', '--json'])
      expect(JSON.parse(list.stdout)).toEqual([])
      // The store's objects were not written through: a fresh checkout has no /etc/written.
      const co = await run(['images', 'checkout', ref, '/srv/runonce-check'])
      expect(co.code).toBe(0)
      expect(await exists('/srv/runonce-check/usr/bin/run.sh')).toBe(true)
      expect(await exists('/srv/runonce-check/etc/written')).toBe(false)
      expect((await run(['fsck'])).code).toBe(0)
    })

    it('passes its exit status on (--set values apply as at install)', async () => {
      const r = await run(['install', '--system', '--tls-verify=false', '--name', 'hi', '--set', 'EXIT=3', '--set', 'RECEIVER=sysctr', ref])
      expect(r.code).toBe(3)
      expect(r.stdout).toContain('Hi sysctr from acme')
      expect(r.stdout).toContain('exit status 3; nothing was installed')
      expect(await exists(`${containersDir}/hi`)).toBe(false)
    })
    it("sysctr run IMAGE [COMMAND] runs an image once, as atomic's test ran atomic run --set RECEIVER=Pluto atomic-test-runonce echo Hello World", async () => {
      const r = await run(['run', '--set', 'RECEIVER=Pluto', ref, 'echo', 'Hello', 'World'])
      expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 })
      expect(r.stdout).toBe('Hello World\n')
      const own = await run(['run', '--set', 'RECEIVER=Pluto', '--set', 'EXIT=5', ref])
      expect(own.code).toBe(5)
      expect(own.stdout).toContain('Hi Pluto from acme')
      expect(await exists(`${containersDir}/runonce`)).toBe(false)
      expect((await fsp.readdir(env.box.hostPath('/var/lib/sysctr/run-once'))).length).toBe(0)
      const none = await run(['run', `${env.registry}/atomic/not-pulled:latest`, 'true'])
      expect(none.code).toBe(3)
      expect(none.stderr).toMatch(/is neither an installed container nor an image in the store/)
    })
  })

  describe('remote rootfs (install --rootfs DIR)', () => {
    let ref: string
    const version = async () => (await env.box.exec(['runc', 'exec', 'rsvc', 'cat', '/etc/svc-version'])).stdout.trim()
    const environ = async () => (await env.box.exec(['runc', 'exec', 'rsvc', 'cat', '/proc/1/environ'])).stdout.split('\0').filter((e) => /^VERSION=/.test(e))
    const treeListing = async () => (await sh('cd /srv/remote && find . | sort && cat rootfs/etc/svc-version')).stdout

    beforeAll(async () => {
      ref = `${env.registry}/demo/svc:latest`
      await publish('oci-svc', 'svc-v2', ref)
      // A tree on the host, as a shared or network-mounted root would be: a copy of v2 with its own version file.
      expect((await run(['images', 'pull', '--tls-verify=false', ref])).code).toBe(0)
      expect((await sh('mkdir -p /srv/remote')).code).toBe(0)
      const co = await run(['images', 'checkout', '--copy', ref, '/srv/remote/rootfs'])
      expect({ code: co.code, stderr: co.stderr }).toMatchObject({ code: 0 })
      expect((await sh('echo remote > /srv/remote/rootfs/etc/svc-version')).code).toBe(0)
      await publish('oci-svc', 'svc-v1', ref)
    })

    it('install runs the container on DIR; the image supplies only its /exports; list shows it as remote', async () => {
      const before = await treeListing()
      const r = await run(['install', '--system', '--tls-verify=false', '--name', 'rsvc', '--rootfs', '/srv/remote', '--now', ref])
      expect(r.stderr).not.toMatch(/^error:/m)
      expect(r.code).toBe(0)
      expect(r.stdout).toContain('  rootfs: /srv/remote/rootfs (remote: not a checkout)')
      expect(await version()).toBe('remote')
      expect(await environ()).toEqual(['VERSION=v1'])
      expect(await exists(`${containersDir}/rsvc.0/rootfs`)).toBe(false)
      const cfg = JSON.parse(await fsp.readFile(env.box.hostPath(`${containersDir}/rsvc.0/config.json`), 'utf8'))
      expect(cfg.root).toEqual({ path: '/srv/remote/rootfs', readonly: true })
      const list = JSON.parse((await run(['containers', 'list', '--json'])).stdout)
      expect(list).toMatchObject([{ name: 'rsvc', deployment: 'rsvc.0', rootfs: '/srv/remote/rootfs', activeState: 'active' }])
      expect((await run(['containers', 'list'])).stdout).toContain('(remote rootfs /srv/remote/rootfs)')
      expect(await treeListing()).toBe(before)
    })

    it('update and rollback change the configuration only; the root stays DIR', async () => {
      const before = await treeListing()
      await publish('oci-svc', 'svc-v2', ref)
      // The dry run plans the same remote root: its config.json diff does not touch root.path.
      expect((await run(['images', 'pull', '--tls-verify=false', ref])).code).toBe(0)
      const dry = await run(['containers', 'update', '--tls-verify=false', '--dry-run', 'rsvc'])
      expect(dry.code).toBe(0)
      expect(dry.stdout).toContain('VERSION=v2')
      expect(dry.stdout).not.toMatch(/^[-+].*"path": /m)
      const u = await run(['containers', 'update', '--tls-verify=false', 'rsvc'])
      expect(u.stderr).not.toMatch(/^error:/m)
      expect(u.code).toBe(0)
      expect(u.stdout).toContain('value VERSION: v1 -> v2')
      expect(await environ()).toEqual(['VERSION=v2'])
      expect(await version()).toBe('remote')
      const rb = await run(['containers', 'rollback', 'rsvc'])
      expect(rb.code).toBe(0)
      expect(await environ()).toEqual(['VERSION=v1'])
      expect(await version()).toBe('remote')
      expect(await treeListing()).toBe(before)
    })

    it('uninstall never touches DIR; a DIR without a rootfs is refused (exit 3)', async () => {
      const before = await treeListing()
      const r = await run(['uninstall', 'rsvc'])
      expect(r.code).toBe(0)
      expect(await exists(`${containersDir}/rsvc`)).toBe(false)
      expect(await treeListing()).toBe(before)
      expect((await sh('mkdir -p /srv/empty')).code).toBe(0)
      const bad = await run(['install', '--system', '--tls-verify=false', '--name', 'rsvc', '--rootfs', '/srv/empty', ref])
      expect(bad.code).toBe(3)
      expect(bad.stderr).toMatch(/--rootfs \/srv\/empty does not contain a rootfs/)
    })
  })

  describe('host files: symlinks and empty directories under /exports/hostfs', () => {
    let ref: string
    const D = '/etc/hostfs-test'
    const EMPTY = '/var/lib/hostfs-test/empty'
    const lstat = (p: string) => fsp.lstat(env.box.hostPath(p)).catch(() => undefined)
    const readlink = (p: string) => fsp.readlink(env.box.hostPath(p))
    const read = (p: string) => fsp.readFile(env.box.hostPath(p), 'utf8')

    beforeAll(async () => {
      ref = `${env.registry}/atomic/hostfs:latest`
      await publish('oci-atomic', 'hostfs-v1', ref)
    })

    it('install copies each symlink as a symlink (the dangling one too) and creates the empty directory', async () => {
      expect((await sh('echo the host file > /etc/hostfs-target')).code).toBe(0)
      const hostname = await read('/etc/hostfs-target')
      const r = await run(['install', '--system', '--tls-verify=false', '--name', 'hf', '--now', ref])
      expect(r.stderr).not.toMatch(/^error:/m)
      expect(r.code).toBe(0)
      expect(await read(`${D}/greeting`)).toBe('hello v1\n')
      expect(await readlink(`${D}/greeting-link`)).toBe('greeting')
      expect(await read(`${D}/greeting-link`)).toBe('hello v1\n')
      expect(await readlink(`${D}/dangling`)).toBe('/usr/lib/hostfs-test/not-there')
      expect(await readlink(`${D}/abs-link`)).toBe('/etc/hostfs-target')
      expect(await read('/etc/hostfs-target')).toBe(hostname)
      const st = await lstat(EMPTY)
      expect(st?.isDirectory()).toBe(true)
      expect(st!.mode & 0o777).toBe(0o750)
      expect((await fsp.readdir(env.box.hostPath(EMPTY))).length).toBe(0)
    })

    it('update and rollback keep the links and the directory, switching the file', async () => {
      await publish('oci-atomic', 'hostfs-v2', ref)
      const u = await run(['containers', 'update', '--tls-verify=false', 'hf'])
      expect(u.stderr).not.toMatch(/^error:/m)
      expect(u.code).toBe(0)
      expect(await read(`${D}/greeting-link`)).toBe('hello v2\n')
      expect(await readlink(`${D}/dangling`)).toBe('/usr/lib/hostfs-test/not-there')
      expect((await lstat(EMPTY))?.isDirectory()).toBe(true)
      const rb = await run(['containers', 'rollback', 'hf'])
      expect(rb.code).toBe(0)
      expect(await read(`${D}/greeting-link`)).toBe('hello v1\n')
      expect(await readlink(`${D}/abs-link`)).toBe('/etc/hostfs-target')
      expect((await lstat(EMPTY))?.isDirectory()).toBe(true)
    })

    it('uninstall removes the links and keeps the directory while something is in it; removes it when empty', async () => {
      expect((await sh(`echo state > ${EMPTY}/data`)).code).toBe(0)
      const r = await run(['uninstall', 'hf'])
      expect(r.code).toBe(0)
      for (const p of ['greeting', 'greeting-link', 'dangling', 'abs-link']) expect(await lstat(`${D}/${p}`)).toBeUndefined()
      expect(await read(`${EMPTY}/data`)).toBe('state\n')
      // Again, with the directory left empty: it goes.
      expect((await sh(`rm ${EMPTY}/data && rmdir ${EMPTY}`)).code).toBe(0)
      expect((await run(['install', '--system', '--tls-verify=false', '--name', 'hf', ref])).code).toBe(0)
      expect((await lstat(EMPTY))?.isDirectory()).toBe(true)
      expect((await run(['uninstall', 'hf'])).code).toBe(0)
      expect(await lstat(EMPTY)).toBeUndefined()
      expect(await read('/etc/hostfs-target')).not.toBe('')
    })
  })
})
