import { promises as fs } from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ContentError, UsageError } from '../../src/errors'
import { checkRuntimeConfig } from '../../src/runtime/config-check'
import { loadExports, parseExportsManifest, renderExports, templateVariables } from '../../src/templates/exports'
import { computeDefaults, parseSetFlags, resolveValues } from '../../src/templates/values'

const DEFAULTS = path.resolve(__dirname, '../../templates')

let tmp: string
let rootfs: string
let exportsDir: string
beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'sysctr-exports-'))
  rootfs = path.join(tmp, 'rootfs')
  exportsDir = path.join(rootfs, 'exports')
  await fs.mkdir(exportsDir, { recursive: true })
})
afterEach(async () => {
  await fs.rm(tmp, { recursive: true, force: true })
})

async function write(files: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(exportsDir, name), text)
}

const computed = computeDefaults({
  name: 'etcd',
  destDir: '/var/lib/sysctr/containers/etcd.0',
  runtime: '/usr/bin/runc',
  imageName: 'localhost:5000/atomic/etcd:latest',
  imageId: 'sha256:' + 'b'.repeat(64),
  hostUid: 0,
  hostGid: 0,
  uuid: '00000000-0000-4000-8000-000000000001',
})

// An Atomic-style etcd system container, written the way those images were:
// $VAR and ${VAR} in config.json.template, service.template and tmpfiles.template.
const ATOMIC_CONFIG = `{
	"ociVersion": "1.0.0",
	"process": {
		"terminal": false,
		"user": { "uid": 0, "gid": 0 },
		"args": [ "/usr/bin/etcd-env.sh", "/usr/bin/etcd" ],
		"env": [
			"NAME=$NAME",
			"ETCD_NAME=$ETCD_NAME",
			"ETCD_DATA_DIR=/var/lib/etcd/$\${NAME}.etcd",
			"ETCD_LISTEN_CLIENT_URLS=$ETCD_LISTEN_CLIENT_URLS",
			"ETCD_INITIAL_CLUSTER_STATE=$ETCD_INITIAL_CLUSTER_STATE",
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"effective": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
			"permitted": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ]
		},
		"rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ]
	},
	"root": { "path": "rootfs", "readonly": true },
	"mounts": [
		{ "destination": "/proc", "type": "proc", "source": "proc" },
		{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
		{ "type": "bind", "source": "\${STATE_DIRECTORY}/etcd/\${NAME}.etcd", "destination": "/var/lib/etcd", "options": [ "rbind", "rw", "mode=755" ] },
		{ "type": "bind", "source": "\${RUN_DIRECTORY}/$NAME", "destination": "/var/run/etcd", "options": [ "rbind", "rw", "mode=755" ] },
		{ "type": "bind", "source": "$CONF_DIRECTORY/$NAME", "destination": "/etc/etcd", "options": [ "rbind", "ro", "rprivate" ] }
		$ADDTL_MOUNTS
	],
	"linux": {
		"namespaces": [ { "type": "pid" }, { "type": "ipc" }, { "type": "mount" } ]
	}
}
`
const ATOMIC_SERVICE = `[Unit]
Description=Etcd Server
After=network.target

[Service]
ExecStartPre=$EXEC_STARTPRE
ExecStart=$EXEC_START
ExecStopPost=$EXEC_STOPPOST
Restart=on-failure
WorkingDirectory=$DESTDIR
PIDFile=$PIDFILE

[Install]
WantedBy=multi-user.target
`
const ATOMIC_TMPFILES = 'd    ${STATE_DIRECTORY}/etcd/${NAME}.etcd   0700 ${HOST_UID} ${HOST_GID} - -\n'
const ATOMIC_MANIFEST = JSON.stringify({
  version: '1.0',
  defaultValues: {
    ETCD_NAME: 'default',
    ETCD_LISTEN_CLIENT_URLS: 'http://127.0.0.1:2379',
    ETCD_INITIAL_CLUSTER_STATE: 'new',
    ADDTL_MOUNTS: '',
    CONF_DIRECTORY: '/etc',
  },
  renameFiles: { '/etc/etcd/etcd.conf': '$CONF_DIRECTORY/$NAME/etcd.conf' },
})

