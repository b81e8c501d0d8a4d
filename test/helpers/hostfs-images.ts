/**
 * Images with host files (/exports/hostfs), for the host-file tests:
 *
 *   web-v1, web-v2  a busybox service (sysctr's default unit and config.json;
 *                   the process from the image config) shipping
 *                   /exports/hostfs/etc/web/web.conf  (installedFilesTemplate,
 *                       renamed to /etc/$NAME/$NAME.conf; v2 adds a line),
 *                   /exports/hostfs/usr/local/bin/webctl (renamed to
 *                       /etc/$NAME/webctl, mode 0755; v2 differs),
 *                   /exports/hostfs/etc/web/v1-only.conf (v1 only).
 *   tools           noContainerService: /exports/hostfs/etc/tools/hello
 *                   and a tmpfiles entry, no service.
 */
import type { LayerEntry, WrittenImage } from '../../harness/oci-layout-writer'
import { writeOciLayout } from '../../harness/oci-layout-writer'
import { busyboxLayer } from './busybox-layer'

const APPLETS = ['sh', 'sleep', 'cat', 'true']

const baseLayer = (busyboxPath: string): Promise<LayerEntry[]> => busyboxLayer(busyboxPath, APPLETS)

const SCRIPT = `#!/bin/sh
trap 'exit 0' TERM INT
echo "web $(cat /etc/web-version) starting"
while true; do sleep 1 & wait $!; done
`

/** What web.conf renders to for NAME (PORT default 8080). */
export function webConf(v: 'v1' | 'v2', name: string, port = '8080'): string {
  return `# ${name} ${v}\nport=${port}\n${v === 'v2' ? 'workers=4\n' : ''}`
}
export const WEBCTL = { v1: '#!/bin/sh\necho webctl v1\n', v2: '#!/bin/sh\necho webctl v2\n' }

const dirs = (...paths: string[]): LayerEntry[] => paths.map((path) => ({ path, type: 'directory' as const }))

function webLayer(v: 'v1' | 'v2'): LayerEntry[] {
  return [
    { path: 'usr/', type: 'directory' },
    { path: 'usr/bin/', type: 'directory' },
    { path: 'usr/bin/web', content: SCRIPT, mode: 0o755 },
    { path: 'etc/web-version', content: `${v}\n` },
    ...dirs('exports/', 'exports/hostfs/', 'exports/hostfs/etc/', 'exports/hostfs/etc/web/', 'exports/hostfs/usr/', 'exports/hostfs/usr/local/', 'exports/hostfs/usr/local/bin/'),
    {
      path: 'exports/manifest.json',
      content: JSON.stringify({
        version: '1.0',
        defaultValues: { PORT: '8080', VERSION: v },
        renameFiles: { '/etc/web/web.conf': '/etc/$NAME/$NAME.conf', '/usr/local/bin/webctl': '/etc/$NAME/webctl' },
        installedFilesTemplate: ['/etc/web/web.conf'],
      }),
    },
    { path: 'exports/hostfs/etc/web/web.conf', content: `# $NAME $VERSION\nport=$PORT\n${v === 'v2' ? 'workers=4\n' : ''}` },
    { path: 'exports/hostfs/usr/local/bin/webctl', content: WEBCTL[v], mode: 0o755 },
    ...(v === 'v1' ? [{ path: 'exports/hostfs/etc/web/v1-only.conf', content: 'old\n' }] : []),
  ]
}

function toolsLayer(): LayerEntry[] {
  return [
    ...dirs('exports/', 'exports/hostfs/', 'exports/hostfs/etc/', 'exports/hostfs/etc/tools/'),
    { path: 'exports/manifest.json', content: JSON.stringify({ version: '1.0', noContainerService: true }) },
    { path: 'exports/tmpfiles.template', content: 'd /run/tools-$NAME 0755 root root -\n' },
    { path: 'exports/hostfs/etc/tools/hello', content: '#!/bin/sh\necho hello\n', mode: 0o755 },
  ]
}

/** Write web-v1, web-v2 and tools into the OCI layout at dir. */
export async function buildHostfsImages(dir: string, opts: { busybox?: string } = {}): Promise<WrittenImage[]> {
  const base = await baseLayer(opts.busybox ?? '/bin/busybox')
  const config = { Entrypoint: ['/bin/sh', '/usr/bin/web'], Env: ['PATH=/bin'], WorkingDir: '/' }
  return writeOciLayout(dir, [
    { tag: 'web-v1', layers: [base, webLayer('v1')], config },
    { tag: 'web-v2', layers: [base, webLayer('v2')], config },
    { tag: 'tools', layers: [base, toolsLayer()] },
  ])
}
