#!/usr/bin/env node
// Build step 2 of `npm run build` (after tsc): the single-file CLI that bin/sysctr runs.
//
//   node scripts/bundle.js [--no-cache] [--no-minify]   (--no-minify: readable lines for `node --cpu-prof`)
//
// 1. esbuild bundles src/cli/main.ts, every command under src/commands/ and
//    their dependencies (@oclif/core included) into dist/bundle/sysctr.js. The
//    command list is generated here from the files in src/commands/ (a new
//    command needs no list to be edited): `COMMANDS`, the export that
//    package.json's `oclif.commands` ({strategy: 'explicit'}) names, maps each
//    command id to a getter, so only the command that runs is evaluated.
// 2. writes oclif.manifest.json from the bundle (oclif reads it instead of
//    loading every command to list them).
// 3. writes dist/bundle/sysctr.cache: V8's compiled code for the bundle after a
//    `sysctr --help` run (bin/sysctr hands it to vm.Script; a cache that does
//    not match the bundle, or that this node rejects, is ignored).
//
// Why: requiring ~700 separate modules from node_modules and dist/ took most of
// the start-up time (see docs/benchmarks.md, "CLI start").
'use strict'
const { spawnSync } = require('node:child_process')
const { createHash } = require('node:crypto')
const fs = require('node:fs')
const path = require('node:path')
const esbuild = require('esbuild')

const ROOT = path.join(__dirname, '..')
const SRC = path.join(ROOT, 'src')
const OUT_DIR = path.join(ROOT, 'dist', 'bundle')
const OUT = path.join(OUT_DIR, 'sysctr.js')

// Modules that resolve `__dirname` relative to their own file (the package
// root as resolve(__dirname, '..', '..')) see dist/bundle/ in the bundle, the
// same depth as dist/<dir>/ under tsc: only files one directory below src/ may use it.
function checkDirnameUses() {
  const bad = []
  for (const f of fs.readdirSync(SRC, { recursive: true })) {
    if (!f.endsWith('.ts') || f.split(path.sep).length === 2) continue
    if (/\b__(dirname|filename)\b/.test(fs.readFileSync(path.join(SRC, f), 'utf8'))) bad.push(`src/${f}`)
  }
  if (bad.length) throw new Error(`bundle: __dirname/__filename used outside src/<dir>/*.ts (wrong in dist/bundle/sysctr.js): ${bad.join(', ')}`)
}

/** Command ids as oclif's pattern strategy derives them from the files (topic dirs, `index` = the topic). */
function commandFiles() {
  const dir = path.join(SRC, 'commands')
  return fs
    .readdirSync(dir, { recursive: true })
    .map((f) => f.split(path.sep).join('/'))
    .filter((f) => /\.ts$/.test(f) && !/\.(d|test|spec)\.ts$/.test(f))
    .sort()
    .map((f) => {
      const parts = f.replace(/\.ts$/, '').split('/')
      if (parts[parts.length - 1] === 'index') parts.pop()
      return { id: parts.join(':'), file: `./${f}` }
    })
}

const entry = () => {
  const cmds = commandFiles()
  const lines = [
    `export { main, writeManifest } from ${JSON.stringify(path.join(SRC, 'cli', 'main.ts'))}`,
    '/** oclif command classes by id; each module is required when its getter is read. */',
    'export const COMMANDS = {}',
    'const commandClass = (m) => (m.default && typeof m.default.run === "function" ? m.default : Object.values(m).find((c) => c && typeof c.run === "function"))',
    ...cmds.map(({ id, file }) => `Object.defineProperty(COMMANDS, ${JSON.stringify(id)}, { enumerable: true, get: () => commandClass(require(${JSON.stringify(file)})) })`),
    // The hook and the help class package.json names ({target: the bundle, identifier}): inside the
    // bundle, so they share its @oclif/core and error classes (a copy from dist/ would not: its
    // UsageError would not be the bundle's). Each module is required when first used.
    `export const HOOK_COMMAND_NOT_FOUND = (...a) => require(${JSON.stringify(path.join(SRC, 'cli', 'hooks', 'command-not-found.ts'))}).default(...a)`,
    `export const HELP = {}`,
    `Object.defineProperty(HELP, 'default', { enumerable: true, get: () => require(${JSON.stringify(path.join(SRC, 'cli', 'help.ts'))}).default })`,
  ]
  return lines.join('\n') + '\n'
}

