/**
 * The image's /exports contract (as Atomic system containers defined it).
 *
 * For each output the first file found wins, else sysctr's default:
 *   config.json: config.json.hbs | config.json.template | config.json (used as is) | <defaults>/config.json.hbs
 *   service:     service.hbs     | service.template                                | <defaults>/service.hbs
 *   tmpfiles:    tmpfiles.hbs    | tmpfiles.template                               | <defaults>/tmpfiles.hbs
 * plus manifest.json (defaultValues, noContainerService, renameFiles,
 * installedFilesTemplate).
 *
 * Invariants:
 * - Files under /exports are opened with O_NOFOLLOW and must be regular files:
 *   a symlink (which could point anywhere on the host) is refused, never
 *   followed; so is /exports itself being a symlink. A candidate that exists
 *   but is refused does not fall through to the next candidate.
 * - `.hbs` files are Handlebars, `.template` files legacy `$VAR` templates;
 *   both render strictly. Values used by the service and tmpfiles templates
 *   are checked to stay on one line (checkUnitSafe) before rendering.
 */
import { constants as fsConstants, promises as fs } from 'node:fs'
import * as path from 'node:path'
import { ContentError, doing } from '../errors'
import { handlebarsContext, handlebarsVariables, renderHandlebars, type ImageRuntimeConfig } from './handlebars'
import { legacyVariables, renderLegacy } from './legacy'
import { checkUnitSafe } from '../systemd/unit-quote'

export type ExportKind = 'config.json' | 'service' | 'tmpfiles' | 'socket'
/** 'plain': a config.json used as is. */
export type TemplateSyntax = 'handlebars' | 'legacy' | 'plain'
export type ExportOrigin = 'image' | 'default'

export interface ExportTemplate {
  kind: ExportKind
  /** The file name, e.g. `service.template` (what error messages name). */
  file: string
  /** Where it was read from. */
  path: string
  syntax: TemplateSyntax
  origin: ExportOrigin
  text: string
}

export interface ExportsManifest {
  defaultValues: Record<string, string>
  noContainerService: boolean
  /** Host path -> destination template (rendered later with the values). */
  renameFiles: Record<string, string>
  /** Paths under exports/hostfs that are templates. */
  installedFilesTemplate: string[]
}

export interface Exports {
  /** rootfs/exports. */
  dir: string
  /** Whether the image has an /exports directory at all. */
  present: boolean
  configJson: ExportTemplate
  service: ExportTemplate
  tmpfiles: ExportTemplate
  /** `socket.hbs` / `socket.template`: NAME.socket, for socket activation (no default: absent when the image has none). */
  socket?: ExportTemplate
  manifest: ExportsManifest
  manifestOrigin: 'image' | 'none'
}

/** Largest /exports file sysctr reads. */
export const MAX_EXPORT_FILE_SIZE = 1024 * 1024

const CANDIDATES: Record<ExportKind, { file: string; syntax: TemplateSyntax }[]> = {
  'config.json': [
    { file: 'config.json.hbs', syntax: 'handlebars' },
    { file: 'config.json.template', syntax: 'legacy' },
    { file: 'config.json', syntax: 'plain' },
  ],
  service: [
    { file: 'service.hbs', syntax: 'handlebars' },
    { file: 'service.template', syntax: 'legacy' },
  ],
  tmpfiles: [
    { file: 'tmpfiles.hbs', syntax: 'handlebars' },
    { file: 'tmpfiles.template', syntax: 'legacy' },
  ],
  socket: [
    { file: 'socket.hbs', syntax: 'handlebars' },
    { file: 'socket.template', syntax: 'legacy' },
  ],
}

const DEFAULT_FILES: Record<Exclude<ExportKind, 'socket'>, string> = {
  'config.json': 'config.json.hbs',
  service: 'service.hbs',
  tmpfiles: 'tmpfiles.hbs',
}

async function lstatOrUndefined(p: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.lstat(p)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
    throw err
  }
}

