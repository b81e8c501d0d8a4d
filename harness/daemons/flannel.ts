/**
 * A flannel stand-in image (Debian does not package flannel): busybox sh, the
 * real etcdctl and ncat, doing the part of flanneld's job other units depend
 * on, against the real etcd:
 *
 *   1. read the network config from etcd at $FLANNELD_ETCD_PREFIX/config
 *      (JSON like {"Network":"10.40.0.0/16","SubnetLen":24}; SubnetLen
 *      defaults to 24);
 *   2. lease a subnet: reuse the one whose lease names this host's machine
 *      id, else take the first free one from the network's second subnet on
 *      (flannel's SubnetMin default), creating
 *      $PREFIX/subnets/10.40.N.0-24 = {"PublicIP":...,"BackendType":"none",
 *      "MachineID":...} in one etcd transaction that succeeds only if the key
 *      does not exist yet (two hosts cannot take the same N);
 *   3. write /run/flannel/subnet.env (FLANNEL_NETWORK, FLANNEL_SUBNET=
 *      10.40.N.1/24, FLANNEL_MTU, FLANNEL_IPMASQ) on the host through the
 *      bind of ${RUN_DIRECTORY}/$NAME, atomically (temp file + rename);
 *   4. send READY=1 to $NOTIFY_SOCKET (ncat -U -u: busybox has no
 *      systemd-notify), which is systemd's /run/systemd/notify bound in, not
 *      runc's proxy (see the unit template for why), and run until SIGTERM.
 *      Nothing is renewed (leases have no TTL).
 * With etcd down, step 1 fails within a few seconds and the script exits 1:
 * the start job fails and systemd shows the unit failed.
 *
 * etcd API: v3 (ETCDCTL_API=3, etcdctl 3.4's default), because etcd 3.4
 * serves v2 only with --enable-v2 and v3 has the transaction the lease
 * needs: `create("key") = "0"` then put, atomically. (Real flannel of
 * Atomic's time spoke v2; the key layout /atomic.io/network/{config,subnets/}
 * is the same.)
 *
 * Shape like Atomic's flannel (flannel/ in atomic-system-containers):
 * manifest defaultValues ETCD_ENDPOINTS and AFTER, FLANNELD_ETCD_ENDPOINTS /
 * FLANNELD_ETCD_PREFIX in the environment, ${RUN_DIRECTORY}/${NAME} bound at
 * /run/flannel, `D` tmpfiles entry for it, Requires=/After= etcd
 * ($ETCD_SERVICE, default etcd.service), Type=notify readiness once
 * subnet.env exists (their flanneld-run.sh waited for it, then
 * systemd-notify --ready). What it does NOT ask, because the stand-in does
 * not configure interfaces: real flanneld ran in the host PID namespace with
 * ~all capabilities (NET_ADMIN, SYS_ADMIN...), /dev bound in and
 * /etc/systemd/system/docker.service.d writable. This config keeps new pid,
 * ipc, uts and mount namespaces, no capabilities at all, the host network
 * (etcd on 127.0.0.1), and binds only /run/flannel (rw) and /etc/machine-id
 * (ro, to name the host in the lease), plus a tmpfs on /tmp (ncat's
 * datagram socket needs a writable directory).
 */
import { readFileSync } from 'node:fs'
import type { LayerEntry } from './deps'
import { debPath } from './debs'
import { baseMounts, bind, json, NOTIFY_MOUNT_POINTS } from './runtime-spec'
import { binariesLayer, mountPoints } from './rootfs'

export const FLANNEL_DEFAULT_VALUES: Record<string, string> = {
  ETCD_ENDPOINTS: 'http://127.0.0.1:2379',
  FLANNELD_ETCD_PREFIX: '/atomic.io/network',
  ETCD_SERVICE: 'etcd.service',
  AFTER: 'network.target',
  FLANNEL_MTU: '1450',
  FLANNEL_IPMASQ: 'false',
}

const APPLETS = ['sh', 'awk', 'sed', 'cat', 'mv', 'rm', 'sleep', 'ip', 'head', 'printf', 'echo', 'grep', 'tr']

