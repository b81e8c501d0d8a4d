/**
 * Differential test against umoci: the same OCI images unpacked by
 * `umoci raw unpack` and by sysctr (import + commit + checkout) must give the
 * same tree (types, modes, owners, content, symlinks, devices, xattrs,
 * hardlink groups; not timestamps, which sysctr does not keep).
 */
import { execFile } from 'node:child_process'
import { createReadStream, existsSync, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ImageSpec, LayerEntry, writeOciLayout } from '../../harness/oci-layout-writer'
import { Descriptor, ImageIndex, ImageManifest } from '../../src/oci/types'
import { LayerRecord, Store } from '../../src/store/store'
import { compareTrees } from '../helpers/tree-compare'

const run = promisify(execFile)
const haveUmoci = existsSync('/usr/bin/umoci') && process.getuid?.() === 0

let dir: string
let store: Store
beforeAll(async () => {
  dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-umoci-'))
  store = await Store.open(join(dir, 'store'))
})
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true })
})

async function manifestFor(layout: string, tag: string): Promise<{ manifest: ImageManifest; digest: string }> {
  const index = JSON.parse(await fsp.readFile(join(layout, 'index.json'), 'utf8')) as ImageIndex
  const desc = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)!
  const manifest = JSON.parse(await fsp.readFile(join(layout, 'blobs', 'sha256', desc.digest.slice(7)), 'utf8')) as ImageManifest
  return { manifest, digest: desc.digest }
}

async function sysctrUnpack(layout: string, tag: string, out: string): Promise<void> {
  const { manifest, digest } = await manifestFor(layout, tag)
  const layers: LayerRecord[] = []
  for (const desc of manifest.layers as Descriptor[]) {
    const r = await store.importLayer(desc, createReadStream(join(layout, 'blobs', 'sha256', desc.digest.slice(7))))
    layers.push(r.record)
  }
  const { commit } = await store.commitImage({ manifestDigest: digest as never, configDigest: manifest.config.digest, layers })
  await store.checkout(commit, out)
}

async function differential(layout: string, tag: string): Promise<void> {
  const theirs = join(dir, `umoci-${tag}`)
  const ours = join(dir, `sysctr-${tag}`)
  await run('umoci', ['raw', 'unpack', '--image', `${layout}:${tag}`, theirs])
  await sysctrUnpack(layout, tag, ours)
  expect(await compareTrees(theirs, ours)).toBeUndefined()
}

const d = (path: string, mode = 0o755, extra: Partial<LayerEntry> = {}): LayerEntry => ({ path, type: 'directory', mode, ...extra })
const f = (path: string, content: string, mode = 0o644, extra: Partial<LayerEntry> = {}): LayerEntry => ({ path, type: 'file', content, mode, ...extra })
// cap_net_bind_service+ep, VFS_CAP_REVISION_2 (bytes all < 0x80 so the fixture writer's UTF-8 PAX keeps them)
const CAP = '\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'

