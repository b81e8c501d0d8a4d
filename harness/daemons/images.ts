/**
 * Build the real-daemon images into one OCI layout: `etcd` (Debian's etcd
 * 3.4, harness/daemons/etcd.ts) and `flannel` (a stand-in on the real
 * etcdctl, harness/daemons/flannel.ts). Needs the packages scripts/setup
 * unpacks (see debs.ts).
 */
import { writeOciLayout, type WrittenImage } from './deps'
import { etcdLayers } from './etcd'
import { flannelLayers } from './flannel'

export const DAEMON_IMAGES = ['etcd', 'flannel'] as const

export async function buildDaemonImages(dir: string): Promise<WrittenImage[]> {
  return writeOciLayout(dir, [
    { tag: 'etcd', layers: etcdLayers(), config: { Entrypoint: ['/usr/bin/etcd'], WorkingDir: '/' } },
    { tag: 'flannel', layers: flannelLayers(), config: { Entrypoint: ['/bin/sh', '/usr/bin/flanneld-stand-in'], WorkingDir: '/' } },
  ])
}
