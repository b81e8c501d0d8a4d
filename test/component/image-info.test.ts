/**
 * images info: an image pulled from an OCI layout (oci:DIR:TAG) is described
 * from the store without a checkout; an image not in the store is refused
 * with exit 3 and a hint to pull it.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeOciLayout } from '../../harness/oci-layout-writer'
import { imageInfo as anyImageInfo, type ImageInfo } from '../../src/ops/image-info'

/** A stored image's info (these tests read stored images only). */
const imageInfo = async (ctx: OpsContext, image: string): Promise<ImageInfo> => {
  const r = await anyImageInfo(ctx, image)
  if (!r.stored) throw new Error(`${image} was read from its source, not the store`)
  return r
}
import { pull } from '../../src/ops/images'
import type { OpsContext } from '../../src/ops/context'
import { SysctrError } from '../../src/errors'

const TEMPLATES = join(__dirname, '..', '..', 'templates')

let root: string
let layout: string
let ctx: OpsContext

beforeAll(async () => {
  root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-image-info-'))
  layout = join(root, 'layout')
  await writeOciLayout(layout, [
    {
      tag: 'web',
      layers: [
        [
          { path: 'exports/', type: 'directory' },
          { path: 'exports/service.template', content: '[Unit]\nDescription=web $GREETING\n[Service]\nExecStart=$EXEC_START --port $PORT\n' },
          { path: 'exports/hostfs/', type: 'directory' },
          { path: 'exports/hostfs/etc/', type: 'directory' },
          { path: 'exports/hostfs/etc/web.conf', content: 'port=$PORT\n' },
        ],
        [
          {
            path: 'exports/manifest.json',
            content: JSON.stringify({ defaultValues: { GREETING: 'hello', UNUSED: 'x' }, installedFilesTemplate: ['/etc/web.conf'] }),
          },
        ],
      ],
      config: { Cmd: ['/bin/true'] },
    },
    { tag: 'bare', layers: [[{ path: 'etc/', type: 'directory' }, { path: 'etc/hostname', content: 'x\n' }]], config: { Cmd: ['/bin/true'] } },
  ])
  ctx = {
    paths: {
      stateDir: join(root, 'state'),
      storeDir: join(root, 'state/store'),
      containersDir: join(root, 'state/containers'),
      unitDir: join(root, 'etc/systemd/system'),
      tmpfilesDir: join(root, 'etc/tmpfiles.d'),
      templatesDir: TEMPLATES,
    },
    systemd: async () => {
      throw new Error('images info must not talk to systemd')
    },
    tmpfiles: async () => {},
    reporter: { info: () => {}, warn: () => {} },
  }
  await pull(ctx, `oci:${layout}:web`)
  await pull(ctx, `oci:${layout}:bare`)
})
afterAll(async () => {
  if (root) await fsp.rm(root, { recursive: true, force: true })
})

describe('images info', () => {
  it('lists the exports, values with defaults and those that need --set', async () => {
    const info = await imageInfo(ctx, `oci:${layout}:web`)
    expect(info.hasExports).toBe(true)
    expect(info.files.map((f) => `${f.path}:${f.type}`)).toEqual([
      '/exports/hostfs:dir',
      '/exports/hostfs/etc:dir',
      '/exports/hostfs/etc/web.conf:file',
      '/exports/manifest.json:file',
      '/exports/service.template:file',
    ])
    expect(info.templates.service).toEqual({ file: 'service.template', origin: 'image', syntax: 'legacy' })
    expect(info.templates.configJson.origin).toBe('default')
    const byName = Object.fromEntries(info.variables.map((v) => [v.name, v]))
    expect(byName.GREETING).toMatchObject({ source: 'manifest', default: 'hello', usedBy: ['service'] })
    expect(byName.PORT).toMatchObject({ source: 'none', usedBy: ['service'] })
    expect(byName.EXEC_START).toMatchObject({ source: 'computed', fixed: true })
    expect(byName.UNUSED).toMatchObject({ source: 'manifest', usedBy: [] })
    expect(info.needsSet).toEqual(['PORT'])
    expect(info.manifest).toMatchObject({ present: true, installedFilesTemplate: ['/etc/web.conf'], noContainerService: false })
  })

  it('an image without /exports gets the default templates', async () => {
    const info = await imageInfo(ctx, `oci:${layout}:bare`)
    expect(info.hasExports).toBe(false)
    expect(info.files).toEqual([])
    expect(info.templates.service.origin).toBe('default')
    expect(info.manifest.present).toBe(false)
  })

  it('refuses a name that is not in the store and names no registry (exit 3, hint to pull)', async () => {
    const err = await imageInfo(ctx, 'nope:1').catch((e) => e)
    expect(err).toBeInstanceOf(SysctrError)
    expect(err.exitCode).toBe(3)
    expect(err.hint).toContain('sysctr images pull')
  })

  it('writes nothing outside the store', async () => {
    const before = await fsp.readdir(ctx.paths.stateDir)
    await imageInfo(ctx, `oci:${layout}:web`)
    expect(await fsp.readdir(ctx.paths.stateDir)).toEqual(before)
    await expect(fsp.stat(ctx.paths.containersDir)).rejects.toThrow()
  })
})
