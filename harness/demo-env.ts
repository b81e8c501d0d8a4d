/**
 * The demo/e2e environment: a throwaway systemd booted with systemd-nspawn
 * (host /usr, volatile root, private network), the reference registry
 * (Debian's docker-registry) running inside it as a transient unit, and the
 * demo images pushed to it with skopeo. Shared by `npm run demo` and the e2e
 * tests, so both exercise exactly the same thing.
 *
 * The sysctr checkout is bound read-only at /opt/sysctr inside; a work dir
 * (OCI layout, registry storage) is bound at /var/tmp/sysctr-work.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildDemoImages, DEMO_IMAGES } from './demo/images'
import { bootSystemd, type Bind, SystemdContainer } from './nspawn'
import { registryConfig } from './registry-config'

export const WORK_IN_CONTAINER = '/var/tmp/sysctr-work'

export interface DemoEnvironment {
  box: SystemdContainer
  workDir: string
  /** host:port of the registry, as seen from inside the container. */
  registry: string
  /** Image references for the demo images in that registry. */
  images: Record<string, string>
  /** Run the sysctr CLI inside the container. */
  sysctr(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>
  stop(): Promise<void>
}

export async function startDemoEnvironment(opts: { repo: string; log?: (m: string) => void }): Promise<DemoEnvironment> {
  const log = opts.log ?? (() => {})
  return startEnvironment({
    ...opts,
    images: async (workDir) => {
      log('building demo images (busybox-static) into an OCI layout')
      await buildDemoImages(join(workDir, 'oci'))
      return Object.fromEntries(DEMO_IMAGES.map((n) => [n, 'oci']))
    },
  })
}

export interface EnvironmentOptions {
  repo: string
  log?: (m: string) => void
  /** Machine name prefix of the throwaway systemd. */
  name?: string
  /**
   * Write the images into OCI layouts under workDir (before the boot);
   * returns image name -> layout directory relative to workDir (each image
   * is the tag `name` there). Pushed in the order of the keys.
   */
  images: (workDir: string) => Promise<Record<string, string>>
  /** More binds for the throwaway systemd (workDir is bound at WORK_IN_CONTAINER already). */
  binds?: (workDir: string) => Bind[]
}

/** A throwaway systemd with a registry inside holding the images `opts.images` wrote. */
export async function startEnvironment(opts: EnvironmentOptions): Promise<DemoEnvironment> {
  const log = opts.log ?? (() => {})
  const workDir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-demo-'))
  let box: SystemdContainer | undefined
  try {
    const layouts = await opts.images(workDir)
    log('booting a throwaway systemd (systemd-nspawn)')
    box = await bootSystemd({
      name: opts.name,
      repo: opts.repo,
      binds: [{ host: workDir, container: WORK_IN_CONTAINER }, ...(opts.binds?.(workDir) ?? [])],
    })
    const port = 5000 + Math.floor(Math.random() * 1000)
    const registry = `127.0.0.1:${port}`
    await fsp.mkdir(join(workDir, 'registry', 'data'), { recursive: true })
    await fsp.writeFile(join(workDir, 'registry', 'config.yml'), registryConfig({ addr: registry, storageDir: `${WORK_IN_CONTAINER}/registry/data` }))
    log(`starting docker-registry on ${registry} inside the container`)
    await must(box, ['systemd-run', '--quiet', '--unit=sysctr-test-registry', '/usr/bin/docker-registry', 'serve', `${WORK_IN_CONTAINER}/registry/config.yml`])
    await waitFor(async () => (await box!.exec(['curl', '-fsS', '-o', '/dev/null', `http://${registry}/v2/`])).code === 0, 20_000, 'the registry to answer')
    const images: Record<string, string> = {}
    for (const [name, layout] of Object.entries(layouts)) {
      images[name] = `${registry}/demo/${name}:latest`
      log(`pushing ${images[name]} with skopeo`)
      await must(box, ['skopeo', 'copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', `oci:${WORK_IN_CONTAINER}/${layout}:${name}`, `docker://${images[name]}`])
    }
    const b = box
    return {
      box: b,
      workDir,
      registry,
      images,
      sysctr: (args) => b.exec(['/opt/sysctr/bin/sysctr', ...args], { timeoutMs: 120_000 }),
      stop: async () => {
        await b.stop()
        await fsp.rm(workDir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    await box?.stop().catch(() => {})
    await fsp.rm(workDir, { recursive: true, force: true })
    throw err
  }
}

async function must(box: SystemdContainer, argv: string[]): Promise<string> {
  const r = await box.exec(argv, { timeoutMs: 120_000 })
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`)
  return r.stdout
}

export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
