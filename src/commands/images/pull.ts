import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { pull } from '../../ops/images'
import { formatBytes } from '../../ops/pull'

export default class ImagesPull extends BaseCommand {
  static override summary = 'Pull an image into the store (layers already stored are not fetched again)'
  static override description = `IMAGE is a registry reference (docker://REF or REF; short names per registries.conf),
oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or dir:DIR.
Registry settings come from /etc/containers/registries.conf(.d), credentials from
containers-auth.json files (or --authfile / --creds).`
  static override examples = [
    '<%= config.bin %> images pull quay.io/coreos/etcd:v3.5.9',
    '<%= config.bin %> images pull oci-archive:/srv/images/etcd.tar:v3.5.9',
    '<%= config.bin %> images pull --platform linux/arm64 docker-archive:/srv/images/etcd.tar',
  ]
  static override args = { image: Args.string({ description: 'image: REF, docker://REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], dir:DIR', required: true }) }
  static override flags = {
    'tls-verify': Flags.string({ description: 'require HTTPS and verify certificates', options: ['true', 'false'], default: 'true' }),
    authfile: Flags.string({ description: 'credentials file (containers-auth.json format); default: the usual auth.json files' }),
    creds: Flags.string({ description: 'registry credentials USER:PASSWORD' }),
    'cert-dir': Flags.string({ description: 'directory with *.crt CAs and NAME.cert/NAME.key client certificates for the registry (default: /etc/containers/certs.d/HOST[:PORT])' }),
    platform: Flags.string({ description: 'os/arch[/variant] to pick from a multi-platform image (default: this host)' }),
    'signature-policy': Flags.string({ description: 'signature policy file (containers-policy.json) instead of the default ones' }),
    'registries.d': Flags.string({ description: 'registries.d directory (where signatures are) instead of the default one' }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesPull)
    const ctx = this.context(flags)
    const r = await pull(ctx, args.image, {
      reporter: ctx.reporter,
      ...(flags['signature-policy'] !== undefined ? { signaturePolicy: flags['signature-policy'] } : {}),
      ...(flags['registries.d'] !== undefined ? { registriesD: flags['registries.d'] } : {}),
      tlsVerify: flags['tls-verify'] !== 'false',
      ...(flags.authfile !== undefined ? { authfile: flags.authfile } : {}),
      ...(flags.creds !== undefined ? { creds: flags.creds } : {}),
      ...(flags['cert-dir'] !== undefined ? { certDir: flags['cert-dir'] } : {}),
      ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
    })
    this.output(flags, r, () => [
      `pulled ${r.reference} (${r.manifestDigest.slice(0, 19)})`,
      `  layers: ${r.layersFetched} fetched (${formatBytes(r.bytesFetched)}), ${r.layersReused} already in the store; ${r.objectsAdded} new file objects (${formatBytes(r.bytesAdded)})`,
    ])
  }
}