/** Read a regular file under /exports without following a symlink. */
async function readExportFile(p: string, name: string): Promise<string> {
  let handle: import('node:fs/promises').FileHandle
  try {
    handle = await fs.open(p, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new ContentError('exports.symlink', `/exports/${name} is a symlink; sysctr does not follow symlinks in /exports`, {
        hint: 'the image must ship its /exports files as regular files',
        data: { file: name },
      })
    }
    throw err
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) {
      throw new ContentError('exports.not-a-file', `/exports/${name} is not a regular file`, { data: { file: name } })
    }
    if (st.size > MAX_EXPORT_FILE_SIZE) {
      throw new ContentError('exports.too-large', `/exports/${name} is ${st.size} bytes (at most ${MAX_EXPORT_FILE_SIZE})`, {
        data: { file: name, size: st.size },
      })
    }
    return await handle.readFile({ encoding: 'utf8' })
  } finally {
    await handle.close()
  }
}

async function findTemplate(kind: Exclude<ExportKind, 'socket'>, exportsDir: string, present: boolean, defaultsDir: string): Promise<ExportTemplate> {
  if (present) {
    for (const c of CANDIDATES[kind]) {
      const p = path.join(exportsDir, c.file)
      if (!(await lstatOrUndefined(p))) continue
      const text = await readExportFile(p, c.file)
      return { kind, file: c.file, path: p, syntax: c.syntax, origin: 'image', text }
    }
  }
  const file = DEFAULT_FILES[kind]
  const p = path.join(defaultsDir, file)
  const text = await fs.readFile(p, 'utf8')
  return { kind, file, path: p, syntax: 'handlebars', origin: 'default', text }
}

/** An optional template the image may ship (no default): `{ socket: ... }` when present. */
async function findImageTemplate(kind: 'socket', exportsDir: string): Promise<{ socket?: ExportTemplate }> {
  for (const c of CANDIDATES[kind]) {
    const p = path.join(exportsDir, c.file)
    if (!(await lstatOrUndefined(p))) continue
    return { socket: { kind, file: c.file, path: p, syntax: c.syntax, origin: 'image', text: await readExportFile(p, c.file) } }
  }
  return {}
}

function badManifest(message: string, cause?: unknown): ContentError {
  return new ContentError('exports.bad-manifest', `/exports/manifest.json: ${message}`, { cause, data: { file: 'manifest.json' } })
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Parse and check manifest.json (exported for tests and `images info`). */
export function parseExportsManifest(text: string): ExportsManifest {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw badManifest(`invalid JSON (${(err as Error).message})`, err)
  }
  if (!isPlainObject(raw)) throw badManifest('expected a JSON object')
  const m: ExportsManifest = { defaultValues: {}, noContainerService: false, renameFiles: {}, installedFilesTemplate: [] }
  if (raw.defaultValues !== undefined) {
    if (!isPlainObject(raw.defaultValues)) throw badManifest('defaultValues must be an object of strings')
    for (const [k, v] of Object.entries(raw.defaultValues)) {
      if (k === '__proto__') continue
      // Atomic's string.Template accepted numbers and booleans through str(); so do we.
      if (typeof v === 'string') m.defaultValues[k] = v
      else if (typeof v === 'number' || typeof v === 'boolean') m.defaultValues[k] = String(v)
      else throw badManifest(`defaultValues.${k} must be a string`)
    }
  }
  if (raw.noContainerService !== undefined) {
    if (typeof raw.noContainerService !== 'boolean') throw badManifest('noContainerService must be true or false')
    m.noContainerService = raw.noContainerService
  }
  if (raw.renameFiles !== undefined) {
    if (!isPlainObject(raw.renameFiles)) throw badManifest('renameFiles must be an object of strings')
    for (const [k, v] of Object.entries(raw.renameFiles)) {
      if (typeof v !== 'string') throw badManifest(`renameFiles[${JSON.stringify(k)}] must be a string`)
      if (k !== '__proto__') m.renameFiles[k] = v
    }
  }
  if (raw.installedFilesTemplate !== undefined) {
    const list = raw.installedFilesTemplate
    if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) throw badManifest('installedFilesTemplate must be a list of paths')
    m.installedFilesTemplate = [...list]
  }
  return m
}

