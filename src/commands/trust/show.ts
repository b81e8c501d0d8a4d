import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { showTrust } from '../../trust/edit'

export default class TrustShow extends BaseCommand {
  static override summary = 'Show the signature policy: per scope the requirement, keys and signature store'
  static override description = `Reads containers-policy.json(5) ($HOME/.config/containers/policy.json, else
/etc/containers/policy.json, or --signature-policy FILE) and containers-registries.d(5).`
  static override examples = ['<%= config.bin %> trust show', '<%= config.bin %> trust show --json']
  static override flags = {
    'signature-policy': Flags.string({ description: 'policy file to read instead of the default ones' }),
    'registries.d': Flags.string({ description: 'registries.d directory to read instead of the default one' }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(TrustShow)
    const r = await showTrust({
      ...(flags['signature-policy'] !== undefined ? { signaturePolicy: flags['signature-policy'] } : {}),
      ...(flags['registries.d'] !== undefined ? { registriesD: flags['registries.d'] } : {}),
    })
    this.output(flags, r, () => {
      if (!r.policy) return ['no signature policy (containers-policy.json) found: sysctr pulls images without verifying them']
      const rows = r.scopes.map((s) => [s.transport, s.scope, s.type, s.keys.join(',') || '-', s.lookaside ?? (s.useSigstoreAttachments ? 'sigstore attachments' : '-')])
      const head = ['TRANSPORT', 'SCOPE', 'TYPE', 'KEYS', 'SIGNATURES']
      const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)))
      return [`policy: ${r.policy}`, ...[head, ...rows].map((row) => row.map((v, c) => (c === row.length - 1 ? v : v.padEnd(widths[c]))).join('  '))]
    })
  }
}
