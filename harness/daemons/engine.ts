/**
 * A real container engine as a system container: Docker Engine (dockerd 20.10
 * from Debian's docker.io, with containerd 1.6 and containerd-shim-runc-v2
 * from Debian's containerd, and the host's runc), in an OCI layout shaped
 * like Project Atomic's docker system-container image
 * (projectatomic/atomic-system-containers docker-centos: /exports/
 * config.json.template, service.template, tmpfiles.template, manifest.json).
 * The binaries and the libraries `ldd` names are copied into the image
 * rootfs; nothing of the host is bound in but the directories listed below.
 *
 * Why dockerd and not containerd alone: the test must ask the engine which
 * subnet it uses. dockerd uses one itself (its default bridge, docker0,
 * created from `bip`), and reports it over its socket
 * (`docker network inspect bridge` -> IPAM.Config[0].Subnet/Gateway and
 * the bridge MTU) — exactly how Atomic's docker image consumed flannel's
 * subnet. containerd alone never uses a subnet: only its CRI plugin reads a
 * CNI config, which it reports through the CRI Status RPC, and Debian ships
 * no client for that (crictl is not packaged; `ctr` has no CRI command).
 * dockerd runs its own containerd (a child, socket under /run/docker), so
 * both Debian packages are used.
 *
 * Flannel: the unit has `Requires=`/`After=flannel.service` and
 * `EnvironmentFile=/run/flannel/subnet.env`; its ExecStartPre renders
 * ${RUN_DIRECTORY}/$NAME/daemon.json (`{"bip": FLANNEL_SUBNET, "mtu":
 * FLANNEL_MTU}`) from that environment (systemd expands `${FLANNEL_*}`), and
 * dockerd reads it with --config-file. runc passes no unit environment into
 * the container, so the subnet has to travel in a file; a file rendered at
 * each start also follows a new lease. dockerd speaks sd_notify, and runc
 * forwards READY=1 through its notify proxy: Type=notify.
 *
 * What the rendered config.json asks of the host (install needs --privileged):
 * - the host's network namespace (no `network` namespace: docker0 must be a
 *   host bridge on flannel's subnet); own mount, pid, ipc and uts namespaces;
 * - capabilities ENGINE_CAPABILITIES (CAP_SYS_ADMIN and CAP_NET_ADMIN among
 *   them; the rest are those dockerd hands its own containers by default);
 * - /sys bound read-write (cgroups, bridge sysfs), all devices allowed (rwm);
 * - binds ${STATE_DIRECTORY}/$NAME -> /var/lib/docker,
 *   ${RUN_DIRECTORY}/$NAME -> /run/docker (socket: ${RUN_DIRECTORY}/$NAME/docker.sock),
 *   ${CONF_DIRECTORY}/$NAME -> /etc/docker (dockerd's key.json);
 * - no masked or read-only /proc paths (dockerd writes /proc/sys/net).
 * Left out on purpose: iptables (--iptables=false, no iptables binary in the
 * image) and CAP_SYS_RESOURCE (the test bed's bounding set lacks it; runc
 * refuses to start with a capability it cannot have).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, promises as fsp } from 'node:fs'
import { join, posix } from 'node:path'
import { writeOciLayout, type LayerEntry, type WrittenImage } from './deps'

/** The packages scripts/setup downloads and unpacks for this image (keep in step with ENGINE_DEBS there). */
export const ENGINE_DEBS = ['docker.io', 'containerd'] as const

/** Where scripts/setup unpacks the packages (a tree shaped like /). */
export function engineDebRoot(): string {
  return join(process.env.SYSCTR_DEB_CACHE ?? '/var/cache/sysctr/debs', 'root')
}

/** Binaries in the image: path in the image -> path in the unpacked packages (or on the host). */
export function engineBinaries(debRoot = engineDebRoot(), runc = '/usr/sbin/runc'): Record<string, string> {
  return {
    'usr/bin/dockerd': join(debRoot, 'usr/sbin/dockerd'),
    'usr/bin/docker-proxy': join(debRoot, 'usr/sbin/docker-proxy'),
    'usr/bin/containerd': join(debRoot, 'usr/bin/containerd'),
    'usr/bin/containerd-shim-runc-v2': join(debRoot, 'usr/bin/containerd-shim-runc-v2'),
    'usr/bin/runc': runc,
  }
}

