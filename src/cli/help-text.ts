/**
 * Help text as written in the commands (template literals wrapped at ~100
 * columns in the source) made into what help, man pages and completions show:
 * single line breaks inside a paragraph joined (the terminal or man wraps),
 * blank lines kept as paragraph breaks, lines that start with two spaces or
 * a list marker kept as they are (examples, lists). Used by the help class
 * (src/cli/help.ts) and the build-time generator (src/cli/docs-gen.ts), so
 * all three say the same.
 */
export function unwrap(text: string | undefined): string {
  if (!text) return ''
  const lines = text.replace(/\r\n/g, '\n').split('\n')
  const out: string[] = []
  let para = ''
  const flush = () => {
    if (para !== '') out.push(para)
    para = ''
  }
  for (const line of lines) {
    if (line.trim() === '') {
      flush()
      out.push('')
    } else if (/^(\s{2,}|[-*] |\d+\. |\$ )/.test(line)) {
      flush()
      out.push(line)
    } else {
      para = para === '' ? line.trim() : `${para} ${line.trim()}`
    }
  }
  flush()
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trim()
}

/** A flag default worth showing ([] and '' are not: `[default: ]`). */
export function shownDefault(value: unknown): string | undefined {
  if (value === undefined || value === null || value === false || value === '') return undefined
  if (Array.isArray(value)) return value.length > 0 ? value.join(',') : undefined
  if (typeof value === 'function') return undefined
  return String(value)
}
