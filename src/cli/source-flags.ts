/**
 * The flags that say where an image comes from and how it is trusted, shared
 * by `install`, `images pull` and `containers update` (same names as skopeo
 * and podman), and their translation to the operations' SourceFlags.
 */
import { Flags } from '@oclif/core'
import type { SourceFlags } from '../ops/source-options'

export const sourceFlags = {
  'tls-verify': Flags.string({
    description: 'require HTTPS and verify certificates (--tls-verify, --tls-verify=true; --tls-verify=false allows plain HTTP registries)',
    options: ['true', 'false'],
    default: 'true',
  }),
  authfile: Flags.string({ description: 'credentials file (containers-auth.json format); default: the usual auth.json files' }),
  creds: Flags.string({ description: 'registry credentials USER:PASSWORD' }),
  'cert-dir': Flags.string({ description: 'directory with *.crt CAs and NAME.cert/NAME.key client certificates for the registry (default: /etc/containers/certs.d/HOST[:PORT])' }),
  platform: Flags.string({ description: 'os/arch[/variant] to pick from a multi-platform image (default: this host)' }),
  'signature-policy': Flags.string({ description: 'signature policy file (containers-policy.json) instead of the default ones' }),
  'registries.d': Flags.string({ description: 'registries.d directory (where signatures are) instead of the default one' }),
}

export interface SourceFlagValues {
  'tls-verify': string
  authfile?: string
  creds?: string
  'cert-dir'?: string
  platform?: string
  'signature-policy'?: string
  'registries.d'?: string
}

export function sourceFlagValues(f: SourceFlagValues): SourceFlags {
  return {
    tlsVerify: f['tls-verify'] !== 'false',
    ...(f.authfile !== undefined ? { authfile: f.authfile } : {}),
    ...(f.creds !== undefined ? { creds: f.creds } : {}),
    ...(f['cert-dir'] !== undefined ? { certDir: f['cert-dir'] } : {}),
    ...(f.platform !== undefined ? { platform: f.platform } : {}),
    ...(f['signature-policy'] !== undefined ? { signaturePolicy: f['signature-policy'] } : {}),
    ...(f['registries.d'] !== undefined ? { registriesD: f['registries.d'] } : {}),
  }
}

/**
 * skopeo's boolean flags take an optional `=VALUE`: a bare `--tls-verify` is
 * `--tls-verify=true` and never takes the next word as its value (so
 * `--tls-verify false` is the flag and a stray argument, as in skopeo).
 * oclif's string flag would swallow the next word or fail at the end of the
 * line, so the bare token is rewritten before parsing (up to a `--`).
 */
export const BOOLEAN_VALUE_FLAGS = ['--tls-verify']

export function bareBooleanFlags(argv: readonly string[]): string[] {
  const end = argv.indexOf('--')
  return argv.map((a, i) => ((end < 0 || i < end) && BOOLEAN_VALUE_FLAGS.includes(a) ? `${a}=true` : a))
}
