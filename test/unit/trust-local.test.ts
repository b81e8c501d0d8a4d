/**
 * The policy applies to local transports too, by path: openImageSource's
 * resolve() refuses an oci: image a scope rejects, and a signedBy scope
 * (an OCI layout carries no signatures); blobs are not handed out before.
 */
import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SysctrError } from '../../src/errors'
import { writeOciLayout, WrittenImage } from '../../harness/oci-layout-writer'
import { openImageSource } from '../../src/transports/open'

describe('signature policy for oci: images', () => {
  let dir: string
  let layout: string
  let img: WrittenImage
  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-trust-local-'))
    layout = join(dir, 'images', 'app')
    ;[img] = await writeOciLayout(layout, [{ tag: 'one', layers: [[{ path: 'etc/id', content: 'one\n' }]] }])
  })
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true })
  })
  async function resolveWith(policy: unknown): Promise<SysctrError | undefined> {
    const file = join(dir, `policy-${Math.random().toString(36).slice(2)}.json`)
    await fsp.writeFile(file, JSON.stringify(policy))
    const opened = await openImageSource(`oci:${layout}:one`, { signaturePolicy: file, configRoot: dir })
    try {
      await opened.source.resolve()
      return undefined
    } catch (err) {
      return err as SysctrError
    } finally {
      await opened.source.close()
    }
  }

  it('a reject default refuses; an accepting scope on a parent directory admits', async () => {
    const err = await resolveWith({ default: [{ type: 'reject' }] })
    expect(err?.exitCode).toBe(9)
    expect(err?.message).toContain('scope default')
    expect(await resolveWith({ default: [{ type: 'reject' }], transports: { oci: { [join(dir, 'images')]: [{ type: 'insecureAcceptAnything' }] } } })).toBeUndefined()
  })

  it('signedBy cannot be met by an OCI layout, and no blob is handed out before the check', async () => {
    const file = join(dir, 'signed.json')
    await fsp.writeFile(file, JSON.stringify({ default: [{ type: 'signedBy', keyType: 'GPGKeys', keyPath: join(dir, 'none.gpg') }] }))
    const opened = await openImageSource(`oci:${layout}:one`, { signaturePolicy: file })
    try {
      const err = await opened.source.openBlob(img.manifest.layers[0]).catch((e: SysctrError) => e)
      expect((err as SysctrError).exitCode).toBe(9)
      expect((err as SysctrError).message).toContain('this transport carries no signatures')
    } finally {
      await opened.source.close()
    }
  })

  it('no policy file: accepted, said once', async () => {
    const info: string[] = []
    const opened = await openImageSource(`oci:${layout}:one`, { configRoot: join(dir, 'empty-root'), reporter: { info: (m) => info.push(m) } })
    await opened.source.resolve()
    await opened.source.close()
    expect(info).toHaveLength(1)
  })
})
