/**
 * Where the containers tools' configuration lives, as containers/image finds
 * it: `~/.config/containers/REL` when it exists, else `/etc/containers/REL`
 * (the user's file replaces the system one, it does not add to it). With a
 * config root (tests, composing a root) the home directory is not read.
 * Used for policy.json and registries.d; registries.conf, auth.json and
 * certs.d have rules of their own (see their modules).
 */
import { promises as fsp } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'

export interface ContainersFileOptions {
  /** Read /etc under this directory instead of / ; the home directory is then not read. */
  configRoot?: string
  home?: string
  env?: NodeJS.ProcessEnv
}

/** The home directory whose ~/.config/containers applies; undefined under a config root. */
export function containersHome(opts: ContainersFileOptions): string | undefined {
  return opts.configRoot !== undefined ? undefined : (opts.home ?? (opts.env ?? process.env).HOME ?? homedir())
}

/** `/etc/containers/REL` (under the config root). */
export function systemContainersPath(rel: string, configRoot?: string): string {
  return join(configRoot ?? '/', 'etc/containers', rel)
}

/**
 * The user's REL when it exists, else the system's when it exists, else
 * undefined. `file`: anything that exists (an unreadable path is an error);
 * `dir`: a directory.
 */
export async function locateContainersFile(rel: string, kind: 'file' | 'dir', opts: ContainersFileOptions): Promise<string | undefined> {
  const present = kind === 'dir' ? isDir : exists
  const home = containersHome(opts)
  if (home && (await present(join(home, '.config/containers', rel)))) return join(home, '.config/containers', rel)
  const system = systemContainersPath(rel, opts.configRoot)
  return (await present(system)) ? system : undefined
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.stat(p)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return false
    throw err
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory()
  } catch {
    return false
  }
}