/** The stand-in's program (busybox sh; not a template: $ here is the shell's). */
export const FLANNEL_SCRIPT = `#!/bin/sh
# flannel stand-in: lease a subnet from etcd, write /run/flannel/subnet.env, notify, wait.
set -u
trap 'echo "flannel: stopping"; exit 0' TERM INT
export ETCDCTL_API=3
ctl() { etcdctl --endpoints="$FLANNELD_ETCD_ENDPOINTS" --dial-timeout=2s --command-timeout=5s "$@"; }
P=$FLANNELD_ETCD_PREFIX

rm -f /run/flannel/subnet.env
if ! config=$(ctl get --print-value-only "$P/config"); then
  echo "flannel: cannot read $P/config from etcd at $FLANNELD_ETCD_ENDPOINTS" >&2
  exit 1
fi
[ -n "$config" ] || { echo "flannel: no network configuration at $P/config in etcd" >&2; exit 1; }
network=$(echo "$config" | sed -n 's/.*"Network"[[:space:]]*:[[:space:]]*"\\([0-9.]*\\/[0-9]*\\)".*/\\1/p')
subnetlen=$(echo "$config" | sed -n 's/.*"SubnetLen"[[:space:]]*:[[:space:]]*\\([0-9]*\\).*/\\1/p')
subnetlen=\${subnetlen:-24}
[ -n "$network" ] || { echo "flannel: $P/config has no Network: $config" >&2; exit 1; }

# "a.b.c.d-LEN first-address" for every subnet of the network but the first.
candidates() {
  # busybox awk here has no math library: no ^, no %; powers and remainders by hand.
  echo "$network $subnetlen" | awk '
    function pow2(n,  r) { r = 1; while (n-- > 0) r *= 2; return r }
    function mod(a, b) { return a - int(a / b) * b }
    function dotted(a) { return int(a / 16777216) "." mod(int(a / 65536), 256) "." mod(int(a / 256), 256) "." mod(a, 256) }
    {
      split($1, c, "/"); split(c[1], o, "."); plen = c[2] + 0; slen = $2 + 0
      if (!(plen >= 1 && slen > plen && 30 >= slen)) { print "flannel: bad Network/SubnetLen" > "/dev/stderr"; exit 2 }
      size = pow2(32 - slen); base = ((o[1] * 256 + o[2]) * 256 + o[3]) * 256 + o[4]
      base = base - mod(base, pow2(32 - plen))
      n = pow2(slen - plen)
      for (i = 1; i < n; i++) { a = base + i * size; print dotted(a) "-" slen, dotted(a + 1) }
    }'
}

machine=$(cat /etc/machine-id 2>/dev/null | tr -dc 0-9a-f)
ip=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub("/.*", "", $4); print $4; exit }')
ip=\${ip:-127.0.0.1}
value="{\\\\\\"PublicIP\\\\\\":\\\\\\"$ip\\\\\\",\\\\\\"BackendType\\\\\\":\\\\\\"none\\\\\\",\\\\\\"MachineID\\\\\\":\\\\\\"$machine\\\\\\"}"

leases=$(ctl get --prefix "$P/subnets/") || { echo "flannel: cannot list $P/subnets/" >&2; exit 1; }
mine=$(echo "$leases" | awk -v m="\\"MachineID\\":\\"$machine\\"" 'prev != "" && index($0, m) { print prev; exit } { prev = $0 }')
lease=
candidates > /tmp/candidates || exit 1
while read -r subnet first; do
  key="$P/subnets/$subnet"
  if [ -n "$mine" ]; then
    [ "$key" = "$mine" ] && { lease=$subnet; break; }
    continue
  fi
  # etcdctl txn reads compares, a blank line, success requests, a blank line, failure requests, a blank line.
  r=$(printf 'create("%s") = "0"\\n\\nput %s "%s"\\n\\n\\n' "$key" "$key" "$value" | ctl txn) || { echo "flannel: etcd transaction failed" >&2; exit 1; }
  case "$r" in SUCCESS*) lease=$subnet; break ;; esac
done < /tmp/candidates
[ -n "$lease" ] || { echo "flannel: no free subnet in $network" >&2; exit 1; }
first=$(grep "^$lease " /tmp/candidates | { read -r _ f; echo "$f"; })

cat > /run/flannel/.subnet.env.tmp <<ENV
FLANNEL_NETWORK=$network
FLANNEL_SUBNET=$first/$subnetlen
FLANNEL_MTU=$FLANNEL_MTU
FLANNEL_IPMASQ=$FLANNEL_IPMASQ
ENV
mv /run/flannel/.subnet.env.tmp /run/flannel/subnet.env
echo "flannel: leased $lease ($first/$subnetlen) of $network"

if [ -n "\${NOTIFY_SOCKET:-}" ]; then
  # ncat stays up 2 s after sending (its stdin stays open): systemd maps the sender's
  # PID to the unit when it reads the datagram, and a sender already gone maps to none.
  { printf 'READY=1\\nSTATUS=leased %s' "$lease"; sleep 2; } | ncat -U -u --send-only "$NOTIFY_SOCKET" || { echo "flannel: sd_notify failed" >&2; exit 1; }
fi
while true; do sleep 3600 & wait $!; done
`