// Stand-ins for dependencies of dependencies that cost start-up time for nothing sysctr uses.
// wsl-utils: @oclif/core's Config.load asks `isWsl` (for config.platform) on every start;
// the package reads /proc/version, stats WSL and container paths and loads five builtins
// (about 10 ms). sysctr runs on Linux only and uses no config.platform: the kernel release
// answers (WSL kernels name Microsoft), PowerShell (Windows only) is never asked for.
const STUBS = {
  'wsl-utils': [
    "const release = require('node:os').release().toLowerCase()",
    "exports.isWsl = process.platform === 'linux' && release.includes('microsoft')",
    "exports.powerShellPath = async () => 'powershell.exe'",
  ].join('\n'),
}
const stubs = {
  name: 'sysctr-stubs',
  setup(build) {
    const filter = new RegExp(`^(${Object.keys(STUBS).join('|')})$`)
    build.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'sysctr-stub' }))
    build.onLoad({ filter: /.*/, namespace: 'sysctr-stub' }, (args) => ({ contents: STUBS[args.path], loader: 'js' }))
  },
}

// Source edits of @oclif/core files in the bundle: [file under node_modules/@oclif/core/lib, from, to, why].
// Each `from` must occur exactly once (a new @oclif/core that changed the line fails the build).
const PATCHES = [
  [
    'config/plugin.js',
    '.sort((a, b) => a.id.localeCompare(b.id));',
    '.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));',
    // The first localeCompare of a process sets up ICU's collator: 15-30 ms of every start,
    // for sorting command ids. checkIdOrder() below fails the build if the code-unit
    // order of sysctr's ids ever differs from localeCompare's (so help lists the same order).
    'ICU collator start-up',
  ],
  [
    'logger.js',
    '    const debug = (0, debug_1.default)(namespace);',
    // The debug package is enabled by DEBUG only (read once when it loads; neither oclif nor
    // sysctr calls debug.enable()): without DEBUG every oclif logger is off, and loading
    // debug (tty, net, supports-color: ~8 ms) for that is not needed.
    '    const debug = process.env.DEBUG ? (0, debug_1.default)(namespace) : Object.assign(() => {}, { enabled: false, namespace, extend: (ns, d) => makeLogger(`${namespace}${d ?? ":"}${ns}`).debug });',
    'debug without DEBUG',
  ],
]
const patches = {
  name: 'sysctr-oclif-patches',
  setup(build) {
    build.onLoad({ filter: /[\\/]@oclif[\\/]core[\\/]lib[\\/].*\.js$/ }, (args) => {
      const rel = args.path.split(`${path.sep}@oclif${path.sep}core${path.sep}lib${path.sep}`)[1].split(path.sep).join('/')
      let src = fs.readFileSync(args.path, 'utf8')
      for (const [, from, to] of PATCHES.filter((p) => p[0] === rel)) {
        if (src.split(from).length !== 2) throw new Error(`bundle: patch of @oclif/core/lib/${rel} does not apply (expected one ${JSON.stringify(from)})`)
        src = src.replace(from, to)
      }
      return { contents: lazyRequires(src), loader: 'js' }
    })
  },
}

