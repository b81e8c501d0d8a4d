/**
 * Small images in the shapes of Project Atomic's system-container images,
 * written here (nothing copied), for test/e2e/atomic-images.test.ts:
 *
 * - hello-world: as atomic-system-containers' hello-world ships its /exports:
 *   config.json.template in OCI runtime-spec 0.x shape (`ociVersion`
 *   "0.3.0", `platform`, capabilities and rlimits under `linux`), pid, ipc
 *   and mount namespaces only (the host's network and uts), no binds;
 *   service.template with `ExecStart=/bin/runc start "$NAME"` (runc 0.x's
 *   create-and-run) and `ExecStop=/bin/runc kill "$NAME" KILL`; no
 *   manifest, so `$PORT` and `$RECEIVER` need `--set`. It answers HTTP on
 *   $PORT with "Hi $RECEIVER" (busybox nc).
 * - stubborn: the defaults' templates; PID 1 is a shell that ignores SIGTERM.
 * - all-vars: noContainerService with a host file (renameFiles to
 *   /etc/$NAME/atomic.env, installedFilesTemplate) listing every variable
 *   Atomic set, sysctr's STOP_TIMEOUT and a manifest defaultValues one.
 * - echo-socket: socket activation: socket.template (ListenStream on $PORT,
 *   WantedBy=sockets.target) and a service.template without [Install]; the
 *   container's PID 1 (a perl script, Debian's perl binary) accepts on fd 3
 *   and answers with the LISTEN_FDS/LISTEN_PID it was given and its own PID.
 */
import { readFileSync } from 'node:fs'
import type { LayerEntry, WrittenImage } from './deps'
import { writeOciLayout } from './deps'
import { binariesLayer, mountPoints } from './rootfs'

export const ATOMIC_IMAGES = ['hello-world', 'stubborn', 'echo-socket', 'all-vars'] as const

/** Every variable Atomic set (and sysctr's own), as all-vars' host file lists them. */
export const ATOMIC_VARIABLES = ['NAME', 'DESTDIR', 'EXEC_START', 'EXEC_STOP', 'EXEC_STARTPRE', 'EXEC_STOPPOST', 'HOST_UID', 'HOST_GID', 'IMAGE_NAME', 'IMAGE_ID', 'RUN_DIRECTORY', 'STATE_DIRECTORY', 'CONF_DIRECTORY', 'PIDFILE', 'UUID', 'RUNTIME', 'ALL_PROCESS_CAPABILITIES', 'ATOMIC', 'ADDTL_MOUNTS', 'STOP_TIMEOUT', 'GREETING'] as const

function busyboxLayer(applets: string[]): LayerEntry[] {
  return [
    { path: 'bin/', type: 'directory' },
    { path: 'bin/busybox', content: readFileSync('/bin/busybox'), mode: 0o755 },
    ...applets.map((a) => ({ path: `bin/${a}`, type: 'symlink' as const, linkname: 'busybox' })),
    ...mountPoints(['/proc', '/sys', '/dev', '/tmp', '/run', '/etc']),
    { path: 'etc/passwd', content: 'root:x:0:0:root:/:/bin/sh\n' },
  ]
}

