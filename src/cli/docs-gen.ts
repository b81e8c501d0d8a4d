/**
 * Shell completion (bash, zsh, fish) and man pages, generated at build time
 * (`npm run build`) from oclif.manifest.json: the same commands, aliases,
 * summaries and flags as `--help`, text unwrapped the same way
 * (help-text.ts). Nothing here runs at CLI start: `sysctr completion SHELL`
 * prints the generated file.
 *
 * Output: dist/completion/sysctr.{bash,zsh,fish}, man/man1/sysctr.1 and
 * man/man1/sysctr-TOPIC-COMMAND.1 (one per command, as git and podman do).
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { shownDefault, unwrap } from './help-text'

interface ManifestFlag {
  name: string
  char?: string
  description?: string
  summary?: string
  type: 'boolean' | 'option'
  options?: string[]
  default?: unknown
  hidden?: boolean
  allowNo?: boolean
}
interface ManifestArg {
  name: string
  description?: string
  required?: boolean
}
export interface ManifestCommand {
  id: string
  summary?: string
  description?: string
  aliases?: string[]
  hidden?: boolean
  examples?: (string | { command: string; description?: string })[]
  flags: Record<string, ManifestFlag>
  args: Record<string, ManifestArg>
}
export interface Manifest {
  version: string
  commands: Record<string, ManifestCommand>
}

export interface Topics {
  [name: string]: { description?: string }
}

const spaced = (id: string) => id.replaceAll(':', ' ')
const firstLine = (s: string | undefined) => unwrap(s).split('\n')[0] ?? ''
const summaryOf = (c: ManifestCommand) => firstLine(c.summary ?? c.description)

/** Every name a command answers to (its id and its aliases), visible commands only. */
function entries(m: Manifest): { name: string; cmd: ManifestCommand }[] {
  return Object.values(m.commands)
    .filter((c) => !c.hidden)
    .flatMap((c) => [c.id, ...(c.aliases ?? [])].map((name) => ({ name, cmd: c })))
    .sort((a, b) => a.name.localeCompare(b.name))
}

/** prefix ("" or "containers") -> the words that may follow it, with a description. */
function nextWords(m: Manifest, topics: Topics): Map<string, Map<string, string>> {
  const next = new Map<string, Map<string, string>>()
  const add = (prefix: string, word: string, desc: string) => {
    if (!next.has(prefix)) next.set(prefix, new Map())
    const words = next.get(prefix)!
    if (!words.has(word)) words.set(word, desc)
  }
  for (const { name, cmd } of entries(m)) {
    const parts = name.split(':')
    for (let i = 0; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join(' ')
      const isLast = i === parts.length - 1
      const topic = parts.slice(0, i + 1).join(':')
      add(prefix, parts[i]!, isLast ? summaryOf(cmd) : firstLine(topics[topic]?.description) || `${spaced(topic)} commands`)
    }
  }
  add('', 'help', 'show help for a command')
  return next
}

/** Commands whose first argument is a container name (completed from the active links NAME -> NAME.N). */
function takesName(c: ManifestCommand): boolean {
  return Object.keys(c.args)[0] === 'name'
}

const NAMES_DIR = '${SYSCTR_STATE_DIR:-/var/lib/sysctr}/containers'

function flagWords(c: ManifestCommand): string[] {
  return Object.values(c.flags)
    .filter((f) => !f.hidden)
    .flatMap((f) => [`--${f.name}`, ...(f.char ? [`-${f.char}`] : []), ...(f.allowNo ? [`--no-${f.name}`] : [])])
    .concat(['--help'])
}

const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

