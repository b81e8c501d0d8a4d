/**
 * provision: install the system containers listed in
 * <root>/etc/sysctr/provision.d/*.conf, then start those asked to start.
 * Run at boot by units/sysctr-provision.service (live systemd), or with
 * --root DIR on a tree being composed (then nothing starts: the enabled
 * units start when DIR boots).
 *
 * One entry per file (INI, read with the `ini` package):
 *   image = oci-archive:/usr/share/sysctr/images/etcd.tar   (or a registry reference)
 *   name = etcd                  (default: the file's base name)
 *   set.ETCD_PORT = 2380         (template values; also a [values] section)
 *   enable = true                (default true)
 *   start = true                 (default false)
 *   tls-verify = false           (default true; registries only)
 *   runtime = /usr/bin/runc      (default /usr/bin/runc)
 * `;` and `#` start comments: quote values that contain them.
 *
 * Idempotent: an entry whose container is installed from the same image
 * with the same values is install's no-op path, so a second boot changes
 * nothing. Each entry stands alone: a failure is reported (naming the file
 * and container) and the others go on; the result counts the failures.
 * Files are processed in name order (use 10-etcd.conf, 20-flannel.conf, ...);
 * start order is systemd's: every start job is queued at once and systemd
 * orders them by the units' After=/Requires=.
 */
import { promises as fsp } from 'node:fs'
import { basename, join } from 'node:path'
import * as ini from 'ini'
import { SysctrError, toSysctrError, UsageError } from '../errors'
import type { ImageSource } from '../transports/image-source'
import { describeInput, isLocalInput, openImageSource } from '../transports/open'
import { sourceOptions } from './source-options'
import type { JobResult } from '../systemd/systemd'
import { fromRoot, type OpsContext } from './context'
import { install, type InstallResult } from './install'
import { DEFAULT_RUNTIME } from '../runtime/default-runtime'

export const PROVISION_DIR = '/etc/sysctr/provision.d'

export interface ProvisionEntry {
  /** The .conf file, as seen inside the root. */
  file: string
  name: string
  image: string
  values: Record<string, string>
  enable: boolean
  start: boolean
  tlsVerify: boolean
  runtime: string
}

export type EntryOutcome = 'installed' | 'unchanged' | 'failed'

export interface EntryReport {
  file: string
  name?: string
  outcome: EntryOutcome
  unit?: string
  /** {code, message, exitCode} of the failure. */
  error?: { code: string; message: string; exitCode: number }
}

export interface StartReport {
  unit: string
  result: JobResult | 'failed' | 'deferred'
  error?: { code: string; message: string; exitCode: number }
}

export interface ProvisionResult {
  entries: EntryReport[]
  started: StartReport[]
  /** Entries or starts that failed. */
  failures: number
}

export interface ProvisionOptions {
  /** Directory of .conf files, as seen inside the root; default /etc/sysctr/provision.d. */
  dir?: string
  /**
   * The image source for an entry; undefined leaves it to install (registry
   * or local transport). Default: under --root, local images are opened
   * inside the root (see rootArchiveSource). Tests hand in their own.
   */
  openSource?: (entry: ProvisionEntry) => Promise<ImageSource | undefined>
}

/** Parse one provision.d file. Throws UsageError 'provision.bad-entry' naming the file. */
export function parseProvisionEntry(text: string, file: string): ProvisionEntry {
  const bad = (why: string) => new UsageError('provision.bad-entry', `${file}: ${why}`)
  const doc = ini.parse(text) as Record<string, unknown>
  const str = (k: string): string | undefined => {
    const v = doc[k]
    if (v === undefined) return undefined
    if (typeof v === 'object') throw bad(`${k} must be a value, not a section`)
    return String(v)
  }
  const bool = (k: string, dflt: boolean): boolean => {
    const v = str(k)
    if (v === undefined) return dflt
    if (/^(1|yes|true|on)$/i.test(v)) return true
    if (/^(0|no|false|off)$/i.test(v)) return false
    throw bad(`${k} must be true or false, not "${v}"`)
  }
  const image = str('image')
  if (!image) throw bad('no image = ... (an image reference or oci-archive:/docker-archive:/oci: path)')
  const values: Record<string, string> = {}
  for (const [k, v] of Object.entries(doc)) {
    if (k.startsWith('set.')) {
      if (typeof v === 'object') throw bad(`${k} must be a value`)
      values[k.slice(4)] = String(v)
    }
  }
  const section = doc.values
  if (section !== undefined) {
    if (typeof section !== 'object' || section === null) throw bad('values must be a section ([values])')
    for (const [k, v] of Object.entries(section as Record<string, unknown>)) {
      if (typeof v === 'object') throw bad(`[values] ${k} must be a value`)
      values[k] = String(v)
    }
  }
  const known = new Set(['image', 'name', 'enable', 'start', 'tls-verify', 'runtime', 'values'])
  for (const k of Object.keys(doc)) if (!known.has(k) && !k.startsWith('set.')) throw bad(`unknown key ${k}`)
  for (const k of Object.keys(values)) if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw bad(`value name ${k} is not KEY`)
  return {
    file,
    name: str('name') ?? basename(file, '.conf').replace(/^[0-9]+-/, ''),
    image,
    values,
    enable: bool('enable', true),
    start: bool('start', false),
    tlsVerify: bool('tls-verify', true),
    runtime: str('runtime') ?? DEFAULT_RUNTIME,
  }
}

