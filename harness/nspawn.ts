/**
 * Boot a real, throwaway systemd (PID 1 in a systemd-nspawn container made
 * from the host's own /usr, with a volatile tmpfs root) for integration
 * tests. Boots in a few seconds; needs root and systemd-nspawn.
 *
 *   const skip = systemdSkipReason()
 *   describe.skipIf(skip)(`... ${skip ?? ''}`, () => {
 *     let box: SystemdContainer
 *     beforeAll(async () => { box = await bootSystemd({ repo: REPO }) })
 *     afterAll(async () => { await box?.stop() })
 *   })
 *
 * The host talks to the container's systemd directly over D-Bus at
 * `busAddress` (the container's system bus socket through /proc/LEADER/root;
 * EXTERNAL auth works because uid 0 is the same inside and out: no user
 * namespace), and reaches its files through `hostPath()`.
 *
 * Isolation: nspawn started with --keep-unit from the root cgroup puts every
 * container's payload in the same `/payload` cgroup, so two containers
 * booted at once (two test files, two developers) would share
 * /payload/system.slice/... and their systemds would kill each other's
 * processes. We start nspawn in a cgroup of its own (`<own cgroup>/NAME`,
 * when cgroup2 is writable), which also lets stop() kill every leftover
 * process with cgroup.kill.
 *
 * Nothing leaks: stop() powers off (then SIGKILLs the process group and the
 * cgroup); a process 'exit' hook and a detached watchdog (which outlives a
 * SIGKILLed test worker) do the same if stop() is never called.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export interface Bind {
  host: string
  container: string
  readOnly?: boolean
}

export interface BootOptions {
  /** Machine name (also the hostname); default `sysctr-t-<random>`. A random suffix keeps it unique. */
  name?: string
  /** The sysctr checkout, bound read-only at /opt/sysctr. */
  repo: string
  binds?: Bind[]
  /** Give up booting after this long (default 60 s). */
  bootTimeoutMs?: number
  /** Extra kernel-command-line style arguments for the container's systemd. */
  systemdArgs?: string[]
  /**
   * Boot this directory as the container's root (`-D DIR`, persistent: what
   * the boot writes stays in DIR) instead of the host's / with a volatile
   * tmpfs root. DIR needs at least usr/ (e.g. bind the host's /usr read-only
   * with `binds`), the bin/sbin/lib symlinks into it, and etc/ (may be empty).
   */
  directory?: string
}

export interface ExecOptions {
  /** Added to a minimal environment (PATH only); the host's environment is not passed in. */
  env?: Record<string, string>
  input?: string
  /** Default 30 s; the process is SIGKILLed after it. */
  timeoutMs?: number
}

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

export interface SystemdContainer {
  readonly name: string
  /** PID (host namespace) of the container's systemd. */
  readonly leader: number
  /** D-Bus address of the container's system bus, usable from the host. */
  readonly busAddress: string
  /** Where the container's path `p` is, seen from the host. */
  hostPath(p: string): string
  /** Run argv inside the container (all its namespaces). Never rejects on a non-zero exit. */
  exec(argv: string[], opts?: ExecOptions): Promise<ExecResult>
  /** The last lines of the boot log (nspawn + console). */
  logTail(lines?: number): string
  stop(): Promise<void>
}

const MASKED = ['docker-registry.service', 'postgresql.service', 'nftables.service', 'cni-dhcp.service']
const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/** Why a real systemd cannot be booted here (for describe.skipIf), or undefined when it can. */
export function systemdSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux'
  if (process.getuid?.() !== 0) return 'needs root (boots systemd with systemd-nspawn)'
  for (const tool of ['systemd-nspawn', 'nsenter', 'pgrep']) {
    if (!which(tool)) return `needs ${tool} (apt-get install systemd-container util-linux procps)`
  }
  if (!fs.existsSync('/usr/lib/systemd/systemd')) return 'needs systemd installed in the host /usr'
  return undefined
}

