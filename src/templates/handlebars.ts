/**
 * Handlebars templates (`*.hbs` in /exports, and sysctr's own defaults).
 *
 * The context is every value (strings) plus `image`, the image config
 * (Entrypoint, Cmd, Env, WorkingDir, User, Labels, StopSignal; absent fields
 * normalised to [] / '' / {}), so templates can build process args and env.
 *
 * Invariants:
 * - Strict: every value the template names at the top level (`{{X}}`,
 *   `{{#if X}}`, `{{json X}}`, `@root.X`, in any branch) must exist; all
 *   missing names are reported at once (UsageError 'template.missing-value').
 *   Anything undefined at render time (e.g. inside `#each`) is a ContentError.
 * - No HTML escaping. Every `{{...}}` output goes through one guard:
 *   - mode 'json' (config.json): `{{X}}` is escaped as the inside of a JSON
 *     string (`"hostname": "{{NAME}}"` cannot break out of its quotes);
 *     `{{{X}}}` and `{{json X}}` are raw; `{{{json X}}}` emits JSON.stringify(X).
 *   - mode 'unit' (service, tmpfiles): an output containing \n, \r, NUL or
 *     ending in a backslash is refused (UsageError 'values.unsafe'), so no
 *     value can add a directive or a section.
 * - Lists and objects must go through `json` (or `#each`); they are never
 *   stringified implicitly.
 *
 * Helpers: json, concat, envDefault, or, uid, gid (plus Handlebars' if,
 * unless, each, with, lookup).
 */
import type * as HandlebarsModule from 'handlebars'
import { ContentError, SysctrError, UsageError } from '../errors'
import type { ImageConfig } from '../oci/types'
import { missingValuesError } from './legacy'
import { unitUnsafeReason } from '../systemd/unit-quote'

/** Handlebars, loaded on first use: commands that render nothing do not pay for it at start-up. */
let loaded: typeof HandlebarsModule | undefined
function handlebars(): typeof HandlebarsModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (loaded ??= require('handlebars') as typeof HandlebarsModule)
}

export type HandlebarsMode = 'json' | 'unit'

/** The image config as templates see it: every field present. */
export interface ImageContext {
  Entrypoint: string[]
  Cmd: string[]
  Env: string[]
  WorkingDir: string
  User: string
  Labels: Record<string, string>
  StopSignal: string
}

export type ImageRuntimeConfig = NonNullable<ImageConfig['config']>

export function imageContext(config: ImageRuntimeConfig | undefined | null): ImageContext {
  const c = config ?? {}
  return {
    Entrypoint: [...(c.Entrypoint ?? [])],
    Cmd: [...(c.Cmd ?? [])],
    Env: [...(c.Env ?? [])],
    WorkingDir: c.WorkingDir ?? '',
    User: c.User ?? '',
    Labels: { ...(c.Labels ?? {}) },
    StopSignal: c.StopSignal ?? '',
  }
}

/** The render context: all values (strings) plus `image`. A value named `image` is shadowed. */
export function handlebarsContext(values: Record<string, string>, imageConfig: ImageRuntimeConfig | undefined | null): Record<string, unknown> {
  return { ...values, image: imageContext(imageConfig) }
}

/** The default mode for an /exports file name: 'json' for config.json*, else 'unit'. */
export function modeForFile(file: string): HandlebarsMode {
  return /(^|\/)config\.json/.test(file) ? 'json' : 'unit'
}

// ---- AST shapes (the subset sysctr reads and rewrites) ----

interface Loc {
  start: { line: number; column: number }
}
interface PathNode {
  type: 'PathExpression'
  data: boolean
  depth: number
  parts: string[]
  original: string
  loc?: Loc
}
interface CallNode {
  type: 'MustacheStatement' | 'SubExpression' | 'BlockStatement' | 'PartialStatement' | 'PartialBlockStatement'
  path: ExprNode
  params: ExprNode[]
  hash?: { pairs: { key: string; value: ExprNode }[] }
  escaped?: boolean
  program?: ProgramNode
  inverse?: ProgramNode
  name?: ExprNode
  loc?: Loc
}
interface LiteralNode {
  type: 'StringLiteral' | 'NumberLiteral' | 'BooleanLiteral' | 'UndefinedLiteral' | 'NullLiteral'
  value?: unknown
  original?: unknown
  loc?: Loc
}
type ExprNode = PathNode | CallNode | LiteralNode
interface ProgramNode {
  type: 'Program'
  body: Array<CallNode | { type: string }>
}

const EMIT = '__sysctr_emit'
const BUILTIN_HELPERS = new Set(['if', 'unless', 'each', 'with', 'lookup', 'log', 'json', 'concat', 'envDefault', 'or', 'uid', 'gid', EMIT])
/** Blocks that keep the context (`../` does not count them, Handlebars 4). */
const CONTEXT_KEEPING_BLOCKS = new Set(['if', 'unless'])

