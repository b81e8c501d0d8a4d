/**
 * /exports/hostfs host files (src/ops/hostfs.ts): renameFiles and
 * installedFilesTemplate as Atomic defined them; a file the user edited
 * survives an update and an uninstall; a host file sysctr did not write is
 * never overwritten. Fixtures are rootfs directories built in code; the host
 * is a temp dir used as --root.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { planHostFiles, removeHostFiles, writeHostFiles } from '../../src/deployment/host-files'
import type { ExportsManifest } from '../../src/templates/exports'
import { SysctrError } from '../../src/errors'

let dir: string
let host: string
let warnings: string[]
const ctx = () => ({ root: host, reporter: { info: () => {}, warn: (m: string) => warnings.push(m) } })
const manifest = (m: Partial<ExportsManifest>): ExportsManifest => ({ defaultValues: {}, noContainerService: false, renameFiles: {}, installedFilesTemplate: [], ...m })

async function rootfs(name: string, files: Record<string, string>, mode = 0o644): Promise<string> {
  const r = join(dir, name)
  for (const [p, c] of Object.entries(files)) {
    const f = join(r, 'exports/hostfs', p)
    await fsp.mkdir(join(f, '..'), { recursive: true })
    await fsp.writeFile(f, c, { mode })
  }
  return r
}
const read = (p: string) => fsp.readFile(join(host, p), 'utf8')

beforeEach(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-hostfs-'))
  host = join(dir, 'host')
  await fsp.mkdir(host)
  warnings = []
})
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

const M = manifest({ renameFiles: { '/usr/local/bin/webctl': '/usr/local/bin/webctl-$NAME' }, installedFilesTemplate: ['/etc/web/web.conf'] })
const VALUES = { NAME: 'web1', PORT: '8080' }

describe('hostfs', () => {
  it('renames, renders templates, keeps modes', async () => {
    const r = await rootfs('v1', { 'etc/web/web.conf': 'port=$PORT\n', 'usr/local/bin/webctl': '#!/bin/sh\n' }, 0o755)
    const plans = await planHostFiles(r, M, VALUES)
    expect(plans.map((p) => [p.source, p.path, p.template])).toEqual([
      ['/exports/hostfs/etc/web/web.conf', '/etc/web/web.conf', true],
      ['/exports/hostfs/usr/local/bin/webctl', '/usr/local/bin/webctl-web1', false],
    ])
    const res = await writeHostFiles(ctx(), plans)
    expect(res.written).toEqual(['/etc/web/web.conf', '/usr/local/bin/webctl-web1'])
    expect(await read('etc/web/web.conf')).toBe('port=8080\n')
    expect((await fsp.stat(join(host, 'usr/local/bin/webctl-web1'))).mode & 0o777).toBe(0o755)
    expect(res.files.every((f) => /^[0-9a-f]{64}$/.test(f.sha256))).toBe(true)
  })

  it('a user edit survives an update and an uninstall; unedited files follow the image', async () => {
    const v1 = await planHostFiles(await rootfs('v1', { 'etc/web/web.conf': 'port=$PORT v1\n', 'etc/web/other': 'v1\n', 'etc/web/dropped': 'x\n' }), M, VALUES)
    const first = await writeHostFiles(ctx(), v1)
    await fsp.writeFile(join(host, 'etc/web/web.conf'), 'port=9999 # mine\n')

    const v2 = await planHostFiles(await rootfs('v2', { 'etc/web/web.conf': 'port=$PORT v2\n', 'etc/web/other': 'v2\n' }), M, VALUES)
    const second = await writeHostFiles(ctx(), v2, first.files)
    expect(await read('etc/web/web.conf')).toBe('port=9999 # mine\n')
    expect(await read('etc/web/other')).toBe('v2\n')
    expect(second.keptEdited).toEqual(['/etc/web/web.conf'])
    expect(second.removed).toEqual(['/etc/web/dropped'])
    await expect(fsp.stat(join(host, 'etc/web/dropped'))).rejects.toThrow()
    expect(warnings.some((w) => w.includes('/etc/web/web.conf was changed'))).toBe(true)

    const removed = await removeHostFiles(ctx(), second.files)
    expect(removed).toEqual(['/etc/web/other'])
    expect(await read('etc/web/web.conf')).toBe('port=9999 # mine\n')
  })

  it('never overwrites a host file sysctr did not write', async () => {
    await fsp.mkdir(join(host, 'etc/web'), { recursive: true })
    await fsp.writeFile(join(host, 'etc/web/web.conf'), 'admin\n')
    const plans = await planHostFiles(await rootfs('v1', { 'etc/web/web.conf': 'port=$PORT\n' }), M, VALUES)
    const res = await writeHostFiles(ctx(), plans)
    expect(res.skippedForeign).toEqual(['/etc/web/web.conf'])
    expect(res.files).toEqual([])
    expect(await read('etc/web/web.conf')).toBe('admin\n')
  })

  it('refuses destinations outside / and a device', async () => {
    const r2 = await rootfs('bad2', { 'etc/a': 'x\n' })
    const err = await planHostFiles(r2, manifest({ renameFiles: { '/etc/a': '$WHERE' } }), { WHERE: '/../../etc/passwd' }).catch((e) => e)
    expect(err).toBeInstanceOf(SysctrError)
    expect(err.code).toBe('hostfs.bad-destination')
  })

  it("copies a symlink as a symlink, dangling or not (Atomic's examples ship a dangling one), never following it", async () => {
    const r = await rootfs('links', { 'etc/app/app.conf': 'x\n' })
    await fsp.symlink('app.conf', join(r, 'exports/hostfs/etc/app/current'))
    await fsp.symlink('/usr/lib/app/not-there', join(r, 'exports/hostfs/etc/app/dangling'))
    await fsp.symlink('/etc/shadow', join(r, 'exports/hostfs/etc/app/shadow-link'))
    const plans = await planHostFiles(r, manifest({}), VALUES)
    expect(plans.map((p) => [p.path, p.kind ?? 'file', p.target])).toEqual([
      ['/etc/app/app.conf', 'file', undefined],
      ['/etc/app/current', 'symlink', 'app.conf'],
      ['/etc/app/dangling', 'symlink', '/usr/lib/app/not-there'],
      ['/etc/app/shadow-link', 'symlink', '/etc/shadow'],
    ])
    const res = await writeHostFiles(ctx(), plans)
    expect(res.written).toHaveLength(4)
    expect(await fsp.readlink(join(host, 'etc/app/dangling'))).toBe('/usr/lib/app/not-there')
    expect(await fsp.readlink(join(host, 'etc/app/shadow-link'))).toBe('/etc/shadow')
    expect(await read('etc/app/current')).toBe('x\n')
    // A link the user re-pointed is theirs: kept at uninstall; unchanged ones go.
    await fsp.rm(join(host, 'etc/app/current'))
    await fsp.symlink('elsewhere', join(host, 'etc/app/current'))
    const removed = await removeHostFiles(ctx(), res.files)
    expect(removed.sort()).toEqual(['/etc/app/app.conf', '/etc/app/dangling', '/etc/app/shadow-link'])
    expect(await fsp.readlink(join(host, 'etc/app/current'))).toBe('elsewhere')
    expect(warnings.some((w) => w.includes('/etc/app/current was changed'))).toBe(true)
  })

  it('refuses only a symlink that would make sysctr write outside the destination: an entry below it', async () => {
    const r = await rootfs('through', { 'etc/a': 'x\n' })
    await fsp.symlink('/usr', join(r, 'exports/hostfs/etc/dir'))
    const err = await planHostFiles(r, manifest({ renameFiles: { '/etc/a': '/etc/dir/bin/evil' } }), VALUES).catch((e) => e)
    expect(err).toBeInstanceOf(SysctrError)
    expect(err.code).toBe('hostfs.through-symlink')
    expect(err.message).toMatch(/below \/exports\/hostfs\/etc\/dir's symlink \/etc\/dir -> \/usr/)
  })

  it('creates an empty directory on the host and removes it when it is still empty, keeps it otherwise', async () => {
    const r = await rootfs('dirs', { 'etc/a': 'x\n' })
    await fsp.mkdir(join(r, 'exports/hostfs/var/lib/app/cache'), { recursive: true, mode: 0o750 })
    const plans = await planHostFiles(r, manifest({}), VALUES)
    expect(plans.map((p) => [p.path, p.kind ?? 'file'])).toEqual([['/etc/a', 'file'], ['/var/lib/app/cache', 'dir']])
    const res = await writeHostFiles(ctx(), plans)
    expect((await fsp.stat(join(host, 'var/lib/app/cache'))).isDirectory()).toBe(true)
    expect((await fsp.stat(join(host, 'var/lib/app/cache'))).mode & 0o777).toBe(0o750)
    await fsp.writeFile(join(host, 'var/lib/app/cache/data'), 'state\n')
    expect(await removeHostFiles(ctx(), res.files)).toEqual(['/etc/a'])
    expect(await read('var/lib/app/cache/data')).toBe('state\n')
    await fsp.rm(join(host, 'var/lib/app/cache/data'))
    expect(await removeHostFiles(ctx(), res.files)).toEqual(['/var/lib/app/cache'])
    expect(await fsp.access(join(host, 'var/lib/app/cache')).then(() => true, () => false)).toBe(false)
  })

  it('an image without /exports/hostfs has no host files', async () => {
    expect(await planHostFiles(join(dir, 'none'), manifest({}), VALUES)).toEqual([])
  })
})
