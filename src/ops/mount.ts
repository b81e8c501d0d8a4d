/**
 * mount / umount: a read-only view of a container's rootfs or of an image,
 * for scanners and people who want to look without running anything.
 *
 *   sysctr mount NAME DIR    read-only bind of containers/NAME/rootfs at DIR
 *   sysctr mount IMAGE DIR   a fresh hardlink checkout of IMAGE under
 *                            STATE/mounts/checkouts/ID, bound read-only at DIR
 *   sysctr umount DIR        undo either, remove the checkout and the record
 *
 * Read-only is a property of the bind mount (`mount --bind`, then
 * `mount -o remount,ro,bind`), so writes fail with EROFS even for root and
 * even though checkout files are hardlinks into the store.
 *
 * `--shared` (Atomic's `mount --shared`: "mount a container with a shared
 * SELinux label", so that other containers may read the view): sysctr does
 * no SELinux labelling (out of scope), so on a host without SELinux the
 * shared view is the same read-only view, recorded as shared; on a host with
 * SELinux enabled it is refused (`mount.selinux-unsupported`, exit 7) rather
 * than made with the wrong label. `--live` (a writable view of a running
 * container) is refused as Atomic refused it for system containers.
 *
 * Every mount is recorded in STATE/mounts/ID.json (ID from DIR's path),
 * written before the mount is made and removed after it is gone, so
 * `images delete` and `images prune` see the image commits in use
 * (`mountedCommits`) and refuse to remove them.
 */
import { createHash, randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join, resolve } from 'node:path'
import { ConflictError, doing, HostError, NotFoundError, UsageError } from '../errors'
import { fieldsCheck, readRecord } from '../util/read-record'
import { Deployments, removeTree } from '../deployment/deployments'
import { findLocalImage } from './local-images'
import { Store } from '../store/store'
import { writeFileAtomic } from '../util/atomic-file'
import { execFile } from 'node:child_process'
import type { CommandResult } from '../util/run-command'
import type { OpsContext } from './context'

export type MountKind = 'container' | 'image'

export interface MountRecord {
  /** Absolute mount point. */
  dir: string
  kind: MountKind
  /** The container name (kind container) or the image reference (kind image). */
  target: string
  /** Made with --shared (Atomic's shared SELinux label; see the top of this file). */
  shared?: boolean
  /** What is bound at dir. */
  source: string
  /** The image commit (hex) the view shows: a root for gc while mounted. */
  imageCommit: string
  /** The checkout made for this mount (kind image), removed by umount. */
  checkout?: string
  createdAt: string
}

export interface MountOptions {
  /** Runs mount(8)/umount(8); tests may hand in another. */
  run?: (cmd: string, args: string[]) => Promise<CommandResult>
  /** --shared: a view other containers may read (Atomic's shared SELinux label). */
  shared?: boolean
  /** --live: refused (system containers are never mounted writable). */
  live?: boolean
  /** Whether SELinux is enabled on the host; default: /sys/fs/selinux/enforce exists. */
  selinuxEnabled?: () => Promise<boolean>
}

function mountsDir(ctx: OpsContext): string {
  return join(ctx.paths.stateDir, 'mounts')
}

function recordPath(ctx: OpsContext, dir: string): string {
  return join(mountsDir(ctx), `${createHash('sha256').update(dir).digest('hex').slice(0, 16)}.json`)
}

export async function listMounts(ctx: OpsContext): Promise<MountRecord[]> {
  const out: MountRecord[] = []
  const names = await fsp.readdir(mountsDir(ctx)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[]
    throw err
  })
  for (const e of names) {
    if (!e.endsWith('.json')) continue
    // Written atomically, so a damaged one is not ours to skip: prune would take its image for unused.
    const path = join(mountsDir(ctx), e)
    const hint = `restore it from a backup, or unmount its directory by hand (umount DIR) and delete ${path}`
    const r = await readRecord<MountRecord>(path, fieldsCheck({ dir: 'string', imageCommit: 'string' }), hint)
    if (r) out.push(r)
  }
  return out.sort((a, b) => (a.dir < b.dir ? -1 : 1))
}

/** Image commits shown by a mount: gc roots, and images delete refuses them. */
export async function mountedCommits(ctx: OpsContext): Promise<{ dir: string; imageCommit: string; target: string }[]> {
  return (await listMounts(ctx)).map((m) => ({ dir: m.dir, imageCommit: m.imageCommit, target: m.target }))
}

