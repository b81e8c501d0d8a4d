/**
 * The host's platform, and choosing one manifest from an image index by platform (os, architecture,
 * variant), with the usual normalisation: x86_64 -> amd64, aarch64 -> arm64,
 * arm64 without a variant is v8, arm without a variant is v7.
 */
import { endianness } from 'node:os'
import type { Descriptor, Platform } from '../../oci/types'
import { MANIFEST_MEDIA_TYPES } from '../../oci/types'

/** The host's architecture in GOARCH words, as image indexes name it. */
export function hostArchitecture(): string {
  switch (process.arch) {
    case 'x64':
      return 'amd64'
    case 'ia32':
      return '386'
    case 'ppc64':
      return endianness() === 'LE' ? 'ppc64le' : 'ppc64'
    default:
      return process.arch // arm64, arm, s390x, riscv64 match already
  }
}

export function hostPlatform(): Platform {
  return { os: 'linux', architecture: hostArchitecture() }
}

const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', i386: '386', armhf: 'arm', armel: 'arm' }

export function normalizePlatform(p: Platform): Platform {
  const os = (p.os ?? '').toLowerCase()
  const architecture = ARCH_ALIASES[(p.architecture ?? '').toLowerCase()] ?? (p.architecture ?? '').toLowerCase()
  let variant = p.variant?.toLowerCase() || undefined
  if (architecture === 'arm64' && variant === undefined) variant = 'v8'
  if (architecture === 'arm' && variant === undefined) variant = 'v7'
  if (architecture === 'arm64' && variant === '8') variant = 'v8'
  return { os, architecture, ...(variant !== undefined ? { variant } : {}) }
}

/** `linux/arm64/v8` */
export function formatPlatform(p: Platform | undefined): string {
  if (!p) return 'unknown platform'
  return [p.os, p.architecture, p.variant].filter((x) => x).join('/')
}

export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false
  const w = normalizePlatform(want)
  const h = normalizePlatform(have)
  if (w.os !== h.os || w.architecture !== h.architecture) return false
  return w.variant === undefined || w.variant === h.variant
}

/** The first image manifest in `manifests` for `want`, or undefined. Nested indexes are skipped. */
export function choosePlatform(manifests: Descriptor[], want: Platform): Descriptor | undefined {
  return manifests.find((d) => MANIFEST_MEDIA_TYPES.includes(d.mediaType) && platformMatches(want, d.platform))
}
