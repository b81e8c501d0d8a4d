/**
 * Soak: concurrent install / update / rollback / uninstall / prune / fsck of
 * the built CLI (bin/sysctr) on ONE --root tree (one store, one state dir),
 * with random SIGKILLs (random delays) and SYSCTR_KILL_AT kills, for a
 * bounded time; then a clean-up pass and checks. Run through bench/soak
 * (which builds this file); see docs/soak.md.
 *
 * What it checks (after the clean-up pass: `containers list`, then
 * `containers update NAME --root` per name, which replays a journal and
 * removes leftovers, then `fsck`):
 *   - fsck: exit 0, no problems;
 *   - every deployment NAME.N: info.json readable, config.json present, its
 *     rootfs equal (content, modes, owners, links) to a reference checkout
 *     of its image made before the soak in a separate store;
 *   - every file under the root outside the state dir (units, tmpfiles
 *     entries, host files, enablement links) belongs to an active
 *     deployment's record with the sha256 it recorded, and every recorded
 *     file is there; each unit's --bundle names the active deployment;
 *   - no journal, no temp dir in containers/, nothing in store/tmp or
 *     store/leases, no locks/ dir.
 * Checks also run every --check-every minutes with the workers paused.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { promises as fsp, existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { writeOciLayout, type LayerEntry, type WrittenImage } from '../harness/oci-layout-writer'
import { busyboxLayer } from '../test/helpers/busybox-layer'
import { manyFiles } from '../test/helpers/crash'
import { compareTrees } from '../test/helpers/tree-compare'

const REPO = resolve(__dirname, '..', '..')
const CLI = join(REPO, 'bin', 'sysctr')

// ------------------------------------------------------------------ options
interface Options {
  minutes: number
  concurrency: number
  dir?: string
  names: number
  killShare: number
  killAtShare: number
  checkEvery: number
  seed: number
  keep: boolean
  files: number
  checkOnly: boolean
}

function usage(): string {
  return `usage: bench/soak [--minutes N] [--concurrency N] [--dir DIR] [--names N] [--kill-share F]
                  [--kill-at-share F] [--check-every MIN] [--files N] [--seed N] [--keep]
  --minutes N        how long to run operations (default 10)
  --concurrency N    operations at once (default 3)
  --dir DIR          work dir (default: a new dir under /dev/shm); the root is DIR/root
  --names N          container names used (default 3)
  --kill-share F     share of operations SIGKILLed after a random delay (default 0.3)
  --kill-at-share F  share of install/update/rollback run with SYSCTR_KILL_AT=random point (default 0.15)
  --check-every MIN  pause, clean up and check every MIN minutes (default 2.5; 0: only at the end)
  --files N          files per generated layer (default 400)
  --seed N           random seed (default: time)
  --keep             keep the work dir (kept anyway when something was lost)
  --check-only       with --dir of a kept run (same --files and --names): only the clean-up pass and checks`
}

function parseArgs(argv: string[]): Options {
  const o: Options = { minutes: 10, concurrency: 3, names: 3, killShare: 0.3, killAtShare: 0.15, checkEvery: 2.5, seed: Date.now() % 1e9, keep: false, files: 400, checkOnly: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const v = (): string => {
      const x = argv[++i]
      if (x === undefined) throw new Error(`${a} needs a value`)
      return x
    }
    const num = (): number => {
      const s = v()
      const n = Number(s)
      if (!Number.isFinite(n) || n < 0) throw new Error(`${a}: not a number: ${s}`)
      return n
    }
    switch (a) {
      case '--minutes': o.minutes = num(); break
      case '--concurrency': o.concurrency = Math.max(1, Math.floor(num())); break
      case '--dir': o.dir = resolve(v()); break
      case '--names': o.names = Math.max(1, Math.floor(num())); break
      case '--kill-share': o.killShare = num(); break
      case '--kill-at-share': o.killAtShare = num(); break
      case '--check-every': o.checkEvery = num(); break
      case '--files': o.files = Math.floor(num()); break
      case '--seed': o.seed = Math.floor(num()); break
      case '--keep': o.keep = true; break
      case '--check-only': o.checkOnly = true; break
      case '-h': case '--help': console.log(usage()); process.exit(0)
      default: throw new Error(`unknown argument ${a}\n${usage()}`)
    }
  }
  return o
}

// ------------------------------------------------------------------ random
let rngState = 1
function rand(): number {
  // mulberry32
  rngState = (rngState + 0x6d2b79f5) | 0
  let t = rngState
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]

// ------------------------------------------------------------------ images
const TAGS = ['s1', 's2', 's3'] as const
type Tag = (typeof TAGS)[number]

/**
 * s1, s2, s3: busybox (shared), a data layer (shared), and a version layer
 * (different): /etc/soak-version, its own files under opt/, and /exports.
 * s2 and s3 ship a host file (/exports/hostfs/etc/soak/soak.conf renamed to
 * /etc/$NAME/$NAME.conf, rendered); s1 and s2 a tmpfiles entry, s3 none.
 * So a rebase changes the rootfs, the unit's bundle, and adds or removes
 * host files and the tmpfiles entry.
 */