/** hello-world's config in the 0.x shape Atomic's image shipped (capabilities and rlimits under linux). */
function helloConfigTemplate(): string {
  return JSON.stringify(
    {
      ociVersion: '0.3.0',
      platform: { os: 'linux', arch: 'amd64' },
      process: {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args: ['/bin/sh', '/usr/bin/hello'],
        env: ['PATH=/bin', 'TERM=xterm', 'PORT=$PORT', 'RECEIVER=$RECEIVER'],
        cwd: '/',
      },
      root: { path: 'rootfs', readonly: true },
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
        { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
        { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
        { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev'] },
        { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      ],
      hooks: {},
      linux: {
        capabilities: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
        rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
        resources: { devices: [{ allow: false, access: 'rwm' }] },
        namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'mount' }],
      },
    },
    null,
    2,
  )
}

const HELLO_SERVICE = `[Unit]
Description=Hello World System Container

[Service]
ExecStart=/bin/runc start "$NAME"
ExecStop=/bin/runc kill "$NAME" KILL
WorkingDirectory=$DESTDIR
Restart=on-failure

[Install]
WantedBy=multi-user.target
`

const HELLO_SCRIPT = `#!/bin/sh
while true; do
  printf 'HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nHi %s\\n' "$RECEIVER" | nc -l -p "$PORT"
done
`

const ECHO_SERVER = `#!/usr/bin/perl
# Accepts on the listening socket systemd passed (sd_listen_fds: fd 3) and says what it was given.
open(my $l, '+<&=', 3) or die "no fd 3: $!";
while (accept(my $c, $l)) {
  print $c "hello through the passed socket LISTEN_FDS=$ENV{LISTEN_FDS} LISTEN_PID=$ENV{LISTEN_PID} pid=$$\\n";
  close $c;
}
`

const ECHO_SOCKET = `[Unit]
Description=echo socket ($NAME)

[Socket]
ListenStream=127.0.0.1:$PORT

[Install]
WantedBy=sockets.target
`

const ECHO_SERVICE = `[Unit]
Description=echo service ($NAME), started by $NAME.socket
Requires=$NAME.socket
After=$NAME.socket

[Service]
ExecStartPre=$EXEC_STARTPRE
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
ExecStopPost=$EXEC_STOPPOST
# Unit lines that touch the host, as Atomic's units have them: systemd makes /run/$NAME, and a stop leaves a mark.
RuntimeDirectory=$NAME
ExecStopPost=/bin/sh -c 'date +%%s > /var/tmp/$NAME.stopped'
WorkingDirectory=$DESTDIR
Delegate=yes
KillMode=mixed
`

/** Build the three images into the OCI layout at `dir` (tags hello-world, stubborn, echo-socket). */
export async function buildAtomicImages(dir: string): Promise<WrittenImage[]> {
  const perl = binariesLayer([{ host: '/usr/bin/perl', path: 'usr/bin/perl' }], mountPoints(['/proc', '/sys', '/dev', '/tmp', '/run']))
  return writeOciLayout(dir, [
    {
      tag: 'hello-world',
      layers: [
        busyboxLayer(['sh', 'nc', 'printf']),
        [
          { path: 'usr/', type: 'directory' },
          { path: 'usr/bin/', type: 'directory' },
          { path: 'usr/bin/hello', content: HELLO_SCRIPT, mode: 0o755 },
          { path: 'exports/', type: 'directory' },
          { path: 'exports/config.json.template', content: helloConfigTemplate() },
          { path: 'exports/service.template', content: HELLO_SERVICE },
        ],
      ],
    },
    {
      tag: 'stubborn',
      layers: [busyboxLayer(['sh', 'sleep'])],
      // A shell as PID 1 with SIGTERM ignored: only SIGKILL ends it.
      config: { Entrypoint: ['/bin/sh', '-c', "trap '' TERM; while :; do sleep 1; done"], Env: ['PATH=/bin'], WorkingDir: '/' },
    },
    {
      tag: 'all-vars',
      layers: [
        [
          { path: 'exports/', type: 'directory' },
          { path: 'exports/hostfs/', type: 'directory' },
          { path: 'exports/hostfs/etc/', type: 'directory' },
          { path: 'exports/hostfs/etc/atomic.env', content: ATOMIC_VARIABLES.map((v) => `${v}=$${v}`).join('\n') + '\n' },
          { path: 'exports/tmpfiles.template', content: 'd ${RUN_DIRECTORY}/$NAME 0755 $HOST_UID $HOST_GID -\n' },
          {
            path: 'exports/manifest.json',
            content: JSON.stringify({
              version: '1.0',
              noContainerService: true,
              defaultValues: { GREETING: 'hello from the manifest' },
              renameFiles: { '/etc/atomic.env': '/etc/$NAME/atomic.env' },
              installedFilesTemplate: ['/etc/atomic.env'],
            }),
          },
        ],
      ],
    },
    {
      tag: 'echo-socket',
      layers: [
        perl,
        [
          { path: 'usr/bin/echo-server', content: ECHO_SERVER, mode: 0o755 },
          { path: 'exports/', type: 'directory' },
          { path: 'exports/socket.template', content: ECHO_SOCKET },
          { path: 'exports/service.template', content: ECHO_SERVICE },
          { path: 'exports/manifest.json', content: JSON.stringify({ version: '1.0', defaultValues: { PORT: '9311' } }) },
        ],
      ],
      config: { Entrypoint: ['/usr/bin/perl', '/usr/bin/echo-server'], Env: ['PATH=/usr/bin:/bin'], WorkingDir: '/' },
    },
  ])
}