// @oclif/core's index requires all of oclif (help, parser, ux, the logger, and with them the
// tty, net, stream and crypto builtins) before anything runs: the largest item of a start.
// In the bundle `@oclif/core` is this module instead: the same exports, each a getter that
// requires its submodule on first use (an `images list` never loads the help classes).
// Its export names are checked against the real index at build time (checkOclifIndex).
const OCLIF_LIB = path.join(path.dirname(require.resolve('@oclif/core/package.json', { paths: [ROOT] })), 'lib')
const OCLIF_INDEX = {
  // export name: [submodule of lib/, property of it (none: the module itself, as __importStar)]
  Args: ['args'],
  Command: ['command', 'Command'],
  Config: ['config', 'Config'],
  Plugin: ['config', 'Plugin'],
  Constraints: ['constraints'],
  Errors: ['errors'],
  handle: ['errors/handle', 'handle'],
  execute: ['execute', 'execute'],
  Flags: ['flags'],
  flush: ['flush', 'flush'],
  CommandHelp: ['help', 'CommandHelp'],
  Help: ['help', 'Help'],
  HelpBase: ['help', 'HelpBase'],
  loadHelpClass: ['help', 'loadHelpClass'],
  Interfaces: ['interfaces'],
  getLogger: ['logger', 'getLogger'],
  run: ['main', 'run'],
  ModuleLoader: ['module-loader'],
  Parser: ['parser'],
  Performance: ['performance', 'Performance'],
  settings: ['settings', 'settings'],
  toConfiguredId: ['util/ids', 'toConfiguredId'],
  toStandardizedId: ['util/ids', 'toStandardizedId'],
  ux: ['ux', 'ux'],
}
const lazyOclif = {
  name: 'sysctr-lazy-oclif',
  setup(build) {
    build.onResolve({ filter: /^@oclif\/core$/ }, () => ({ path: '@oclif/core', namespace: 'sysctr-oclif-index' }))
    build.onLoad({ filter: /.*/, namespace: 'sysctr-oclif-index' }, () => ({
      resolveDir: OCLIF_LIB,
      loader: 'js',
      contents: [
        "'use strict'",
        "Object.defineProperty(exports, '__esModule', { value: true })",
        // The index's own start-up check (its node-version check needs its package.json: skipped).
        "try { process.cwd() } catch (e) { if (e.code === 'ENOENT') process.stderr.write('WARNING: current directory does not exist\\n') }",
        ...Object.entries(OCLIF_INDEX).map(
          ([name, [mod, prop]]) =>
            `Object.defineProperty(exports, ${JSON.stringify(name)}, { enumerable: true, get: () => require(${JSON.stringify(`./${mod}`)})${prop ? `.${prop}` : ''} })`,
        ),
      ].join('\n'),
    }))
  },
}

// Each `const x_1 = require("m")` (also with tsc's __importDefault / __importStar) at the top of
// an @oclif/core module becomes a proxy that requires "m" on first use: oclif's modules require
// much that a start never touches (the help classes from the error handler and from main,
// tinyglobby and minimatch for pattern discovery, child_process for the home directory,
// ts-path for TypeScript plugins, ...), and esbuild evaluates a bundled module's requires
// where they stand. The proxy forwards reads, writes, `in` and key listing to the module;
// a module first used at top level is simply loaded there.
const LAZY_HELPER =
  'function __sysctrLazy(load) { let m; const mod = () => (m === undefined ? (m = load()) : m); return new Proxy({}, { get: (_, k) => mod()[k], set: (_, k, v) => { mod()[k] = v; return true }, has: (_, k) => k in mod(), ownKeys: () => Reflect.ownKeys(mod()), getOwnPropertyDescriptor: (_, k) => { const d = Reflect.getOwnPropertyDescriptor(mod(), k); if (d) d.configurable = true; return d } }) }\n'
function lazyRequires(src) {
  let n = 0
  const out = src.replace(/^const (\w+) = ((?:__importDefault\(|__importStar\()?require\("[^"]+"\)\)?);$/gm, (_, name, expr) => {
    n++
    return `const ${name} = __sysctrLazy(() => ${expr});`
  })
  return n ? LAZY_HELPER + out : src
}

// node:crypto and node:child_process, as sysctr's own modules import them, are stand-ins whose
// exports are getters (so every command module that hashes or spawns something does not load
// them, with stream, net and friends, at start-up; a command that uses them loads them then).
const LAZY_BUILTINS = ['node:crypto', 'node:child_process']
const lazyBuiltins = {
  name: 'sysctr-lazy-builtins',
  setup(build) {
    const filter = new RegExp(`^(${LAZY_BUILTINS.join('|')})$`)
    build.onResolve({ filter }, (args) =>
      args.importer.startsWith(SRC + path.sep) ? { path: args.path, namespace: 'sysctr-lazy-builtin' } : undefined,
    )
    build.onLoad({ filter: /.*/, namespace: 'sysctr-lazy-builtin' }, (args) => ({
      loader: 'js',
      contents: Object.keys(require(args.path))
        .map((k) => `Object.defineProperty(exports, ${JSON.stringify(k)}, { enumerable: true, get: () => require(${JSON.stringify(args.path)})[${JSON.stringify(k)}] })`)
        .join('\n'),
    }))
  },
}

/** The lazy index must export what @oclif/core's index does. */
function checkOclifIndex() {
  const real = Object.keys(require(path.join(OCLIF_LIB, 'index.js'))).filter((k) => k !== '__esModule').sort()
  const mine = Object.keys(OCLIF_INDEX).sort()
  if (real.join() !== mine.join()) throw new Error(`bundle: OCLIF_INDEX does not match @oclif/core's index: ${real.join()} vs ${mine.join()}`)
}

/** The command ids sorted by code units must be in localeCompare's order (the PATCHES sort). */
function checkIdOrder() {
  const ids = Object.keys(JSON.parse(fs.readFileSync(path.join(ROOT, 'oclif.manifest.json'), 'utf8')).commands)
  const a = [...ids].sort((x, y) => x.localeCompare(y))
  const b = [...ids].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))
  if (a.join('\n') !== b.join('\n')) throw new Error('bundle: command ids sort differently by code unit than by localeCompare: change the PATCHES sort')
}