async function buildImages(layout: string, files: number): Promise<WrittenImage[]> {
  const base = await busyboxLayer('/bin/busybox', ['sh', 'sleep', 'cat', 'true'])
  const data = manyFiles('usr/share/soak', files, 'shared')
  const version = (t: Tag): LayerEntry[] => {
    const hostfs = t !== 's1'
    return [
      { path: 'etc/soak-version', content: `${t}\n` },
      ...manyFiles('opt/soak', Math.floor(files / 2), t),
      { path: 'exports/', type: 'directory' },
      {
        path: 'exports/manifest.json',
        content: JSON.stringify({
          version: '1.0',
          defaultValues: { VERSION: t },
          ...(hostfs ? { renameFiles: { '/etc/soak/soak.conf': '/etc/$NAME/$NAME.conf' }, installedFilesTemplate: ['/etc/soak/soak.conf'] } : {}),
        }),
      },
      ...(t !== 's3' ? [{ path: 'exports/tmpfiles.template', content: `d /run/soak-$NAME 0755 root root -\n` }] : []),
      ...(hostfs
        ? [
            { path: 'exports/hostfs/', type: 'directory' as const },
            { path: 'exports/hostfs/etc/', type: 'directory' as const },
            { path: 'exports/hostfs/etc/soak/', type: 'directory' as const },
            { path: 'exports/hostfs/etc/soak/soak.conf', content: `# $NAME $VERSION\n${t === 's3' ? 'more=1\n' : ''}` },
          ]
        : []),
    ]
  }
  const config = { Entrypoint: ['/bin/sh', '-c', 'while true; do sleep 1; done'], Env: ['PATH=/bin'], WorkingDir: '/' }
  return writeOciLayout(
    layout,
    TAGS.map((t) => ({ tag: t, layers: [base, data, version(t)], config })),
  )
}

// ------------------------------------------------------------------ running the CLI
interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  ms: number
}

function run(args: string[], env: NodeJS.ProcessEnv, killAfterMs?: number): Promise<Run> {
  const started = Date.now()
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs)
  return new Promise((res) =>
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer)
      res({ code, signal, stdout, stderr, ms: Date.now() - started })
    }),
  )
}

// ------------------------------------------------------------------ the soak
type OpKind = 'install' | 'update' | 'rollback' | 'uninstall' | 'prune' | 'fsck'
const WEIGHTS: [OpKind, number][] = [
  ['install', 25],
  ['update', 30],
  ['rollback', 15],
  ['uninstall', 10],
  ['prune', 10],
  ['fsck', 10],
]
const POINTS: Record<string, string[]> = {
  install: ['switch:journal', 'switch:unit', 'switch:hostfs', 'switch:link', 'switch:systemd'],
  update: ['update:built', 'switch:journal', 'switch:unit', 'switch:hostfs', 'switch:link', 'switch:systemd', 'update:restarted'],
  rollback: ['switch:journal', 'switch:unit', 'switch:hostfs', 'switch:link', 'switch:systemd'],
}

