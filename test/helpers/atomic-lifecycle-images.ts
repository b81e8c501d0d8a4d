/**
 * Images for test/e2e/atomic-lifecycle.test.ts, written here in the shapes of
 * Project Atomic's integration-test images (tests/test-images in
 * projectatomic/atomic; nothing copied):
 *
 *   runonce    as atomic-test-runonce: labels `atomic.run=once` and
 *              `atomic.type=system`, /exports/manifest.json (defaultValues)
 *              and a config.json.template with root.readonly false, a
 *              hostname ("acme") in its own uts namespace, and its own
 *              network, pid, mount, ipc namespaces. /usr/bin/run.sh writes
 *              into the root (proving it writable), prints a greeting and
 *              exits with $EXIT (default 0).
 *   hostfs     as atomic-test-system-hostfs: a service (sysctr's default unit
 *              and config) whose /exports/hostfs ships a file, a symlink to
 *              it, a dangling symlink (as Atomic's examples do), an absolute
 *              symlink and an empty directory.
 */
import type { LayerEntry, WrittenImage } from '../../harness/oci-layout-writer'
import { writeOciLayout } from '../../harness/oci-layout-writer'
import { busyboxLayer } from './busybox-layer'
import { baseMounts } from '../../harness/daemons/runtime-spec'

const APPLETS = ['sh', 'echo', 'cat', 'hostname', 'sleep', 'true']

const RUN_SH = `#!/bin/sh
echo "written by $NAME" > /etc/written
echo "Hi $RECEIVER from $(hostname), root writable: $(cat /etc/written)"
echo "to stderr" >&2
exit "$EXIT"
`

const mounts = baseMounts()

const RUNONCE_CONFIG = JSON.stringify(
  {
    ociVersion: '0.6.0-dev',
    platform: { os: 'linux', arch: 'amd64' },
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/usr/bin/run.sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm', 'NAME=$NAME', 'RECEIVER=$RECEIVER', 'EXIT=$EXIT'],
      cwd: '/',
    },
    root: { path: 'rootfs', readonly: false },
    hostname: 'acme',
    mounts,
    hooks: {},
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'network' }, { type: 'pid' }, { type: 'mount' }, { type: 'ipc' }, { type: 'uts' }],
    },
  },
  null,
  2,
)

function runonceLayer(): LayerEntry[] {
  return [
    { path: 'usr/', type: 'directory' },
    { path: 'usr/bin/', type: 'directory' },
    { path: 'usr/bin/run.sh', content: RUN_SH, mode: 0o755 },
    { path: 'exports/', type: 'directory' },
    { path: 'exports/manifest.json', content: JSON.stringify({ version: '1.0', defaultValues: { RECEIVER: 'world', EXIT: '0' } }) },
    { path: 'exports/config.json.template', content: RUNONCE_CONFIG },
  ]
}

const SERVICE_SH = `#!/bin/sh
trap 'exit 0' TERM INT
while true; do sleep 1 & wait $!; done
`

/** The hostfs image's files; `v` changes the regular file's content. */
function hostfsLayer(v: 'v1' | 'v2'): LayerEntry[] {
  return [
    { path: 'usr/', type: 'directory' },
    { path: 'usr/bin/', type: 'directory' },
    { path: 'usr/bin/svc', content: SERVICE_SH, mode: 0o755 },
    { path: 'exports/', type: 'directory' },
    { path: 'exports/hostfs/', type: 'directory' },
    { path: 'exports/hostfs/etc/', type: 'directory' },
    { path: 'exports/hostfs/etc/hostfs-test/', type: 'directory' },
    { path: 'exports/hostfs/etc/hostfs-test/greeting', content: `hello ${v}\n` },
    { path: 'exports/hostfs/etc/hostfs-test/greeting-link', type: 'symlink', linkname: 'greeting' },
    // Atomic's examples ship a dangling one: copied as it is.
    { path: 'exports/hostfs/etc/hostfs-test/dangling', type: 'symlink', linkname: '/usr/lib/hostfs-test/not-there' },
    { path: 'exports/hostfs/etc/hostfs-test/abs-link', type: 'symlink', linkname: '/etc/hostfs-target' },
    { path: 'exports/hostfs/var/', type: 'directory' },
    { path: 'exports/hostfs/var/lib/', type: 'directory' },
    { path: 'exports/hostfs/var/lib/hostfs-test/', type: 'directory' },
    { path: 'exports/hostfs/var/lib/hostfs-test/empty/', type: 'directory', mode: 0o750 },
  ]
}

/** runonce, hostfs-v1 and hostfs-v2 in the OCI layout at dir. */
export async function buildAtomicLifecycleImages(dir: string, opts: { busybox?: string } = {}): Promise<WrittenImage[]> {
  const base = await busyboxLayer(opts.busybox ?? '/bin/busybox', APPLETS)
  return writeOciLayout(dir, [
    { tag: 'runonce', layers: [base, runonceLayer()], config: { Labels: { Name: 'atomic-test-runonce', 'atomic.run': 'once', 'atomic.type': 'system' } } },
    ...(['v1', 'v2'] as const).map((v) => ({ tag: `hostfs-${v}`, layers: [base, hostfsLayer(v)], config: { Cmd: ['/bin/sh', '/usr/bin/svc'], Labels: { 'atomic.type': 'system' } } })),
  ])
}