// Dependencies that no start-up needs (each required on first use: see the modules
// that require them) go into their own files, dist/bundle/vendor/NAME.js, which the
// bundle requires by path: the bundle that every start reads stays small.
const VENDOR = ['openpgp', 'handlebars', 'dbus-next', 'yaml', 'smol-toml', 'tar-stream', 'fzstd', 'ini']
const EXTERNAL = ['x11', 'abstract-socket', 'usocket', 'typescript', 'ts-node', 'tsx', 'pnpapi']
const vendor = {
  name: 'sysctr-vendor',
  setup(build) {
    const filter = new RegExp(`^(${VENDOR.join('|')})$`)
    build.onResolve({ filter }, (args) => ({ path: `./vendor/${args.path}.js`, external: true }))
  },
}

async function bundle() {
  checkDirnameUses()
  checkOclifIndex()
  fs.rmSync(OUT_DIR, { recursive: true, force: true })
  await esbuild.build({
    entryPoints: Object.fromEntries(VENDOR.map((v) => [v, require.resolve(v, { paths: [ROOT] })])),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outdir: path.join(OUT_DIR, 'vendor'),
    external: EXTERNAL,
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'warning',
  })
  fs.mkdirSync(OUT_DIR, { recursive: true })
  const tmp = `${OUT}.tmp`
  await esbuild.build({
    stdin: { contents: entry(), resolveDir: path.join(SRC, 'commands'), sourcefile: 'sysctr-entry.js', loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: tmp,
    plugins: [stubs, vendor, patches, lazyOclif, lazyBuiltins],
    // bin/sysctr runs the bundle from V8's code cache, where import() has no callback
    // (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING): esbuild turns each import() into a
    // require() in a promise (oclif's import() of ESM plugins and tsx: not used by sysctr).
    supported: { 'dynamic-import': false },
    // Optional requires of dependencies that are not installed (dbus-next: x11 auth;
    // oclif: TypeScript and ts-node/tsx for linked plugins in development).
    external: EXTERNAL,
    minifyWhitespace: !process.argv.includes('--no-minify'),
    minifySyntax: !process.argv.includes('--no-minify'),
    legalComments: 'none',
    sourcemap: 'linked',
    logLevel: 'warning',
  })
  // First line: an id of the content, which the code cache records (bin/sysctr
  // uses a cache only for the bundle it was made from).
  // ASCII only (esbuild leaves a few characters in regular expressions as they are, such as
  // ansis' U+009B): a source with one non-ASCII character is a two-byte string in V8, and
  // bin/sysctr decoding 0.9 MB of UTF-8 cost ~20 M instructions (a quarter of node's own
  // start); an ASCII file is read as latin1, a one-byte string, for almost nothing. \uXXXX
  // means the same character in strings, templates and regular expressions.
  const body = fs
    .readFileSync(tmp, 'utf8')
    .replace(`sysctr.js.tmp.map`, 'sysctr.js.map')
    .replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  const id = createHash('sha256').update(body).digest('hex').slice(0, 32)
  fs.writeFileSync(tmp, `// sysctr-bundle ${id}\n${body}`)
  fs.renameSync(`${tmp}.map`, `${OUT}.map`)
  fs.renameSync(tmp, OUT)
  return id
}

async function main() {
  const noCache = process.argv.includes('--no-cache')
  const cacheFile = path.join(OUT_DIR, 'sysctr.cache')
  await bundle()
  const { writeManifest } = require(OUT)
  await writeManifest(ROOT)
  checkIdOrder()
  if (noCache) return
  // The code cache: V8's compiled functions after one `--help` run.
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'sysctr'), '--help'], {
    env: { ...process.env, SYSCTR_WRITE_CODE_CACHE: cacheFile },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  if (r.status !== 0 || !fs.existsSync(cacheFile)) throw new Error(`bundle: writing the code cache failed (sysctr --help: exit ${r.status})`)
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`)
  process.exit(1)
})