interface OpRecord {
  n: number
  kind: OpKind
  args: string[]
  killAfterMs?: number
  killAt?: string
  start: number
  ms?: number
  code?: number | null
  signal?: string | null
  outcome?: 'completed' | 'killed' | 'killed-at-point' | 'failed'
  err?: string
}

interface Env {
  o: Options
  work: string
  root: string
  state: string
  layout: string
  names: string[]
  refTrees: Map<string, string> // manifest digest -> reference checkout
  images: WrittenImage[]
  log: string
}

function chooseKind(): OpKind {
  const total = WEIGHTS.reduce((s, [, w]) => s + w, 0)
  let r = rand() * total
  for (const [k, w] of WEIGHTS) if ((r -= w) < 0) return k
  return 'fsck'
}

const durations = new Map<OpKind, number[]>()
function typicalMs(kind: OpKind): number {
  const d = durations.get(kind)
  if (!d || d.length < 3) return 2500
  const s = [...d].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

function makeOp(e: Env, n: number): OpRecord {
  const name = pick(e.names)
  // Mostly install a name that is not installed (racy, on purpose), mostly something else otherwise.
  const installed = existsSync(join(e.state, 'containers', name))
  let kind = chooseKind()
  if (!installed && kind !== 'prune' && kind !== 'fsck' && rand() < 0.75) kind = 'install'
  else if (installed && kind === 'install' && rand() < 0.8) kind = pick(['update', 'update', 'rollback', 'uninstall'] as const)
  const ref = (t: Tag): string => `oci:${e.layout}:${t}`
  let args: string[]
  switch (kind) {
    case 'install': args = ['install', '--system', '--root', e.root, '--name', name, ref(pick(TAGS))]; break
    case 'update': args = ['containers', 'update', name, '--root', e.root, ...(rand() < 0.85 ? ['--rebase', ref(pick(TAGS))] : [])]; break
    case 'rollback': args = ['containers', 'rollback', name, '--root', e.root]; break
    case 'uninstall': args = ['uninstall', name, '--root', e.root]; break
    case 'prune': args = ['images', 'prune']; break
    case 'fsck': args = ['fsck']; break
  }
  const op: OpRecord = { n, kind, args, start: Date.now() }
  const pts = POINTS[kind]
  if (pts && rand() < e.o.killAtShare) op.killAt = pick(pts)
  else if (rand() < e.o.killShare) op.killAfterMs = Math.floor(rand() * typicalMs(kind) * 1.3)
  return op
}

interface Counts {
  started: number
  completed: number
  killed: number
  killedAtPoint: number
  failed: number
  failedByCode: Map<string, number>
  byKind: Map<OpKind, { started: number; completed: number; killed: number; failed: number }>
  killPointsHit: Map<string, number>
}

function newCounts(): Counts {
  return { started: 0, completed: 0, killed: 0, killedAtPoint: 0, failed: 0, failedByCode: new Map(), byKind: new Map(), killPointsHit: new Map() }
}
const inc = <K>(m: Map<K, number>, k: K): void => void m.set(k, (m.get(k) ?? 0) + 1)

async function runOp(e: Env, op: OpRecord, c: Counts): Promise<void> {
  c.started++
  const k = c.byKind.get(op.kind) ?? { started: 0, completed: 0, killed: 0, failed: 0 }
  c.byKind.set(op.kind, k)
  k.started++
  const r = await run(op.args, { SYSCTR_STATE_DIR: e.state, ...(op.killAt ? { SYSCTR_KILL_AT: op.killAt } : {}) }, op.killAfterMs)
  op.ms = r.ms
  op.code = r.code
  op.signal = r.signal
  if (r.signal === 'SIGKILL') {
    if (op.killAt) {
      op.outcome = 'killed-at-point'
      c.killedAtPoint++
      inc(c.killPointsHit, `${op.kind} ${op.killAt}`)
    } else {
      op.outcome = 'killed'
      c.killed++
    }
    k.killed++
  } else if (r.code === 0) {
    op.outcome = 'completed'
    c.completed++
    k.completed++
    if (!op.killAt) (durations.get(op.kind) ?? durations.set(op.kind, []).get(op.kind)!).push(r.ms)
  } else {
    op.outcome = 'failed'
    c.failed++
    k.failed++
    let code = `exit ${r.code ?? r.signal}`
    const m = /^error: (.*)$/m.exec(r.stderr)
    // The error's stable code is in --json output only; the first line's gist is enough to group.
    const gist = (m?.[1] ?? r.stderr.trim().split('\n').pop() ?? '').replace(/\/\S+/g, 'PATH').replace(/\b[0-9a-f]{12,}\b/g, 'HEX').replace(/\b(soak-[a-z])\b/g, 'NAME').slice(0, 120)
    code += ` ${op.kind}: ${gist}`
    op.err = r.stderr.trim().split('\n').slice(0, 3).join(' | ')
    inc(c.failedByCode, code)
  }
  await fsp.appendFile(e.log, JSON.stringify(op) + '\n')
}

// ------------------------------------------------------------------ checks
interface Problem {
  kind: 'fsck' | 'deployment' | 'host-file' | 'unit' | 'leftover' | 'cleanup'
  what: string
}

async function walkFiles(dir: string, skip: string, out: string[] = []): Promise<string[]> {
  for (const ent of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, ent.name)
    if (p === skip) continue
    if (ent.isDirectory()) await walkFiles(p, skip, out)
    else out.push(p)
  }
  return out
}

