import { promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { commandsFingerprint, MANIFEST, manifestState } from '../../src/cli/main'

describe('oclif manifest freshness', () => {
  let root: string
  beforeEach(async () => {
    root = await fsp.mkdtemp(join(tmpdir(), 'sysctr-manifest-'))
    await fsp.mkdir(join(root, 'dist', 'commands', 'images'), { recursive: true })
    await fsp.mkdir(join(root, 'dist', 'cli'), { recursive: true })
    await fsp.writeFile(join(root, 'dist', 'commands', 'images', 'list.js'), 'exports.a = 1\n')
    await fsp.writeFile(join(root, 'dist', 'cli', 'base-command.js'), 'exports.b = 1\n')
  })
  afterEach(async () => {
    await fsp.rm(root, { recursive: true, force: true })
  })

  const writeManifest = (fingerprint: string | undefined) =>
    fsp.writeFile(join(root, MANIFEST), JSON.stringify({ version: '0.1.0', commands: {}, sysctrFingerprint: fingerprint }))

  it('is absent without a manifest, fresh when it matches the compiled commands', async () => {
    expect(manifestState(root)).toBe('absent')
    await writeManifest(commandsFingerprint(root))
    expect(manifestState(root)).toBe('fresh')
  })

  it('is stale after a command is changed or added, or the CLI base changes', async () => {
    await writeManifest(commandsFingerprint(root))
    await fsp.writeFile(join(root, 'dist', 'commands', 'images', 'pull.js'), 'exports.c = 1\n')
    expect(manifestState(root)).toBe('stale')
    await writeManifest(commandsFingerprint(root))
    await fsp.writeFile(join(root, 'dist', 'cli', 'base-command.js'), 'exports.b = 2\n')
    expect(manifestState(root)).toBe('stale')
  })

  it('rewriting the same content (tsc again) keeps it fresh; a manifest without a fingerprint is stale', async () => {
    await writeManifest(commandsFingerprint(root))
    await fsp.writeFile(join(root, 'dist', 'commands', 'images', 'list.js'), 'exports.a = 1\n')
    expect(manifestState(root)).toBe('fresh')
    await writeManifest(undefined)
    expect(manifestState(root)).toBe('stale')
  })
})
