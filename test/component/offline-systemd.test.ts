/**
 * OfflineSystemd (--root): enablement links compared with what
 * `systemctl --root=DIR enable|disable` makes from the same unit files
 * (systemctl works offline on a directory), unit-file states compared with
 * `systemctl --root=DIR is-enabled`, and start refused.
 */
import { spawnSync } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { OfflineSystemd } from '../../src/systemd/offline-systemd'
import { SysctrError } from '../../src/errors'

const SYSTEMCTL = ['/usr/bin/systemctl', '/bin/systemctl'].find((p) => spawnSync('test', ['-x', p]).status === 0)
const skip = SYSTEMCTL ? undefined : 'needs systemctl (compares with systemctl --root)'

const UNITS: Record<string, string> = {
  'a.service': '[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nRequiredBy=b.target c.target\nAlias=aa.service\nAlso=d.service\n',
  'd.service': '[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=default.target\n',
  'e.service': '[Unit]\nDescription=two lines\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nWantedBy=sockets.target\n',
  's.service': '[Service]\nExecStart=/bin/true\n',
  'l.service': '[Service]\nExecStart=/bin/true\n[Install]\nAlias=l1.service l2.service\n',
}

const dirs: string[] = []
afterEach(async () => {
  for (const d of dirs.splice(0)) await fsp.rm(d, { recursive: true, force: true })
})

async function makeRoot(): Promise<string> {
  const root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-offline-'))
  dirs.push(root)
  await fsp.mkdir(join(root, 'etc/systemd/system'), { recursive: true })
  for (const [name, text] of Object.entries(UNITS)) await fsp.writeFile(join(root, 'etc/systemd/system', name), text)
  return root
}

/** Every entry under root: `path -> link target` for symlinks, `path/` for directories, `path` for files. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = []
  async function walk(rel: string): Promise<void> {
    for (const e of await fsp.readdir(join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name
      if (e.isSymbolicLink()) out.push(`${r} -> ${await fsp.readlink(join(root, r))}`)
      else if (e.isDirectory()) {
        out.push(`${r}/`)
        await walk(r)
      } else out.push(r)
    }
  }
  await walk('')
  return out.sort()
}

function systemctl(root: string, ...args: string[]): { code: number; stdout: string } {
  const r = spawnSync(SYSTEMCTL!, [`--root=${root}`, ...args], { encoding: 'utf8' })
  return { code: r.status ?? -1, stdout: r.stdout }
}

describe.skipIf(skip !== undefined)(`OfflineSystemd vs systemctl --root${skip ? `: skipped, ${skip}` : ''}`, () => {
  it.each([['a.service'], ['e.service'], ['l.service'], ['a.service', 'e.service']])('enable %s makes the same links as systemctl --root enable', async (...units) => {
    const ours = await makeRoot()
    const theirs = await makeRoot()
    const { changes } = await new OfflineSystemd({ root: ours }).enableUnitFiles(units)
    expect(systemctl(theirs, 'enable', ...units).code).toBe(0)
    const want = await tree(theirs)
    expect(await tree(ours)).toEqual(want)
    expect(changes.length).toBe(want.filter((l) => l.includes(' -> ')).length)
    // Link targets are paths inside the root, never the host's path to it.
    for (const c of changes) expect(c.dest.startsWith('/etc/systemd/system/')).toBe(true)
  })

  it('enabling twice changes nothing; disable removes the same links (and the emptied .wants dirs) as systemctl', async () => {
    const ours = await makeRoot()
    const theirs = await makeRoot()
    const s = new OfflineSystemd({ root: ours })
    await s.enableUnitFiles(['a.service', 'e.service'])
    expect((await s.enableUnitFiles(['a.service'])).changes).toEqual([])
    expect(systemctl(theirs, 'enable', 'a.service', 'e.service').code).toBe(0)
    await s.disableUnitFiles(['a.service'])
    expect(systemctl(theirs, 'disable', 'a.service').code).toBe(0)
    expect(await tree(ours)).toEqual(await tree(theirs))
  })

  it('unitFileState matches systemctl is-enabled (enabled, disabled, static); nothing is active', async () => {
    const root = await makeRoot()
    const s = new OfflineSystemd({ root })
    await s.enableUnitFiles(['e.service'])
    for (const unit of ['e.service', 'a.service', 's.service']) {
      const st = await s.unitState(unit)
      expect(st.unitFileState).toBe(systemctl(root, 'is-enabled', unit).stdout.trim())
      expect(st).toMatchObject({ loadState: 'loaded', activeState: 'inactive', subState: 'dead' })
    }
    expect((await s.unitState('nope.service')).loadState).toBe('not-found')
  })
})

describe('OfflineSystemd jobs', () => {
  it('start/stop/restart are refused: no systemd runs under the root (exit 8, systemd.offline)', async () => {
    const root = await makeRoot()
    const s = new OfflineSystemd({ root })
    await s.reload()
    for (const call of [() => s.startUnit('a.service'), () => s.stopUnit('a.service'), () => s.restartUnit('a.service')]) {
      const err = await call().catch((e: unknown) => e)
      expect(err).toBeInstanceOf(SysctrError)
      expect((err as SysctrError).code).toBe('systemd.offline')
      expect((err as SysctrError).exitCode).toBe(8)
      expect((err as SysctrError).message).toContain(root)
    }
  })
})