async function sha256(p: string): Promise<string | undefined> {
  try {
    return createHash('sha256').update(await fsp.readFile(p)).digest('hex')
  } catch {
    return undefined
  }
}

interface Record_ {
  name: string
  slot: number
  manifestDigest: string
  unit: string
  noContainerService?: boolean
  files: { path: string; sha256: string; role: string }[]
}

async function check(e: Env, label: string): Promise<{ problems: Problem[]; installed: string[]; deployments: number }> {
  const problems: Problem[] = []
  const env = { SYSCTR_STATE_DIR: e.state }
  // Clean-up pass: list, then one harmless command per name (replays a journal, removes leftovers).
  const list = await run(['containers', 'list', '--json'], env)
  if (list.code !== 0) problems.push({ kind: 'cleanup', what: `containers list exit ${list.code}: ${list.stderr.trim()}` })
  for (const name of e.names) {
    const r = await run(['containers', 'update', name, '--root', e.root], env)
    if (r.code !== 0 && !/no container named/.test(r.stderr)) problems.push({ kind: 'cleanup', what: `containers update ${name} exit ${r.code}: ${r.stderr.trim().split('\n')[0]}` })
  }
  const fsck = await run(['fsck', '--json'], env)
  let fsckProblems: unknown[] = []
  try {
    fsckProblems = (JSON.parse(fsck.stdout) as { problems?: unknown[] }).problems ?? []
  } catch {
    /* reported below by exit code */
  }
  if (fsck.code !== 0 || fsckProblems.length) problems.push({ kind: 'fsck', what: `fsck exit ${fsck.code}: ${fsck.stdout.trim().slice(0, 2000)} ${fsck.stderr.trim()}` })

  // Leftovers.
  const containers = join(e.state, 'containers')
  const centries = await fsp.readdir(containers).catch(() => [] as string[])
  for (const ent of centries) if (ent.startsWith('.')) problems.push({ kind: 'leftover', what: `containers/${ent}` })
  for (const sub of ['tmp', 'leases']) {
    for (const ent of await fsp.readdir(join(e.state, 'store', sub)).catch(() => [] as string[])) problems.push({ kind: 'leftover', what: `store/${sub}/${ent}` })
  }
  if (existsSync(join(e.state, 'locks'))) {
    const locks = await walkFiles(join(e.state, 'locks'), '')
    problems.push({ kind: 'leftover', what: `locks/ still there${locks.length ? `: ${locks.map((l) => l.slice(e.state.length + 1)).join(', ')}` : ''}` })
  }

  // Deployments.
  const active = new Map<string, Record_>() // name -> active record
  let deployments = 0
  for (const ent of centries) {
    const m = /^(.+)\.(\d+)$/.exec(ent)
    if (ent.startsWith('.') || !m) continue
    deployments++
    const dir = join(containers, ent)
    let rec: Record_
    try {
      rec = JSON.parse(await fsp.readFile(join(dir, 'info.json'), 'utf8')) as Record_
    } catch (err) {
      problems.push({ kind: 'deployment', what: `${ent}: info.json unreadable: ${(err as Error).message}` })
      continue
    }
    if (!rec.noContainerService && !existsSync(join(dir, 'config.json'))) problems.push({ kind: 'deployment', what: `${ent}: config.json missing` })
    const ref = e.refTrees.get(rec.manifestDigest)
    if (!ref) problems.push({ kind: 'deployment', what: `${ent}: manifest ${rec.manifestDigest} is none of the soak's images` })
    else {
      const d = await compareTrees(ref, join(dir, 'rootfs'), { ignoreRoot: true }).catch((err: Error) => ({ path: '/', what: `error ${err.message}` }))
      if (d) problems.push({ kind: 'deployment', what: `${ent}: rootfs differs from its image at ${d.path}: ${d.what}` })
    }
    const link = await fsp.readlink(join(containers, m[1])).catch(() => undefined)
    if (link === ent) active.set(m[1], rec)
    else if (!existsSync(join(dir, 'activated'))) problems.push({ kind: 'leftover', what: `${ent}: neither active nor activated (a slot nothing can roll back to)` })
  }
  for (const ent of centries) {
    const st = await fsp.lstat(join(containers, ent)).catch(() => undefined)
    if (st?.isSymbolicLink() && !existsSync(join(containers, ent))) problems.push({ kind: 'deployment', what: `containers/${ent} -> ${await fsp.readlink(join(containers, ent))}: dangling active link` })
  }
  for (const name of e.names) {
    const slots = centries.filter((c) => new RegExp(`^${name}\\.\\d+$`).test(c))
    if (slots.length > 2) problems.push({ kind: 'leftover', what: `${name}: ${slots.length} deployments (${slots.join(', ')})` })
    if (slots.length && !active.has(name)) problems.push({ kind: 'deployment', what: `${name}: deployments ${slots.join(', ')} but no active link` })
  }

  // Host files: everything under the root outside the state dir belongs to an active record.
  const expected = new Map<string, { sha: string; name: string }>()
  for (const [name, rec] of active) for (const f of rec.files) expected.set(join(e.root, f.path), { sha: f.sha256, name })
  const hostFiles = await walkFiles(e.root, join(e.root, 'var/lib/sysctr'))
  const seen = new Set<string>()
  for (const p of hostFiles) {
    const rel = p.slice(e.root.length)
    const st = await fsp.lstat(p)
    if (st.isSymbolicLink()) {
      // An enablement link: .../X.wants/UNIT -> the unit file.
      const unit = p.split('/').pop()!
      const owner = [...active.values()].find((r) => r.unit === unit && !r.noContainerService)
      if (!owner) problems.push({ kind: 'unit', what: `${rel}: enablement link for ${unit}, which no installed container has` })
      else if (!existsSync(join(e.root, 'etc/systemd/system', unit))) problems.push({ kind: 'unit', what: `${rel}: points at a missing unit file` })
      continue
    }
    const want = expected.get(p)
    if (!want) {
      problems.push({ kind: 'host-file', what: `${rel}: on the host, in no active deployment's record` })
      continue
    }
    seen.add(p)
    const have = await sha256(p)
    if (have !== want.sha) problems.push({ kind: 'host-file', what: `${rel}: differs from ${want.name}'s record` })
    if (rel.endsWith('.service')) {
      const text = await fsp.readFile(p, 'utf8')
      const b = /--bundle (\S+)/.exec(text)
      if (b) {
        const rec = active.get(want.name)!
        if (!existsSync(join(e.root, b[1]))) problems.push({ kind: 'unit', what: `${rel}: --bundle ${b[1]}, which is missing` })
        else if (b[1] !== `/var/lib/sysctr/containers/${want.name}.${rec.slot}`) problems.push({ kind: 'unit', what: `${rel}: --bundle ${b[1]}, not the active ${want.name}.${rec.slot}` })
      }
    }
  }
  for (const [p, w] of expected) if (!seen.has(p)) problems.push({ kind: 'host-file', what: `${p.slice(e.root.length)}: in ${w.name}'s active record, missing on the host` })
  for (const [name, rec] of active) {
    if (rec.noContainerService) continue
    const wants = hostFiles.filter((p) => p.endsWith(`.wants/${rec.unit}`))
    if (!wants.length) problems.push({ kind: 'unit', what: `${name}: ${rec.unit} installed but not enabled` })
  }
  console.error(`[soak] check ${label}: ${active.size} installed, ${deployments} deployments, ${problems.length} problem(s)`)
  for (const p of problems) console.error(`[soak]   ${p.kind}: ${p.what}`)
  return { problems, installed: [...active.keys()], deployments }
}