export function bashCompletion(m: Manifest, topics: Topics): string {
  const next = nextWords(m, topics)
  const lines = [
    '# bash completion for sysctr (generated from oclif.manifest.json by `npm run build`; do not edit)',
    '# install: sysctr completion bash > /etc/bash_completion.d/sysctr',
    'declare -gA _sysctr_next=(',
    ...[...next].map(([prefix, words]) => `  [${shq(prefix || '.')}]=${shq([...words.keys()].join(' '))}`),
    ')',
    'declare -gA _sysctr_flags=(',
    ...entries(m).map(({ name, cmd }) => `  [${shq(spaced(name))}]=${shq(flagWords(cmd).join(' '))}`),
    ')',
    'declare -gA _sysctr_takes_name=(',
    ...entries(m).filter(({ cmd }) => takesName(cmd)).map(({ name }) => `  [${shq(spaced(name))}]=1`),
    ')',
    '# Installed containers: the active links NAME -> NAME.N (readable by root).',
    '_sysctr_names() {',
    `  local f`,
    `  for f in "${NAMES_DIR}"/*; do [[ -L $f ]] && printf '%s\\n' "\${f##*/}"; done 2>/dev/null`,
    '}',
    '_sysctr() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" path="" w i cand',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    w="${COMP_WORDS[i]}"',
    '    [[ $w == -* ]] && break',
    '    [[ $path == "" && $w == help ]] && continue',
    '    cand="${path:+$path }$w"',
    '    if [[ -n ${_sysctr_next[$cand]+x} || -n ${_sysctr_flags[$cand]+x} ]]; then path="$cand"; else break; fi',
    '    [[ -n ${_sysctr_flags[${path:-.}]+x} ]] && break',
    '  done',
    '  if [[ $cur == -* ]]; then',
    '    COMPREPLY=($(compgen -W "${_sysctr_flags[${path:-.}]:---help --version}" -- "$cur"))',
    '  elif [[ -n ${_sysctr_next[${path:-.}]+x} ]]; then',
    '    COMPREPLY=($(compgen -W "${_sysctr_next[${path:-.}]}" -- "$cur"))',
    '  elif [[ -n ${_sysctr_takes_name[${path:-.}]+x} ]]; then',
    '    COMPREPLY=($(compgen -W "$(_sysctr_names)" -- "$cur"))',
    '  else',
    '    COMPREPLY=($(compgen -f -- "$cur"))',
    '  fi',
    '}',
    'complete -o default -F _sysctr sysctr',
    '',
  ]
  return lines.join('\n')
}

const zq = (s: string) => s.replaceAll('\\', '\\\\').replaceAll(':', '\\:')

export function zshCompletion(m: Manifest, topics: Topics): string {
  const next = nextWords(m, topics)
  const lines = [
    '#compdef sysctr',
    '# zsh completion for sysctr (generated from oclif.manifest.json by `npm run build`; do not edit)',
    '# install: sysctr completion zsh > "${fpath[1]}/_sysctr" (or any directory in $fpath)',
    '_sysctr() {',
    // Assignment as (key value ...) pairs: zsh keeps quotes that appear inside a [subscript].
    '  local -A next flags takes_name',
    '  next=(',
    ...[...next].map(([prefix, words]) => `    ${shq(prefix || '.')} ${shq([...words].map(([w, d]) => `${zq(w)}:${zq(d)}`).join('\n'))}`),
    '  )',
    '  flags=(',
    ...entries(m).map(({ name, cmd }) => `    ${shq(spaced(name))} ${shq(flagWords(cmd).join(' '))}`),
    '  )',
    '  takes_name=(',
    ...entries(m).filter(({ cmd }) => takesName(cmd)).map(({ name }) => `    ${shq(spaced(name))} 1`),
    '  )',
    '  # not `path`: zsh ties it to $PATH',
    '  local cpath="" w i cand',
    '  for ((i = 2; i < CURRENT; i++)); do',
    '    w="${words[i]}"',
    '    [[ $w == -* ]] && break',
    '    [[ -z $cpath && $w == help ]] && continue',
    '    cand="${cpath:+$cpath }$w"',
    '    if (( ${+next[$cand]} || ${+flags[$cand]} )); then cpath="$cand"; else break; fi',
    '    (( ${+flags[${cpath:-.}]} )) && break',
    '  done',
    '  if [[ ${words[CURRENT]} == -* ]]; then',
    '    compadd -- ${=flags[${cpath:-.}]:---help}',
    '  elif (( ${+next[${cpath:-.}]} )); then',
    '    local -a cmds; cmds=("${(@f)next[${cpath:-.}]}")',
    '    _describe command cmds',
    '  elif (( ${+takes_name[${cpath:-.}]} )); then',
    `    local -a names; names=(${NAMES_DIR}/*(N@:t))`,
    "    compadd -- $names",
    '  else',
    '    _files',
    '  fi',
    '}',
    '_sysctr "$@"',
    '',
  ]
  return lines.join('\n')
}

const fq = (s: string) => `'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`

