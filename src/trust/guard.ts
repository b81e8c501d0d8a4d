/**
 * The one place the policy is enforced: `guardSource` wraps an ImageSource so
 * that `resolve()` returns only an image the policy accepts. Nothing else is
 * fetched before that (no layer), so a rejected image writes nothing.
 *
 * No policy file at all: accepted, and said once through `reporter.info`.
 * (podman and skopeo refuse to pull without a policy; sysctr keeps working on
 * hosts that never installed containers-common, and says so.)
 */
import type { Platform, ResolvedImage } from '../oci/types'
import type { ImageSource } from '../transports/image-source'
import type { RegistryClient } from '../transports/registry/client'
import { loadPolicy, Policy, requirementsFor } from './policy'
import { loadRegistriesD, signatureStorageFor } from './registries-d'
import { dirSignatureSource, noSignatureSource, registrySignatureSource, SignatureSource } from './signatures'
import { checkImage, TrustDecision, TrustSubject } from './verify'

export interface TrustOptions {
  /** --signature-policy FILE */
  signaturePolicy?: string
  /** --registries.d DIR */
  registriesD?: string
  configRoot?: string
  home?: string
  env?: NodeJS.ProcessEnv
  reporter?: { info(message: string): void; warn?(message: string): void }
  /** Timeout for http(s) lookaside reads (ms). */
  timeoutMs?: number
}

export interface TrustTarget {
  subject: TrustSubject
  /** docker: the endpoint that served the image, with a client holding its credentials. */
  attachments?: () => { client: RegistryClient; repository: string } | undefined
}

export interface GuardedSource extends ImageSource {
  /** The decision of the last resolve() (undefined before, or without a policy). */
  readonly trust?: TrustDecision
}

async function signatureSourceFor(target: TrustTarget, opts: TrustOptions): Promise<SignatureSource> {
  const s = target.subject
  if (s.transport === 'docker' && s.reference) {
    const conf = await loadRegistriesD({ registriesD: opts.registriesD, configRoot: opts.configRoot, home: opts.home, env: opts.env })
    const where = signatureStorageFor(conf, s.reference, opts.configRoot)
    return registrySignatureSource({
      reference: s.reference,
      lookaside: where.lookaside,
      useSigstoreAttachments: where.useSigstoreAttachments,
      attachments: target.attachments,
      timeoutMs: opts.timeoutMs,
    })
  }
  if (s.transport === 'dir' && s.path) return dirSignatureSource(s.path)
  return noSignatureSource(`${s.transport}:${s.path ?? ''}`)
}

/** Wrap `source` so resolve() verifies against the policy (see the top of this file). */
export async function guardSource(source: ImageSource, target: TrustTarget, opts: TrustOptions = {}): Promise<GuardedSource> {
  const policy: Policy | undefined = await loadPolicy({ signaturePolicy: opts.signaturePolicy, configRoot: opts.configRoot, home: opts.home, env: opts.env })
  if (!policy) {
    opts.reporter?.info('no signature policy (containers-policy.json) found: images are not verified')
    return source
  }
  // needs no signature: skip loading registries.d at all
  const needsSignatures = requirementsFor(policy, target.subject).requirements.some((r) => r.type === 'signedBy' || r.type === 'sigstoreSigned')
  let sigs: Promise<SignatureSource> | undefined
  const checked = new Map<string, Promise<TrustDecision>>()
  const guarded: GuardedSource & { trust?: TrustDecision } = {
    name: source.name,
    async resolve(platform?: Platform): Promise<ResolvedImage> {
      const image = await source.resolve(platform)
      const key = `${image.topDigest} ${image.manifestDigest}`
      if (!checked.has(key)) {
        sigs ??= needsSignatures ? signatureSourceFor(target, opts) : Promise.resolve(noSignatureSource('unused'))
        const p = sigs.then((s) => checkImage(policy, target.subject, image, s, { info: (m) => opts.reporter?.info(m) }))
        p.catch(() => checked.delete(key))
        checked.set(key, p)
      }
      guarded.trust = await checked.get(key)!
      return image
    },
    async openBlob(d) {
      if (!guarded.trust) await guarded.resolve() // no blob of an image the policy has not accepted
      return source.openBlob(d)
    },
    close: () => source.close(),
  }
  return guarded
}