/** The docker CLI of the unpacked docker.io package (the test's client; not in the image). */
export function dockerCli(debRoot = engineDebRoot()): string {
  return join(debRoot, 'usr/bin/docker')
}

/** What is missing to build the image, with the fix; undefined when nothing is. */
export function engineMissing(debRoot = engineDebRoot()): string | undefined {
  const missing = [...Object.values(engineBinaries(debRoot)), dockerCli(debRoot)].filter((f) => !existsSync(f))
  if (missing.length) return `missing ${missing.join(', ')}: run scripts/setup (apt-get download ${ENGINE_DEBS.join(' ')} + dpkg -x into ${debRoot})`
  if (!existsSync('/usr/bin/ldd')) return 'missing ldd (libc-bin)'
  return undefined
}

export const ENGINE_CAPABILITIES = [
  'CAP_SYS_ADMIN',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_NET_BIND_SERVICE',
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_SETFCAP',
  'CAP_MKNOD',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_AUDIT_WRITE',
] as const

/** The libraries (and loader) `ldd` names for the binaries, as absolute host paths. */
function sharedLibraries(binaries: string[]): string[] {
  const libs = new Set<string>()
  for (const bin of binaries) {
    const r = spawnSync('ldd', [bin], { encoding: 'utf8' })
    if (/not a dynamic executable/.test(r.stderr + r.stdout)) continue
    if (r.status !== 0) throw new Error(`ldd ${bin} failed: ${r.stderr.trim()}`)
    for (const line of r.stdout.split('\n')) {
      if (/not found/.test(line)) throw new Error(`ldd ${bin}: ${line.trim()} (install the library on this machine)`)
      const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line)
      if (m) libs.add(m[1])
    }
  }
  return [...libs].sort()
}

/** A path in the merged-/usr image for a host library path (/lib/x -> usr/lib/x, /lib64/x -> usr/lib64/x). */
function imagePathForLibrary(p: string): string {
  const rel = posix.normalize(p).replace(/^\/+/, '')
  return rel.startsWith('usr/') ? rel : `usr/${rel}`
}

function parentDirs(paths: string[]): string[] {
  const dirs = new Set<string>()
  for (const p of paths) {
    const parts = p.split('/').slice(0, -1)
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/') + '/')
  }
  return [...dirs].sort()
}

/** The rootfs layer: binaries, their libraries, mount points, merged-/usr links. */
export async function engineRootfsLayer(opts: { debRoot?: string; runc?: string } = {}): Promise<LayerEntry[]> {
  const bins = engineBinaries(opts.debRoot, opts.runc)
  const libs = sharedLibraries(Object.values(bins))
  const files: LayerEntry[] = []
  for (const [inImage, src] of Object.entries(bins)) files.push({ path: inImage, content: await fsp.readFile(src), mode: 0o755 })
  for (const lib of libs) files.push({ path: imagePathForLibrary(lib), content: await fsp.readFile(lib), mode: 0o755 })
  files.push({ path: 'usr/lib/os-release', content: 'NAME="sysctr engine image"\nID=sysctr-engine\nVERSION_ID=20.10\n' })
  const mountPoints = ['proc/', 'sys/', 'dev/', 'run/', 'tmp/', 'etc/', 'etc/docker/', 'var/', 'var/lib/', 'var/lib/docker/']
  const links: LayerEntry[] = [
    { path: 'bin', type: 'symlink', linkname: 'usr/bin' },
    { path: 'sbin', type: 'symlink', linkname: 'usr/bin' },
    { path: 'lib', type: 'symlink', linkname: 'usr/lib' },
    { path: 'lib64', type: 'symlink', linkname: 'usr/lib64' },
    { path: 'var/run', type: 'symlink', linkname: '../run' },
  ]
  const dirs = [...new Set([...parentDirs(files.map((f) => f.path)), ...mountPoints])].sort()
  return [
    ...dirs.map((path) => ({ path, type: 'directory' as const, mode: path === 'tmp/' ? 0o1777 : 0o755 })),
    ...links,
    ...files,
  ]
}

const caps = [...ENGINE_CAPABILITIES]