describe('loadExports', () => {
  it('reads an Atomic-style /exports and renders it to valid JSON and a unit', async () => {
    await write({ 'config.json.template': ATOMIC_CONFIG, 'service.template': ATOMIC_SERVICE, 'tmpfiles.template': ATOMIC_TMPFILES, 'manifest.json': ATOMIC_MANIFEST })
    const ex = await loadExports(rootfs, DEFAULTS)
    expect(ex.present).toBe(true)
    expect(ex.manifestOrigin).toBe('image')
    expect([ex.configJson, ex.service, ex.tmpfiles].map((t) => [t.file, t.syntax, t.origin])).toEqual([
      ['config.json.template', 'legacy', 'image'],
      ['service.template', 'legacy', 'image'],
      ['tmpfiles.template', 'legacy', 'image'],
    ])
    expect(ex.manifest.renameFiles).toEqual({ '/etc/etcd/etcd.conf': '$CONF_DIRECTORY/$NAME/etcd.conf' })

    const { values } = resolveValues({ manifestDefaults: ex.manifest.defaultValues, computed, set: parseSetFlags(['ETCD_NAME=node1']) })
    const out = await renderExports(ex, values, undefined)

    // The host's uts namespace is part of the default grant; /etc/etcd is the service's own directory.
    const { spec, warnings } = checkRuntimeConfig(out.configJson, { names: ['etcd'] })
    expect(spec.process.env).toContain('ETCD_NAME=node1')
    expect(spec.process.env).toContain('ETCD_DATA_DIR=/var/lib/etcd/${NAME}.etcd')
    expect(spec.mounts?.map((m) => m.source)).toContain('/var/lib/etcd/etcd.etcd')
    expect(spec.mounts?.map((m) => m.source)).toContain('/run/etcd')
    expect(spec.mounts?.map((m) => m.source)).toContain('/etc/etcd')
    expect(warnings).toEqual([])

    expect(out.service).toContain('ExecStart=/usr/bin/runc run --no-new-keyring --bundle /var/lib/sysctr/containers/etcd.0 etcd\n')
    expect(out.service).toContain('ExecStartPre=-/usr/bin/runc delete --force etcd\n')
    expect(out.service).toContain('PIDFile=/run/container-etcd.pid\n')
    expect(out.service).toContain('WorkingDirectory=/var/lib/sysctr/containers/etcd.0\n')
    expect(out.tmpfiles).toBe('d    /var/lib/etcd/etcd.etcd   0700 0 0 - -\n')
  })

  it('lists the variables each template needs', async () => {
    await write({ 'config.json.template': ATOMIC_CONFIG, 'service.template': ATOMIC_SERVICE, 'tmpfiles.template': ATOMIC_TMPFILES })
    const vars = templateVariables(await loadExports(rootfs, DEFAULTS))
    expect(vars.configJson).toEqual(['NAME', 'ETCD_NAME', 'ETCD_LISTEN_CLIENT_URLS', 'ETCD_INITIAL_CLUSTER_STATE', 'STATE_DIRECTORY', 'RUN_DIRECTORY', 'CONF_DIRECTORY', 'ADDTL_MOUNTS'])
    expect(vars.service).toEqual(['EXEC_STARTPRE', 'EXEC_START', 'EXEC_STOPPOST', 'DESTDIR', 'PIDFILE'])
    expect(vars.tmpfiles).toEqual(['STATE_DIRECTORY', 'NAME', 'HOST_UID', 'HOST_GID'])
    expect(vars.all).toContain('ADDTL_MOUNTS')
  })

  it('a missing value names the template and the --set (ADDTL_MOUNTS has an empty default, unlike in Atomic)', async () => {
    await write({ 'config.json.template': ATOMIC_CONFIG, 'service.template': ATOMIC_SERVICE })
    const ex = await loadExports(rootfs, DEFAULTS)
    const { values } = resolveValues({ manifestDefaults: ex.manifest.defaultValues, computed })
    const err = await renderExports(ex, values, undefined).catch((e) => e)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.code).toBe('template.missing-value')
    expect(err.data).toEqual({ file: 'config.json.template', missing: ['ETCD_NAME', 'ETCD_LISTEN_CLIENT_URLS', 'ETCD_INITIAL_CLUSTER_STATE'] })
  })

  it.each([
    ['newline', 'x\nExecStartPre=/bin/sh -c evil'],
    ['carriage return', 'x\r[Service]'],
    ['trailing backslash', 'x\\'],
  ])('refuses a value with a %s only where a unit or tmpfiles file uses it', async (_what, bad) => {
    await write({
      'config.json.hbs': '{"root": {"path": "rootfs", "readonly": true}, "process": {"args": ["/bin/sh"], "env": ["FOO={{FOO}}"]}}',
      'service.hbs': 'ExecStart={{EXEC_START}}\nEnvironment=BAR={{BAR}}\n',
      'tmpfiles.template': 'd /run/$NAME 0755 - - -\n',
    })
    const ex = await loadExports(rootfs, DEFAULTS)
    // FOO lands only in config.json (JSON-escaped): fine.
    const ok = await renderExports(ex, { ...computed, FOO: bad, BAR: 'ok' }, undefined)
    expect(checkRuntimeConfig(ok.configJson).spec.process.env).toEqual([`FOO=${bad}`])
    // BAR lands in the unit: refused.
    const err = await renderExports(ex, { ...computed, FOO: 'ok', BAR: bad }, undefined).catch((e) => e)
    expect(err).toBeInstanceOf(UsageError)
    expect(err.code).toBe('values.unsafe')
    expect(err.data.keys).toEqual(['BAR'])
    // NAME in the legacy tmpfiles template too.
    const err2 = await renderExports(ex, { ...computed, FOO: 'ok', BAR: 'ok', NAME: bad }, undefined).catch((e) => e)
    expect(err2.code).toBe('values.unsafe')
    expect(err2.data).toMatchObject({ keys: ['NAME'], file: 'tmpfiles.template' })
  })

  it.each([
    [['config.json.hbs', 'config.json.template', 'config.json'], 'config.json.hbs', 'handlebars'],
    [['config.json.template', 'config.json'], 'config.json.template', 'legacy'],
    [['config.json'], 'config.json', 'plain'],
  ])('config.json lookup order: %j -> %s', async (files, chosen, syntax) => {
    await write(Object.fromEntries(files.map((f) => [f, '{}'])))
    const ex = await loadExports(rootfs, DEFAULTS)
    expect(ex.configJson).toMatchObject({ file: chosen, syntax, origin: 'image', path: path.join(exportsDir, chosen) })
  })

  it('service and tmpfiles: .hbs before .template', async () => {
    await write({ 'service.hbs': 'a', 'service.template': 'b', 'tmpfiles.template': 'c' })
    const ex = await loadExports(rootfs, DEFAULTS)
    expect(ex.service).toMatchObject({ file: 'service.hbs', syntax: 'handlebars', origin: 'image', text: 'a' })
    expect(ex.tmpfiles).toMatchObject({ file: 'tmpfiles.template', syntax: 'legacy', origin: 'image', text: 'c' })
  })

  it('falls back to the defaults per file, and when there is no /exports at all', async () => {
    await write({ 'service.template': 'x' })
    const ex = await loadExports(rootfs, DEFAULTS)
    expect(ex.service.origin).toBe('image')
    expect(ex.configJson).toMatchObject({ origin: 'default', syntax: 'handlebars', path: path.join(DEFAULTS, 'config.json.hbs') })
    expect(ex.tmpfiles).toMatchObject({ origin: 'default', path: path.join(DEFAULTS, 'tmpfiles.hbs') })
    expect(ex.manifestOrigin).toBe('none')
    expect(ex.manifest).toEqual({ defaultValues: {}, noContainerService: false, renameFiles: {}, installedFilesTemplate: [] })

    await fs.rm(exportsDir, { recursive: true })
    const none = await loadExports(rootfs, DEFAULTS)
    expect(none.present).toBe(false)
    expect([none.configJson.origin, none.service.origin, none.tmpfiles.origin]).toEqual(['default', 'default', 'default'])
  })

  it('plain config.json is used as is', async () => {
    await write({ 'config.json': '{"x": "$NOT_A_VAR"}' })
    const ex = await loadExports(rootfs, DEFAULTS)
    expect((await renderExports(ex, computed, undefined)).configJson).toBe('{"x": "$NOT_A_VAR"}')
  })

  it('refuses a symlink in /exports, even one pointing inside the rootfs, without falling through', async () => {
    await fs.writeFile(path.join(tmp, 'host-secret'), 'secret')
    await fs.symlink(path.join(tmp, 'host-secret'), path.join(exportsDir, 'service.template'))
    await write({ 'service.hbs.unused': 'x' })
    const err = await loadExports(rootfs, DEFAULTS).catch((e) => e)
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe('exports.symlink')
    expect(err.message).toContain('service.template')

    await fs.rm(path.join(exportsDir, 'service.template'))
    await fs.writeFile(path.join(rootfs, 'inside.json'), '{}')
    await fs.symlink('../inside.json', path.join(exportsDir, 'manifest.json'))
    expect(await loadExports(rootfs, DEFAULTS).catch((e) => e.code)).toBe('exports.symlink')
  })

  it('refuses /exports itself being a symlink, and a directory where a file is expected', async () => {
    await fs.rm(exportsDir, { recursive: true })
    await fs.mkdir(path.join(tmp, 'elsewhere'))
    await fs.symlink(path.join(tmp, 'elsewhere'), exportsDir)
    expect(await loadExports(rootfs, DEFAULTS).catch((e) => e.code)).toBe('exports.symlink')

    await fs.rm(exportsDir)
    await fs.mkdir(path.join(exportsDir, 'service.template'), { recursive: true })
    expect(await loadExports(rootfs, DEFAULTS).catch((e) => e.code)).toBe('exports.not-a-file')
  })

  it('invalid manifest.json is a content error', async () => {
    await write({ 'manifest.json': '{"defaultValues": {' })
    const err = await loadExports(rootfs, DEFAULTS).catch((e) => e)
    expect(err).toBeInstanceOf(ContentError)
    expect(err.code).toBe('exports.bad-manifest')
    expect(err.fullMessage).toMatch(/^reading the image \/exports: \/exports\/manifest\.json: invalid JSON/)
  })
})