export async function bootSystemd(opts: BootOptions): Promise<SystemdContainer> {
  const skip = systemdSkipReason()
  if (skip) throw new Error(`cannot boot systemd: ${skip}`)
  const name = `${opts.name ?? 'sysctr-t'}-${randomBytes(4).toString('hex')}`.slice(0, 60)
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`))
  const logFile = path.join(workDir, 'boot.log')
  const cgroup = createCgroup(name)

  const binds = [{ host: opts.repo, container: '/opt/sysctr', readOnly: true }, ...(opts.binds ?? [])]
  for (const b of binds) {
    if (b.host.includes(':') || b.container.includes(':')) throw new Error(`bind paths cannot contain ':' (${b.host}:${b.container})`)
  }
  const args = [
    '-D',
    opts.directory ?? '/',
    ...(opts.directory ? [] : ['--volatile=yes']),
    '--private-network',
    '--register=no',
    '--keep-unit',
    '-M',
    name,
    '--capability=all',
    '--system-call-filter=@keyring bpf',
    ...binds.map((b) => `--bind${b.readOnly ? '-ro' : ''}=${b.host}:${b.container}`),
    '-b',
    '--',
    'systemd.firstboot=off',
    ...MASKED.map((u) => `systemd.mask=${u}`),
    ...(opts.systemdArgs ?? []),
  ]
  const log = fs.openSync(logFile, 'a')
  // sh moves itself into the container's own cgroup, then becomes nspawn.
  const child = spawn(
    '/bin/sh',
    ['-c', '{ [ -z "$1" ] || echo $$ > "$1"; } 2>/dev/null; shift; exec "$@"', 'sysctr-nspawn', cgroup ? path.join(cgroup, 'cgroup.procs') : '', 'systemd-nspawn', ...args],
    { detached: true, stdio: ['ignore', log, log], env: { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1' } },
  )
  fs.closeSync(log)
  const pid = child.pid!
  let exited = false
  const exitedP = new Promise<void>((resolve) => child.once('exit', () => {
    exited = true
    resolve()
  }))
  child.unref()

  const killNow = (): void => {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      // gone
    }
    if (cgroup) killCgroup(cgroup)
  }
  process.once('exit', killNow)
  const watchdog = startWatchdog(pid, cgroup)

  const tail = (n = 30): string => {
    try {
      return fs.readFileSync(logFile, 'utf8').split('\n').slice(-n).join('\n')
    } catch {
      return '(no log)'
    }
  }
  let stopped = false
  const cleanup = async (): Promise<void> => {
    killNow()
    await Promise.race([exitedP, sleep(5000)])
    if (cgroup) await removeCgroup(cgroup)
    process.removeListener('exit', killNow)
    try {
      if (watchdog.pid) process.kill(watchdog.pid, 'SIGKILL')
    } catch {
      // gone
    }
  }

  try {
    const deadline = Date.now() + (opts.bootTimeoutMs ?? 60_000)
    const leader = await findLeader(pid, () => exited, deadline)
    const box: SystemdContainer = {
      name,
      leader,
      busAddress: `unix:path=/proc/${leader}/root/run/dbus/system_bus_socket`,
      hostPath: (p: string) => path.join(`/proc/${leader}/root`, p),
      exec: (argv, eopts) => nsenterExec(leader, argv, eopts),
      logTail: tail,
      stop: async () => {
        if (stopped) return
        stopped = true
        if (!exited) {
          await nsenterExec(leader, ['systemctl', 'poweroff'], { timeoutMs: 10_000 }).catch(() => undefined)
          await Promise.race([exitedP, sleep(20_000)])
        }
        if (!exited) {
          try {
            process.kill(pid, 'SIGTERM')
          } catch {
            // gone
          }
          await Promise.race([exitedP, sleep(5_000)])
        }
        await cleanup()
        fs.rmSync(workDir, { recursive: true, force: true })
      },
    }
    // Right after exec, systemd's private socket is not there yet: retry until systemctl connects.
    let r: ExecResult
    for (;;) {
      r = await nsenterExec(leader, ['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.max(1000, deadline - Date.now()) })
      // 'offline': PID 1 has not made /run/systemd/system yet (a persistent root's second boot can be that quick).
      if ((!/Failed to connect to bus/.test(r.stderr) && r.stdout.trim() !== 'offline') || Date.now() > deadline || exited) break
      await sleep(100)
    }
    const state = r.stdout.trim()
    if (state !== 'running' && state !== 'degraded') {
      throw new Error(`systemd in ${name} did not finish booting (is-system-running: '${state || r.stderr.trim()}')`)
    }
    if (!fs.existsSync(box.hostPath('/run/dbus/system_bus_socket'))) throw new Error(`no D-Bus system bus in ${name}`)
    return box
  } catch (err) {
    stopped = true
    const message = `${err instanceof Error ? err.message : String(err)}\n--- ${logFile} (tail) ---\n${tail()}`
    await cleanup()
    fs.rmSync(workDir, { recursive: true, force: true })
    throw new Error(message, { cause: err })
  }
}

async function findLeader(pid: number, exited: () => boolean, deadline: number): Promise<number> {
  // nspawn's child forks the container's PID 1 and exits; wait for a child that is systemd.
  while (Date.now() < deadline) {
    if (exited()) throw new Error('systemd-nspawn exited during boot')
    const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
    for (const line of r.stdout.split('\n')) {
      const child = Number(line.trim())
      if (!child) continue
      try {
        if (fs.readFileSync(`/proc/${child}/comm`, 'utf8').trim() === 'systemd') return child
      } catch {
        // raced with its exit
      }
    }
    await sleep(50)
  }
  throw new Error('timed out waiting for the container systemd to start')
}

function nsenterExec(leader: number, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const p = spawn('nsenter', ['-t', String(leader), '-a', '--', ...argv], {
      env: { PATH: CONTAINER_PATH, LANG: 'C.UTF-8', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${opts.timeoutMs ?? 30_000} ms)`
      p.kill('SIGKILL')
    }, opts.timeoutMs ?? 30_000)
    p.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    p.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : -1), stdout, stderr })
    })
    p.stdin.on('error', () => undefined)
    p.stdin.end(opts.input ?? '')
  })
}

