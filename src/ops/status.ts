/**
 * status and inspect: what one installed container is, read from its active
 * deployment's record and (status) the unit's state from systemd over D-Bus;
 * (inspect) also the values, the files sysctr rendered as they are on disk
 * now, and the unit in use. Read only: no lock, nothing written.
 */
import { createHash } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { Deployments, previousDeployment, type Deployment } from '../deployment/deployments'
import { checkContainerName } from '../deployment/name'
import { NotFoundError } from '../errors'
import { fromRoot, type OpsContext } from './context'

export interface ContainerStatus {
  name: string
  unit: string
  /** The active deployment, `NAME.N`. */
  deployment: string
  /** The deployment kept for rollback, `NAME.N`. */
  previousDeployment?: string
  image: string
  manifestDigest: string
  /** When the active deployment was built (ISO 8601; the record's createdAt). */
  created: string
  runtime: string
  privileged: boolean
  /** --grant ITEMs recorded, and what the active config.json asks beyond the default grant. */
  grants: string[]
  asked: string[]
  noContainerService?: boolean
  /** systemd's view; undefined when systemd cannot be reached (a warning says why) or there is no unit. */
  state?: {
    loadState: string
    activeState: string
    subState: string
    unitFileState: string
    /** The service's last Result (success, exit-code, signal, timeout, ...). */
    result?: string
    mainPid?: number
  }
}

export interface InspectedFile {
  role: string
  path: string
  /** What the record says sysctr wrote. */
  sha256: string
  /** The file on disk now differs from what sysctr wrote (or is missing). */
  modified: boolean
  missing?: boolean
  text?: string
  source?: string
}

export interface ContainerInspection extends Omit<ContainerStatus, 'state'> {
  /** The deployment directory (bundle: config.json, rootfs). */
  deploymentDir: string
  values: Record<string, string>
  setValues: Record<string, string>
  templates: { configJson: string; service: string; tmpfiles: string }
  /** The runc config.json in use (parsed). */
  config: unknown
  files: InspectedFile[]
}

async function activeOf(ctx: OpsContext, name: string): Promise<{ d: Deployment; prev?: Deployment }> {
  checkContainerName(name)
  const deployments = new Deployments(ctx.paths.containersDir)
  const d = await deployments.active(name)
  if (!d) throw new NotFoundError('container.not-found', `no container named ${name} is installed`, { hint: 'sysctr containers list shows what is installed' })
  return { d, prev: await previousDeployment(deployments, name, d.slot) }
}

function base(d: Deployment, prev?: Deployment): Omit<ContainerStatus, 'state'> {
  const r = d.record
  return {
    name: d.name,
    unit: r.unit,
    deployment: `${d.name}.${d.slot}`,
    ...(prev ? { previousDeployment: `${prev.name}.${prev.slot}` } : {}),
    image: r.image,
    manifestDigest: r.manifestDigest,
    created: r.createdAt,
    runtime: r.runtime,
    privileged: !!r.privileged,
    grants: r.grants ?? [],
    asked: r.asked ?? [],
    ...(r.noContainerService ? { noContainerService: true } : {}),
  }
}

export async function containerStatus(ctx: OpsContext, name: string): Promise<ContainerStatus> {
  const { d, prev } = await activeOf(ctx, name)
  const out: ContainerStatus = base(d, prev)
  if (d.record.noContainerService) return out
  try {
    const s = await (await ctx.systemd()).unitState(d.record.unit)
    out.state = {
      loadState: s.loadState,
      activeState: s.activeState,
      subState: s.subState,
      unitFileState: s.unitFileState,
      ...(s.result ? { result: s.result } : {}),
      ...(s.mainPid ? { mainPid: s.mainPid } : {}),
    }
  } catch (err) {
    ctx.reporter.warn(`state of ${d.record.unit} unknown: ${(err as Error).message}`)
  }
  return out
}

export async function inspectContainer(ctx: OpsContext, name: string): Promise<ContainerInspection> {
  const { d, prev } = await activeOf(ctx, name)
  const r = d.record
  const config = JSON.parse(await fsp.readFile(join(d.dir, 'config.json'), 'utf8')) as unknown
  const files: InspectedFile[] = []
  for (const f of r.files) {
    const text = await fsp.readFile(fromRoot(ctx, f.path)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    const sha = text === undefined ? '' : createHash('sha256').update(text).digest('hex')
    const isText = text !== undefined && !text.includes(0)
    files.push({
      role: f.role,
      path: f.path,
      sha256: f.sha256,
      modified: sha !== f.sha256,
      ...(text === undefined ? { missing: true } : {}),
      ...(isText ? { text: text.toString('utf8') } : {}),
      ...(f.source ? { source: f.source } : {}),
    })
  }
  return { ...base(d, prev), deploymentDir: d.dir, values: r.values, setValues: r.setValues, templates: r.templates, config, files }
}

/** The unit of an installed container (logs). */
export async function containerUnit(ctx: OpsContext, name: string): Promise<string> {
  const { d } = await activeOf(ctx, name)
  if (d.record.noContainerService) {
    throw new NotFoundError('unit.none', `${name} has no service (manifest.json noContainerService: host files only), so no journal`)
  }
  return d.record.unit
}

/** journalctl's arguments for a unit's journal (`logs`). */
export function journalArgs(unit: string, opts: { follow?: boolean; lines?: number; since?: string; json?: boolean }): string[] {
  return ['--no-pager', '-u', unit, ...(opts.json ? ['-o', 'json'] : []), ...(opts.lines !== undefined ? ['-n', String(opts.lines)] : []), ...(opts.since ? ['--since', opts.since] : []), ...(opts.follow ? ['-f'] : [])]
}