export function fishCompletion(m: Manifest, topics: Topics): string {
  const next = nextWords(m, topics)
  const lines = [
    '# fish completion for sysctr (generated from oclif.manifest.json by `npm run build`; do not edit)',
    '# install: sysctr completion fish > ~/.config/fish/completions/sysctr.fish',
    '# True when the command path typed so far (words that are not flags) is $argv[1], e.g. "containers update".',
    'function __sysctr_at',
    '    set -l toks (commandline -opc)',
    '    set -e toks[1]',
    '    set -l out',
    '    for t in $toks',
    '        string match -q -- "-*" $t; and break',
    '        set out $out $t',
    '    end',
    '    # sysctr help COMMAND completes as sysctr COMMAND',
    '    test "$out[1]" = help; and set -e out[1]',
    '    set -l path (string join " " -- $out)',
    '    test "$path" = "$argv[1]"',
    'end',
    'function __sysctr_names',
    '    set -l d /var/lib/sysctr',
    '    set -q SYSCTR_STATE_DIR; and set d $SYSCTR_STATE_DIR',
    '    for f in $d/containers/*',
    '        test -L $f; and basename $f',
    '    end 2>/dev/null',
    'end',
    'complete -c sysctr -f',
  ]
  for (const [prefix, words] of next) {
    for (const [w, d] of words) lines.push(`complete -c sysctr -n ${fq(`__sysctr_at "${prefix}"`)} -a ${fq(w)} -d ${fq(d)}`)
  }
  for (const { name, cmd } of entries(m)) {
    const cond = fq(`__sysctr_at "${spaced(name)}"`)
    if (takesName(cmd)) lines.push(`complete -c sysctr -n ${cond} -a '(__sysctr_names)' -d 'installed container'`)
    for (const f of Object.values(cmd.flags)) {
      if (f.hidden) continue
      const opt = [`-l ${f.name}`, f.char ? `-s ${f.char}` : '', f.type === 'option' ? (f.options ? `-x -a ${fq(f.options.join(' '))}` : '-r') : ''].filter(Boolean).join(' ')
      lines.push(`complete -c sysctr -n ${cond} ${opt} -d ${fq(firstLine(f.summary ?? f.description))}`)
    }
  }
  return lines.join('\n') + '\n'
}

