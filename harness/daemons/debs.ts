/**
 * Debian packages the daemon images are built from, fetched by scripts/setup
 * with `apt-get download` and unpacked with `dpkg -x` into one directory
 * (nothing is installed on the host: an installed etcd-server would start its
 * own etcd.service in every throwaway systemd booted from the host's /usr and
 * take port 2379).
 *
 *   $SYSCTR_DEB_CACHE (default /var/cache/sysctr/debs)/*.deb
 *   $SYSCTR_DEB_CACHE/root/usr/bin/{etcd,etcdctl,ncat}, .../usr/lib/x86_64-linux-gnu/...
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'

/** The packages scripts/setup fetches (keep in step with DAEMON_DEBS there). */
export const DAEMON_DEBS = ['etcd-server', 'etcd-client', 'ncat', 'libpcap0.8', 'liblua5.3-0'] as const

export function debCache(): string {
  return process.env.SYSCTR_DEB_CACHE ?? '/var/cache/sysctr/debs'
}

/** Where the packages are unpacked: a tree shaped like / (usr/bin, usr/lib/...). */
export function debRoot(): string {
  return join(debCache(), 'root')
}

/** A file of the unpacked packages, e.g. debPath('usr/bin/etcd'). */
export function debPath(rel: string): string {
  return join(debRoot(), rel)
}

/** Why the daemon images cannot be built here (for describe.skipIf), or undefined. */
export function daemonsSkipReason(): string | undefined {
  for (const f of ['usr/bin/etcd', 'usr/bin/etcdctl', 'usr/bin/ncat']) {
    if (!existsSync(debPath(f))) return `needs ${debPath(f)} (run scripts/setup: apt-get download ${DAEMON_DEBS.join(' ')} + dpkg -x)`
  }
  if (!existsSync('/usr/bin/ldd')) return 'needs ldd (libc-bin)'
  return undefined
}