export function flannelConfigTemplate(): string {
  return json({
    ociVersion: '1.0.0',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/bin/sh', '/usr/bin/flanneld-stand-in'],
      env: [
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        'NAME=$NAME',
        'FLANNELD_ETCD_ENDPOINTS=$ETCD_ENDPOINTS',
        'FLANNELD_ETCD_PREFIX=$FLANNELD_ETCD_PREFIX',
        'FLANNEL_MTU=$FLANNEL_MTU',
        'FLANNEL_IPMASQ=$FLANNEL_IPMASQ',
        // systemd's own notify socket, bound in below (runc runs without NOTIFY_SOCKET: see the unit).
        'NOTIFY_SOCKET=/run/systemd/notify',
      ],
      cwd: '/',
      // Nothing beyond what root owning its own files needs: no capabilities.
      capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: '$NAME',
    mounts: [
      ...baseMounts(),
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=1m'] },
      bind('${RUN_DIRECTORY}/${NAME}', '/run/flannel', 'rw'),
      bind('/etc/machine-id', '/etc/machine-id', 'ro'),
      // sd_notify straight to systemd (a socket: connect() works through a read-only bind).
      bind('/run/systemd/notify', '/run/systemd/notify', 'ro'),
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      // Host network only (to reach etcd on 127.0.0.1); real flanneld also used the host PID namespace.
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  })
}

export const FLANNEL_SERVICE_TEMPLATE = `[Unit]
Description=flannel stand-in: subnet lease from etcd (system container $NAME)
Requires=$ETCD_SERVICE
After=$AFTER $ETCD_SERVICE

[Service]
# Ready once /run/flannel/subnet.env is written: READY=1 goes straight to systemd's
# socket (bound in by config.json), not through runc's proxy: runc 1.1 waits for READY=
# on its proxy and never returns when the container exits before it (etcd down), so the
# start would hang until TimeoutStartSec instead of failing. NotifyAccess=all: the
# sender (ncat) is in the unit's cgroup (Delegate=yes below), but not its main process.
Type=notify
NotifyAccess=all
# Delegate=yes: sysctr then puts the container in this unit's cgroup (.../NAME.service/container),
# so systemd tracks and stops its processes and maps their sd_notify messages to this unit.
Delegate=yes
KillMode=mixed
ExecStartPre=$EXEC_STARTPRE
ExecStart=/usr/bin/env -u NOTIFY_SOCKET $EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=$EXEC_STOPPOST
# No Restart=: a start without etcd must end "failed", not loop (Atomic's had Restart=on-failure).
WorkingDirectory=$DESTDIR
TimeoutStartSec=20

[Install]
WantedBy=multi-user.target
`

export const FLANNEL_TMPFILES_TEMPLATE = 'D    ${RUN_DIRECTORY}/${NAME}   0755 ${HOST_UID} ${HOST_GID} - -\n'

export function flannelManifest(): string {
  return `${JSON.stringify({ version: '1.0', defaultValues: FLANNEL_DEFAULT_VALUES }, null, 2)}\n`
}

/** The image's layers: [busybox, etcdctl, ncat and their libraries], [script and /exports]. */
export function flannelLayers(): LayerEntry[][] {
  const bins = binariesLayer(
    [
      { host: debPath('usr/bin/etcdctl'), path: 'usr/bin/etcdctl' },
      { host: debPath('usr/bin/ncat'), path: 'usr/bin/ncat' },
    ],
    [
      { path: 'usr/bin/busybox', content: readFileSync('/bin/busybox'), mode: 0o755 },
      ...APPLETS.map((a) => ({ path: `usr/bin/${a}`, type: 'symlink' as const, linkname: 'busybox' })),
      { path: 'bin', type: 'symlink', linkname: 'usr/bin' },
      ...mountPoints(['/proc', '/dev', '/sys', '/tmp', '/run/flannel', ...NOTIFY_MOUNT_POINTS], ['/etc/machine-id', '/run/systemd/notify']),
      { path: 'etc/passwd', content: 'root:x:0:0:root:/:/bin/sh\n' },
      { path: 'etc/group', content: 'root:x:0:\n' },
    ],
  )
  const exportsLayer: LayerEntry[] = [
    { path: 'usr/', type: 'directory' },
    { path: 'usr/bin/', type: 'directory' },
    { path: 'usr/bin/flanneld-stand-in', content: FLANNEL_SCRIPT, mode: 0o755 },
    { path: 'exports/', type: 'directory' },
    { path: 'exports/config.json.template', content: flannelConfigTemplate() },
    { path: 'exports/service.template', content: FLANNEL_SERVICE_TEMPLATE },
    { path: 'exports/tmpfiles.template', content: FLANNEL_TMPFILES_TEMPLATE },
    { path: 'exports/manifest.json', content: flannelManifest() },
  ]
  return [bins, exportsLayer]
}
