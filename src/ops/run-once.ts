/**
 * Run-once images (`atomic.run=once` in the image config's labels, as
 * Atomic's atomic-test-runonce): install runs the container to completion
 * and leaves nothing installed: no unit, no deployment, no tmpfiles entry,
 * no host files, no record. Its output goes to sysctr's stdout/stderr and
 * its exit status is the install's.
 *
 * The root is writable while it runs (Atomic gave it a writable checkout;
 * its config.json may say root.readonly false), on a throwaway copy: a copy
 * checkout (`store.checkout(..., { copy: true })`, never hardlinks into the
 * store's objects) in STATE/run-once/NAME-XXXX/rootfs, with config.json
 * beside it; the directory is removed afterwards (and a leftover of a crash
 * by the next run-once install of any image). The templates, values and
 * grants are install's: the config is checked as for a service
 * (runtime/config-check.ts, `writableRoot`), so a run-once image asks for
 * no more of the host than a service could without --grant.
 */
import { randomBytes } from 'node:crypto'
import { spawn } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { constants as osConstants } from 'node:os'
import { join } from 'node:path'
import { doing, HostError } from '../errors'
import type { ImageConfig } from '../oci/types'
import type { Store } from '../store/store'
import { loadExports, renderExports } from '../templates/exports'
import { computeDefaults, resolveValues } from '../templates/values'
import { checkRuntimeConfig, refusePrivileged } from '../runtime/config-check'
import { serviceIdentity } from '../runtime/grants'
import { removeTree } from '../deployment/deployments'
import { writeFileAtomic } from '../util/atomic-file'
import type { OpsContext } from './context'
import type { PullResult } from './pull-image'

/** The label Atomic read: `atomic.run=once`. */
export function isRunOnce(config: ImageConfig): boolean {
  return config.config?.Labels?.['atomic.run'] === 'once'
}

export interface RunOnceInput {
  name: string
  image: string
  pull: PullResult
  config: ImageConfig
  runtime: string
  setValues: Record<string, string>
  uuid: string
  privileged: boolean
  grants: string[]
  /** Runs the runtime with sysctr's stdio; tests may hand in another. Resolves with the exit status. */
  spawnRuntime?: (cmd: string, args: string[]) => Promise<number>
  /** `sysctr run IMAGE COMMAND...`: the process's args instead of config.json's. */
  args?: string[]
}

export interface RunOnceResult {
  /** The container's exit status (128+N for a signal). */
  exitCode: number
}

export async function runOnce(ctx: OpsContext, store: Store, i: RunOnceInput): Promise<RunOnceResult> {
  const base = join(ctx.paths.stateDir, 'run-once')
  await fsp.mkdir(base, { recursive: true, mode: 0o700 })
  // Leftovers of a crashed run: never in use (each run removes its own directory).
  for (const e of await fsp.readdir(base)) if (e.startsWith(`${i.name}-`)) await removeTree(join(base, e))
  const bundle = join(base, `${i.name}-${randomBytes(4).toString('hex')}`)
  await fsp.mkdir(bundle, { mode: 0o700 })
  const id = `${i.name}-run-once-${randomBytes(3).toString('hex')}`
  const run = i.spawnRuntime ?? spawnInherit
  try {
    const rootfs = join(bundle, 'rootfs')
    await doing('copying the image (a throwaway writable root)', () => store.checkout(i.pull.commit, rootfs, { copy: true }))
    const ex = await doing('reading the image exports', () => loadExports(rootfs, ctx.paths.templatesDir))
    const computed = computeDefaults({
      name: i.name,
      destDir: bundle,
      runtime: i.runtime,
      imageName: i.image,
      imageId: i.pull.manifestDigest,
      hostUid: process.getuid?.() ?? 0,
      hostGid: process.getgid?.() ?? 0,
      uuid: i.uuid,
    })
    const { values } = resolveValues({ manifestDefaults: ex.manifest?.defaultValues ?? {}, computed, set: i.setValues })
    const rendered = await doing('rendering templates', () => renderExports(ex, values, i.config.config ?? {}))
    const checked = checkRuntimeConfig(rendered.configJson, { privileged: i.privileged, grants: i.grants, writableRoot: true, ...serviceIdentity(i.name, i.image, values) })
    refusePrivileged(checked)
    for (const w of checked.warnings) ctx.reporter.warn(`config.json: ${w}`)
    let configJson = checked.configJson
    if (i.args) {
      const spec = JSON.parse(configJson) as { process: { args: string[] } }
      spec.process.args = i.args
      configJson = `${JSON.stringify(spec, null, 2)}\n`
    }
    await writeFileAtomic(join(bundle, 'config.json'), configJson, { mode: 0o600 })
    ctx.reporter.info(`running ${i.image} once on a throwaway copy: nothing is installed`)
    const exitCode = await doing(`running ${i.name}`, () => run(i.runtime, ['run', '--no-new-keyring', '--bundle', bundle, id]))
    return { exitCode }
  } finally {
    await new Promise<void>((resolve) => {
      const c = spawn(i.runtime, ['delete', '--force', id], { stdio: 'ignore' })
      c.on('error', () => resolve())
      c.on('close', () => resolve())
    })
    await removeTree(bundle)
  }
}

/** The runtime with sysctr's stdin, stdout and stderr; a signal death is 128+N as a shell reports it. */
export function spawnInherit(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit' })
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new HostError('host.missing-program', `the container runtime ${cmd} is not installed`) : e),
    )
    child.on('close', (code, signal) => {
      const n = signal ? (osConstants.signals as Record<string, number>)[signal] : undefined
      resolve(code ?? 128 + (n ?? 0))
    })
  })
}
