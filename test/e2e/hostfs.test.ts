/**
 * Host files end to end (issue #5): web v1/v2 and tools
 * (test/helpers/hostfs-images.ts) pushed with skopeo to the registry inside a
 * real systemd (the demo environment), driven by the built CLI, run by runc.
 * /exports/hostfs/etc/web/web.conf is rendered (installedFilesTemplate) and
 * renamed (renameFiles) to /etc/web1/web1.conf; the user edits it; an update
 * to v2 keeps the edit and updates the unchanged /etc/web1/webctl; uninstall keeps
 * the edited file and removes the rest. One boot for the file.
 */
import { resolve, join } from 'node:path'
import { promises as fsp } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDemoEnvironment, DemoEnvironment, waitFor, WORK_IN_CONTAINER } from '../../harness/demo-env'
import { connectSystemd } from '../../src/systemd/dbus-systemd'
import type { Systemd } from '../../src/systemd/systemd'
import { systemdSkipReason } from '../../harness/nspawn'
import { buildHostfsImages, webConf, WEBCTL } from '../helpers/hostfs-images'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()

describe.skipIf(skip !== undefined)(`host files end to end${skip ? `: skipped, ${skip}` : ''}`, () => {
  let env: DemoEnvironment
  let systemd: Systemd
  let ref: string

  const publish = async (tag: string) => {
    const r = await env.box.exec(
      ['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${WORK_IN_CONTAINER}/oci-web:${tag}`, `docker://${ref}`],
      { timeoutMs: 60_000 },
    )
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  }
  const run = async (args: string[]) => env.sysctr(args)
  const read = (p: string) => fsp.readFile(env.box.hostPath(p), 'utf8')
  const exists = (p: string) => fsp.access(env.box.hostPath(p)).then(() => true, () => false)
  const CONF = '/etc/web1/web1.conf'
  const CTL = '/etc/web1/webctl'

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
    })
    env = await startDemoEnvironment({ repo })
    await buildHostfsImages(join(env.workDir, 'oci-web'))
    systemd = await connectSystemd({ busAddress: env.box.busAddress })
    ref = `${env.registry}/demo/web:latest`
  }, 120_000)
  afterAll(async () => {
    await systemd?.close()
    await env?.stop()
  })

  it('install --now writes the host files rendered and renamed; the service runs', async () => {
    await publish('web-v1')
    const i = await run(['install', '--system', '--tls-verify=false', '--name', 'web1', '--now', ref])
    expect(i.stderr).not.toMatch(/^error:/m)
    expect(i.code).toBe(0)
    expect(await read(CONF)).toBe(webConf('v1', 'web1'))
    expect(await read(CTL)).toBe(WEBCTL.v1)
    expect((await fsp.stat(env.box.hostPath(CTL))).mode & 0o777).toBe(0o755)
    expect((await env.box.exec([CTL])).stdout).toBe('webctl v1\n')
    expect((await systemd.unitState('web1.service')).activeState).toBe('active')
  })

  it('update to v2 keeps the user-edited file (says so), updates the unchanged one, removes the dropped one', async () => {
    await fsp.writeFile(env.box.hostPath(CONF), 'port=9999 # edited by the admin\n')
    await publish('web-v2')
    // The dry run against the real registry: with v2 pulled, it diffs host files against web1.0's own copies, changing nothing.
    expect((await run(['images', 'pull', '--tls-verify=false', '--quiet', ref])).code).toBe(0)
    const d = await run(['containers', 'update', '--dry-run', '--json', '--tls-verify=false', 'web1'])
    expect(d.code).toBe(0)
    const plan = JSON.parse(d.stdout) as { diffs: { role: string; path: string; diff: string }[] }
    expect(plan.diffs.find((x) => x.role === 'hostfs' && x.path === CONF)?.diff).toContain('+workers=4')
    expect(plan.diffs.find((x) => x.role === 'hostfs' && x.path === '/etc/web/v1-only.conf')?.diff).toContain('-old')
    expect(await read(CTL)).toBe(WEBCTL.v1)
    const u = await run(['containers', 'update', '--tls-verify=false', 'web1'])
    expect(u.stderr).not.toMatch(/^error:/m)
    expect(u.code).toBe(0)
    expect(u.stderr).toContain(`${CONF} was changed since sysctr wrote it: keeping it`)
    expect(await read(CONF)).toBe('port=9999 # edited by the admin\n')
    expect(await read(CTL)).toBe(WEBCTL.v2)
    expect(await exists('/etc/web/v1-only.conf')).toBe(false)
    // Type=simple: the job is done when runc is started; the container follows shortly.
    await waitFor(async () => (await env.box.exec(['runc', 'exec', 'web1', 'cat', '/etc/web-version'])).stdout === 'v2\n', 20_000, 'web1 running v2')
    expect((await systemd.unitState('web1.service')).activeState).toBe('active')
  })

  it('uninstall keeps the edited file, removes the unchanged one and everything else', async () => {
    const r = await run(['uninstall', 'web1'])
    expect(r.code).toBe(0)
    expect(r.stderr).toContain(`${CONF} was changed since sysctr wrote it: keeping it`)
    expect(await read(CONF)).toBe('port=9999 # edited by the admin\n')
    expect(await exists(CTL)).toBe(false)
    expect(await exists('/etc/systemd/system/web1.service')).toBe(false)
    expect((await env.box.exec(['runc', 'list', '-q'])).stdout.trim()).toBe('')
  })

  it('noContainerService: host files and tmpfiles entry only, listed with unit state none', async () => {
    await publish('tools')
    const i = await run(['install', '--system', '--tls-verify=false', '--name', 'tools', ref])
    expect(i.stderr).not.toMatch(/^error:/m)
    expect(i.code).toBe(0)
    expect((await env.box.exec(['/etc/tools/hello'])).stdout).toBe('hello\n')
    expect((await env.box.exec(['test', '-d', '/run/tools-tools'])).code).toBe(0)
    expect(await exists('/etc/systemd/system/tools.service')).toBe(false)
    const l = await run(['containers', 'list', '--json'])
    expect(JSON.parse(l.stdout)).toEqual([expect.objectContaining({ name: 'tools', activeState: 'none' })])
    const u = await run(['uninstall', 'tools'])
    expect(u.code).toBe(0)
    expect(await exists('/etc/tools/hello')).toBe(false)
  })
})
