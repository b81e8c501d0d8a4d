/** The operations paths of a host whose `/` is `root` (component tests with FakeSystemd). */
import { join } from 'node:path'
import type { Paths } from '../../src/ops/context'

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
