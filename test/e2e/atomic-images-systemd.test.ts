/**
 * atomic's image and list verbs against a real systemd and the registry
 * inside it, in the shape of atomic's test_system_containers.sh: pull, then
 * `install --system` by the short name of the stored image (from the store,
 * nothing fetched), `containers list -f state=… -q` following the unit's
 * real state as systemd reports it over D-Bus, `images verify` against the
 * registry, uninstall. One boot for the file.
 */
import { resolve, join } from 'node:path'
import { promises as fsp } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startDemoEnvironment, DemoEnvironment, waitFor, WORK_IN_CONTAINER } from '../../harness/demo-env'
import { systemdSkipReason } from '../../harness/nspawn'
import { buildHostfsImages } from '../helpers/hostfs-images'

const repo = resolve(__dirname, '..', '..')
const skip = systemdSkipReason()

describe.skipIf(skip !== undefined)(`atomic's list and image verbs under systemd${skip ? `: skipped, ${skip}` : ''}`, () => {
  let env: DemoEnvironment
  let ref: string
  const run = async (args: string[]) => env.sysctr(args)

  beforeAll(async () => {
    await fsp.access(resolve(repo, 'dist/cli/main.js')).catch(() => {
      throw new Error('dist/ is missing: run `npm run build` first (npm test does)')
    })
    env = await startDemoEnvironment({ repo })
    await buildHostfsImages(join(env.workDir, 'oci-web'))
    ref = `${env.registry}/demo/web:latest`
    const r = await env.box.exec(
      ['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${WORK_IN_CONTAINER}/oci-web:web-v1`, `docker://${ref}`],
      { timeoutMs: 60_000 },
    )
    expect(r.code).toBe(0)
  }, 180_000)
  afterAll(async () => {
    await env?.stop()
  })

  it('install by the stored short name, then containers list -f state= follows systemd; verify asks the registry', async () => {
    expect((await run(['images', 'pull', '--tls-verify=false', ref])).code).toBe(0)
    const i = await run(['install', '--system', '--name', 'web1', '--now', 'web'])
    expect({ code: i.code, stderr: i.stderr }).toMatchObject({ code: 0 })
    expect(i.stderr).toContain(`web is ${ref} in the store`)

    await waitFor(async () => (await run(['containers', 'list', '-q', '-f', 'state=running'])).stdout === 'web1\n', 30_000, 'web1 to be listed as running')
    const inactive = await run(['containers', 'list', '-f', 'state=inactive'])
    expect(inactive).toMatchObject({ code: 0, stdout: 'no containers match\n' })
    const list = await run(['containers', 'list'])
    expect(list.stdout).toMatch(/^NAME\s+IMAGE\s+COMMAND\s+DIGEST\s+DEPLOYMENT\s+STATE/)
    expect(list.stdout).toMatch(new RegExp(`^web1\\s+${ref.replace(/[.]/g, '\\.')}\\s+\\S`, 'm'))
    expect(list.stdout).toContain('active/running')

    expect((await env.box.exec(['systemctl', 'stop', 'web1.service'])).code).toBe(0)
    expect((await run(['containers', 'list', '-q', '-f', 'state=inactive', '-f', 'container=web'])).stdout).toBe('web1\n')
    expect((await run(['containers', 'list', '-q', '-f', 'state=running'])).stdout).toBe('')

    const v = await run(['images', 'verify', '--tls-verify=false', 'web'])
    expect({ code: v.code, stderr: v.stderr }).toMatchObject({ code: 0 })
    expect(v.stdout).toContain(`${ref} is up to date with ${ref}`)
    expect((await run(['uninstall', 'web1'])).code).toBe(0)
    expect((await run(['containers', 'list', '-q'])).stdout).toBe('')
  })
})