describe('parseExportsManifest', () => {
  it('returns every key sysctr uses later', () => {
    expect(
      parseExportsManifest(
        JSON.stringify({
          defaultValues: { A: 'a', N: 5, B: true },
          noContainerService: true,
          renameFiles: { '/etc/x.conf': '$CONF_DIRECTORY/$NAME.conf' },
          installedFilesTemplate: ['/usr/local/bin/tool'],
          unknownKey: 1,
        }),
      ),
    ).toEqual({
      defaultValues: { A: 'a', N: '5', B: 'true' },
      noContainerService: true,
      renameFiles: { '/etc/x.conf': '$CONF_DIRECTORY/$NAME.conf' },
      installedFilesTemplate: ['/usr/local/bin/tool'],
    })
  })
  it.each([
    ['[]'],
    ['{"defaultValues": []}'],
    ['{"defaultValues": {"A": {"nested": 1}}}'],
    ['{"defaultValues": {"A": null}}'],
    ['{"noContainerService": "yes"}'],
    ['{"renameFiles": {"a": 1}}'],
    ['{"installedFilesTemplate": "/x"}'],
  ])('refuses %s', (text) => {
    expect(() => parseExportsManifest(text)).toThrow(expect.objectContaining({ code: 'exports.bad-manifest' }))
  })
})
