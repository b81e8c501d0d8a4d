/**
 * The registry name install, update and dry-run record, from what the user
 * typed. A qualified name stays as it is; a short name is resolved as
 * containers-registries.conf(5) says (src/config/registries.ts): its alias,
 * or the one unqualified-search registry; with several search registries,
 * enforcing mode refuses (no terminal is asked) and permissive mode takes the
 * first registry that has the image. The record then holds the qualified
 * name, so an update pulls from where the install did.
 */
import { isShortName, loadRegistriesConf, resolveShortName } from '../config/registries'
import { type ImageReference, parseReference } from '../reference/reference'
import { describeInput, isLocalInput, openImageSource, type OpenImageOptions } from '../transports/open'
import { archiveImageName } from '../transports/docker-archive'
import { Store } from '../store/store'
import { join } from 'node:path'
import { parseReference as parseRef } from '../reference/reference'
import type { OpsContext } from './context'

/** Where an image comes from and how it is trusted: what install, update, dry runs, pull and provision take from the user. */
export interface SourceFlags {
  /** Default true; false allows plain HTTP registries. */
  tlsVerify?: boolean
  /** Registry credentials: a containers-auth.json file, or USER:PASSWORD (see src/config/auth.ts). */
  authfile?: string
  creds?: string
  /** --cert-dir: TLS CAs / client certificate for the registry instead of certs.d. */
  certDir?: string
  /** os/arch[/variant] to pick from an index; default the host. */
  platform?: string
  /** --signature-policy FILE / --registries.d DIR (src/trust): default the containers files. */
  signaturePolicy?: string
  registriesD?: string
}

/** The openImageSource options for `flags`, with the operation's reporter (trust and short-name messages). */
export function sourceOptions(ctx: Pick<OpsContext, 'reporter'>, flags: SourceFlags): OpenImageOptions {
  return {
    tlsVerify: flags.tlsVerify ?? true,
    ...(flags.authfile !== undefined ? { authfile: flags.authfile } : {}),
    ...(flags.creds !== undefined ? { creds: flags.creds } : {}),
    ...(flags.certDir !== undefined ? { certDir: flags.certDir } : {}),
    ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
    ...(flags.signaturePolicy !== undefined ? { signaturePolicy: flags.signaturePolicy } : {}),
    ...(flags.registriesD !== undefined ? { registriesD: flags.registriesD } : {}),
    reporter: ctx.reporter,
  }
}

export async function registryReference(
  input: string,
  opts: OpenImageOptions = {},
  note: (message: string) => void = () => {},
): Promise<ImageReference> {
  const name = input.startsWith('docker://') ? input.slice('docker://'.length) : input
  if (!isShortName(name)) return parseReference(name)
  const conf = opts.registriesConf ?? (await loadRegistriesConf({ configRoot: opts.configRoot, env: opts.env, home: opts.home }))
  const resolution = resolveShortName(conf, name)
  let chosen = resolution.candidates[0]
  if (resolution.candidates.length > 1) {
    // permissive: the first search registry that has the image
    const opened = await openImageSource(input, { ...opts, registriesConf: conf })
    await opened.source.close()
    chosen = opened.reference!
  }
  note(`short name ${name} resolved to ${chosen.toString()} (${resolution.via === 'alias' ? 'alias' : 'unqualified-search-registries'}${conf.files.length ? ` in ${conf.files.join(', ')}` : ''})`)
  return chosen
}

/**
 * The name install, update and the dry runs record and store an image under:
 * a local transport's absolute form (`oci:/abs/dir:tag`), or the qualified
 * registry name (short names resolved as above). `ref` is set for a registry.
 */
export async function recordedImageName(
  ctx: Pick<OpsContext, 'reporter' | 'root'>,
  input: string,
  flags: SourceFlags,
): Promise<{ image: string; ref?: ImageReference }> {
  if (isLocalInput(input)) return { image: await localImageName(input, ctx.root) }
  const ref = await registryReference(input, sourceOptions(ctx, flags), (m) => ctx.reporter.info(m))
  return { image: ref.toString(), ref }
}

/**
 * The store name of a local transport input: its absolute transport form, but
 * for a docker archive the RepoTags entry it holds (as openImageSource names
 * it), so the same archive under another file name is the same image.
 */
export async function localImageName(input: string, root?: string): Promise<string> {
  const d = describeInput(input)
  if (d.transport !== 'docker-archive') return d.refName!
  const read = (file: string) =>
    archiveImageName(file, d.tag).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'image.not-found') return null // opening it says that, with the path
      throw err
    })
  // Under --root, a provisioning entry's archive is inside the tree (the booted system reads it at the path as written).
  let named = await read(d.path!)
  if (named === null && root) named = await read(join(root, d.path!))
  if (named === undefined || named === null) return d.refName!
  try {
    return parseRef(named).toString()
  } catch {
    return d.refName!
  }
}

/** The container name when --name is not given: describeInput's, but a docker archive's from its RepoTags. */
export async function defaultContainerName(input: string, root?: string): Promise<string> {
  const d = describeInput(input)
  if (d.transport !== 'docker-archive') return d.defaultName
  const named = await localImageName(input, root)
  return named === d.refName ? d.defaultName : parseRef(named).name
}

/** Where a stored image is read again from when its name is not that (a docker archive named by its RepoTags; a name images tag made), or undefined. */
export async function storedSourceOf(ctx: { paths: { storeDir: string } }, image: string): Promise<string | undefined> {
  if (isLocalInput(image) || image.startsWith('docker://')) return undefined
  const store = await Store.open(ctx.paths.storeDir)
  try {
    const rec = await store.getImageRef(image)
    if (typeof rec?.source === 'string' && isLocalInput(rec.source)) return rec.source
    // A name made by images tag: from where the tagged image came.
    return typeof rec?.taggedFrom === 'string' && rec.taggedFrom !== image ? rec.taggedFrom : undefined
  } finally {
    await store.close()
  }
}
