/**
 * Pieces of the runc config.json templates the daemon images ship, in the
 * shape Project Atomic's system-container images used (OCI runtime spec
 * 1.0.0, `$VAR` legacy templates rendered by sysctr at install).
 */

/** The same list in every capability set (as Atomic's etcd wrote it). */
export function capabilitySets(caps: string[]): Record<string, string[]> {
  return { bounding: caps, effective: caps, inheritable: caps, permitted: caps, ambient: caps }
}

/** /proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys (read-only): what every container gets. */
export function baseMounts(): object[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ]
}

export function bind(source: string, destination: string, mode: 'ro' | 'rw'): object {
  return { type: 'bind', source, destination, options: ['rbind', mode, 'rprivate'] }
}

/**
 * Where runc 1.1 puts its sd_notify proxy socket inside the container (it
 * binds its own socket dir there and sets NOTIFY_SOCKET to it); the image
 * ships these directories so runc needs no mount point in the read-only root.
 * Newer runc uses /run/notify, older ones the dirname of the host's
 * NOTIFY_SOCKET (/run/systemd).
 */
export const NOTIFY_MOUNT_POINTS = ['/run/notify', '/run/systemd']

export function json(spec: object): string {
  return `${JSON.stringify(spec, null, '\t')}\n`
}
