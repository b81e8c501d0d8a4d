/**
 * Rootfs layers for images that run real binaries taken from Debian packages:
 * a binary plus every shared library `ldd` names for it (resolved against the
 * unpacked packages first, then the host), laid out merged-/usr like Debian 12
 * (usr/lib/x86_64-linux-gnu/*, lib -> usr/lib, lib64/ld-linux-x86-64.so.2 ->
 * ../lib/x86_64-linux-gnu/...). glibc's built-in search path on Debian has
 * /lib/x86_64-linux-gnu and /usr/lib/x86_64-linux-gnu, so no ld.so.cache is
 * needed in the image.
 *
 * Every mount destination a config.json names must already exist in the
 * image: the root is read-only and the checkout shares inodes with the store,
 * so runc must never have to create a mount point in it.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, realpathSync, statSync } from 'node:fs'
import { posix } from 'node:path'
import type { LayerEntry } from './deps'
import { debRoot } from './debs'

const MULTIARCH = 'x86_64-linux-gnu'

/** Host paths of the shared libraries of `binary` (ldd, unpacked packages searched first). */
export function sharedLibraries(binary: string): string[] {
  const root = debRoot()
  const out = execFileSync('ldd', [binary], {
    encoding: 'utf8',
    env: { PATH: '/usr/bin:/bin', LD_LIBRARY_PATH: [`${root}/usr/lib/${MULTIARCH}`, `${root}/lib/${MULTIARCH}`].join(':') },
  })
  const libs: string[] = []
  for (const line of out.split('\n')) {
    const t = line.trim()
    if (!t || t.startsWith('linux-vdso') || t === 'statically linked') continue
    if (/not found/.test(t)) throw new Error(`${binary}: ldd: ${t} (is its package in harness/daemons/debs.ts DAEMON_DEBS and scripts/setup?)`)
    const m = /=>\s*(\S+)\s*\(/.exec(t) ?? /^(\/\S+)\s*\(/.exec(t)
    if (m) libs.push(m[1])
  }
  return libs
}

/** Directory entries for every parent of `paths` (and the paths' own dirs), parents first. */
export function parentDirs(paths: string[]): LayerEntry[] {
  const dirs = new Set<string>()
  for (const p of paths) {
    const parts = p.replace(/\/$/, '').split('/')
    for (let i = 1; i < parts.length; i++) dirs.add(`${parts.slice(0, i).join('/')}/`)
    if (p.endsWith('/')) dirs.add(p)
  }
  return [...dirs].sort((a, b) => a.split('/').length - b.split('/').length || a.localeCompare(b)).map((d) => ({ path: d, type: 'directory' as const }))
}

export interface BinaryInImage {
  /** The file on the build host. */
  host: string
  /** Its path in the image, without the leading slash (e.g. usr/bin/etcd). */
  path: string
}

/**
 * A layer with `binaries` and their shared libraries. Libraries go to
 * usr/lib/x86_64-linux-gnu under their soname (the file content, not the
 * symlink chain); the dynamic loader to the same dir plus the lib64 link.
 */
export function binariesLayer(binaries: BinaryInImage[], extra: LayerEntry[] = []): LayerEntry[] {
  const files = new Map<string, LayerEntry>()
  const add = (path: string, host: string, mode?: number) => {
    if (files.has(path)) return
    const content = readFileSync(realpathSync(host))
    files.set(path, { path, content, mode: mode ?? (statSync(realpathSync(host)).mode & 0o777) })
  }
  let loader: string | undefined
  for (const b of binaries) {
    add(b.path, b.host, 0o755)
    for (const lib of sharedLibraries(b.host)) {
      const name = posix.basename(lib)
      if (name.startsWith('ld-linux')) loader = name
      add(`usr/lib/${MULTIARCH}/${name}`, lib, 0o755)
    }
  }
  const entries: LayerEntry[] = [...files.values(), ...extra]
  const links: LayerEntry[] = [
    { path: 'lib', type: 'symlink', linkname: 'usr/lib' },
    ...(loader ? [{ path: `lib64/${loader}`, type: 'symlink' as const, linkname: `../lib/${MULTIARCH}/${loader}` }] : []),
  ]
  const all = [...links, ...entries]
  return [...parentDirs(all.filter((e) => e.path !== 'lib').map((e) => e.path)).filter((d) => d.path !== 'lib/'), ...all]
}

/** The directories (and empty files) a system-container rootfs needs as mount points. */
export function mountPoints(dirs: string[], files: string[] = []): LayerEntry[] {
  return [
    ...parentDirs([...dirs.map((d) => `${d.replace(/^\/|\/$/g, '')}/`), ...files.map((f) => f.replace(/^\//, ''))]),
    ...files.map((f) => ({ path: f.replace(/^\//, ''), content: '' })),
  ]
}