/** A detached shell that tears the container down if this process dies without stop(). */
function startWatchdog(nspawnPid: number, cgroup: string | undefined): ChildProcess {
  const script = [
    'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done',
    'kill -0 "$2" 2>/dev/null || exit 0',
    'kill -TERM "$2" 2>/dev/null; sleep 5',
    'kill -KILL -"$2" 2>/dev/null',
    '[ -z "$3" ] || echo 1 > "$3/cgroup.kill" 2>/dev/null',
  ].join('\n')
  const w = spawn('/bin/sh', ['-c', script, 'sysctr-nspawn-watchdog', String(process.pid), String(nspawnPid), cgroup ?? ''], {
    detached: true,
    stdio: 'ignore',
  })
  w.unref()
  return w
}

/** A cgroup2 directory of our own for the container, or undefined when cgroup2 is not writable here. */
function createCgroup(name: string): string | undefined {
  try {
    const mount = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[f.indexOf('-') + 1] === 'cgroup2')?.[4]
    const own = fs
      .readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'))
      ?.slice(3)
    if (!mount || own === undefined) return undefined
    const dir = path.join(mount, own, name)
    fs.mkdirSync(dir)
    return dir
  } catch {
    return undefined
  }
}

function killCgroup(dir: string): void {
  try {
    fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1')
  } catch {
    // no cgroup.kill (kernel < 5.14) or already gone
  }
}

async function removeCgroup(dir: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      rmdirTree(dir)
      return
    } catch {
      killCgroup(dir)
      await sleep(100)
    }
  }
}

function rmdirTree(dir: string): void {
  if (!fs.existsSync(dir)) return
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmdirTree(path.join(dir, e.name))
  fs.rmdirSync(dir)
}

function which(tool: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
    .split(':')
    .concat(['/usr/sbin', '/usr/bin'])
    .some((d) => {
      try {
        fs.accessSync(path.join(d, tool), fs.constants.X_OK)
        return true
      } catch {
        return false
      }
    })
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/**
 * The smallest tree systemd boots from (bootSystemd({ directory })) with the
 * host's /usr bound in: the top directories, the merged-/usr links and
 * os-release (nspawn looks for it before it binds /usr in). `machineId`: also
 * a fixed /etc/machine-id (a root that is booted more than once keeps its
 * identity, and its journal, across the boots).
 */
export async function makeBootableRoot(dir: string, opts: { machineId?: boolean } = {}): Promise<void> {
  for (const d of ['usr', 'etc', 'var/tmp', 'opt', 'root', 'tmp', 'home']) await fs.promises.mkdir(path.join(dir, d), { recursive: true })
  for (const [link, target] of [
    ['bin', 'usr/bin'],
    ['sbin', 'usr/sbin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
  ]) {
    await fs.promises.symlink(target, path.join(dir, link))
  }
  await fs.promises.copyFile('/usr/lib/os-release', path.join(dir, 'etc/os-release'))
  if (opts.machineId) await fs.promises.writeFile(path.join(dir, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`)
}