export async function provision(ctx: OpsContext, opts: ProvisionOptions = {}): Promise<ProvisionResult> {
  const dir = opts.dir ?? PROVISION_DIR
  const hostDir = fromRoot(ctx, dir)
  const names = (await fsp.readdir(hostDir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[]
    throw err
  }))
    .filter((n) => n.endsWith('.conf'))
    .sort()
  const result: ProvisionResult = { entries: [], started: [], failures: 0 }
  const toStart: string[] = []
  const fail = (report: EntryReport, err: unknown): void => {
    const e = toSysctrError(err)
    report.outcome = 'failed'
    report.error = { code: e.code, message: e.fullMessage, exitCode: e.exitCode }
    result.failures++
    ctx.reporter.warn(`provision: ${report.file}${report.name ? ` (${report.name})` : ''} failed: ${e.fullMessage}`)
  }
  for (const n of names) {
    const file = join(dir, n)
    const report: EntryReport = { file, outcome: 'failed' }
    result.entries.push(report)
    let entry: ProvisionEntry
    try {
      entry = parseProvisionEntry(await fsp.readFile(join(hostDir, n), 'utf8'), file)
      report.name = entry.name
    } catch (err) {
      fail(report, err)
      continue
    }
    try {
      const source = await (opts.openSource ?? rootArchiveSource(ctx))(entry)
      const r: InstallResult = await install(ctx, {
        image: entry.image,
        name: entry.name,
        set: Object.entries(entry.values).map(([k, v]) => `${k}=${v}`),
        runtime: entry.runtime,
        tlsVerify: entry.tlsVerify,
        ...(source ? { source } : {}),
      })
      report.unit = r.unit
      report.outcome = r.unchanged ? 'unchanged' : 'installed'
      ctx.reporter.info(`provision: ${file} (${entry.name}): ${r.unchanged ? 'already installed, nothing to do' : `installed from ${r.image}`}`)
      if (!entry.enable && !r.unchanged) {
        const systemd = await ctx.systemd()
        await systemd.disableUnitFiles([r.unit])
      }
      if (entry.start) toStart.push(r.unit)
    } catch (err) {
      fail(report, err)
    }
  }
  if (toStart.length === 0) return result
  if (ctx.root) {
    // Nothing runs under --root: enabled units start when the root boots.
    for (const unit of toStart) result.started.push({ unit, result: 'deferred' })
    return result
  }
  const systemd = await ctx.systemd()
  // All jobs at once: systemd orders them by the units' dependencies.
  const settled = await Promise.allSettled(toStart.map((u) => systemd.startUnit(u)))
  settled.forEach((s, i) => {
    const unit = toStart[i]!
    if (s.status === 'fulfilled') {
      result.started.push({ unit, result: s.value })
      return
    }
    const e = toSysctrError(s.reason)
    result.started.push({ unit, result: 'failed', error: { code: e.code, message: e.fullMessage, exitCode: e.exitCode } })
    result.failures++
    ctx.reporter.warn(`provision: starting ${unit} failed: ${e.fullMessage}`)
  })
  return result
}

/**
 * Under --root, a local image (`oci-archive:/usr/share/sysctr/images/etcd.tar`)
 * names a path inside the root: open it there, while the deployment records
 * the name as written, so that the booted system sees the same image and
 * values and leaves the entry alone. Registry images: install's own source.
 */
function rootArchiveSource(ctx: OpsContext): (entry: ProvisionEntry) => Promise<ImageSource | undefined> {
  return async (entry) => {
    if (!ctx.root || !isLocalInput(entry.image)) return undefined
    const d = describeInput(entry.image, '/')
    const at = `${d.transport}:${fromRoot(ctx, d.path!)}${d.tag !== undefined ? `:${d.tag}` : ''}`
    return (await openImageSource(at, sourceOptions(ctx, {}))).source
  }
}

/** The error a run with failures ends with (the exit code of the first failure). */
export function provisionFailedError(r: ProvisionResult): SysctrError | undefined {
  if (r.failures === 0) return undefined
  const first = r.entries.find((e) => e.error)?.error ?? r.started.find((s) => s.error)?.error
  const names = [...r.entries.filter((e) => e.outcome === 'failed').map((e) => e.name ?? e.file), ...r.started.filter((s) => s.error).map((s) => s.unit)]
  return new SysctrError('provision.failed', `provisioning failed for ${names.join(', ')}`, first?.exitCode ?? 1)
}
