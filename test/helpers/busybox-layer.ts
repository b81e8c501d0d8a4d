/** The first layer of the busybox-based test images: busybox, its applet links, and the usual top-level dirs. */
import { promises as fsp } from 'node:fs'
import type { LayerEntry } from '../../harness/oci-layout-writer'

export async function busyboxLayer(busyboxPath: string, applets: readonly string[]): Promise<LayerEntry[]> {
  const entries: LayerEntry[] = [
    { path: 'bin/', type: 'directory' },
    { path: 'bin/busybox', content: await fsp.readFile(busyboxPath), mode: 0o755 },
  ]
  for (const a of applets) entries.push({ path: `bin/${a}`, type: 'symlink', linkname: 'busybox' })
  for (const d of ['dev/', 'proc/', 'sys/', 'tmp/', 'run/', 'etc/']) entries.push({ path: d, type: 'directory', mode: d === 'tmp/' ? 0o1777 : 0o755 })
  return entries
}
