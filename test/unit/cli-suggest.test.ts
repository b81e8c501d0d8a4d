import { describe, expect, it } from 'vitest'
import { editDistance, resolveWords, suggestions, unknownCommandError } from '../../src/cli/suggest'
import { shownDefault, unwrap } from '../../src/cli/help-text'
import { usageFromParseError } from '../../src/cli/parse-errors'
import { requireRoot } from '../../src/cli/privilege'
import { toSysctrError } from '../../src/errors'

const IDS = ['install', 'uninstall', 'containers:list', 'containers:ls', 'containers:update', 'images:pull', 'images:list', 'status', 'help']

describe('suggestions for words that name no command', () => {
  it('edit distance counts a swap of neighbours once', () => {
    expect(editDistance('instal', 'install')).toBe(1)
    expect(editDistance('isntall', 'install')).toBe(1)
    expect(editDistance('list', 'list')).toBe(0)
    expect(editDistance('', 'ab')).toBe(2)
  })

  it('resolves the words that name a topic or a command, and the first that names nothing', () => {
    expect(resolveWords(IDS, ['containers', 'updte', 'etcd'])).toEqual({ known: ['containers'], unknown: 'updte', command: undefined })
    expect(resolveWords(IDS, ['containers', 'update', 'etcd'])).toEqual({ known: ['containers', 'update'], command: 'containers:update' })
    expect(resolveWords(IDS, ['instal', 'foo'])).toEqual({ known: [], unknown: 'instal', command: undefined })
  })

  it('suggests the nearest commands within the topic, prefixes too; nothing when nothing is near', () => {
    expect(suggestions(IDS, [], 'instal')).toEqual(['install'])
    expect(suggestions(IDS, ['images'], 'pul')).toEqual(['images:pull'])
    expect(suggestions(IDS, ['images'], 'stat')).toEqual([])
    expect(suggestions(IDS, [], 'stat')).toEqual(['status'])
    expect(suggestions(IDS, [], 'xyzzy')).toEqual([])
  })

  it('the error is exit 2 with the words as typed and each command once (aliases folded)', () => {
    const e = unknownCommandError('sysctr', IDS, ['containers', 'lsit'], (id) => (id === 'containers:ls' ? 'containers:list' : id))
    expect(e.exitCode).toBe(2)
    expect(e.message).toBe('unknown command `sysctr containers lsit`')
    expect(e.hint).toBe('did you mean `sysctr containers list`? (sysctr containers --help lists the commands)')
  })
})

describe('help text', () => {
  it('joins lines inside a paragraph, keeps paragraph breaks and indented lines', () => {
    expect(unwrap('one\ntwo\n\nthree\n  sysctr x\n  sysctr y\nfour')).toBe('one two\n\nthree\n  sysctr x\n  sysctr y\nfour')
    expect(unwrap(undefined)).toBe('')
  })
  it('shows no default for [], "" or false', () => {
    expect(shownDefault([])).toBeUndefined()
    expect(shownDefault('')).toBeUndefined()
    expect(shownDefault(false)).toBeUndefined()
    expect(shownDefault('/usr/bin/runc')).toBe('/usr/bin/runc')
    expect(shownDefault(['a', 'b'])).toBe('a,b')
  })
})

describe('parse errors and privilege', () => {
  it('names each missing argument and the command\'s --help', () => {
    const err = Object.assign(new Error('Missing 2 required args'), { parse: {}, args: [{ name: 'image', description: 'the image' }, { name: 'dir' }] })
    const u = usageFromParseError(err, 'sysctr', 'images checkout')!
    expect(u.message).toBe('missing argument IMAGE (the image); missing argument DIR')
    expect(u.hint).toBe('see `sysctr images checkout --help`')
    expect(usageFromParseError(new Error('not a parse error'), 'sysctr', 'x')).toBeUndefined()
  })
  it('needs root without --root; not as root or with --root', () => {
    expect(() => requireRoot({ command: 'containers list', euid: 1000 })).toThrow('sysctr containers list needs root (or --user for your own containers, or --root DIR)')
    try {
      requireRoot({ command: 'install', euid: 1000 })
    } catch (e) {
      expect(toSysctrError(e)).toMatchObject({ code: 'host.needs-root', exitCode: 7 })
    }
    expect(() => requireRoot({ command: 'install', euid: 0 })).not.toThrow()
    expect(() => requireRoot({ command: 'install', euid: 1000, root: '/tmp/tree' })).not.toThrow()
  })
  it('EACCES on a path gets a hint naming it', () => {
    const e = toSysctrError(Object.assign(new Error('EACCES'), { code: 'EACCES', syscall: 'open', path: '/var/lib/sysctr/containers' }))
    expect(e.exitCode).toBe(7)
    expect(e.fullMessage).toBe('open /var/lib/sysctr/containers: permission denied')
    expect(e.hint).toContain('check the owner and mode of /var/lib/sysctr/containers')
  })
})

describe('progress on a terminal that reports 0 columns', () => {
  it('draws for 80 columns, not cut to the 20-column minimum', async () => {
    const { ProgressRenderer } = await import('../../src/cli/progress')
    const writes: string[] = []
    const out = { isTTY: true, columns: 0, write: (s: string) => writes.push(s) }
    const long = 'sha256:' + 'a'.repeat(64)
    const r = new ProgressRenderer(out, { mode: 'human', now: () => 0 })
    r.event({ kind: 'start', digest: long, index: 0, count: 1, total: 10 * 1024 * 1024 })
    // eslint-disable-next-line no-control-regex
    const lines = writes.join('').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').split('\n').filter(Boolean)
    expect(lines[0]).toMatch(/^aaaaaaaaaaaa \[> +\] 0 B \/ 10 MiB$/)
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(79)
  })
})
