import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { addTrust } from '../../trust/edit'

export default class TrustAdd extends BaseCommand {
  static override summary = 'Set the signature requirement of a registry scope (or the default), like podman image trust set'
  static override description = `SCOPE is host[:port][/namespace[/repo]] (docker transport) or "default".
The policy file (default /etc/containers/policy.json, or $HOME/.config/containers/policy.json
when that exists) is created when absent and replaced crash-safely; other scopes are kept.
--lookaside writes /etc/containers/registries.d/sysctr-SCOPE.yaml.`
  static override examples = [
    '<%= config.bin %> trust add --type signedBy --pubkeys /etc/pki/containers/acme.gpg --lookaside https://sigs.acme.example/ registry.acme.example',
    '<%= config.bin %> trust add --type sigstoreSigned --pubkeys /etc/pki/containers/cosign.pub quay.io/acme',
    '<%= config.bin %> trust add --type reject default',
  ]
  static override args = { scope: Args.string({ description: 'registry scope, or "default"', required: true }) }
  static override flags = {
    type: Flags.string({ description: 'requirement type', options: ['signedBy', 'sigstoreSigned', 'insecureAcceptAnything', 'reject'], required: true }),
    pubkeys: Flags.string({ description: 'public key file (GPG key/keyring for signedBy, PEM for sigstoreSigned); repeat the flag for several', multiple: true, multipleNonGreedy: true }),
    lookaside: Flags.string({ description: 'URL of the lookaside signature store for this scope (file://, http://, https://)' }),
    'signature-policy': Flags.string({ description: 'policy file to edit instead of the default one' }),
    'registries.d': Flags.string({ description: 'registries.d directory for --lookaside (default /etc/containers/registries.d)' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(TrustAdd)
    const r = await addTrust(args.scope, {
      type: flags.type,
      ...(flags.pubkeys ? { pubkeys: flags.pubkeys } : {}),
      ...(flags.lookaside !== undefined ? { lookaside: flags.lookaside } : {}),
      ...(flags['signature-policy'] !== undefined ? { signaturePolicy: flags['signature-policy'] } : {}),
      ...(flags['registries.d'] !== undefined ? { registriesD: flags['registries.d'] } : {}),
    })
    this.output(flags, r, () => [
      `${r.created ? 'created' : 'updated'} ${r.policy}: ${r.scope} -> ${flags.type}`,
      ...(r.registriesDFile ? [`wrote ${r.registriesDFile}`] : []),
    ])
  }
}