function parse(text: string, file: string): ProgramNode {
  try {
    return handlebars().parse(text) as unknown as ProgramNode
  } catch (err) {
    const lines = (err instanceof Error ? err.message : String(err)).split('\n').map((l) => l.trim()).filter(Boolean)
    const detail = lines.length > 1 ? `${lines[0].replace(/:$/, '')}: ${lines[lines.length - 1]}` : lines[0] ?? 'parse error'
    throw new ContentError('template.syntax', `${file}: ${detail}`, { cause: err, data: { file } })
  }
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  return msg.replace(/\s*\n[\s\S]*$/, '').trim() || msg
}

function isHelperCall(node: CallNode): boolean {
  if (node.type === 'SubExpression') return true
  if (node.params.length > 0 || (node.hash && node.hash.pairs.length > 0)) return true
  return node.path.type === 'PathExpression' && BUILTIN_HELPERS.has(node.path.original)
}

/** Names looked up on the root context, in order of first use (static: every branch counts). */
function rootReferences(ast: ProgramNode): string[] {
  const out = new Set<string>()
  const expr = (e: ExprNode, depth: number): void => {
    if (e.type === 'SubExpression') return call(e, depth)
    if (e.type !== 'PathExpression') return
    if (e.data) {
      if (e.parts[0] === 'root' && e.parts.length > 1) out.add(e.parts[1])
      return
    }
    if (e.depth === depth && e.parts.length > 0) out.add(e.parts[0])
  }
  const call = (n: CallNode, depth: number): void => {
    if (n.type === 'PartialStatement' || n.type === 'PartialBlockStatement') {
      for (const p of n.params) expr(p, depth)
    } else {
      if (!isHelperCall(n)) expr(n.path, depth)
      for (const p of n.params) expr(p, depth)
    }
    for (const pair of n.hash?.pairs ?? []) expr(pair.value, depth)
    if (n.program) {
      const keeps = n.type === 'BlockStatement' && n.path.type === 'PathExpression' && CONTEXT_KEEPING_BLOCKS.has(n.path.original)
      program(n.program, keeps ? depth : depth + 1)
    }
    if (n.inverse) program(n.inverse, depth)
  }
  const program = (p: ProgramNode, depth: number): void => {
    for (const s of p.body) {
      if (s.type === 'MustacheStatement' || s.type === 'BlockStatement' || s.type === 'PartialStatement' || s.type === 'PartialBlockStatement') {
        call(s as CallNode, depth)
      }
    }
  }
  program(ast, 0)
  return [...out]
}

/** The values a Handlebars template uses (top-level names, without `image`). */
export function handlebarsVariables(text: string, opts: { file?: string } = {}): string[] {
  return rootReferences(parse(text, opts.file ?? 'template')).filter((n) => n !== 'image')
}

interface EmitSite {
  name: string
  line: number
  column: number
  kind: 'json-string' | 'raw' | 'unit'
}

function describe(e: ExprNode): string {
  if (e.type === 'PathExpression') return e.original
  if (e.type === 'SubExpression' || e.type === 'MustacheStatement') return `${describe(e.path)} …`
  return String((e as LiteralNode).original ?? '')
}

/** Route every `{{...}}` output through the EMIT helper (see the module invariants). */
function rewriteOutputs(ast: ProgramNode, mode: HandlebarsMode): EmitSite[] {
  const sites: EmitSite[] = []
  const program = (p: ProgramNode | undefined): void => {
    if (!p) return
    for (const s of p.body) {
      if (s.type === 'BlockStatement') {
        program((s as CallNode).program)
        program((s as CallNode).inverse)
      } else if (s.type === 'MustacheStatement') {
        const m = s as CallNode
        if (m.path.type === 'PathExpression' && m.path.original === EMIT) continue
        const isJsonHelper = m.path.type === 'PathExpression' && m.path.original === 'json' && m.params.length > 0
        const kind: EmitSite['kind'] = mode === 'unit' ? 'unit' : m.escaped && !isJsonHelper ? 'json-string' : 'raw'
        const inner: ExprNode = isHelperCall(m)
          ? { type: 'SubExpression', path: m.path, params: m.params, hash: m.hash, loc: m.loc }
          : m.path
        const start = m.loc?.start ?? { line: 0, column: 0 }
        sites.push({ name: describe(m.path.type === 'PathExpression' && !isHelperCall(m) ? m.path : m), line: start.line, column: start.column + 1, kind })
        const index: LiteralNode = { type: 'NumberLiteral', value: sites.length - 1, original: sites.length - 1, loc: m.loc }
        m.path = { type: 'PathExpression', data: false, depth: 0, parts: [EMIT], original: EMIT, loc: m.loc }
        m.params = [inner, index]
        m.hash = undefined
        m.escaped = false
      }
    }
  }
  program(ast)
  return sites
}

function isList(v: unknown): v is unknown[] {
  return Array.isArray(v)
}

