/**
 * The context every operation gets: where things live, how to reach systemd,
 * how to run systemd-tmpfiles, how to report. Built once by the CLI from
 * flags and environment; tests build their own (temp dirs, FakeSystemd).
 *
 * Environment overrides (for tests and unusual hosts; documented in README):
 *   SYSCTR_STATE_DIR     default /var/lib/sysctr  (store/ and containers/ below it)
 *   SYSCTR_UNIT_DIR      default /etc/systemd/system
 *   SYSCTR_TMPFILES_DIR  default /etc/tmpfiles.d
 *   SYSCTR_TEMPLATES_DIR default <sysctr>/templates
 */
import { createHash } from 'node:crypto'
import { isAbsolute, join, relative, resolve } from 'node:path'
import type { Systemd } from '../systemd/systemd'
import { OfflineSystemd } from '../systemd/offline-systemd'
import { runCommand } from '../util/run-command'
import { HostError } from '../errors'

export interface Reporter {
  info(message: string): void
  warn(message: string): void
  /** Transfer progress (optional: without it, pull reports layers through info()). */
  progress?(event: ProgressEvent): void
}

/**
 * What a pull reports per layer: `start` before the first byte, `bytes` as
 * they arrive (cumulative `bytes` of `total`), `done` after the layer is in
 * the store, `skipped` when the store already had it. `index` is 0-based,
 * `count` the number of layers of the image.
 */
export type ProgressEvent =
  | { kind: 'start'; digest: string; index: number; count: number; total: number }
  | { kind: 'bytes'; digest: string; index: number; count: number; total: number; bytes: number }
  | { kind: 'done'; digest: string; index: number; count: number; total: number; bytes: number }
  | { kind: 'skipped'; digest: string; index: number; count: number; total: number }

export interface Paths {
  stateDir: string
  storeDir: string
  /** Deployments: NAME.0, NAME.1 and the active link NAME. */
  containersDir: string
  unitDir: string
  tmpfilesDir: string
  templatesDir: string
}

export interface OpsContext {
  paths: Paths
  /** Connect to systemd lazily: only operations that need it pay for it. */
  systemd(): Promise<Systemd>
  /** Apply (`create`) or undo (`remove`) one tmpfiles.d file. */
  tmpfiles(mode: 'create' | 'remove', file: string): Promise<void>
  reporter: Reporter
  /**
   * Set by --root DIR: the paths above are under DIR, no systemd runs there
   * (systemd() is an OfflineSystemd), and what sysctr writes into rendered
   * files and records names paths as seen from inside DIR once it boots
   * (`inRoot()`); `fromRoot()` maps them back. Unset: DIR is `/`.
   */
  root?: string
  /** The clock for records' createdAt; default the real clock. */
  now?: () => Date
  /** Tests: stop at this kill point (deployment/switch.ts killPoint) as if killed. */
  killAt?: string
  /** $UUID of a new container; default random. */
  uuid?: (name: string, manifestDigest: string) => string
  /** The last `lines` lines of a unit's journal (journalctl -u); absent: none are shown (tests, --root). */
  journal?: (unit: string, lines: number) => Promise<string[]>
  /**
   * Set by --user (ops/user-context.ts): a rootless install for the calling
   * user, under the user's own systemd (units in ~/.config/systemd/user,
   * state in $XDG_DATA_HOME/sysctr), run with a user namespace.
   */
  user?: UserMode
}

/** The calling user, for --user (see ops/user-context.ts). */
export interface UserMode {
  uid: number
  gid: number
  userName: string
  /** $XDG_RUNTIME_DIR (the user manager's runtime dir, /run/user/UID). */
  runtimeDir: string
  /** $XDG_DATA_HOME (default ~/.local/share). */
  dataHome: string
  /** $XDG_CONFIG_HOME (default ~/.config). */
  configHome: string
  /** The user's first /etc/subuid and /etc/subgid ranges, when it has them. */
  subuid?: IdRange
  subgid?: IdRange
}

export interface IdRange {
  start: number
  count: number
}

/** A host path as seen from inside ctx.root (identity without --root). */
export function inRoot(ctx: Pick<OpsContext, 'root'>, hostPath: string): string {
  if (!ctx.root) return hostPath
  const rel = relative(ctx.root, hostPath)
  if (rel.startsWith('..') || isAbsolute(rel)) return hostPath
  return '/' + rel
}

/** A path as seen from inside ctx.root, on the host (identity without --root). */
export function fromRoot(ctx: Pick<OpsContext, 'root'>, path: string): string {
  return ctx.root ? join(ctx.root, path) : path
}