// ------------------------------------------------------------------ main
async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2))
  rngState = o.seed
  if (!existsSync(join(REPO, 'dist/cli/main.js'))) throw new Error('dist/ missing: npm run build first')
  const work = o.dir ?? (await fsp.mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'sysctr-soak-')))
  await fsp.mkdir(work, { recursive: true })
  const root = join(work, 'root')
  const e: Env = {
    o,
    work,
    root,
    state: join(root, 'var/lib/sysctr'),
    layout: join(work, 'layout'),
    names: Array.from({ length: o.names }, (_, i) => `soak-${String.fromCharCode(97 + i)}`),
    refTrees: new Map(),
    images: [],
    log: join(work, 'ops.jsonl'),
  }
  await fsp.mkdir(root, { recursive: true })
  console.error(`[soak] work dir ${work}, seed ${o.seed}, ${o.minutes} min, concurrency ${o.concurrency}, names ${e.names.join(' ')}`)

  // Images and reference checkouts (a separate store).
  e.images = await buildImages(e.layout, o.files)
  const refState = join(work, 'ref-state')
  for (const img of e.images) {
    const dest = join(work, 'ref-trees', img.tag)
    e.refTrees.set(img.manifestDigest, dest)
    if (existsSync(dest)) continue
    await fsp.mkdir(join(work, 'ref-trees'), { recursive: true })
    const r = await run(['images', 'checkout', `oci:${e.layout}:${img.tag}`, dest], { SYSCTR_STATE_DIR: refState })
    if (r.code !== 0) {
      const p = await run(['images', 'pull', `oci:${e.layout}:${img.tag}`], { SYSCTR_STATE_DIR: refState })
      if (p.code !== 0) throw new Error(`pulling the reference ${img.tag}: ${p.stderr}`)
      const r2 = await run(['images', 'checkout', `oci:${e.layout}:${img.tag}`, dest], { SYSCTR_STATE_DIR: refState })
      if (r2.code !== 0) throw new Error(`checking out the reference ${img.tag}: ${r2.stderr}`)
    }
    e.refTrees.set(img.manifestDigest, dest)
  }

  if (o.checkOnly) {
    const r = await check(e, 'check-only')
    process.exitCode = r.problems.length ? 1 : 0
    return
  }
  const c = newCounts()
  const checks: { label: string; problems: Problem[]; installed: string[]; deployments: number; afterOp: number }[] = []
  const t0 = Date.now()
  const deadline = t0 + o.minutes * 60_000
  let n = 0
  let nextCheck = o.checkEvery > 0 ? t0 + o.checkEvery * 60_000 : Infinity
  while (Date.now() < deadline) {
    const until = Math.min(deadline, nextCheck)
    const workers = Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < until) await runOp(e, makeOp(e, ++n), c)
    })
    await Promise.all(workers)
    const label = Date.now() >= deadline ? 'final' : `at ${((Date.now() - t0) / 60_000).toFixed(1)} min`
    const r = await check(e, label)
    checks.push({ label, ...r, afterOp: n })
    if (r.problems.length) {
      const snap = join(work, `snapshot-after-op-${n}`)
      await fsp.cp(root, snap, { recursive: true, verbatimSymlinks: true }).catch(() => {})
      console.error(`[soak]   root copied to ${snap}; operations in ${e.log}`)
    }
    nextCheck = Date.now() + o.checkEvery * 60_000
  }

  // Report.
  const lost = checks.flatMap((x) => x.problems.map((p) => ({ ...p, check: x.label, afterOp: x.afterOp })))
  const lines: string[] = []
  lines.push(`soak: ${((Date.now() - t0) / 60_000).toFixed(1)} min, concurrency ${o.concurrency}, names ${o.names}, seed ${o.seed}, kill-share ${o.killShare}, kill-at-share ${o.killAtShare}`)
  lines.push(`operations: started ${c.started}, completed ${c.completed}, killed ${c.killed} (random delay), killed at a point ${c.killedAtPoint}, failed ${c.failed}`)
  lines.push('')
  lines.push('| operation | started | completed | killed | failed |')
  lines.push('|---|---:|---:|---:|---:|')
  for (const [k] of WEIGHTS) {
    const b = c.byKind.get(k) ?? { started: 0, completed: 0, killed: 0, failed: 0 }
    lines.push(`| ${k} | ${b.started} | ${b.completed} | ${b.killed} | ${b.failed} |`)
  }
  lines.push('')
  lines.push('kill points hit (SYSCTR_KILL_AT):')
  for (const [k, v] of [...c.killPointsHit].sort()) lines.push(`  ${v}  ${k}`)
  lines.push('failures by exit code:')
  for (const [k, v] of [...c.failedByCode].sort((a, b) => b[1] - a[1])) lines.push(`  ${v}  ${k}`)
  lines.push(`checks: ${checks.map((x) => `${x.label} (${x.installed.length} installed, ${x.deployments} deployments): ${x.problems.length} problem(s)`).join('; ')}`)
  const by = (kind: Problem['kind']): number => lost.filter((p) => p.kind === kind).length
  lines.push(
    `lost: ${lost.length} (fsck errors ${by('fsck')}, deployments missing files or differing ${by('deployment')}, host files ${by('host-file')}, units/links ${by('unit')}, leftovers ${by('leftover')}, clean-up failures ${by('cleanup')})`,
  )
  for (const p of lost) lines.push(`  [${p.check}, after op ${p.afterOp}] ${p.kind}: ${p.what}`)
  console.log(lines.join('\n'))
  await fsp.writeFile(join(work, 'report.txt'), lines.join('\n') + '\n')
  if (!lost.length && !o.keep) await fsp.rm(work, { recursive: true, force: true })
  else console.error(`[soak] kept ${work} (ops.jsonl: every operation with its kill and outcome)`)
  process.exitCode = lost.length ? 1 : 0
}

main().catch((err: Error) => {
  console.error(`soak: ${err.stack ?? err.message}`)
  process.exitCode = 2
})
