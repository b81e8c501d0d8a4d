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
import { join, resolve } from 'node:path'
import type { Systemd } from '../systemd/systemd'
import { connectSystemd } from '../systemd/dbus-systemd'
import { runCommand } from '../util/run-command'
import { HostError } from '../errors'

export interface Reporter {
  info(message: string): void
  warn(message: string): void
}

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
}

export interface ContextOptions {
  env: NodeJS.ProcessEnv
  reporter: Reporter
  systemd?: () => Promise<Systemd>
}

const PACKAGE_ROOT = resolve(__dirname, '..', '..')

export function defaultPaths(env: NodeJS.ProcessEnv = process.env): Paths {
  const stateDir = resolve(env.SYSCTR_STATE_DIR || '/var/lib/sysctr')
  return {
    stateDir,
    storeDir: join(stateDir, 'store'),
    containersDir: join(stateDir, 'containers'),
    unitDir: resolve(env.SYSCTR_UNIT_DIR || '/etc/systemd/system'),
    tmpfilesDir: resolve(env.SYSCTR_TMPFILES_DIR || '/etc/tmpfiles.d'),
    templatesDir: resolve(env.SYSCTR_TEMPLATES_DIR || join(PACKAGE_ROOT, 'templates')),
  }
}

export async function runTmpfiles(mode: 'create' | 'remove', file: string): Promise<void> {
  const r = await runCommand('systemd-tmpfiles', [`--${mode}`, file])
  if (r.code !== 0) {
    throw new HostError('tmpfiles.failed', `systemd-tmpfiles --${mode} ${file} failed (exit ${r.code}): ${r.stderr.trim().split('\n')[0] ?? ''}`)
  }
}

export function buildContext(opts: Partial<ContextOptions> & { reporter: Reporter }): OpsContext {
  const env = opts.env ?? process.env
  let systemd: Promise<Systemd> | undefined
  return {
    paths: defaultPaths(env),
    systemd: () => (systemd ??= (opts.systemd ?? (() => connectSystemd()))()),
    tmpfiles: runTmpfiles,
    reporter: opts.reporter,
  }
}
