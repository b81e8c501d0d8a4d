/**
 * Extended attributes through the `attr` package's tools (Node has no xattr
 * API and no native modules are used): `getfattr -d -m - -e base64` to read,
 * `setfattr --restore=-` to write many attributes on many files in one
 * process. Only called for entries that have xattrs (rare), so the cost of a
 * process per batch does not matter.
 *
 * Values are base64 strings everywhere in sysctr (trees, object headers).
 */
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { HostError } from '../errors'

export type Xattrs = Record<string, string>

/** Quote a path for getfattr/setfattr dump format: octal escapes for anything unusual. */
function quotePath(p: string): string {
  let out = ''
  for (const byte of Buffer.from(p)) {
    if (byte > 0x20 && byte < 0x7f && byte !== 0x5c /* \ */ && byte !== 0x3d /* = */) out += String.fromCharCode(byte)
    else out += `\\${byte.toString(8).padStart(3, '0')}`
  }
  return out
}

function unquotePath(q: string): string {
  const bytes: number[] = []
  for (let i = 0; i < q.length; i++) {
    if (q[i] === '\\' && /^[0-7]{3}$/.test(q.slice(i + 1, i + 4))) {
      bytes.push(parseInt(q.slice(i + 1, i + 4), 8))
      i += 3
    } else if (q[i] === '\\' && q[i + 1] === '\\') {
      bytes.push(0x5c)
      i += 1
    } else bytes.push(...Buffer.from(q[i]))
  }
  return Buffer.from(bytes).toString()
}

function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d))
    child.on('error', (e) => {
      const hint = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'install the attr package (setfattr, getfattr)' : undefined
      reject(new HostError('host.xattr-tool', `running ${cmd}: ${e.message}`, { cause: e, hint }))
    })
    child.on('close', (code) => {
      if (code === 0) resolve(out)
      else reject(new HostError('host.xattr', `${cmd} failed: ${err.trim() || `exit ${code}`}`, { data: { stderr: err } }))
    })
    child.stdin.on('error', () => undefined)
    child.stdin.end(input ?? '')
  })
}

/** Set xattrs on many paths (never follows a final symlink). An EPERM/unsupported host fails naming the path. */
export async function setXattrs(items: { path: string; xattrs: Xattrs }[]): Promise<void> {
  const todo = items.filter((i) => Object.keys(i.xattrs).length > 0)
  for (let i = 0; i < todo.length; i += 500) {
    const chunk = todo.slice(i, i + 500)
    let dump = ''
    for (const { path, xattrs } of chunk) {
      dump += `# file: ${quotePath(path)}\n`
      for (const name of Object.keys(xattrs).sort()) dump += `${name}=0s${xattrs[name]}\n`
      dump += '\n'
    }
    try {
      await run('setfattr', ['-h', '--restore=-'], dump)
    } catch (err) {
      const e = err as HostError
      const paths = chunk.map((c) => c.path)
      const named = paths.find((p) => (e.data?.stderr as string | undefined)?.includes(p)) ?? paths.join(', ')
      throw new HostError('host.xattr', `setting extended attributes on ${named}: ${e.message}`, { cause: err, data: { paths } })
    }
  }
}

/** Parse getfattr's dump output into `result` (paths as printed: absolute). */
function parseDump(out: string, result: Map<string, Xattrs>): void {
  let current: Xattrs | undefined
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      const p = unquotePath(line.slice('# file: '.length))
      current = result.get(p) ?? {}
      result.set(p, current)
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=')
      const name = line.slice(0, eq)
      const v = line.slice(eq + 1)
      current[name] = v.startsWith('0s') ? v.slice(2) : v === '' || v === '""' ? '' : Buffer.from(v).toString('base64')
    }
  }
}

/** Read all xattrs (every namespace) of many paths, without following a final symlink. */
export async function getXattrs(paths: string[]): Promise<Map<string, Xattrs>> {
  const result = new Map<string, Xattrs>()
  for (let i = 0; i < paths.length; i += 500) {
    const chunk = paths.slice(i, i + 500)
    for (const p of chunk) result.set(p, {})
    parseDump(await run('getfattr', ['-h', '--absolute-names', '-d', '-m', '-', '-e', 'base64', '--', ...chunk]), result)
  }
  return result
}

/**
 * The xattrs of every entry under `dir` that has any (absolute path -> xattrs),
 * from one `getfattr -R` walk (physical: no symlink followed): one process for
 * a whole store instead of one per 500 paths. Entries without xattrs are absent.
 */
export async function getXattrsUnder(dir: string): Promise<Map<string, Xattrs>> {
  const result = new Map<string, Xattrs>()
  parseDump(await run('getfattr', ['-R', '-P', '-h', '--absolute-names', '-d', '-m', '-', '-e', 'base64', '--', resolve(dir)]), result)
  return result
}
