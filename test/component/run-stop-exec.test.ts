/**
 * run / exec / stop (src/ops/run.ts) and mount --shared/--live against an
 * in-process registry and the fake systemd: start and stop wait for the job
 * and report the unit's state; exec hands the runtime `exec [--tty] NAME
 * COMMAND...` and passes its exit status on; the errors are the documented
 * ones. (Against real systemd and runc: test/e2e/update-rollback.test.ts.)
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { WrittenImage } from '../../harness/oci-layout-writer'
import { install } from '../../src/ops/install'
import { execInContainer, startContainer, stopContainer } from '../../src/ops/run'
import { mount } from '../../src/ops/mount'
import type { OpsContext } from '../../src/ops/context'
import type { FakeSystemd } from '../../harness/fake-systemd'
import { serveLayout, type ServedLayout } from '../helpers/http-fake-registry'
import { buildUpdateImages } from '../helpers/update-images'
import { fakeHost } from '../helpers/test-paths'

let served: ServedLayout<WrittenImage[]>
let root: string
let ctx: OpsContext
let systemd: FakeSystemd

beforeAll(async () => {
  served = await serveLayout('demo/svc', (dir) => buildUpdateImages(dir))
  served.registry.tag('latest', served.built[0].manifestDigest)
})
afterAll(async () => {
  await served?.close()
  if (root) await fsp.rm(root, { recursive: true, force: true })
})
beforeEach(async () => {
  if (root) await fsp.rm(root, { recursive: true, force: true })
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-run-'))
  ;({ ctx, systemd } = await fakeHost(root))
  await install(ctx, { image: `${served.registry.host}/demo/svc:latest`, name: 'svc', tlsVerify: false })
})

describe('run / stop / exec', () => {
  it('run starts the unit and waits for the job; stop stops it', async () => {
    expect((await systemd.unitState('svc.service')).activeState).toBe('inactive')
    expect(await startContainer(ctx, 'svc')).toEqual({ name: 'svc', unit: 'svc.service', result: 'done', activeState: 'active', subState: 'running' })
    expect(await stopContainer(ctx, 'svc')).toMatchObject({ result: 'done', activeState: 'inactive' })
  })

  it('exec runs RUNTIME exec NAME COMMAND... in the running container and returns its exit status', async () => {
    await startContainer(ctx, 'svc')
    const calls: [string, string[]][] = []
    const spawnRuntime = async (cmd: string, args: string[]) => {
      calls.push([cmd, args])
      return 7
    }
    expect(await execInContainer(ctx, 'svc', ['sh', '-c', 'exit 7'], { tty: false, spawnRuntime })).toBe(7)
    expect(await execInContainer(ctx, 'svc', ['sh'], { tty: true, spawnRuntime })).toBe(7)
    expect(calls).toEqual([
      ['/usr/bin/runc', ['exec', 'svc', 'sh', '-c', 'exit 7']],
      ['/usr/bin/runc', ['exec', '--tty', 'svc', 'sh']],
    ])
  })

  it('errors: not installed (exit 3), not running (exit 4, hint run), no command (exit 2)', async () => {
    await expect(startContainer(ctx, 'nope')).rejects.toMatchObject({ code: 'container.not-found', exitCode: 3 })
    await expect(stopContainer(ctx, 'nope')).rejects.toMatchObject({ code: 'container.not-found', exitCode: 3 })
    await expect(execInContainer(ctx, 'nope', ['true'])).rejects.toMatchObject({ code: 'container.not-found', exitCode: 3 })
    await expect(execInContainer(ctx, 'svc', ['true'], { spawnRuntime: async () => 0 })).rejects.toMatchObject({
      code: 'container.not-running',
      exitCode: 4,
      hint: 'sysctr run svc starts it',
    })
    await expect(execInContainer(ctx, 'svc', [])).rejects.toMatchObject({ code: 'exec.no-command', exitCode: 2 })
  })
})

describe('mount --shared / --live (refusals; the mounts themselves need root: test/e2e/update-rollback.test.ts)', () => {
  const never = async () => {
    throw new Error('mount(8) must not run')
  }
  it('--live is refused as Atomic refused it for system containers (exit 2)', async () => {
    await expect(mount(ctx, 'svc', join(root, 'mnt'), { live: true, run: never })).rejects.toMatchObject({ code: 'mount.live-unsupported', exitCode: 2 })
  })
  it('--shared on a host with SELinux enabled is refused (exit 7): sysctr labels nothing', async () => {
    await expect(mount(ctx, 'svc', join(root, 'mnt'), { shared: true, selinuxEnabled: async () => true, run: never })).rejects.toMatchObject({
      code: 'mount.selinux-unsupported',
      exitCode: 7,
    })
  })
  it('--shared without SELinux makes the read-only view and records it as shared', async () => {
    const ran: string[][] = []
    const r = await mount(ctx, 'svc', join(root, 'mnt'), {
      shared: true,
      selinuxEnabled: async () => false,
      run: async (cmd, args) => {
        ran.push([cmd, ...args])
        return { code: 0, stdout: '', stderr: '' }
      },
    })
    expect(r).toMatchObject({ kind: 'container', target: 'svc', shared: true })
    expect(ran.map((c) => c.join(' '))).toEqual([`mount --bind ${r.source} ${r.dir}`, `mount -o remount,ro,bind ${r.dir}`])
  })
})