/** Atomic-style runc config template (legacy $VAR syntax, OCI 1.0.0). */
export function engineConfigTemplate(): string {
  return JSON.stringify(
    {
      ociVersion: '1.0.0',
      process: {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args: [
          '/usr/bin/dockerd',
          '--config-file=/run/docker/daemon.json',
          '--host=unix:///run/docker/docker.sock',
          '--data-root=/var/lib/docker',
          '--exec-root=/run/docker',
          '--storage-driver=$STORAGE_DRIVER',
          '--iptables=false',
          '--ip-masq=false',
        ],
        env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'NAME=$NAME'],
        cwd: '/',
        capabilities: { bounding: caps, effective: caps, permitted: caps },
        noNewPrivileges: false,
      },
      root: { path: 'rootfs', readonly: true },
      hostname: '$NAME',
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] },
        { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
        { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'rw'] },
        { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
        { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=755'] },
        { destination: '/run/docker', type: 'bind', source: '${RUN_DIRECTORY}/$NAME', options: ['rbind', 'rw'] },
        { destination: '/var/lib/docker', type: 'bind', source: '${STATE_DIRECTORY}/$NAME', options: ['rbind', 'rw'] },
        { destination: '/etc/docker', type: 'bind', source: '${CONF_DIRECTORY}/$NAME', options: ['rbind', 'rw'] },
      ],
      linux: {
        rootfsPropagation: 'rslave',
        resources: { devices: [{ allow: true, access: 'rwm' }] },
        namespaces: [{ type: 'mount' }, { type: 'pid' }, { type: 'ipc' }, { type: 'uts' }],
      },
    },
    null,
    2,
  )
}

/**
 * The unit (legacy template: `$$` is a literal `$`, so systemd gets
 * `${FLANNEL_SUBNET}` and expands it from the EnvironmentFile, and `$$$$1`
 * becomes systemd's `$$1`, the shell's `$1`; `%%` is systemd's literal `%`). The JSON is one single-quoted word: systemd keeps
 * the double quotes in it and still expands the variables.
 */
export function engineServiceTemplate(): string {
  return `[Unit]
Description=Docker Engine (dockerd, Debian docker.io) as system container $NAME, on flannel's subnet
Documentation=man:dockerd(8)
After=network.target flannel.service
Requires=flannel.service

[Service]
Type=notify
NotifyAccess=all
EnvironmentFile=/run/flannel/subnet.env
ExecStartPre=$EXEC_STARTPRE
ExecStartPre=/bin/sh -c 'umask 077; printf "%%s\\n" "$$$$1" > "$$$$2"' engine-network '{"bip": "$\${FLANNEL_SUBNET}", "mtu": $\${FLANNEL_MTU}}' \${RUN_DIRECTORY}/$NAME/daemon.json
ExecStart=$EXEC_START
ExecStopPost=$EXEC_STOPPOST
WorkingDirectory=$DESTDIR
Restart=on-failure
TimeoutStartSec=90
LimitNOFILE=1048576
Delegate=yes
KillMode=mixed

[Install]
WantedBy=multi-user.target
`
}

export function engineTmpfilesTemplate(): string {
  return `d \${RUN_DIRECTORY}/$NAME 0700 root root -
d \${STATE_DIRECTORY}/$NAME 0711 root root -
d \${CONF_DIRECTORY}/$NAME 0700 root root -
`
}

export function engineManifest(): string {
  return JSON.stringify({ version: '1.0', defaultValues: { STORAGE_DRIVER: 'vfs' } }, null, 2)
}

function exportsLayer(): LayerEntry[] {
  return [
    { path: 'exports/', type: 'directory' },
    { path: 'exports/config.json.template', content: engineConfigTemplate() },
    { path: 'exports/service.template', content: engineServiceTemplate() },
    { path: 'exports/tmpfiles.template', content: engineTmpfilesTemplate() },
    { path: 'exports/manifest.json', content: engineManifest() },
  ]
}

/**
 * Write the engine image into the OCI layout at dir (tag `engine` unless
 * told). Layers uncompressed: ~150 MB of binaries gzip slowly and the layout
 * never leaves the machine.
 */
export async function buildEngineImage(dir: string, opts: { tag?: string; debRoot?: string; runc?: string } = {}): Promise<WrittenImage> {
  const missing = engineMissing(opts.debRoot)
  if (missing) throw new Error(`cannot build the engine image: ${missing}`)
  const [img] = await writeOciLayout(dir, [
    {
      tag: opts.tag ?? 'engine',
      layers: [await engineRootfsLayer(opts), exportsLayer()],
      config: { Entrypoint: ['/usr/bin/dockerd'], Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], WorkingDir: '/' },
      compression: 'none',
      annotations: { 'org.opencontainers.image.title': 'dockerd (Debian docker.io 20.10) system container' },
    },
  ])
  return img
}
