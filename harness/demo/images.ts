/**
 * The demo images: etcd -> flannel -> engine stand-ins built from Debian's
 * busybox-static, written as an OCI layout by code (nothing checked in).
 *
 * Layer 1 (shared by all three, one blob): /bin/busybox and the applet links.
 * Layer 2 (per image): the service script and its /exports.
 *
 * - etcd ships Atomic-style legacy templates ($NAME, ${RUN_DIRECTORY}, $$…):
 *   config.json.template, service.template (Type=notify), tmpfiles.template,
 *   manifest.json with defaultValues. It becomes ready after READY_DELAY
 *   seconds and tells systemd with sd_notify READY=1: busybox has no
 *   systemd-notify, but its `logger` writes one datagram to /dev/log, and the
 *   config binds the host's notify socket there; systemd reads the line
 *   "READY=1" of that datagram (the syslog prefix is on the line before).
 *   runc runs without NOTIFY_SOCKET: runc 1.1 would otherwise wait for READY=
 *   on its own proxy socket before forwarding any signal, and stop would hang.
 * - flannel ships Handlebars templates (service.hbs, config.json.hbs):
 *   Requires=/After=etcd.service, refuses to start unless etcd's ready file
 *   exists, then notifies the same way.
 * - engine ships only service.template (Requires=/After=flannel.service);
 *   config.json and tmpfiles come from sysctr's defaults, its process from the
 *   image config's Entrypoint/Cmd.
 *
 * Each binds its own ${RUN_DIRECTORY}/NAME (an own directory: the default
 * grant allows it) at /run/sysctr-demo and writes `NAME.ready` there; the
 * units check on the host, before they start, that the service they need
 * is ready (flannel: /run/etcd/etcd.ready, engine: /run/flannel/flannel.ready),
 * so a start out of order fails.
 */
import { promises as fsp } from 'node:fs'
import type { LayerEntry, WrittenImage } from '../oci-layout-writer'
import { writeOciLayout } from '../oci-layout-writer'

export const DEMO_IMAGES = ['etcd', 'flannel', 'engine'] as const
export type DemoImage = (typeof DEMO_IMAGES)[number]

const APPLETS = ['sh', 'sleep', 'logger', 'printf', 'echo', 'test', 'cat', 'touch', 'date', 'ls', 'true', 'false', 'mkdir', 'rm']

async function baseLayer(busyboxPath: string): Promise<LayerEntry[]> {
  const busybox = await fsp.readFile(busyboxPath)
  const entries: LayerEntry[] = [
    { path: 'bin/', type: 'directory' },
    { path: 'bin/busybox', content: busybox, mode: 0o755 },
  ]
  for (const a of APPLETS) entries.push({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })
  for (const d of ['dev/', 'proc/', 'sys/', 'tmp/', 'run/', 'etc/', 'var/', 'var/lib/']) {
    entries.push({ path: d, type: 'directory', mode: d === 'tmp/' ? 0o1777 : 0o755 })
  }
  entries.push({ path: 'etc/passwd', content: 'root:x:0:0:root:/:/bin/sh\n' })
  entries.push({ path: 'etc/group', content: 'root:x:0:\n' })
  return entries
}

/** The service script every stand-in runs: become ready after READY_DELAY, serve until TERM. */
function serviceScript(): string {
  return `#!/bin/sh
# sysctr demo stand-in: $SERVICE. Waits READY_DELAY seconds, marks itself
# ready in /run/sysctr-demo, notifies systemd, then runs until SIGTERM.
set -u
trap 'echo "$SERVICE: stopping"; rm -f /run/sysctr-demo/$SERVICE.ready; exit 0' TERM INT
if touch /rootfs-write-test 2>/dev/null; then echo "$SERVICE: root filesystem is WRITABLE" >&2; else echo "$SERVICE: root filesystem is read-only"; fi
echo "$SERVICE: starting, ready in \${READY_DELAY:-1}s"
sleep "\${READY_DELAY:-1}"
date +%s > "/run/sysctr-demo/$SERVICE.ready"
# sd_notify without systemd-notify: /dev/log is the host's notify socket (see config.json).
# systemd reads the datagram line by line and takes "READY=1"; logger stays alive while
# its input is open, so systemd can still map its PID to this unit when the message lands.
if [ -S /dev/log ]; then { echo ready; sleep 5; } | logger -t "$(printf '%s\\nREADY=1\\n%s' "$SERVICE" "$SERVICE")" & fi
echo "$SERVICE: ready"
while true; do sleep 1 & wait $!; done
`
}