/**
 * Find the image's /exports files (or sysctr's defaults) and read manifest.json.
 * `rootfsDir` is the checked-out rootfs; `defaultsDir` the project's templates/.
 */
export async function loadExports(rootfsDir: string, defaultsDir: string): Promise<Exports> {
  return doing('reading the image /exports', async () => {
    const dir = path.join(rootfsDir, 'exports')
    const st = await lstatOrUndefined(dir)
    if (st?.isSymbolicLink()) {
      throw new ContentError('exports.symlink', '/exports is a symlink; sysctr does not follow symlinks in /exports', {
        hint: 'the image must ship /exports as a directory',
        data: { file: 'exports' },
      })
    }
    if (st && !st.isDirectory()) throw new ContentError('exports.not-a-directory', '/exports is not a directory', { data: { file: 'exports' } })
    const present = st !== undefined

    let manifest: ExportsManifest = { defaultValues: {}, noContainerService: false, renameFiles: {}, installedFilesTemplate: [] }
    let manifestOrigin: Exports['manifestOrigin'] = 'none'
    const manifestPath = path.join(dir, 'manifest.json')
    if (present && (await lstatOrUndefined(manifestPath))) {
      manifest = parseExportsManifest(await readExportFile(manifestPath, 'manifest.json'))
      manifestOrigin = 'image'
    }
    return {
      dir,
      present,
      configJson: await findTemplate('config.json', dir, present, defaultsDir),
      service: await findTemplate('service', dir, present, defaultsDir),
      tmpfiles: await findTemplate('tmpfiles', dir, present, defaultsDir),
      ...(present ? await findImageTemplate('socket', dir) : {}),
      manifest,
      manifestOrigin,
    }
  })
}

/** The variables one template uses ([] for a plain config.json). */
export function variablesOf(t: ExportTemplate): string[] {
  if (t.syntax === 'legacy') return legacyVariables(t.text, { file: t.file })
  if (t.syntax === 'handlebars') return handlebarsVariables(t.text, { file: t.file })
  return []
}

export interface TemplateVariables {
  configJson: string[]
  service: string[]
  tmpfiles: string[]
  /** Union, in order of first use. */
  all: string[]
}

/** The variables each template needs (for `images info`). */
export function templateVariables(exports: Exports): TemplateVariables {
  const configJson = variablesOf(exports.configJson)
  const service = variablesOf(exports.service)
  const tmpfiles = variablesOf(exports.tmpfiles)
  const socket = exports.socket ? variablesOf(exports.socket) : []
  return { configJson, service, tmpfiles, all: [...new Set([...configJson, ...service, ...tmpfiles, ...socket])] }
}

function renderOne(t: ExportTemplate, values: Record<string, string>, imageConfig: ImageRuntimeConfig | undefined | null): string {
  if (t.kind !== 'config.json') checkUnitSafe(values, variablesOf(t), { file: t.file })
  if (t.syntax === 'plain') return t.text
  if (t.syntax === 'legacy') return renderLegacy(t.text, values, { file: t.file })
  return renderHandlebars(t.text, handlebarsContext(values, imageConfig), { file: t.file, mode: t.kind === 'config.json' ? 'json' : 'unit' })
}

export interface RenderedExports {
  configJson: string
  service: string
  tmpfiles: string
  /** NAME.socket, when the image ships a socket template. */
  socket?: string
}

/**
 * Render config.json, the service unit and the tmpfiles file. The config is
 * not validated here: pass it to runtime/config-check.ts checkRuntimeConfig.
 */
export async function renderExports(
  exports: Exports,
  values: Record<string, string>,
  imageConfig: ImageRuntimeConfig | undefined | null,
): Promise<RenderedExports> {
  return {
    configJson: renderOne(exports.configJson, values, imageConfig),
    service: renderOne(exports.service, values, imageConfig),
    tmpfiles: renderOne(exports.tmpfiles, values, imageConfig),
    ...(exports.socket ? { socket: renderOne(exports.socket, values, imageConfig) } : {}),
  }
}
