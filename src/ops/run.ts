/**
 * run / stop / exec, as `atomic run` and `atomic stop` did for system
 * containers:
 *
 *   sysctr run NAME              StartUnit(NAME.service) over D-Bus, waiting for the job
 *   sysctr run NAME CMD...       CMD inside the running container (`RUNTIME exec NAME CMD...`)
 *   sysctr exec NAME CMD...      the same
 *   sysctr stop NAME             StopUnit(NAME.service), waiting for the job
 *
 * The command runs with sysctr's stdio passed through (a TTY, `--tty`, when
 * stdin is one, as Atomic did) and its exit status is the result. The
 * runtime is the one the deployment was installed with; the container id is
 * the container's name (what EXEC_START runs it as).
 *
 * `sysctr run IMAGE [CMD...]` where IMAGE is no installed container but an
 * image in the store (Atomic's `atomic run IMAGE CMD` of a system image):
 * the image runs once on a throwaway copy, as a run-once image at install
 * (ops/run-once.ts), with CMD as its process when given; nothing installed.
 *
 * Errors: not installed is `container.not-found` (exit 3); exec on a
 * container whose unit is not running is `container.not-running` (exit 4,
 * hint: sysctr run NAME); a container without a service (noContainerService)
 * has nothing to start (`container.no-service`, exit 2).
 */
import { randomUUID } from 'node:crypto'
import { ConflictError, doing, NotFoundError, UsageError } from '../errors'
import { runOnce, spawnInherit } from './run-once'
import { recordedImageName } from './source-options'
import { describeInput } from '../transports/open'
import { Store } from '../store/store'
import { parseSetFlags } from '../templates/values'
import { DEFAULT_RUNTIME } from '../runtime/default-runtime'
import { withNameLock } from './name-lock'
import type { ImageConfig } from '../oci/types'
import { Deployments, type Deployment } from '../deployment/deployments'
import { checkContainerName } from '../deployment/name'
import type { JobResult, UnitState } from '../systemd/systemd'
import type { OpsContext } from './context'

export interface UnitJobResult {
  name: string
  unit: string
  result: JobResult
  activeState: string
  subState: string
}

export interface ExecOptions {
  /** Allocate a TTY (runc exec --tty); default: whether stdin is a TTY. */
  tty?: boolean
  /** Runs the runtime; tests may hand in another. Resolves with the exit status. */
  spawnRuntime?: (cmd: string, args: string[]) => Promise<number>
}

async function installed(ctx: OpsContext, name: string): Promise<Deployment> {
  checkContainerName(name)
  const d = await new Deployments(ctx.paths.containersDir).active(name)
  if (!d) throw new NotFoundError('container.not-found', `no container named ${name} is installed`, { hint: 'sysctr containers list shows what is installed' })
  if (d.record.noContainerService) {
    throw new UsageError('container.no-service', `${name} has no service (its image sets noContainerService): there is nothing to start, stop or run in`)
  }
  return d
}

async function afterJob(ctx: OpsContext, d: Deployment, result: JobResult): Promise<UnitJobResult> {
  const s: UnitState = await (await ctx.systemd()).unitState(d.record.unit)
  return { name: d.name, unit: d.record.unit, result, activeState: s.activeState, subState: s.subState }
}

/** Start NAME's unit over D-Bus and wait for the job (a unit with a socket starts as systemctl start does). */
export async function startContainer(ctx: OpsContext, name: string): Promise<UnitJobResult> {
  return doing(`starting ${name}`, async () => {
    const d = await installed(ctx, name)
    const result = await (await ctx.systemd()).startUnit(d.record.unit)
    return afterJob(ctx, d, result)
  })
}

/** Stop NAME's unit over D-Bus and wait for the job. */
export async function stopContainer(ctx: OpsContext, name: string): Promise<UnitJobResult> {
  return doing(`stopping ${name}`, async () => {
    const d = await installed(ctx, name)
    const result = await (await ctx.systemd()).stopUnit(d.record.unit)
    return afterJob(ctx, d, result)
  })
}

/** Run COMMAND inside NAME's running container; resolves with its exit status. */
export async function execInContainer(ctx: OpsContext, name: string, command: string[], opts: ExecOptions = {}): Promise<number> {
  return doing(`running ${command[0] ?? ''} in ${name}`, async () => {
    if (command.length === 0) throw new UsageError('exec.no-command', 'no command given', { hint: `sysctr exec ${name} COMMAND [ARG...]` })
    const d = await installed(ctx, name)
    const s = await (await ctx.systemd()).unitState(d.record.unit)
    if (!['active', 'reloading'].includes(s.activeState)) {
      throw new ConflictError('container.not-running', `${name} is not running (${d.record.unit}: ${s.activeState})`, {
        hint: `sysctr run ${name} starts it`,
        data: { name, unit: d.record.unit, activeState: s.activeState },
      })
    }
    const tty = opts.tty ?? process.stdin.isTTY === true
    const args = ['exec', ...(tty ? ['--tty'] : []), name, ...command]
    return (opts.spawnRuntime ?? spawnInherit)(d.record.runtime, args)
  })
}

/**
 * Run IMAGE (in the store) once on a throwaway copy, with COMMAND as its
 * process when given (ops/run-once.ts); resolves with the exit status.
 * Neither an installed container nor an image in the store: exit 3.
 */
export async function runImage(ctx: OpsContext, input: string, command: string[], opts: { set?: string[]; runtime?: string; spawnRuntime?: ExecOptions['spawnRuntime'] } = {}): Promise<number> {
  const { image } = await recordedImageName(ctx, input, {}).catch(() => ({ image: input }))
  const name = describeInput(input).defaultName
  return doing(`running ${image}`, () => withNameLock(ctx, name, `running ${image}`, async () => {
    const store = await Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
    try {
      const rec = await store.getImageRef(image)
      if (!rec) {
        throw new NotFoundError('container.not-found', `${input} is neither an installed container nor an image in the store`, {
          hint: `sysctr containers list shows what is installed; sysctr images pull ${input} pulls an image to run`,
        })
      }
      const config = JSON.parse((await store.getBlob(rec.configDigest))!.toString('utf8')) as ImageConfig
      const pull = { reference: image, manifestDigest: rec.manifestDigest, configDigest: rec.configDigest, commit: rec.commit, layersFetched: 0, layersReused: rec.layers.length, bytesFetched: 0, objectsAdded: 0, bytesAdded: 0 }
      const r = await runOnce(ctx, store, {
        name,
        image,
        pull,
        config,
        runtime: opts.runtime ?? DEFAULT_RUNTIME,
        setValues: parseSetFlags(opts.set ?? []),
        uuid: randomUUID(),
        privileged: false,
        grants: [],
        ...(command.length > 0 ? { args: command } : {}),
        ...(opts.spawnRuntime ? { spawnRuntime: opts.spawnRuntime } : {}),
      })
      return r.exitCode
    } finally {
      await store.close()
    }
  }))
}