/** Atomic-style runc config template (legacy $VAR syntax), as system-container images ship it. */
function legacyConfigTemplate(service: string, requires: string): string {
  return JSON.stringify(
    {
      ociVersion: '1.0.2',
      process: {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args: ['/bin/sh', '/usr/bin/demo-service'],
        env: ['PATH=/bin', `SERVICE=${service}`, `REQUIRES=${requires}`, 'READY_DELAY=$READY_DELAY', 'NAME=$NAME'],
        cwd: '/',
        capabilities: {
          bounding: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_AUDIT_WRITE'],
          effective: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_AUDIT_WRITE'],
          permitted: ['CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_AUDIT_WRITE'],
        },
        noNewPrivileges: true,
      },
      root: { path: 'rootfs', readonly: true },
      hostname: '$NAME',
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
        { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
        { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
        { destination: '/run/sysctr-demo', type: 'bind', source: '${RUN_DIRECTORY}/$NAME', options: ['rbind', 'rw'] },
        { destination: '/dev/log', type: 'bind', source: '/run/systemd/notify', options: ['bind'] },
      ],
      linux: {
        namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
        maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
        readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      },
    },
    null,
    2,
  )
}

function etcdLayer(): LayerEntry[] {
  return [
    { path: 'usr/', type: 'directory' },
    { path: 'usr/bin/', type: 'directory' },
    { path: 'usr/bin/demo-service', content: serviceScript(), mode: 0o755 },
    { path: 'exports/', type: 'directory' },
    { path: 'exports/config.json.template', content: legacyConfigTemplate('etcd', '') },
    {
      path: 'exports/service.template',
      content: `[Unit]
Description=etcd (sysctr demo stand-in, $NAME)
After=network.target

[Service]
Type=notify
NotifyAccess=all
Delegate=yes
KillMode=mixed
ExecStartPre=$EXEC_STARTPRE
# runc 1.1 holds back signal forwarding until READY= arrives on its own notify
# proxy; this container notifies through /dev/log instead, so runc gets no NOTIFY_SOCKET.
ExecStart=/usr/bin/env -u NOTIFY_SOCKET $EXEC_START
ExecStopPost=$EXEC_STOPPOST
WorkingDirectory=$DESTDIR
TimeoutStartSec=60
# Cost of a literal dollar in a legacy template: $$ (this comment says $$HOME)

[Install]
WantedBy=multi-user.target
`,
    },
    { path: 'exports/tmpfiles.template', content: 'd ${RUN_DIRECTORY}/$NAME 0755 root root -\n' },
    { path: 'exports/manifest.json', content: JSON.stringify({ version: '1.0', defaultValues: { READY_DELAY: '2' } }, null, 2) },
  ]
}

function flannelLayer(): LayerEntry[] {
  const config = legacyConfigTemplate('flannel', 'etcd')
    .replace(/\$\{RUN_DIRECTORY\}/g, '{{RUN_DIRECTORY}}')
    .replace(/\$READY_DELAY/g, '{{READY_DELAY}}')
    .replace(/\$NAME/g, '{{NAME}}')
  return [
    { path: 'usr/', type: 'directory' },
    { path: 'usr/bin/', type: 'directory' },
    { path: 'usr/bin/demo-service', content: serviceScript(), mode: 0o755 },
    { path: 'exports/', type: 'directory' },
    { path: 'exports/config.json.hbs', content: config },
    {
      path: 'exports/service.hbs',
      content: `[Unit]
Description=flannel (sysctr demo stand-in, {{NAME}})
Requires=etcd.service
After=etcd.service

[Service]
Type=notify
NotifyAccess=all
Delegate=yes
KillMode=mixed
ExecStartPre={{EXEC_STARTPRE}}
# etcd must be ready: its own run directory says so (checked on the host).
ExecStartPre=/usr/bin/test -e {{RUN_DIRECTORY}}/etcd/etcd.ready
ExecStart=/usr/bin/env -u NOTIFY_SOCKET {{EXEC_START}}
ExecStopPost={{EXEC_STOPPOST}}
WorkingDirectory={{DESTDIR}}
TimeoutStartSec=60

[Install]
WantedBy=multi-user.target
`,
    },
    { path: 'exports/manifest.json', content: JSON.stringify({ defaultValues: { READY_DELAY: '1' } }) },
  ]
}

function engineLayer(): LayerEntry[] {
  return [
    { path: 'usr/', type: 'directory' },
    { path: 'usr/bin/', type: 'directory' },
    { path: 'usr/bin/demo-service', content: serviceScript(), mode: 0o755 },
    { path: 'exports/', type: 'directory' },
    {
      path: 'exports/service.template',
      content: `[Unit]
Description=container engine (sysctr demo stand-in, $NAME)
Requires=flannel.service
After=flannel.service

[Service]
Type=simple
Delegate=yes
KillMode=mixed
ExecStartPre=$EXEC_STARTPRE
ExecStartPre=/usr/bin/test -e \${RUN_DIRECTORY}/flannel/flannel.ready
ExecStart=$EXEC_START
ExecStopPost=$EXEC_STOPPOST
WorkingDirectory=$DESTDIR

[Install]
WantedBy=multi-user.target
`,
    },
  ]
}

/** Build the three demo images into the OCI layout at `dir` (tags etcd, flannel, engine). */
export async function buildDemoImages(dir: string, opts: { busybox?: string } = {}): Promise<WrittenImage[]> {
  const base = await baseLayer(opts.busybox ?? '/bin/busybox')
  return writeOciLayout(dir, [
    { tag: 'etcd', layers: [base, etcdLayer()] },
    { tag: 'flannel', layers: [base, flannelLayer()] },
    {
      tag: 'engine',
      layers: [base, engineLayer()],
      // The default templates take the process from here.
      config: { Entrypoint: ['/bin/sh', '/usr/bin/demo-service'], Env: ['PATH=/bin', 'SERVICE=engine', 'READY_DELAY=1'], WorkingDir: '/' },
    },
  ])
}
