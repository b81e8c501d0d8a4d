/** The operations paths of a host whose `/` is `root` (component tests with FakeSystemd). */
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import type { OpsContext, Paths } from '../../src/ops/context'
import { FakeSystemd } from '../../harness/fake-systemd'

export const TEMPLATES = join(__dirname, '..', '..', 'templates')

export function rootedPaths(root: string): Paths {
  return {
    stateDir: join(root, 'var/lib/sysctr'),
    storeDir: join(root, 'var/lib/sysctr/store'),
    containersDir: join(root, 'var/lib/sysctr/containers'),
    unitDir: join(root, 'etc/systemd/system'),
    tmpfilesDir: join(root, 'etc/tmpfiles.d'),
    templatesDir: TEMPLATES,
  }
}

/** Every path below `dir` (the store's inside left out), sorted: compare before and after an operation. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = []
  async function walk(d: string, rel: string): Promise<void> {
    for (const e of await fsp.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const r = rel ? `${rel}/${e.name}` : e.name
      out.push(r)
      if (e.isDirectory() && !r.startsWith('var/lib/sysctr/store')) await walk(join(d, e.name), r)
    }
  }
  await walk(dir, '')
  return out.sort()
}

export interface FakeHost {
  ctx: OpsContext
  systemd: FakeSystemd
  /** reporter output, warnings prefixed `warning: ` */
  messages: string[]
  /** `create FILE` / `remove FILE` for each tmpfiles call */
  tmpfilesCalls: string[]
}

/**
 * An operations context for a host whose `/` is `root`: FakeSystemd, recorded reporter and tmpfiles calls; the unit dir exists.
 * `more` adds or replaces context fields (e.g. `{ root }` so host files land under the root, `uuid`).
 */
export async function fakeHost(
  root: string,
  systemdOpts: Omit<ConstructorParameters<typeof FakeSystemd>[0], 'root'> = {},
  more: Partial<OpsContext> = {},
): Promise<FakeHost> {
  const systemd = new FakeSystemd({ root, ...systemdOpts })
  const messages: string[] = []
  const tmpfilesCalls: string[] = []
  const ctx: OpsContext = {
    paths: rootedPaths(root),
    systemd: async () => systemd,
    tmpfiles: async (mode, file) => {
      tmpfilesCalls.push(`${mode} ${file}`)
    },
    reporter: { info: (m) => messages.push(m), warn: (m) => messages.push(`warning: ${m}`) },
    ...more,
  }
  await fsp.mkdir(ctx.paths.unitDir, { recursive: true })
  return { ctx, systemd, messages, tmpfilesCalls }
}
