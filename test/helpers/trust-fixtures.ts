/** Shared by the trust integration tests: pull one docker:// image into a fresh store under a signature policy. */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import type { SysctrError } from '../../src/errors'
import { pullImage } from '../../src/ops/pull-image'
import { Store } from '../../src/store/store'
import { openImageSource } from '../../src/transports/open'

const quiet = { info: () => {}, warn: () => {}, progress: () => {} }

export interface PolicyPull {
  /** The pull's error, if it failed. */
  err?: SysctrError
  /** Whether the store holds an image ref for the image afterwards. */
  stored: boolean
  /** What the source reported through info(). */
  info: string[]
}

/**
 * Pull `docker://ref` (plain HTTP) into a new store under `dir` (`dir/store-XXXX`),
 * with `dir/root` as the config root (it must exist), the given policy file and registries.d.
 */
export async function pullUnderPolicy(ref: string, opts: { dir: string; policyFile: string; registriesD: string }): Promise<PolicyPull> {
  const storeDir = await fsp.mkdtemp(join(opts.dir, 'store-'))
  const info: string[] = []
  const store = await Store.open(storeDir)
  try {
    const opened = await openImageSource(`docker://${ref}`, {
      tlsVerify: false,
      configRoot: join(opts.dir, 'root'),
      signaturePolicy: opts.policyFile,
      registriesD: opts.registriesD,
      reporter: { info: (m) => info.push(m) },
      registry: { timeoutMs: 10_000, retries: 0 },
    })
    try {
      await pullImage(store, opened.source, opened.refName, { reporter: quiet })
    } catch (err) {
      return { err: err as SysctrError, stored: (await store.getImageRef(opened.refName)) !== undefined, info }
    } finally {
      await opened.source.close()
    }
    return { stored: (await store.getImageRef(opened.refName)) !== undefined, info }
  } finally {
    await store.close()
  }
}
