/**
 * The context of `--user`: a rootless install for the calling user, under
 * the user's own systemd. Nothing in this path needs root.
 *
 *   state and store   $XDG_DATA_HOME/sysctr (default ~/.local/share/sysctr), mode 0700
 *   units             $XDG_CONFIG_HOME/systemd/user (default ~/.config/systemd/user)
 *   tmpfiles entries  $XDG_CONFIG_HOME/user-tmpfiles.d (what the user manager's
 *                     systemd-tmpfiles-setup.service reads at its start)
 *   runtime state     $XDG_RUNTIME_DIR (runc's default --root there: $XDG_RUNTIME_DIR/runc)
 *   systemd           the user manager over $DBUS_SESSION_BUS_ADDRESS, else
 *                     unix:path=$XDG_RUNTIME_DIR/bus; the same D-Bus code as
 *                     the system mode (dbus-systemd.ts), job results and all
 *
 * The store keeps image ownership as metadata (store/ownership.ts,
 * "bare-user"), the runtime config gets a user namespace
 * (runtime/rootless.ts), the unit's [Install] targets default.target
 * (systemd/user-unit.ts).
 */
import { readFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import { HostError, UsageError } from '../errors'
import type { Systemd } from '../systemd/systemd'
import { defaultPaths, runTmpfiles, stateDirPaths, type IdRange, type OpsContext, type Reporter, type UserMode } from './context'

/** The first range of `user` (by name or uid) in an /etc/subuid-style file's text. */
export function subordinateRange(text: string, userName: string, uid: number): IdRange | undefined {
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':')
    if (who !== userName && who !== String(uid)) continue
    const s = Number(start)
    const c = Number(count)
    if (Number.isSafeInteger(s) && Number.isSafeInteger(c) && s > 0 && c > 0) return { start: s, count: c }
  }
  return undefined
}

function readRange(file: string, userName: string, uid: number): IdRange | undefined {
  try {
    return subordinateRange(readFileSync(file, 'utf8'), userName, uid)
  } catch {
    return undefined
  }
}

/** An XDG base directory: the variable when it is an absolute path, else HOME/fallback (the spec's rule). */
function xdgDir(env: NodeJS.ProcessEnv, name: string, home: string, fallback: string): string {
  const v = env[name]
  return v && isAbsolute(v) ? resolve(v) : join(home, fallback)
}

/** Who and where, for --user: refuses root and a session without a runtime dir. */
export function userMode(env: NodeJS.ProcessEnv = process.env): UserMode {
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  if (uid === 0) {
    throw new UsageError('usage.user-as-root', '--user installs rootless containers for a non-root user; root installs system containers', {
      hint: 'run it as the user (e.g. `runuser -u USER -- sysctr install --user IMAGE` with that user\'s XDG_RUNTIME_DIR), or use --system',
    })
  }
  const info = userInfo()
  const home = env.HOME && isAbsolute(env.HOME) ? env.HOME : info.homedir
  const runtimeDir = env.XDG_RUNTIME_DIR && isAbsolute(env.XDG_RUNTIME_DIR) ? resolve(env.XDG_RUNTIME_DIR) : undefined
  if (!runtimeDir) {
    throw new HostError('user.no-runtime-dir', 'XDG_RUNTIME_DIR is not set: no user session (and so no user systemd) to install into', {
      hint: `log in as ${info.username}, or have root run \`loginctl enable-linger ${info.username}\` and set XDG_RUNTIME_DIR=/run/user/${uid}`,
    })
  }
  const subuid = readRange('/etc/subuid', info.username, uid)
  const subgid = readRange('/etc/subgid', info.username, uid)
  return {
    uid,
    gid,
    userName: info.username,
    runtimeDir,
    dataHome: xdgDir(env, 'XDG_DATA_HOME', home, '.local/share'),
    configHome: xdgDir(env, 'XDG_CONFIG_HOME', home, '.config'),
    ...(subuid ? { subuid } : {}),
    ...(subgid ? { subgid } : {}),
  }
}

/** The user's systemd-tmpfiles (`--user`): the entry is applied as the user, in the user's terms. */
export function runUserTmpfiles(mode: 'create' | 'remove', file: string): Promise<void> {
  return runTmpfiles(mode, file, true)
}

export function buildUserContext(opts: { reporter: Reporter; env?: NodeJS.ProcessEnv; systemd?: () => Promise<Systemd> }): OpsContext {
  const env = opts.env ?? process.env
  const user = userMode(env)
  const busAddress = env.DBUS_SESSION_BUS_ADDRESS || `unix:path=${user.runtimeDir}/bus`
  let systemd: Promise<Systemd> | undefined
  return {
    paths: {
      ...stateDirPaths(join(user.dataHome, 'sysctr')),
      unitDir: join(user.configHome, 'systemd', 'user'),
      tmpfilesDir: join(user.configHome, 'user-tmpfiles.d'),
      templatesDir: defaultPaths(env).templatesDir,
    },
    systemd: () => (systemd ??= (opts.systemd ?? (async () => (await import('../systemd/dbus-systemd')).connectSystemd({ busAddress })))()),
    tmpfiles: runUserTmpfiles,
    reporter: opts.reporter,
    user,
  }
}