/** `uid[:gid]` when both are numbers; undefined for names ("nobody", "1000:wheel"). */
export function numericUser(user: string | undefined): { uid: number; gid: number } | undefined {
  const m = /^(\d+)(?::(\d+))?$/.exec((user ?? '').trim())
  if (!m) return undefined
  return { uid: Number(m[1]), gid: m[2] === undefined ? 0 : Number(m[2]) }
}

function registerHelpers(env: typeof HandlebarsModule, file: string, sites: EmitSite[]): void {
  const fail = (what: string, options: { loc?: Loc } | undefined): never => {
    const loc = options?.loc?.start
    const where = loc ? `${file}:${loc.line}:${loc.column + 1}` : file
    throw new ContentError('template.render-failed', `${where}: ${what}`, { data: { file } })
  }
  const args = (all: unknown[]): { params: unknown[]; options: { loc?: Loc } } => ({
    params: all.slice(0, -1),
    options: all[all.length - 1] as { loc?: Loc },
  })

  env.registerHelper(EMIT, (value: unknown, index: number) => {
    const site = sites[index]
    const where = `${file}:${site.line}:${site.column}`
    if (value === undefined) {
      throw new ContentError('template.render-failed', `${where}: ${site.name} is not defined`, { data: { file, name: site.name } })
    }
    if (value !== null && typeof value === 'object') {
      throw new ContentError('template.render-failed', `${where}: ${site.name} is a ${isList(value) ? 'list' : 'map'}; write {{{json ${site.name}}}} or use #each`, {
        data: { file, name: site.name },
      })
    }
    const s = value === null ? '' : String(value)
    if (site.kind === 'json-string') return JSON.stringify(s).slice(1, -1)
    if (site.kind === 'unit') {
      const reason = unitUnsafeReason(s)
      if (reason) {
        throw new UsageError('values.unsafe', `unsafe value for ${site.name} (${reason}) at ${where}: it would add lines to a systemd file`, {
          hint: 'values used in service or tmpfiles templates must be a single line',
          data: { keys: [site.name], file },
        })
      }
    }
    return s
  })

  env.registerHelper('json', (...all: unknown[]) => {
    const { params, options } = args(all)
    if (params.length !== 1) fail('json takes one value: {{{json VALUE}}}', options)
    if (params[0] === undefined) fail('json: the value is not defined', options)
    return JSON.stringify(params[0])
  })

  // concat A B ...: one list from lists (null/undefined skipped) and single items.
  env.registerHelper('concat', (...all: unknown[]) => {
    const out: unknown[] = []
    for (const p of args(all).params) {
      if (p === undefined || p === null) continue
      if (isList(p)) out.push(...p)
      else out.push(p)
    }
    return out
  })

  // envDefault ENV "NAME" "VALUE": ENV plus NAME=VALUE unless ENV sets NAME.
  env.registerHelper('envDefault', (...all: unknown[]) => {
    const { params, options } = args(all)
    const [list, name, value] = params
    if (typeof name !== 'string' || typeof value !== 'string') return fail('envDefault takes a list, a name and a value', options)
    const env = isList(list) ? list.map(String) : []
    if (!env.some((e) => e === name || e.startsWith(`${name}=`))) env.push(`${name}=${value}`)
    return env
  })

  // or A B ...: the first value that is not empty (undefined, null, '' or []), else the last.
  env.registerHelper('or', (...all: unknown[]) => {
    const { params } = args(all)
    for (const p of params) {
      if (p === undefined || p === null || p === '' || (isList(p) && p.length === 0)) continue
      return p
    }
    return params[params.length - 1]
  })

  // uid USER / gid USER: the numbers of a numeric "uid[:gid]", else 0 (root).
  env.registerHelper('uid', (user: unknown) => numericUser(typeof user === 'string' ? user : '')?.uid ?? 0)
  env.registerHelper('gid', (user: unknown) => numericUser(typeof user === 'string' ? user : '')?.gid ?? 0)
}

/** Render a Handlebars template strictly; see the module invariants. */
export function renderHandlebars(
  text: string,
  context: Record<string, unknown>,
  opts: { file: string; mode?: HandlebarsMode },
): string {
  const mode = opts.mode ?? modeForFile(opts.file)
  const ast = parse(text, opts.file)
  const missing = rootReferences(ast).filter((n) => !Object.prototype.hasOwnProperty.call(context, n) || context[n] === undefined)
  if (missing.length > 0) throw missingValuesError(missing, opts.file)

  const sites = rewriteOutputs(ast, mode)
  const env = handlebars().create()
  registerHelpers(env, opts.file, sites)
  try {
    const template = env.compile(ast, { strict: true, noEscape: true })
    return template(context)
  } catch (err) {
    if (err instanceof SysctrError) throw err
    throw new ContentError('template.render-failed', `${opts.file}: ${firstLine(err)}`, { cause: err, data: { file: opts.file } })
  }
}