export async function mount(ctx: OpsContext, target: string, dirArg: string, opts: MountOptions = {}): Promise<MountRecord> {
  const run = opts.run ?? runNoInput
  const dir = resolve(dirArg)
  return doing(`mounting ${target} at ${dir}`, async () => {
    if (opts.live) {
      throw new UsageError('mount.live-unsupported', 'system containers do not support --live: sysctr mounts a read-only view only', { hint: `sysctr mount ${target} ${dirArg}` })
    }
    if (opts.shared && (await (opts.selinuxEnabled ?? selinuxEnabled)())) {
      throw new HostError('mount.selinux-unsupported', 'SELinux is enabled on this host, and sysctr does not label files: it cannot give the view the shared SELinux label --shared asks for', {
        hint: 'mount without --shared (a read-only view), or label it yourself (chcon) after mounting',
      })
    }
    const rec = recordPath(ctx, dir)
    if (await fsp.access(rec).then(() => true, () => false)) {
      throw new ConflictError('mount.exists', `${dir} is already a sysctr mount`, { hint: `sysctr umount ${dir}` })
    }
    await fsp.mkdir(dir, { recursive: true })
    await fsp.mkdir(mountsDir(ctx), { recursive: true, mode: 0o700 })
    const deployments = new Deployments(ctx.paths.containersDir)
    const active = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(target) ? await deployments.active(target) : undefined
    let record: MountRecord
    if (active) {
      record = {
        dir,
        kind: 'container',
        target,
        // A remote rootfs (install --rootfs) is the directory the container runs on.
        source: active.record.rootfs ?? join(active.dir, 'rootfs'),
        imageCommit: active.record.imageCommit,
        createdAt: new Date().toISOString(),
        ...(opts.shared ? { shared: true } : {}),
      }
    } else {
      // Local names first: any name images list prints (reference, short name, ID prefix).
      const store = await Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
      const found = await findLocalImage(store, target)
      if (!found) {
        await store.close()
        throw new NotFoundError('mount.not-found', `no container or image named ${target}`, {
          hint: 'sysctr containers list and sysctr images list show what there is; sysctr images pull IMAGE',
          data: { target },
        })
      }
      const image = found.name
      const ref = found.record
      const checkout = join(mountsDir(ctx), 'checkouts', randomBytes(8).toString('hex'))
      record = { dir, kind: 'image', target: image, source: checkout, imageCommit: ref.commit, checkout, createdAt: new Date().toISOString(), ...(opts.shared ? { shared: true } : {}) }
      await fsp.mkdir(join(mountsDir(ctx), 'checkouts'), { recursive: true, mode: 0o700 })
      // Recorded first: from here on a prune keeps the commit.
      await writeFileAtomic(rec, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 })
      try {
        await doing(`checking out ${image}`, () => store.checkout(ref.commit, checkout))
      } catch (err) {
        await removeTree(checkout).catch(() => {})
        await fsp.rm(rec, { force: true })
        throw err
      }
    }
    await writeFileAtomic(rec, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 })
    try {
      await must(run, 'mount', ['--bind', record.source, dir])
      try {
        await must(run, 'mount', ['-o', 'remount,ro,bind', dir])
      } catch (err) {
        await run('umount', [dir]).catch(() => undefined)
        throw err
      }
    } catch (err) {
      if (record.checkout) await removeTree(record.checkout).catch(() => {})
      await fsp.rm(rec, { force: true })
      throw err
    }
    return record
  })
}

export async function umount(ctx: OpsContext, dirArg: string, opts: MountOptions = {}): Promise<MountRecord> {
  const run = opts.run ?? runNoInput
  const dir = resolve(dirArg)
  return doing(`unmounting ${dir}`, async () => {
    const rec = recordPath(ctx, dir)
    let record: MountRecord
    try {
      record = JSON.parse(await fsp.readFile(rec, 'utf8')) as MountRecord
    } catch {
      throw new NotFoundError('mount.not-found', `${dir} is not a sysctr mount`, { hint: 'mounts made by sysctr mount are listed in /var/lib/sysctr/mounts' })
    }
    const r = await run('umount', [dir])
    if (r.code !== 0 && !/not mounted/i.test(r.stderr)) {
      throw new HostError('mount.umount-failed', `umount ${dir} failed (exit ${r.code}): ${r.stderr.trim().split('\n')[0] ?? ''}`, {
        hint: 'is a process still using it? (fuser -vm DIR)',
      })
    }
    if (record.checkout) await removeTree(record.checkout)
    await fsp.rm(rec, { force: true })
    return record
  })
}

/** SELinux is enabled when selinuxfs is mounted with its enforce file (enforcing or permissive). */
async function selinuxEnabled(): Promise<boolean> {
  return fsp.access('/sys/fs/selinux/enforce').then(() => true, () => false)
}

async function must(run: NonNullable<MountOptions['run']>, cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args)
  if (r.code !== 0) {
    throw new HostError('mount.failed', `${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim().split('\n')[0] ?? ''}`, {
      hint: 'mounting needs root (CAP_SYS_ADMIN)',
    })
  }
}

/**
 * mount(8)/umount(8) with no stdin (runCommand writes to stdin, which can
 * fail with EPIPE when the program has exited already).
 */
function runNoInput(cmd: string, args: string[]): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null
      if (e && typeof e.code === 'string') {
        reject(e.code === 'ENOENT' ? new HostError('host.missing-program', `${cmd} is not installed`) : e)
        return
      }
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) })
    })
    child.stdin?.end()
  })
}
