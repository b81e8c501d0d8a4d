/**
 * Per-registry TLS settings as containers-certs.d(5) keeps them.
 *
 * For a registry HOST[:PORT] (as the reference names it), the directory used
 * is `--cert-dir DIR` when given, else the first of these that exists:
 *   $HOME/.config/containers/certs.d/HOST[:PORT]/
 *   /etc/containers/certs.d/HOST[:PORT]/
 *   /etc/docker/certs.d/HOST[:PORT]/
 * In it:
 *   *.crt            extra CA certificates, trusted IN ADDITION to Node's
 *                    default roots (tls.rootCertificates), never instead;
 *   NAME.cert + NAME.key   a client certificate and its key (a .cert without
 *                    its .key, or the reverse, is an error naming the file).
 * No directory, or an empty one: no options (Node's defaults apply).
 *
 * Files are read once per registry client; errors name the file, never its content.
 */
import { promises as fsp } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { ContentError, UsageError, toSysctrError } from '../errors'

/** What the https agent gets (see HttpOptions.tls). */
export interface RegistryTlsOptions {
  /** Trusted roots: Node's defaults plus the *.crt files. Undefined: Node's defaults. */
  ca?: string[]
  /** Client certificate and key (PEM). */
  cert?: string
  key?: string
  /** The directory the settings came from (for messages). */
  certDir?: string
  /** The *.crt files added. */
  caFiles?: string[]
}

export interface CertsLookupOptions {
  /** --cert-dir: only this directory is used. */
  certDir?: string
  /** Root for /etc/containers and /etc/docker (tests). Default /. */
  configRoot?: string
  /** Home directory for ~/.config/containers/certs.d. Default $HOME. */
  home?: string
}

/** The certs.d directories for `hostPort`, in the order they are looked at. */
export function certDirsFor(hostPort: string, opts: CertsLookupOptions = {}): string[] {
  if (opts.certDir !== undefined) return [opts.certDir]
  if (hostPort === '' || hostPort.includes('/') || hostPort === '.' || hostPort === '..') return []
  const root = opts.configRoot ?? '/'
  const home = opts.home ?? process.env.HOME ?? homedir()
  return [
    join(home, '.config/containers/certs.d', hostPort),
    join(root, 'etc/containers/certs.d', hostPort),
    join(root, 'etc/docker/certs.d', hostPort),
  ]
}

async function listDir(dir: string): Promise<string[] | undefined> {
  try {
    return (await fsp.readdir(dir)).sort()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw toSysctrError(err)
  }
}

async function readPem(file: string): Promise<string> {
  let text: string
  try {
    text = await fsp.readFile(file, 'utf8')
  } catch (err) {
    throw toSysctrError(err)
  }
  if (!text.includes('-----BEGIN ')) {
    throw new ContentError('config.bad-certificate', `${file} is not a PEM file`, { data: { file } })
  }
  return text
}

/** TLS options for the registry `hostPort` (see the top of this file). */
export async function tlsOptionsFor(hostPort: string, opts: CertsLookupOptions = {}): Promise<RegistryTlsOptions> {
  for (const dir of certDirsFor(hostPort, opts)) {
    const names = await listDir(dir)
    if (names === undefined) {
      if (opts.certDir !== undefined) {
        throw new UsageError('usage.cert-dir-missing', `--cert-dir ${opts.certDir} does not exist or is not a directory`)
      }
      continue
    }
    const out: RegistryTlsOptions = { certDir: dir }
    const cas = names.filter((n) => n.endsWith('.crt'))
    if (cas.length > 0) {
      out.caFiles = cas.map((n) => join(dir, n))
      // node:tls loaded here, not at start-up.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      out.ca = [...(require('node:tls') as typeof import('node:tls')).rootCertificates, ...(await Promise.all(out.caFiles.map(readPem)))]
    }
    for (const n of names) {
      if (n.endsWith('.cert')) {
        const keyName = `${n.slice(0, -'.cert'.length)}.key`
        if (!names.includes(keyName)) {
          throw new ContentError('config.missing-key', `${join(dir, n)} has no matching key ${keyName}`, { data: { file: join(dir, n) } })
        }
        if (out.cert !== undefined) continue // containers/image: the last pair wins; we keep the first (sorted), one is enough
        out.cert = await readPem(join(dir, n))
        out.key = await readPem(join(dir, keyName))
      } else if (n.endsWith('.key')) {
        const certName = `${n.slice(0, -'.key'.length)}.cert`
        if (!names.includes(certName)) {
          throw new ContentError('config.missing-cert', `${join(dir, n)} has no matching certificate ${certName}`, { data: { file: join(dir, n) } })
        }
      }
    }
    return out
  }
  return {}
}