/** roff: escape backslashes and leading dots/quotes, and hyphens in option names. */
const roff = (s: string) => s.replaceAll('\\', '\\e').replace(/^([.'])/gm, '\\&$1')
const opt = (s: string) => s.replaceAll('-', '\\-')

export function manPage(c: ManifestCommand, version: string, bin = 'sysctr'): string {
  const name = `${bin} ${spaced(c.id)}`
  const page = `${bin}-${c.id.replaceAll(':', '-')}`
  const args = Object.values(c.args)
  const out = [
    `.TH ${page.toUpperCase()} 1 "" "${bin} ${version}" "sysctr manual"`,
    '.ad l',
    '.SH NAME',
    `${opt(page)} \\- ${roff(summaryOf(c))}`,
    '.SH SYNOPSIS',
    `.B ${opt(name)}`,
    [...args.map((a) => (a.required ? `\\fI${a.name.toUpperCase()}\\fR` : `[\\fI${a.name.toUpperCase()}\\fR]`)), '[\\fIOPTIONS\\fR]'].join(' '),
  ]
  if (c.aliases?.length) out.push('.PP', `Aliases: ${c.aliases.map((a) => `\\fB${opt(`${bin} ${spaced(a)}`)}\\fR`).join(', ')}.`)
  out.push('.SH DESCRIPTION')
  for (const para of unwrap([c.summary, c.description].filter(Boolean).join('\n\n')).split(/\n\n+/)) out.push('.PP', roff(para))
  if (args.length > 0) {
    out.push('.SH ARGUMENTS')
    for (const a of args) out.push('.TP', `\\fI${a.name.toUpperCase()}\\fR`, roff(unwrap(a.description)))
  }
  const flags = Object.values(c.flags).filter((f) => !f.hidden).sort((a, b) => a.name.localeCompare(b.name))
  if (flags.length > 0) {
    out.push('.SH OPTIONS')
    for (const f of flags) {
      const value = f.type === 'option' ? ` \\fI${f.options ? f.options.join('|') : 'VALUE'}\\fR` : ''
      out.push('.TP', `${f.char ? `\\fB\\-${f.char}\\fR, ` : ''}\\fB\\-\\-${opt(f.name)}\\fR${value}`)
      const def = f.type === 'option' ? shownDefault(f.default) : undefined
      out.push(roff(unwrap(f.summary ?? f.description) + (def !== undefined ? ` (default: ${def})` : '')))
    }
  }
  const examples = (c.examples ?? []).map((e) => (typeof e === 'string' ? e : e.command).replaceAll('<%= config.bin %>', bin))
  if (examples.length > 0) {
    out.push('.SH EXAMPLES')
    for (const e of examples) out.push('.PP', '.nf', roff(`$ ${e}`), '.fi')
  }
  out.push('.SH SEE ALSO', `\\fB${bin}\\fR(1)`, '')
  return out.join('\n')
}

export const EXIT_STATUS: [number, string][] = [
  [0, 'success'],
  [1, 'internal error (a bug in sysctr)'],
  [2, 'usage: bad flags, arguments, image reference, name or --set value; unknown command'],
  [3, 'not found: image, tag, container or deployment'],
  [4, 'conflict: name in use, lock held, a file sysctr did not write is in the way'],
  [5, 'registry or network'],
  [6, 'content rejected: digest or size mismatch, bad manifest, unsafe layer, bad template'],
  [7, 'host: filesystem or permission problem (including: needs root), missing runtime'],
  [8, 'systemd: D-Bus unreachable, a job failed, a unit did not start'],
  [9, 'trust: the signature policy rejects the image'],
]

export function mainManPage(m: Manifest, topics: Topics, bin = 'sysctr'): string {
  const out = [
    `.TH ${bin.toUpperCase()} 1 "" "${bin} ${m.version}" "sysctr manual"`,
    '.ad l',
    '.SH NAME',
    `${bin} \\- run system services as containers under systemd`,
    '.SH SYNOPSIS',
    `.B ${bin}`,
    '\\fICOMMAND\\fR [\\fIOPTIONS\\fR]',
    '.SH DESCRIPTION',
    '.PP',
    'Pulls OCI images into a content-addressed store, checks them out read-only and runs them as systemd services under runc. Every command takes \\fB\\-\\-help\\fR (or \\fB\\-h\\fR); \\fBsysctr help\\fR \\fICOMMAND\\fR is the same.',
  ]
  if (Object.keys(topics).length > 0) {
    out.push('.SH TOPICS')
    for (const [t, d] of Object.entries(topics).sort()) out.push('.TP', `\\fB${opt(`${bin} ${spaced(t)}`)}\\fR`, roff(firstLine(d.description)))
  }
  out.push('.SH COMMANDS')
  for (const c of Object.values(m.commands).filter((c) => !c.hidden).sort((a, b) => a.id.localeCompare(b.id))) {
    out.push('.TP', `\\fB${opt(`${bin}-${c.id.replaceAll(':', '-')}`)}\\fR(1)`, roff(summaryOf(c)))
  }
  out.push('.SH EXIT STATUS')
  for (const [code, what] of EXIT_STATUS) out.push('.TP', String(code), roff(what))
  out.push('.SH SEE ALSO', '\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1), \\fBskopeo\\fR(1), \\fBcontainers-policy.json\\fR(5), \\fBcontainers-registries.conf\\fR(5)', '')
  return out.join('\n')
}

function replaceDir(dir: string, files: Record<string, string>): void {
  const tmp = `${dir}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp, { recursive: true })
  for (const [name, text] of Object.entries(files)) writeFileSync(join(tmp, name), text)
  rmSync(dir, { recursive: true, force: true })
  renameSync(tmp, dir)
}

/** Write completion scripts and man pages for the package at `root` (build step, after the manifest). */
export function writeDocs(root: string): { completion: string; man: string } {
  const m = JSON.parse(readFileSync(join(root, 'oclif.manifest.json'), 'utf8')) as Manifest
  const pjson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { oclif?: { bin?: string; topics?: Topics } }
  const topics = pjson.oclif?.topics ?? {}
  const bin = pjson.oclif?.bin ?? 'sysctr'
  const completion = join(root, 'dist', 'completion')
  replaceDir(completion, { [`${bin}.bash`]: bashCompletion(m, topics), [`${bin}.zsh`]: zshCompletion(m, topics), [`${bin}.fish`]: fishCompletion(m, topics) })
  const man = join(root, 'man', 'man1')
  const pages: Record<string, string> = { [`${bin}.1`]: mainManPage(m, topics, bin) }
  for (const c of Object.values(m.commands)) if (!c.hidden) pages[`${bin}-${c.id.replaceAll(':', '-')}.1`] = manPage(c, m.version, bin)
  replaceDir(man, pages)
  return { completion, man }
}
