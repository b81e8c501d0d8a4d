/**
 * An etcd system-container image built from Debian 12's etcd-server and
 * etcd-client (3.4.23), in the shape of Project Atomic's etcd image
 * (projectatomic/atomic-system-containers etcd/): the real /usr/bin/etcd and
 * etcdctl, and /exports with
 *
 * - config.json.template: OCI runtime spec 1.0.0 as Atomic shipped it. The
 *   process is etcd itself, configured by ETCD_* environment variables from
 *   the values; root read-only; the host network (no network namespace: etcd
 *   serves on the host's 127.0.0.1:2379), and, as Atomic's etcd asked, the
 *   host UTS namespace (only pid, ipc, mount are new) and CAP_DAC_READ_SEARCH
 *   on top of AUDIT_WRITE, KILL, NET_BIND_SERVICE in every set; RLIMIT_NOFILE
 *   1024; binds ${STATE_DIRECTORY}/$NAME -> /var/lib/etcd rw (the data dir),
 *   ${RUN_DIRECTORY}/$NAME -> /var/run/etcd rw, /etc/resolv.conf ro,
 *   ${CONF_DIRECTORY}/$NAME -> /etc/etcd ro; all devices denied.
 * - service.template: Type=notify, NotifyAccess=all, ExecStart=$EXEC_START,
 *   ExecStop=$EXEC_STOP, ExecStopPost=$EXEC_STOPPOST, WantedBy=multi-user.target.
 * - tmpfiles.template: the state, run and conf directories of $NAME.
 * - manifest.json: defaultValues for every ETCD_* the config uses, and
 *   renameFiles mapping the hostfs etcdctl to /usr/local/bin/${NAME}ctl.
 * - hostfs/usr/local/bin/etcdctl: the real etcdctl (a Go binary that needs
 *   only libc, so it runs on the host as is; the store keeps one copy of it).
 *
 * Readiness (Type=notify through runc): etcd 3.4 calls sd_notify("READY=1")
 * itself once it serves clients (etcdmain: notifySystemd, go-systemd's
 * daemon.SdNotify reading NOTIFY_SOCKET). systemd gives the unit's main
 * process, runc, NOTIFY_SOCKET=/run/systemd/notify; runc 1.1 does not pass
 * that socket in but proxies it: it binds a socket of its own
 * (/run/runc/ID/notify.sock) into the container, sets the container's
 * NOTIFY_SOCKET to it, waits for a datagram that *starts with* "READY=", and
 * sends systemd "READY=1" with MAINPID=<runc's pid>. So the unit must NOT
 * strip NOTIFY_SOCKET from runc (the busybox demo images do, with
 * `env -u NOTIFY_SOCKET`, because their `logger` datagram starts with a
 * syslog prefix that runc's proxy never recognises, and runc 1.1 forwards no
 * signal until READY= arrives, so stop would hang). A real daemon that sends
 * a plain "READY=1" datagram works with the plain $EXEC_START; runc forwards
 * systemd's SIGTERM to etcd once ready. The message comes from runc, the
 * main pid, so NotifyAccess=main would do here; all is what the stand-in
 * (whose sender is not the main pid) needs, and is kept alike in both.
 *
 * Caveat, seen with runc 1.1.5: a container that exits BEFORE sending READY=
 * leaves `runc run` waiting on its proxy (observed: a stand-in that exited
 * at once hung until TimeoutStartSec and failed as 'timeout', not
 * 'exit-code'; reading runc's code, the proxy's liveness check watches
 * runc's own pid, not the container's).
 * The flannel stand-in, whose failure path the tests exercise, therefore
 * notifies systemd directly instead (flannel.ts); etcd keeps the proxy,
 * which is what an unmodified real daemon gets. Either way the unit needs
 * Delegate=yes: sysctr then sets cgroupsPath to .../NAME.service/container,
 * so the container's processes are the unit's (tracked, killed on stop, and
 * their sd_notify messages mapped to the unit; without it runc puts them in
 * system.slice/NAME and systemd logs "system.slice: Got notification
 * message ..., ignoring").
 */
import { readFileSync } from 'node:fs'
import type { LayerEntry } from './deps'
import { debPath } from './debs'
import { baseMounts, bind, capabilitySets, json, NOTIFY_MOUNT_POINTS } from './runtime-spec'
import { binariesLayer, mountPoints } from './rootfs'

