/**
 * The README demo's environment: the real-daemon images (Debian's etcd 3.4
 * and the flannel stand-in from harness/daemons/images.ts, Debian's dockerd
 * 20.10 from harness/daemons/engine.ts) built into OCI layouts, a throwaway
 * systemd (startEnvironment in ../demo-env) with the registry inside holding
 * them, and what the real daemons need of that box:
 *
 * - a writable, empty /usr/local (the box's /usr is the host's, read-only):
 *   etcd's image puts its etcdctl at /usr/local/bin/etcdctl on the host;
 * - /etc/resolv.conf (etcd's config binds the host's; the volatile root has none);
 * - the unpacked docker.io package bound read-only at DEBS_IN_CONTAINER, for
 *   the docker CLI that asks the engine over its socket (not in the image).
 */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { daemonsSkipReason } from '../daemons/debs'
import { buildEngineImage, engineDebRoot, engineMissing } from '../daemons/engine'
import { buildDaemonImages } from '../daemons/images'
import { startEnvironment, type DemoEnvironment } from '../demo-env'
import { systemdSkipReason } from '../nspawn'

/** In dependency order: flannel needs etcd, the engine needs flannel. */
export const REAL_IMAGES = ['etcd', 'flannel', 'engine'] as const
export const DEBS_IN_CONTAINER = '/opt/engine-debs'
export const ENGINE_SOCKET = 'unix:///run/engine/docker.sock'
export const ETCDCTL = '/usr/local/bin/etcdctl'
export const FLANNEL_NETWORK_KEY = '/atomic.io/network/config'
export const FLANNEL_NETWORK_CONFIG = '{"Network":"10.40.0.0/16","SubnetLen":24}'

/** Why the real images cannot be built and run here, or undefined. */
export function realSkipReason(): string | undefined {
  return systemdSkipReason() ?? daemonsSkipReason() ?? engineMissing()
}

/** Build etcd + flannel (one layout) and the engine (another) into workDir; name -> layout dir relative to workDir. */
export async function buildRealImages(workDir: string): Promise<Record<(typeof REAL_IMAGES)[number], string>> {
  await buildDaemonImages(join(workDir, 'oci-daemons'))
  await buildEngineImage(join(workDir, 'oci-engine'))
  return { etcd: 'oci-daemons', flannel: 'oci-daemons', engine: 'oci-engine' }
}

export async function startRealEnvironment(opts: { repo: string; log?: (m: string) => void }): Promise<DemoEnvironment> {
  const skip = realSkipReason()
  if (skip) throw new Error(`cannot run the real daemons here: ${skip}`)
  const log = opts.log ?? (() => {})
  const env = await startEnvironment({
    repo: opts.repo,
    log,
    name: 'sysctr-demo',
    images: async (workDir) => {
      log('building the real images: etcd 3.4 + flannel stand-in (Debian etcd), engine (Debian dockerd 20.10)')
      const layouts = await buildRealImages(workDir)
      await fsp.mkdir(join(workDir, 'usr-local', 'bin'), { recursive: true })
      return layouts
    },
    binds: (workDir) => [
      { host: join(workDir, 'usr-local'), container: '/usr/local' },
      { host: engineDebRoot(), container: DEBS_IN_CONTAINER, readOnly: true },
    ],
  })
  try {
    const r = await env.box.exec(['sh', '-c', 'test -e /etc/resolv.conf || echo "nameserver 127.0.0.53" > /etc/resolv.conf'])
    if (r.code !== 0) throw new Error(`writing /etc/resolv.conf in the box failed: ${r.stderr.trim()}`)
    return env
  } catch (err) {
    await env.stop()
    throw err
  }
}