const IMAGES: ImageSpec[] = [
  {
    tag: 'basics',
    layers: [
      [
        d('./'),
        d('bin/'),
        f('bin/busybox', 'BB', 0o755),
        { path: 'bin/ls', type: 'link', linkname: 'bin/busybox' },
        { path: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' },
        f('bin/su', 'su', 0o4755),
        f('bin/wall', 'w', 0o2755, { gid: 5 }),
        d('tmp/', 0o1777),
        d('home/'),
        d('home/user/', 0o700, { uid: 1000, gid: 1000 }),
        f('home/user/.rc', 'rc', 0o600, { uid: 1000, gid: 1000 }),
        d('dev/'),
        { path: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
        { path: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
        d('run/'),
        { path: 'dev/initctl', type: 'fifo', mode: 0o600 },
        d('usr/'),
        d('usr/sbin/'),
        f('usr/sbin/ping', 'ping', 0o755, { pax: { 'SCHILY.xattr.security.capability': CAP } }),
        f('usr/sbin/tagged', 't', 0o644, { pax: { 'SCHILY.xattr.user.origin': 'fixture', 'SCHILY.xattr.trusted.x': 'y' } }),
        d('ro/', 0o555),
        f('ro/file', 'r', 0o444),
        f(`long/${'n'.repeat(120)}/${'m'.repeat(120)}.txt`, 'long name'),
      ],
    ],
  },
  {
    tag: 'layers',
    layers: [
      [
        d('a/'),
        f('a/gone', '1'),
        f('a/kept', '2'),
        d('opq/'),
        f('opq/old', 'old'),
        d('opq/sub/'),
        f('opq/sub/deep', 'deep'),
        f('f2d', 'file'),
        d('d2f/'),
        f('d2f/x', 'x'),
        f('again', 'first'),
        f('target', 'T', 0o4750, { gid: 3 }),
        d('meta/', 0o700),
      ],
      [
        f('a/.wh.gone', ''),
        f('opq/.wh..wh..opq', ''),
        f('opq/new', 'new'),
        d('f2d/', 0o750),
        f('f2d/inner', 'i'),
        f('d2f', 'now a file'),
        f('.wh.again', ''),
        { path: 'link-to-lower', type: 'link', linkname: 'target' },
        d('meta/', 0o711, { uid: 9 }),
      ],
      [f('again', 'second', 0o600), d('opq/'), f('opq/newer', 'n')],
    ],
  },
]

describe.skipIf(!haveUmoci)('store vs umoci raw unpack (needs umoci and root)', () => {
  for (const spec of IMAGES) {
    it(`unpacks "${spec.tag}" like umoci`, async () => {
      const layout = join(dir, `oci-${spec.tag}`)
      await writeOciLayout(layout, [spec])
      await differential(layout, spec.tag)
    })
  }

  it('the comparison itself reports mode and hardlink-group differences', async () => {
    const theirs = join(dir, 'umoci-basics')
    const ours = join(dir, 'sysctr-basics')
    const copy = join(dir, 'mutated')
    await run('cp', ['-a', ours, copy])
    await fsp.chmod(join(copy, 'bin/su'), 0o755)
    expect(await compareTrees(theirs, copy)).toMatchObject({ path: 'bin/su', what: 'mode' })
    await fsp.chmod(join(copy, 'bin/su'), 0o4755)
    await fsp.rm(join(copy, 'bin/ls'))
    await fsp.copyFile(join(copy, 'bin/busybox'), join(copy, 'bin/ls'))
    await fsp.chmod(join(copy, 'bin/ls'), 0o755)
    expect(await compareTrees(theirs, copy)).toMatchObject({ what: 'hardlink-group' })
  })

  it('unpacks an image built by umoci itself (busybox)', async () => {
    const layout = join(dir, 'umoci-built')
    const bundle = join(dir, 'src-rootfs')
    await run('umoci', ['init', '--layout', layout])
    await run('umoci', ['new', '--image', `${layout}:bb`])
    await fsp.mkdir(join(bundle, 'bin'), { recursive: true })
    await fsp.copyFile('/bin/busybox', join(bundle, 'bin', 'busybox'))
    await fsp.chmod(join(bundle, 'bin', 'busybox'), 0o755)
    for (const applet of ['sh', 'ls', 'cat']) await fsp.link(join(bundle, 'bin', 'busybox'), join(bundle, 'bin', applet))
    await fsp.symlink('busybox', join(bundle, 'bin', 'true'))
    await fsp.mkdir(join(bundle, 'etc'))
    await fsp.writeFile(join(bundle, 'etc', 'motd'), 'hello\n')
    await fsp.chmod(join(bundle, 'etc', 'motd'), 0o640)
    await fsp.chown(join(bundle, 'etc', 'motd'), 12, 34)
    await run('umoci', ['insert', '--image', `${layout}:bb`, bundle, '/'])
    // A second layer from umoci: a whiteout of /etc/motd.
    await run('umoci', ['insert', '--image', `${layout}:bb`, '--whiteout', '/etc/motd'])
    await differential(layout, 'bb')
  })
})
