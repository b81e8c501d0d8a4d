import { describe, expect, it } from 'vitest'
import { ContentError } from '../../src/errors'
import { UnitFile, parseUnitFile, serialiseUnitFile, splitUnitList } from '../../src/systemd/unit-file'

const SAMPLE = `# etcd, as a system container
[Unit]
Description=etcd
After=network.target
After=flannel.service

[Service]
; start it
ExecStartPre=-/usr/sbin/runc delete --force etcd
ExecStartPre=/bin/mkdir -p /run/etcd
ExecStart=/usr/sbin/runc run \\
  --bundle /var/lib/sysctr/containers/etcd \\
  # a comment inside a continuation is skipped
  etcd
Environment=A=1 "B=two words"

[Install]
WantedBy=multi-user.target
`

describe('unit-file', () => {
  it('keeps repeated keys, in order, and reads the last for get()', () => {
    const f = parseUnitFile(SAMPLE)
    expect(f.getAll('Service', 'ExecStartPre')).toEqual(['-/usr/sbin/runc delete --force etcd', '/bin/mkdir -p /run/etcd'])
    expect(f.getAll('Unit', 'After')).toEqual(['network.target', 'flannel.service'])
    expect(f.get('Unit', 'After')).toBe('flannel.service')
    expect(f.get('Unit', 'Nope')).toBeUndefined()
    expect(f.sections()).toEqual(['Unit', 'Service', 'Install'])
    expect(f.entries[0]).toEqual({ section: 'Unit', key: 'Description', value: 'etcd' })
  })

  it('joins continuation lines with a space and skips comments between them', () => {
    const f = parseUnitFile(SAMPLE)
    expect(f.get('Service', 'ExecStart')).toBe('/usr/sbin/runc run  --bundle /var/lib/sysctr/containers/etcd  etcd')
  })

  it('trims around = and keeps = inside values', () => {
    const f = parseUnitFile('[Service]\n  Environment =  FOO=bar=baz  \n')
    expect(f.get('Service', 'Environment')).toBe('FOO=bar=baz')
  })

  it('round-trips comments, blank lines and order', () => {
    const text = '# top\n[Unit]\nDescription=x\n\n; c\n[Service]\nExecStart=/bin/true\nExecStart=\nExecStart=/bin/false\n'
    expect(serialiseUnitFile(parseUnitFile(text))).toBe(text)
  })

  it('getAll with emptyResets applies systemd list resets', () => {
    const f = parseUnitFile('[Service]\nExecStart=/a\nExecStart=\nExecStart=/b\n')
    expect(f.getAll('Service', 'ExecStart')).toEqual(['/a', '', '/b'])
    expect(f.getAll('Service', 'ExecStart', { emptyResets: true })).toEqual(['/b'])
  })

  it('add/set/remove edit in place and create sections', () => {
    const f = parseUnitFile('[Unit]\nDescription=x\n\n[Service]\nExecStart=/a\n')
    f.add('Unit', 'After', 'a.service').add('Unit', 'After', 'b.service')
    f.set('Service', 'ExecStart', '/b')
    f.add('Install', 'WantedBy', 'multi-user.target')
    expect(f.toString()).toBe(
      '[Unit]\nDescription=x\nAfter=a.service\nAfter=b.service\n\n[Service]\nExecStart=/b\n\n[Install]\nWantedBy=multi-user.target\n',
    )
    f.remove('Unit', 'After')
    expect(f.getAll('Unit', 'After')).toEqual([])
    expect(new UnitFile().add('Service', 'Type', 'notify').toString()).toBe('[Service]\nType=notify\n')
  })

  it('refuses values that would add a line', () => {
    const f = new UnitFile()
    for (const bad of ['a\nExecStartPre=/bin/evil', 'a\rb']) {
      expect(() => f.add('Service', 'Environment', bad)).toThrow(ContentError)
    }
    f.lines.push({ kind: 'entry', section: 'Service', key: 'X', value: 'a\nB=c' })
    expect(() => f.toString()).toThrow(expect.objectContaining({ code: 'unit-file.multiline-value' }))
    expect(() => f.add('Service', 'Bad Key', 'v')).toThrow(expect.objectContaining({ code: 'unit-file.bad-key' }))
  })

  it('reports syntax errors with the file and line', () => {
    expect(() => parseUnitFile('Description=x\n', 'a.service')).toThrow(expect.objectContaining({ code: 'unit-file.syntax', data: { file: 'a.service', line: 1 } }))
    expect(() => parseUnitFile('[Unit]\njust words\n')).toThrow(/line 2: expected Key=Value/)
    expect(() => parseUnitFile('[Unit\n')).toThrow(/bad section header/)
  })

  it('handles CRLF and a missing final newline', () => {
    const f = parseUnitFile('[Unit]\r\nDescription=x\r\nAfter=y')
    expect(f.get('Unit', 'Description')).toBe('x')
    expect(f.get('Unit', 'After')).toBe('y')
  })

  it('splitUnitList splits words and honours quotes', () => {
    expect(splitUnitList('a.target  b.target')).toEqual(['a.target', 'b.target'])
    expect(splitUnitList('A=1 "B=two words" \'C=x y\'')).toEqual(['A=1', 'B=two words', 'C=x y'])
    expect(splitUnitList('')).toEqual([])
  })
})
