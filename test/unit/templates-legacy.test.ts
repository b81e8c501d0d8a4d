import { describe, expect, it } from 'vitest'
import { ContentError, UsageError } from '../../src/errors'
import { legacyVariables, renderLegacy } from '../../src/templates/legacy'

const values = { A: 'x', A_B: 'y', NAME: 'etcd', EMPTY: '' }

describe('renderLegacy: Python string.Template syntax', () => {
  it.each([
    ['$$', '$'],
    ['$$A', '$A'],
    ['$A', 'x'],
    ['${A}', 'x'],
    ['$A_B', 'y'],
    ['${A}B', 'xB'],
    ['${A}_B', 'x_B'],
    ['$A-$NAME', 'x-etcd'],
    ['$A.conf', 'x.conf'],
    ['a$EMPTY|', 'a|'],
    ['no placeholders', 'no placeholders'],
    ['price: $$5', 'price: $5'],
    ['$$$A', '$x'],
    ['', ''],
  ])('%j -> %j', (text, expected) => {
    expect(renderLegacy(text, values, { file: 't' })).toBe(expected)
  })

  it.each([
    ['$1', 1, 1],
    ['trailing $', 1, 10],
    ['a\nb ${A', 2, 3],
    ['${1}', 1, 1],
    ['${ A }', 1, 1],
    ['x\n\n  $-', 3, 3],
    ['$é', 1, 1],
  ])('%j is an invalid placeholder at line %i, column %i', (text, line, column) => {
    let err: unknown
    try {
      renderLegacy(text, values, { file: 'service.template' })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ContentError)
    const e = err as ContentError
    expect(e.code).toBe('template.invalid-placeholder')
    expect(e.data).toMatchObject({ file: 'service.template', line, column })
    expect(e.message).toContain('service.template')
    expect(e.message).toContain(`line ${line}, column ${column}`)
  })

  it('reports every missing value at once, naming the file and the --set', () => {
    let err: unknown
    try {
      renderLegacy('$A $MISSING ${OTHER} $MISSING', values, { file: 'config.json.template' })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(UsageError)
    const e = err as UsageError
    expect(e.code).toBe('template.missing-value')
    expect(e.exitCode).toBe(2)
    expect(e.data).toEqual({ file: 'config.json.template', missing: ['MISSING', 'OTHER'] })
    expect(e.message).toContain('config.json.template')
    expect(e.message).toContain('MISSING, OTHER')
    expect(e.hint).toBe('supply them with --set MISSING=VALUE --set OTHER=VALUE')
  })

  it('a single missing value has a singular hint', () => {
    expect(() => renderLegacy('$X', {}, { file: 'f' })).toThrow(expect.objectContaining({ hint: 'supply it with --set X=VALUE' }))
  })

  it('does not treat inherited object properties as values', () => {
    expect(() => renderLegacy('$constructor $toString', {}, { file: 'f' })).toThrow(
      expect.objectContaining({ code: 'template.missing-value', data: { file: 'f', missing: ['constructor', 'toString'] } }),
    )
  })

  it('inserts values verbatim (no recursive expansion)', () => {
    expect(renderLegacy('$A', { A: '$B ${C} $$' }, { file: 'f' })).toBe('$B ${C} $$')
  })
})

describe('legacyVariables', () => {
  it('lists each variable once, in order of first use, ignoring $$', () => {
    expect(legacyVariables('$$NOT ${B} $A $B $A_1${C}x')).toEqual(['B', 'A', 'A_1', 'C'])
  })
  it('fails on an invalid placeholder', () => {
    expect(() => legacyVariables('$A $1')).toThrow(expect.objectContaining({ code: 'template.invalid-placeholder' }))
  })
})
