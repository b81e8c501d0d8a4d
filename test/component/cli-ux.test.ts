/**
 * The CLI as a user meets it (issue 17), the built bin/sysctr run as a user
 * runs it (`npm run build` first): stdout, stderr, exit code. Unknown
 * commands and flags, help, aliases, parse errors, the needs-root check run
 * as a real non-root user (setpriv to nobody), EACCES with a hint, and the
 * completion scripts and man pages the build generates, run by bash, fish
 * and man.
 */
import { execFile } from 'node:child_process'
import { existsSync, promises as fsp } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const execFileP = promisify(execFile)
const REPO = resolve(__dirname, '../..')
const BIN = join(REPO, 'bin/sysctr')
const built = existsSync(join(REPO, 'dist/cli/suggest.js')) && existsSync(join(REPO, 'dist/completion/sysctr.bash'))
const which = (tool: string) => ['/usr/bin', '/bin', '/usr/sbin'].some((d) => existsSync(join(d, tool)))

interface Run {
  code: number
  stdout: string
  stderr: string
}

async function run(file: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  try {
    const r = await execFileP(file, args, { env: { ...process.env, HOME: home, ...env }, maxBuffer: 16 << 20 })
    return { code: 0, stdout: r.stdout, stderr: r.stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout, stderr: e.stderr }
  }
}

let home = '/nonexistent'
const sysctr = (args: string[], env: Record<string, string> = {}) => run(process.execPath, [BIN, ...args], env)
/** As the user nobody (uid 65534, no groups): a real non-root process. */
const asNobody = (args: string[]) => run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, ...args])