/** A UUID fixed by name and image (RFC 4122 version 5 layout over SHA-256): the same inputs give the same tree. */
export function derivedUuid(name: string, manifestDigest: string): string {
  const h = createHash('sha256').update(`sysctr-container-uuid\0${name}\0${manifestDigest}`).digest()
  h[6] = (h[6]! & 0x0f) | 0x50
  h[8] = (h[8]! & 0x3f) | 0x80
  const x = h.subarray(0, 16).toString('hex')
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`
}

/**
 * The context of `--root DIR`: everything under DIR at the usual places
 * (DIR/var/lib/sysctr/{store,containers}, DIR/etc/systemd/system,
 * DIR/etc/tmpfiles.d), enablement on files (OfflineSystemd), no D-Bus.
 * tmpfiles entries are written but not applied: the tree's own
 * systemd-tmpfiles-setup.service applies /etc/tmpfiles.d when it boots,
 * before any unit of multi-user.target, and what they create (mostly under
 * /run) would not survive until then anyway.
 * Reproducible: $UUID derived from name and manifest digest; createdAt from
 * SOURCE_DATE_EPOCH (seconds), else the epoch.
 */
export function buildRootContext(root: string, opts: { reporter: Reporter; env?: NodeJS.ProcessEnv; templatesDir?: string }): OpsContext {
  const dir = resolve(root)
  const env = opts.env ?? process.env
  const epoch = Number(env.SOURCE_DATE_EPOCH)
  const fixed = new Date(Number.isFinite(epoch) && epoch >= 0 ? epoch * 1000 : 0)
  let systemd: Promise<Systemd> | undefined
  return {
    paths: {
      ...stateDirPaths(join(dir, 'var/lib/sysctr')),
      unitDir: join(dir, 'etc/systemd/system'),
      tmpfilesDir: join(dir, 'etc/tmpfiles.d'),
      templatesDir: opts.templatesDir ?? defaultPaths(env).templatesDir,
    },
    systemd: () => (systemd ??= Promise.resolve(new OfflineSystemd({ root: dir }))),
    tmpfiles: async () => {},
    reporter: opts.reporter,
    root: dir,
    now: () => fixed,
    uuid: derivedUuid,
  }
}

export interface ContextOptions {
  env: NodeJS.ProcessEnv
  reporter: Reporter
  systemd?: () => Promise<Systemd>
}

const PACKAGE_ROOT = resolve(__dirname, '..', '..')

/** The store and the deployments under a state directory (system, --root and --user alike). */
export function stateDirPaths(stateDir: string): Pick<Paths, 'stateDir' | 'storeDir' | 'containersDir'> {
  return { stateDir, storeDir: join(stateDir, 'store'), containersDir: join(stateDir, 'containers') }
}

export function defaultPaths(env: NodeJS.ProcessEnv = process.env): Paths {
  return {
    ...stateDirPaths(resolve(env.SYSCTR_STATE_DIR || '/var/lib/sysctr')),
    unitDir: resolve(env.SYSCTR_UNIT_DIR || '/etc/systemd/system'),
    tmpfilesDir: resolve(env.SYSCTR_TMPFILES_DIR || '/etc/tmpfiles.d'),
    templatesDir: resolve(env.SYSCTR_TEMPLATES_DIR || join(PACKAGE_ROOT, 'templates')),
  }
}

/** Apply (create) or undo (remove) one tmpfiles entry; `user`: the user's own (systemd-tmpfiles --user). */
export async function runTmpfiles(mode: 'create' | 'remove', file: string, user = false): Promise<void> {
  const args = [...(user ? ['--user'] : []), `--${mode}`]
  const r = await runCommand('systemd-tmpfiles', [...args, file])
  if (r.code !== 0) {
    throw new HostError('tmpfiles.failed', `systemd-tmpfiles ${args.join(' ')} ${file} failed (exit ${r.code}): ${r.stderr.trim().split('\n')[0] ?? ''}`)
  }
}

export function buildContext(opts: Partial<ContextOptions> & { reporter: Reporter }): OpsContext {
  const env = opts.env ?? process.env
  let systemd: Promise<Systemd> | undefined
  return {
    paths: defaultPaths(env),
    // dbus-next is loaded only by the commands that talk to systemd (CLI start-up).
    systemd: () => (systemd ??= (opts.systemd ?? (async () => (await import('../systemd/dbus-systemd')).connectSystemd()))()),
    tmpfiles: runTmpfiles,
    reporter: opts.reporter,
    journal: async (unit, lines) => (await import('../systemd/journal')).lastJournalLines(unit, lines),
  }
}
