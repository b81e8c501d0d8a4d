/**
 * images tag and images version: a second local name for a stored image (a
 * ref in the store pointing at the same commit), and the name, version and
 * release labels of a stored image, as atomic's `images tag` and
 * `images version` gave them.
 */
import { ConflictError, UsageError } from '../errors'
import type { ImageConfig } from '../oci/types'
import { parseReference } from '../reference/reference'
import { isShortName } from '../config/registries'
import { isLocalInput } from '../transports/open'
import type { OpsContext } from './context'
import { requireLocalImage } from './local-images'
import { openStore } from './images'
import { deploymentUses } from './store-maintenance'

export interface TagResult {
  /** The stored image the new name points at. */
  source: string
  /** The new ref name (`localhost/NAME:TAG` for a short name, as podman tags). */
  reference: string
  manifestDigest: string
  /** The image NEW named before, when it was moved (as docker and podman tag do). */
  previous?: string
}

/** The ref name for NEW: a qualified name as is, a short one under `localhost/` (podman's convention). */
export function tagName(input: string): string {
  if (isLocalInput(input) || input.startsWith('docker://')) {
    throw new UsageError('usage.bad-tag', `a tag is a name in the store, not ${input}`, { hint: 'e.g. sysctr images tag etcd localhost/etcd:stable' })
  }
  const short = isShortName(input)
  return (short ? parseReference(`localhost/${input}`) : parseReference(input)).toString()
}

export async function tagImage(ctx: OpsContext, sourceInput: string, newInput: string): Promise<TagResult> {
  const name = tagName(newInput)
  const store = await openStore(ctx)
  try {
    const found = await requireLocalImage(store, sourceInput)
    return await store.withLock(`tagging ${found.name} as ${name}`, async () => {
      const before = await store.getImageRef(name)
      if (before && before.manifestDigest === found.record.manifestDigest) {
        return { source: found.name, reference: name, manifestDigest: found.record.manifestDigest }
      }
      const users = before ? (await deploymentUses(ctx)).filter((u) => u.image === name) : []
      if (users.length > 0) {
        throw new ConflictError('image.in-use', `${name} names another image, used by deployment ${users.map((u) => u.deployment).join(', ')}`, {
          hint: 'choose another name, or update those containers first',
        })
      }
      const { source, ...rest } = found.record
      await store.setImageRef(name, {
        ...rest,
        reference: name,
        // Where the tagged image came from: update and verify read that, never the `localhost/` name.
        taggedFrom: found.name,
        ...(typeof source === 'string' ? { source } : {}),
      })
      return { source: found.name, reference: name, manifestDigest: found.record.manifestDigest, ...(before ? { previous: before.manifestDigest } : {}) }
    })
  } finally {
    await store.close()
  }
}

export interface VersionInfo {
  reference: string
  /** The manifest digest (what images list prints as the ID, 12 hex digits). */
  manifestDigest: string
  name?: string
  version?: string
  release?: string
  /** `name-version-release` as atomic printed it, or `REFERENCE-Version unavailable`. */
  nvr: string
}

/** The label of one of `keys` (atomic's `Name`, the lower-case form, the OCI annotation key). */
function label(labels: Record<string, string>, keys: string[]): string | undefined {
  for (const k of keys) if (typeof labels[k] === 'string' && labels[k] !== '') return labels[k]
  return undefined
}

export function versionOf(reference: string, manifestDigest: string, config: ImageConfig | null): VersionInfo {
  const labels = config?.config?.Labels ?? {}
  const name = label(labels, ['Name', 'name', 'org.opencontainers.image.title'])
  const version = label(labels, ['Version', 'version', 'org.opencontainers.image.version'])
  const release = label(labels, ['Release', 'release'])
  const nvr = name && version && release ? `${name}-${version}-${release}` : `${reference}-Version unavailable`
  return { reference, manifestDigest, ...(name ? { name } : {}), ...(version ? { version } : {}), ...(release ? { release } : {}), nvr }
}

export async function imageVersion(ctx: OpsContext, input: string): Promise<VersionInfo> {
  const store = await openStore(ctx)
  try {
    const found = await requireLocalImage(store, input)
    const config = JSON.parse((await store.getBlob(found.record.configDigest))?.toString('utf8') ?? 'null') as ImageConfig | null
    return versionOf(found.name, found.record.manifestDigest, config)
  } finally {
    await store.close()
  }
}
