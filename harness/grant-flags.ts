/** The `--grant ITEM` flags a refused install printed on its `hint:` line, as argv words. */
export function grantFlagsFrom(stderr: string): string[] {
  const hint = stderr.split('\n').find((l) => l.startsWith('hint:')) ?? ''
  const out: string[] = []
  for (const m of hint.matchAll(/--grant ('(?:[^']|'\\'')*'|\S+)/g)) out.push('--grant', m[1]!.replace(/^'|'$/g, '').replace(/'\\''/g, "'"))
  return out
}
