/**
 * Images for the update/rollback tests: one service, `svc`, in versions
 * v1, v2, v3 (tags svc-v1, svc-v2, svc-v3), each busybox based like the
 * demo images:
 *
 *   layer 1  busybox and its applet links (shared, one blob)
 *   layer 2  the service script and the /exports templates (shared)
 *   layer 3  /etc/svc-version and exports/manifest.json (VERSION default);
 *            v3 also /etc/svc-broken, on which the script exits 1 before
 *            becoming ready, so its start job fails.
 *
 * So an update from one version to the next changes one small layer. The unit
 * (Type=notify, readiness through /dev/log bound to systemd's notify socket,
 * as in harness/demo/images.ts) has `Description=svc $VERSION`, which lets a
 * FakeSystemd fail v3 by its unit; the process env carries VERSION and GREETING.
 */
import type { LayerEntry, WrittenImage } from '../../harness/oci-layout-writer'
import { writeOciLayout } from '../../harness/oci-layout-writer'
import { busyboxLayer } from './busybox-layer'

export const SVC_VERSIONS = ['v1', 'v2', 'v3'] as const

const APPLETS = ['sh', 'sleep', 'logger', 'printf', 'echo', 'cat', 'touch', 'true']

const baseLayer = (busyboxPath: string): Promise<LayerEntry[]> => busyboxLayer(busyboxPath, APPLETS)

const SCRIPT = `#!/bin/sh
set -u
trap 'echo "svc: stopping"; exit 0' TERM INT
if [ -e /etc/svc-broken ]; then echo "svc $(cat /etc/svc-version): broken build, exiting" >&2; exit 1; fi
echo "svc $(cat /etc/svc-version) starting (VERSION=$VERSION GREETING=$GREETING)"
if [ -S /dev/log ]; then { echo ready; sleep 5; } | logger -t "$(printf 'svc\\nREADY=1\\nsvc')" & fi
while true; do sleep 1 & wait $!; done
`

const CONFIG = JSON.stringify(
  {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/bin/sh', '/usr/bin/svc'],
      env: ['PATH=/bin', 'VERSION=$VERSION', 'GREETING=$GREETING'],
      cwd: '/',
      capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: '$NAME',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
      { destination: '/dev/log', type: 'bind', source: '/run/systemd/notify', options: ['bind'] },
    ],
    linux: { namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }] },
  },
  null,
  2,
)

const SERVICE = `[Unit]
Description=svc $VERSION
After=network.target

[Service]
Type=notify
NotifyAccess=all
Delegate=yes
KillMode=mixed
ExecStartPre=$EXEC_STARTPRE
ExecStart=/usr/bin/env -u NOTIFY_SOCKET $EXEC_START
ExecStopPost=$EXEC_STOPPOST
WorkingDirectory=$DESTDIR
TimeoutStartSec=30

[Install]
WantedBy=multi-user.target
`

function appLayer(tmpfiles: string): LayerEntry[] {
  return [
    { path: 'usr/', type: 'directory' },
    { path: 'usr/bin/', type: 'directory' },
    { path: 'usr/bin/svc', content: SCRIPT, mode: 0o755 },
    { path: 'exports/', type: 'directory' },
    { path: 'exports/config.json.template', content: CONFIG },
    { path: 'exports/service.template', content: SERVICE },
    { path: 'exports/tmpfiles.template', content: tmpfiles },
  ]
}

function versionLayer(v: string): LayerEntry[] {
  return [
    { path: 'etc/svc-version', content: `${v}\n` },
    ...(v === 'v3' ? [{ path: 'etc/svc-broken', content: 'yes\n' }] : []),
    { path: 'exports/manifest.json', content: JSON.stringify({ version: '1.0', defaultValues: { VERSION: v, GREETING: 'hello' } }) },
  ]
}

/**
 * Write svc-v1, svc-v2, svc-v3 into the OCI layout at dir. `tmpfiles`: the
 * image's tmpfiles template (default `d /run/svc-$NAME ...`; a --user install
 * needs one under ${RUN_DIRECTORY}).
 */
export async function buildUpdateImages(dir: string, opts: { busybox?: string; tmpfiles?: string } = {}): Promise<WrittenImage[]> {
  const base = await baseLayer(opts.busybox ?? '/bin/busybox')
  const app = appLayer(opts.tmpfiles ?? 'd /run/svc-$NAME 0755 root root -\n')
  return writeOciLayout(
    dir,
    SVC_VERSIONS.map((v) => ({ tag: `svc-${v}`, layers: [base, app, versionLayer(v)] })),
  )
}
