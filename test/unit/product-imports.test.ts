/**
 * src/ is what ships; harness/ (test beds, fakes, demo image builders) and
 * test/ are not. No product file may import from either: a static import,
 * `export ... from`, `import()` or `require()` whose relative specifier
 * resolves under harness/ or test/ fails this test, naming the file and line.
 */
import { readdirSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { describe, expect, it } from 'vitest'

const REPO = path.resolve(__dirname, '../..')
const SRC = path.join(REPO, 'src')
const FORBIDDEN = ['harness', 'test'].map((d) => path.join(REPO, d) + path.sep)

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) return tsFiles(p)
    return e.isFile() && e.name.endsWith('.ts') ? [p] : []
  })
}

// `from '...'` (import and export), `import('...')`, `require('...')`, and a bare `import '...'`.
const SPECIFIER = /\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]|\brequire\s*\(\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm

/** `file:line: specifier` for each import of `file` that resolves under harness/ or test/. */
function forbiddenImports(file: string, text: string): string[] {
  const found: string[] = []
  for (const m of text.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? m[4]
    if (!spec.startsWith('.') && !spec.startsWith('/')) continue // a package or node: builtin
    const target = path.resolve(path.dirname(file), spec)
    if (FORBIDDEN.some((d) => (target + path.sep).startsWith(d))) {
      const line = text.slice(0, m.index).split('\n').length
      found.push(`${path.relative(REPO, file)}:${line}: ${spec}`)
    }
  }
  return found
}

describe('product imports', () => {
  it('the check itself sees an import from harness/ or test/', () => {
    const file = path.join(SRC, 'ops', 'example.ts')
    const text = [
      "import { FakeSystemd } from '../../harness/fake-systemd'",
      "export { x } from '../../test/helpers/x'",
      "const y = require('../../harness/nspawn')",
      "import { ok } from '../errors'",
      "import { join } from 'node:path'",
    ].join('\n')
    expect(forbiddenImports(file, text)).toEqual([
      'src/ops/example.ts:1: ../../harness/fake-systemd',
      'src/ops/example.ts:2: ../../test/helpers/x',
      'src/ops/example.ts:3: ../../harness/nspawn',
    ])
  })

  it('no file under src/ imports from harness/ or test/', () => {
    const files = tsFiles(SRC)
    expect(files.length).toBeGreaterThan(50)
    const bad = files.flatMap((f) => forbiddenImports(f, readFileSync(f, 'utf8')))
    expect(bad).toEqual([])
  })
})