describe.skipIf(!built)(`CLI conventions${built ? '' : ' (skipped: run npm run build first)'}`, () => {
  let dir: string
  beforeAll(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'sysctr-cli-ux-'))
    // nobody must reach its HOME and the trees below (mkdtemp makes 0700).
    await fsp.chmod(dir, 0o755)
    await fsp.mkdir(join(dir, 'home'), { mode: 0o777 })
    await fsp.chmod(join(dir, 'home'), 0o777)
    home = join(dir, 'home')
    // Installed containers for name completion: the active links NAME -> NAME.N.
    const state = join(dir, 'names-state')
    await fsp.mkdir(join(state, 'containers/etcd.0'), { recursive: true })
    await fsp.mkdir(join(state, 'containers/flannel.1'), { recursive: true })
    await fsp.symlink('etcd.0', join(state, 'containers/etcd'))
    await fsp.symlink('flannel.1', join(state, 'containers/flannel'))
  })
  afterAll(async () => {
    await fsp.rm(dir, { recursive: true, force: true })
  })

  it('a typo names what was typed, space-separated, and suggests the command (exit 2)', async () => {
    const r = await sysctr(['instal', 'foo'])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe('error: unknown command `sysctr instal`\nhint: did you mean `sysctr install`? (sysctr --help lists the commands)\n')
    const sub = await sysctr(['containers', 'updte', 'etcd'])
    expect(sub.code).toBe(2)
    expect(sub.stderr).toContain('unknown command `sysctr containers updte`')
    expect(sub.stderr).toContain('did you mean `sysctr containers update`?')
    expect(sub.stderr).not.toMatch(/:updte|containers:/)
    // An alias and its command are one suggestion, not two.
    const lst = await sysctr(['containers', 'lst'])
    expect(lst.stderr).toContain('did you mean `sysctr containers list`?')
    expect(lst.stderr).not.toContain(' or ')
    const none = await sysctr(['frobnicate'])
    expect(none.code).toBe(2)
    expect(none.stderr).toBe('error: unknown command `sysctr frobnicate`\nhint: sysctr --help lists the commands\n')
  })

  it('help COMMAND, COMMAND --help and -h print the same help (exit 0); help of a typo suggests', async () => {
    const a = await sysctr(['help', 'containers', 'update'])
    const b = await sysctr(['containers', 'update', '--help'])
    const c = await sysctr(['containers', 'update', '-h'])
    for (const r of [a, b, c]) {
      expect(r.code).toBe(0)
      expect(r.stderr).toBe('')
    }
    expect(a.stdout).toContain('$ sysctr containers update [NAME]')
    expect(b.stdout).toBe(a.stdout)
    expect(c.stdout).toBe(a.stdout)
    const typo = await sysctr(['help', 'instal'])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toContain('did you mean `sysctr install`?')
    const root = await sysctr(['-h'])
    expect(root.code).toBe(0)
    expect(root.stdout).toContain('TOPICS')
  })

  it('topics have their own descriptions', async () => {
    const r = await sysctr(['--help'])
    expect(r.stdout).toMatch(/^ {2}containers +Installed system containers: list, inspect, update, roll back$/m)
    expect(r.stdout).toMatch(/^ {2}images +Images in the store: pull, list, inspect, check out, delete, prune$/m)
    expect(r.stdout).toMatch(/^ {2}trust +The signature policy: show it, set what a registry scope requires$/m)
    const t = await sysctr(['images'])
    expect(t.code).toBe(0)
    expect(t.stdout.split('\n')[0]).toBe('Images in the store: pull, list, inspect, check out, delete, prune')
  })

  it('help has no hard line breaks inside a paragraph, no [default: ], and install does not ask for a fully qualified IMAGE', async () => {
    const install = await sysctr(['install', '--help'])
    expect(install.stdout).not.toContain('fully qualified')
    expect(install.stdout).toContain('short name')
    expect(install.stdout).toContain('oci-archive:FILE')
    expect(install.stdout).not.toContain('[default: ]')
    // The source wraps "…checks it out read-only" / "into /var/lib/…" at 100 columns; help rewraps to the terminal (80 when piped).
    const desc = install.stdout.slice(install.stdout.indexOf('DESCRIPTION'))
    expect(desc).toContain('Pulls IMAGE into the store, checks it out read-only into\n  /var/lib/sysctr/containers/NAME.0, renders the unit')
    for (const cmd of [['containers', 'update'], ['images', 'pull'], ['trust', 'add']]) {
      const r = await sysctr([...cmd, '--help'])
      expect(r.stdout).not.toContain('[default: ]')
    }
    const update = await sysctr(['containers', 'update', '--help'])
    expect(update.stdout.replace(/\s+/g, ' ')).toContain('Update builds the other slot (the one not active: NAME.0 <-> NAME.1, alternating as atomic did)')
  })

  it('parse errors: each missing argument by name, unknown flags, and the command\'s own --help (exit 2)', async () => {
    const r = await sysctr(['images', 'checkout'])
    expect(r.code).toBe(2)
    const lines = r.stderr.trimEnd().split('\n')
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^error: missing argument IMAGE \(.+\); missing argument DIR \(.+\)$/)
    expect(lines[1]).toBe('hint: see `sysctr images checkout --help`')
    const f = await sysctr(['containers', 'list', '--josn'])
    expect(f.code).toBe(2)
    expect(f.stderr).toBe('error: unknown flag --josn for `sysctr containers list`\nhint: did you mean --json? see `sysctr containers list --help`\n')
    // A usage error the command itself raises, without a hint of its own, points at its --help too.
    const own = await sysctr(['containers', 'update', '--all', '--dry-run'])
    expect(own.code).toBe(2)
    expect(own.stderr).toBe('error: --dry-run takes one NAME, not --all\nhint: see `sysctr containers update --help`\n')
    const j = await sysctr(['status', '--json'])
    expect(j.code).toBe(2)
    expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'usage.missing-argument', exitCode: 2 })
  })

  it('aliases: ps and containers ls are containers list, rm is uninstall, rmi and images rm are images delete', async () => {
    const ps = await sysctr(['ps', '--help'])
    expect(ps.code).toBe(0)
    expect(ps.stdout.split('\n')[0]).toContain('List installed system containers')
    expect((await sysctr(['containers', 'ls', '--help'])).stdout).toContain('$ sysctr containers ls')
    expect((await sysctr(['rm', '--help'])).stdout.split('\n')[0]).toContain('Stop, disable and remove')
    expect((await sysctr(['rmi', '--help'])).stdout.split('\n')[0]).toContain('Remove an image from the store')
    expect((await sysctr(['images', 'rm', '--help'])).stdout.split('\n')[0]).toContain('Remove an image from the store')
    // The root help lists each command once; a command's own help names its aliases.
    const root = await sysctr(['--help'])
    expect(root.stdout).not.toMatch(/^ {2}(ps|rm|rmi) /m)
    expect((await sysctr(['containers', 'list', '--help'])).stdout).toMatch(/ALIASES\n {2}\$ sysctr containers ls\n {2}\$ sysctr ps\n/)
  })

  it('as a non-root user, a system-mode command says it needs root, in one line, exit 7, and touches nothing', async () => {
    const state = join(dir, 'state-not-created')
    // The alias ps is named by its command.
    const cases: [string[], string][] = [
      [['containers', 'list'], 'containers list'],
      [['ps'], 'containers list'],
      [['images', 'list'], 'images list'],
      [['install', '--system', 'docker.io/library/busybox'], 'install'],
      [['status', 'etcd'], 'status'],
      [['logs', 'etcd'], 'logs'],
    ]
    for (const [args, name] of cases) {
      const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', `SYSCTR_STATE_DIR=${state}`, process.execPath, BIN, ...args])
      expect(r.code, args.join(' ')).toBe(7)
      expect(r.stdout).toBe('')
      expect(r.stderr).toBe(`error: sysctr ${name} needs root (or --user for your own containers, or --root DIR)\nhint: run it as root (sudo sysctr ...), add --user to work on your own containers (README "User mode"), or pass --root DIR to work on an OS tree\n`)
    }
    expect(existsSync(state)).toBe(false)
    const j = await asNobody(['containers', 'list', '--json'])
    expect(j.code).toBe(7)
    expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'host.needs-root', exitCode: 7 })
    // What needs no root still works.
    expect((await asNobody(['--help'])).code).toBe(0)
    expect((await asNobody(['completion', 'bash'])).code).toBe(0)
  })

  it('a permission error on a state path is one line with a hint, never an empty answer', async () => {
    const tree = join(dir, 'tree')
    await fsp.mkdir(join(tree, 'var/lib/sysctr/containers'), { recursive: true })
    await fsp.chmod(join(tree, 'var/lib/sysctr'), 0o700)
    const r = await asNobody(['containers', 'inspect', 'etcd', '--root', tree])
    expect(r.code).toBe(7)
    expect(r.stdout).toBe('')
    const lines = r.stderr.trimEnd().split('\n')
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^error: .*permission denied$/)
    expect(lines[0]).toContain(join(tree, 'var/lib/sysctr'))
    expect(lines[1]).toMatch(/^hint: sysctr needs root for the system's containers and store \(or --root DIR\); check the owner and mode of /)
  })

  it('bash completion (generated from the manifest) completes topics, commands, aliases and flags', async () => {
    const script = join(dir, 'complete.bash')
    await fsp.writeFile(
      script,
      [
        `source <("${process.execPath}" "${BIN}" completion bash)`,
        't() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); COMPREPLY=(); _sysctr; echo "${COMPREPLY[*]}"; }',
        't sysctr in',
        't sysctr containers ""',
        't sysctr containers update --re',
        't sysctr help ima',
        't sysctr p',
        't sysctr status ""',
        't sysctr containers update e',
        '',
      ].join('\n'),
    )
    const state = join(dir, 'names-state')
    const r = await run('bash', [script], { SYSCTR_STATE_DIR: state })
    expect(r.stderr).toBe('')
    expect(r.stdout.split('\n')).toEqual(['install', 'inspect list ls rollback update', '--rebase --registries.d', 'images', 'provision ps', 'etcd flannel', 'etcd', ''])
  })

  it.skipIf(!which('fish'))('fish completion completes commands and flags', async () => {
    const file = join(dir, 'sysctr.fish')
    await fsp.writeFile(file, (await sysctr(['completion', 'fish'])).stdout)
    const r = await run('fish', ['--no-config', '-c', `source ${file}; complete -C 'sysctr containers up'; complete -C 'sysctr containers update --reb'; complete -C 'sysctr help tru'; complete -C 'sysctr '; complete -C 'sysctr logs '`], { SYSCTR_STATE_DIR: join(dir, 'names-state') })
    expect(r.stderr).toBe('')
    expect(r.stdout).toMatch(/^update\tPull the image again/m)
    expect(r.stdout).toMatch(/^--rebase\tswitch to another image reference$/m)
    expect(r.stdout).toMatch(/^trust\tThe signature policy/m)
    expect(r.stdout).toMatch(/^containers\tInstalled system containers/m)
    expect(r.stdout).toMatch(/^etcd\tinstalled container$/m)
  })

  it.skipIf(!which('zsh'))('zsh completion: valid zsh; offers topics, commands, flags and names (compadd and _describe stubbed)', async () => {
    const file = join(dir, '_sysctr')
    await fsp.writeFile(file, (await sysctr(['completion', 'zsh'])).stdout)
    expect((await run('zsh', ['-n', file])).code).toBe(0)
    // Outside a completion widget words and CURRENT are plain variables; the stubs print what would be offered.
    const script = [
      'compadd() { print -r -- "compadd ${(j: :)@:#--}"; }',
      '_describe() { local -a c; c=("${(@P)2}"); print -r -- "describe ${(j: :)${(@)c%%:*}}"; }',
      '_files() { print files; }',
      'words=(sysctr ""); CURRENT=2',
      `source ${file}`,
      'words=(sysctr containers ""); CURRENT=3; _sysctr',
      'words=(sysctr containers update --re); CURRENT=4; _sysctr',
      'words=(sysctr logs ""); CURRENT=3; _sysctr',
      'words=(sysctr install ""); CURRENT=3; _sysctr',
    ].join('\n')
    const r = await run('zsh', ['-f', '-c', script], { SYSCTR_STATE_DIR: join(dir, 'names-state') })
    expect(r.stderr).toBe('')
    const lines = r.stdout.trimEnd().split('\n')
    // Every top-level command and topic, then help (the list grows with the commands: checked by membership).
    const top = lines[0].split(' ')
    expect(top[0]).toBe('describe')
    expect(top.at(-1)).toBe('help')
    expect(top).toEqual(expect.arrayContaining(['completion', 'containers', 'exec', 'fsck', 'images', 'install', 'logs', 'run', 'status', 'stop', 'trust']))
    expect(lines[1]).toBe('describe inspect list ls rollback update')
    expect(lines[2]).toMatch(/^compadd --json .*--rebase .*--help$/)
    expect(lines[3]).toBe('compadd etcd flannel')
    expect(lines[4]).toBe('files')
  })

  it('man pages: one per command and sysctr(1), from the same text as --help, rendered by man', async () => {
    const pages = await fsp.readdir(join(REPO, 'man/man1'))
    expect(pages).toContain('sysctr.1')
    expect(pages).toContain('sysctr-containers-update.1')
    expect(pages).toContain('sysctr-status.1')
    const r = await run('man', ['-l', '-P', 'cat', join(REPO, 'man/man1/sysctr-install.1')], { MANWIDTH: '200', MAN_KEEP_FORMATTING: '' })
    expect(r.code).toBe(0)
    const text = r.stdout.replace(/.\x08/g, '').replace(/[ \t]+/g, ' ')
    expect(text).toContain('sysctr-install - Install an image as a system container run by systemd')
    expect(text).toContain('--grant VALUE')
    expect(text).toContain('Pulls IMAGE into the store, checks it out read-only into /var/lib/sysctr/containers/NAME.0, renders the unit')
    const main = await run('man', ['-l', '-P', 'cat', join(REPO, 'man/man1/sysctr.1')], { MANWIDTH: '200' })
    expect(main.stdout.replace(/.\x08/g, '')).toMatch(/EXIT STATUS[\s\S]*7\s+host: filesystem or permission problem/)
  })

  it('completion of an unknown shell is a usage error', async () => {
    const r = await sysctr(['completion', 'tcsh'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('hint: see `sysctr completion --help`')
  })
})