/** The values the config uses and their defaults (manifest.json defaultValues). */
export const ETCD_DEFAULT_VALUES: Record<string, string> = {
  ETCD_DATA_DIR: '/var/lib/etcd',
  ETCD_LISTEN_CLIENT_URLS: 'http://127.0.0.1:2379',
  ETCD_ADVERTISE_CLIENT_URLS: 'http://127.0.0.1:2379',
  ETCD_LISTEN_PEER_URLS: 'http://127.0.0.1:2380',
  ETCD_INITIAL_ADVERTISE_PEER_URLS: 'http://127.0.0.1:2380',
  ETCD_INITIAL_CLUSTER_STATE: 'new',
  ETCD_INITIAL_CLUSTER_TOKEN: 'etcd-cluster',
  ETCD_SNAPSHOT_COUNT: '10000',
  ETCD_HEARTBEAT_INTERVAL: '100',
  ETCD_ELECTION_TIMEOUT: '1000',
  ETCD_MAX_SNAPSHOTS: '5',
  ETCD_MAX_WALS: '5',
  ETCD_ENABLE_V2: 'false',
  ETCD_LOG_LEVEL: 'info',
}

export function etcdConfigTemplate(): string {
  const env = [
    'NAME=$NAME',
    // The member is named after the container; one member per container (initial cluster of one).
    'ETCD_NAME=$NAME',
    'ETCD_INITIAL_CLUSTER=$NAME=$ETCD_INITIAL_ADVERTISE_PEER_URLS',
    ...Object.keys(ETCD_DEFAULT_VALUES).map((k) => `${k}=$${k}`),
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  ]
  return json({
    ociVersion: '1.0.0',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/usr/bin/etcd'],
      env,
      cwd: '/',
      capabilities: capabilitySets(['CAP_DAC_READ_SEARCH', 'CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']),
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    mounts: [
      ...baseMounts(),
      bind('${STATE_DIRECTORY}/${NAME}', '/var/lib/etcd', 'rw'),
      bind('${RUN_DIRECTORY}/${NAME}', '/var/run/etcd', 'rw'),
      bind('/etc/resolv.conf', '/etc/resolv.conf', 'ro'),
      bind('${CONF_DIRECTORY}/${NAME}', '/etc/etcd', 'ro'),
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      // No network namespace (host network), no uts namespace (host name): as Atomic's etcd.
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'mount' }],
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  })
}

export const ETCD_SERVICE_TEMPLATE = `[Unit]
Description=etcd key-value store (system container $NAME)
After=network.target

[Service]
# etcd sends READY=1 itself; runc proxies it to systemd (see harness/daemons/etcd.ts).
Type=notify
NotifyAccess=all
# Delegate=yes: sysctr then puts the container in this unit's cgroup (.../NAME.service/container),
# so systemd tracks and stops its processes and maps their sd_notify messages to this unit.
Delegate=yes
KillMode=mixed
ExecStartPre=$EXEC_STARTPRE
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=$EXEC_STOPPOST
Restart=on-failure
WorkingDirectory=$DESTDIR
TimeoutStartSec=60

[Install]
WantedBy=multi-user.target
`

export const ETCD_TMPFILES_TEMPLATE = `d    \${STATE_DIRECTORY}/\${NAME}   0700 \${HOST_UID} \${HOST_GID} - -
d    \${RUN_DIRECTORY}/\${NAME}     0755 \${HOST_UID} \${HOST_GID} - -
d    \${CONF_DIRECTORY}/\${NAME}    0755 \${HOST_UID} \${HOST_GID} - -
`

export function etcdManifest(): string {
  return `${JSON.stringify(
    {
      version: '1.0',
      defaultValues: ETCD_DEFAULT_VALUES,
      renameFiles: { '/usr/local/bin/etcdctl': '/usr/local/bin/${NAME}ctl' },
    },
    null,
    2,
  )}\n`
}

/** The image's layers: [etcd, etcdctl and libc], [/exports]. */
export function etcdLayers(): LayerEntry[][] {
  const etcdctl = debPath('usr/bin/etcdctl')
  const bins = binariesLayer(
    [
      { host: debPath('usr/bin/etcd'), path: 'usr/bin/etcd' },
      { host: etcdctl, path: 'usr/bin/etcdctl' },
    ],
    mountPoints(['/proc', '/dev', '/sys', '/tmp', '/var/lib/etcd', '/var/run/etcd', '/etc/etcd', ...NOTIFY_MOUNT_POINTS], ['/etc/resolv.conf']),
  )
  const exportsLayer: LayerEntry[] = [
    { path: 'exports/', type: 'directory' },
    { path: 'exports/config.json.template', content: etcdConfigTemplate() },
    { path: 'exports/service.template', content: ETCD_SERVICE_TEMPLATE },
    { path: 'exports/tmpfiles.template', content: ETCD_TMPFILES_TEMPLATE },
    { path: 'exports/manifest.json', content: etcdManifest() },
    { path: 'exports/hostfs/', type: 'directory' },
    { path: 'exports/hostfs/usr/', type: 'directory' },
    { path: 'exports/hostfs/usr/local/', type: 'directory' },
    { path: 'exports/hostfs/usr/local/bin/', type: 'directory' },
    // The same bytes as usr/bin/etcdctl: the content-addressed store keeps one object for both.
    { path: 'exports/hostfs/usr/local/bin/etcdctl', content: readFileSync(etcdctl), mode: 0o755 },
  ]
  return [bins, exportsLayer]
}
