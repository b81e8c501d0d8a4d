import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command'
import { storeRootFlag } from '../../cli/root-flag'
import { sourceFlags, sourceFlagValues } from '../../cli/source-flags'
import { verifyExitCode, verifyImages, type VerifyResult } from '../../ops/image-verify'

function lines(r: VerifyResult, verbose: boolean): string[] {
  if (r.error) return [`${r.reference}: cannot verify: ${r.error.message}`]
  if (r.upToDate) {
    const out = [`${r.reference} is up to date with ${r.source} (${r.localDigest.slice(0, 19)})`]
    if (verbose) out.push(...r.layers.map((l) => `  layer ${l.index + 1}: ${l.local} same`))
    return out
  }
  const out = [`${r.reference} has an update at ${r.source}: ${r.localDigest.slice(0, 19)} -> ${r.remoteDigest!.slice(0, 19)}`]
  if (r.localVersion !== r.remoteVersion) out.push(`  '${r.localVersion}' has an update to '${r.remoteVersion}'`)
  for (const l of r.layers) {
    if (l.status === 'same' && !verbose) continue
    const what = l.status === 'same' ? `${l.local} same` : l.status === 'changed' ? `${l.local} -> ${l.remote}` : l.status === 'added' ? `added ${l.remote}` : `removed ${l.local}`
    out.push(`  layer ${l.index + 1}: ${what}`)
  }
  return out
}

export default class ImagesVerify extends BaseCommand {
  static override summary = 'Check whether a newer image is available where a stored image came from, layer by layer, without pulling'
  static override description = `Asks the registry (or the archive or layout a local image was read from) for the manifest and config only, for the stored image's platform, and compares its digest, each layer and the Name-Version-Release labels with the stored image. Without IMAGE, every stored image. Nothing is pulled or written. Exit 0 when every source could be asked (up to date or not: see the output or --json upToDate); a source that cannot be asked exits with its error's code.`
  static override examples = ['<%= config.bin %> images verify --tls-verify=false 127.0.0.1:5000/demo/etcd:latest', '<%= config.bin %> images verify --json']
  static override args = { image: Args.string({ description: 'a stored image: reference, short name or ID (default: every stored image)', required: false }) }
  static override flags = {
    root: storeRootFlag,
    ...sourceFlags,
    verbose: Flags.boolean({ char: 'v', description: 'list every layer, also the unchanged ones', default: false }),
  }

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ImagesVerify)
    const results = await verifyImages(this.contextFor(flags), args.image, sourceFlagValues(flags))
    this.output(flags, results, () => (results.length === 0 ? ['no images'] : results.flatMap((r) => lines(r, flags.verbose))))
    const code = verifyExitCode(results)
    if (code !== 0) {
      for (const r of results) if (r.error && !flags.json) process.stderr.write(`error: verifying ${r.reference}: ${r.error.message}\n`)
      process.exitCode = code
    }
  }
}
