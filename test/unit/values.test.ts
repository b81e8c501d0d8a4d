import { describe, expect, it } from 'vitest'
import { UsageError } from '../../src/errors'
import { checkContainerName } from '../../src/deployment/name'
import { allProcessCapabilities, LINUX_CAPABILITIES } from '../../src/runtime/capabilities'
import { checkUnitSafe, systemdQuote } from '../../src/systemd/unit-quote'
import { computeDefaults, parseSetFlags, resolveValues, runtimeCommands } from '../../src/templates/values'

const ctx = {
  name: 'etcd',
  destDir: '/var/lib/sysctr/containers/etcd.0',
  runtime: '/usr/bin/runc',
  imageName: 'registry.example/etcd:latest',
  imageId: 'sha256:' + 'a'.repeat(64),
  hostUid: 0,
  hostGid: 0,
  uuid: '2b5e3c1e-0000-4000-8000-000000000000',
}

describe('parseSetFlags', () => {
  it('parses KEY=VALUE; VALUE may contain = and be empty; a later KEY wins', () => {
    expect(parseSetFlags(['A=1', 'B=x=y', 'C=', '_d9=v', 'A=2'])).toEqual({ A: '2', B: 'x=y', C: '', _d9: 'v' })
  })
  it.each([['NOEQ'], ['=v'], ['1A=v'], ['A-B=v'], ['A B=v'], ['__proto__=x']])('refuses %j naming the flag', (flag) => {
    let err: any
    try {
      parseSetFlags(['OK=1', flag])
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(UsageError)
    expect(err.code).toBe('values.invalid-set')
    expect(err.message).toContain(JSON.stringify(flag))
    expect(err.data).toEqual({ flag })
  })
})

describe('computeDefaults', () => {
  it('produces the Atomic set of values', () => {
    const v = computeDefaults(ctx)
    expect(v).toMatchObject({
      NAME: 'etcd',
      DESTDIR: ctx.destDir,
      EXEC_START: `/usr/bin/runc run --no-new-keyring --bundle ${ctx.destDir} etcd`,
      // As Atomic: ExecStop is `RUNTIME kill NAME`; IMAGE_ID is the digest's hex.
      EXEC_STOP: '/usr/bin/runc kill etcd',
      EXEC_STARTPRE: '-/usr/bin/runc delete --force etcd',
      EXEC_STOPPOST: '-/usr/bin/runc delete --force etcd',
      HOST_UID: '0',
      HOST_GID: '0',
      IMAGE_NAME: ctx.imageName,
      IMAGE_ID: ctx.imageId.replace(/^sha256:/, ''),
      RUN_DIRECTORY: '/run',
      STATE_DIRECTORY: '/var/lib',
      CONF_DIRECTORY: '/etc',
      PIDFILE: '/run/container-etcd.pid',
      UUID: ctx.uuid,
      RUNTIME: '/usr/bin/runc',
    })
    for (const value of Object.values(v)) expect(typeof value).toBe('string')
  })

  it('follows the given directories', () => {
    const v = computeDefaults({ ...ctx, runDirectory: '/run/user/1000/', stateDirectory: '/srv', confDirectory: '/cfg' })
    expect(v).toMatchObject({ RUN_DIRECTORY: '/run/user/1000/', PIDFILE: '/run/user/1000/container-etcd.pid', STATE_DIRECTORY: '/srv', CONF_DIRECTORY: '/cfg' })
  })

  it('ALL_PROCESS_CAPABILITIES is a JSON list body of every capability, in kernel order', () => {
    const v = computeDefaults(ctx)
    const list = JSON.parse(`[${v.ALL_PROCESS_CAPABILITIES}]`)
    expect(list).toEqual(LINUX_CAPABILITIES)
    expect(list.slice(0, 3)).toEqual(['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH'])
    expect(list).toContain('CAP_SYS_ADMIN')
    expect(list.length).toBe(41)
    expect(v.ALL_PROCESS_CAPABILITIES.startsWith('"CAP_CHOWN", "CAP_DAC_OVERRIDE", ')).toBe(true)
    // Up to the host's cap_last_cap, as Atomic did.
    expect(JSON.parse(`[${computeDefaults({ ...ctx, capLastCap: 37 }).ALL_PROCESS_CAPABILITIES}]`).at(-1)).toBe('CAP_AUDIT_READ')
    expect(allProcessCapabilities(0)).toEqual(['CAP_CHOWN'])
  })
})

describe('runtimeCommands and systemdQuote', () => {
  it('quotes what systemd would split or expand', () => {
    expect(systemdQuote('/usr/bin/runc')).toBe('/usr/bin/runc')
    expect(systemdQuote('/srv/my dir')).toBe('"/srv/my dir"')
    expect(systemdQuote('/a%b$c"d\\e')).toBe('"/a%%b$$c\\"d\\\\e"')
    expect(systemdQuote('')).toBe('""')
    const c = runtimeCommands('/usr/bin/runc', '/var/lib/x y/etcd.0', 'etcd')
    expect(c.EXEC_START).toBe('/usr/bin/runc run --no-new-keyring --bundle "/var/lib/x y/etcd.0" etcd')
  })
})

describe('resolveValues', () => {
  const computed = computeDefaults(ctx)
  it('--set > computed > manifest, with the source of each', () => {
    const { values, sources } = resolveValues({
      manifestDefaults: { ETCD_NAME: 'default', RUN_DIRECTORY: '/manifest-run', ONLY_MANIFEST: 'm' },
      computed,
      set: { ETCD_NAME: 'node1', STATE_DIRECTORY: '/data' },
    })
    expect(values.ETCD_NAME).toBe('node1')
    expect(sources.ETCD_NAME).toBe('set')
    expect(values.RUN_DIRECTORY).toBe('/run')
    expect(sources.RUN_DIRECTORY).toBe('computed')
    expect(values.ONLY_MANIFEST).toBe('m')
    expect(sources.ONLY_MANIFEST).toBe('manifest')
    expect(values.STATE_DIRECTORY).toBe('/data')
    expect(sources.STATE_DIRECTORY).toBe('set')
    expect(sources.NAME).toBe('computed')
  })
  it('refuses --set of the keys that describe the deployment itself', () => {
    expect(() => resolveValues({ computed, set: { NAME: 'x', DESTDIR: '/tmp', OK: '1' } })).toThrow(
      expect.objectContaining({ code: 'values.fixed', data: { keys: ['NAME', 'DESTDIR'] } }),
    )
  })
  it('a manifest cannot override computed values', () => {
    const { values } = resolveValues({ manifestDefaults: { NAME: 'evil', EXEC_START: '/bin/sh' }, computed })
    expect(values.NAME).toBe('etcd')
    expect(values.EXEC_START).toBe(computed.EXEC_START)
  })
})

describe('checkUnitSafe', () => {
  it.each([
    ['newline', 'a\nExecStartPre=/bin/evil'],
    ['carriage return', 'a\r[Service]'],
    ['NUL', 'a\0b'],
    ['trailing backslash', 'a\\'],
  ])('refuses a %s, naming the key', (_what, bad) => {
    let err: any
    try {
      checkUnitSafe({ GOOD: 'ok', BAD: bad, ALSO: 'x\ny' }, ['GOOD', 'BAD', 'ALSO', 'NOT_SET'], { file: 'service.template' })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(UsageError)
    expect(err.code).toBe('values.unsafe')
    expect(err.data).toEqual({ keys: ['BAD', 'ALSO'], file: 'service.template' })
    expect(err.message).toContain('BAD')
  })
  it('accepts single-line values and ignores keys not checked', () => {
    expect(() => checkUnitSafe({ A: 'a b\\c "d" %n', B: 'x\ny' }, ['A'])).not.toThrow()
  })
})

describe('checkContainerName', () => {
  it.each(['etcd', 'etcd-1', 'a.b_c:d@e', 'A9', 'x'.repeat(200)])('accepts %j', (name) => {
    expect(() => checkContainerName(name)).not.toThrow()
  })
  it.each(['', '-x', '.x', '..', 'a/b', 'a b', 'a%b', 'é', 'x'.repeat(201), 'a\nb', 'tmpl@'])('refuses %j', (name) => {
    expect(() => checkContainerName(name)).toThrow(expect.objectContaining({ code: 'name.invalid', exitCode: 2 }))
  })
})
