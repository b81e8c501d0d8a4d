import { describe, expect, it } from 'vitest'
import { ContentError, UsageError } from '../../src/errors'
import { handlebarsContext, handlebarsVariables, imageContext, numericUser, renderHandlebars } from '../../src/templates/handlebars'

const image = { Entrypoint: ['/bin/sh', '-c'], Cmd: ['echo "hi" & exit'], Env: ['PATH=/bin', 'A=1'], WorkingDir: '/srv', User: '1000:1000' }
const ctx = handlebarsContext({ NAME: 'etcd', Q: 'a"b\\c', AMP: '<&>', NL: 'x\ny', EMPTY: '' }, image)

function thrown(fn: () => unknown): any {
  try {
    fn()
  } catch (e) {
    return e
  }
  throw new Error('expected a throw')
}

describe('renderHandlebars: unit mode', () => {
  it('does not HTML-escape', () => {
    expect(renderHandlebars('X={{AMP}} {{{AMP}}}', ctx, { file: 'service.hbs', mode: 'unit' })).toBe('X=<&> <&>')
  })

  it('reports every missing top-level value at once, in any branch', () => {
    const e = thrown(() => renderHandlebars('{{A}} {{#if B}}{{C}}{{else}}{{D}}{{/if}} {{@root.E}} {{NAME}}', ctx, { file: 'service.hbs' }))
    expect(e).toBeInstanceOf(UsageError)
    expect(e.code).toBe('template.missing-value')
    expect(e.data).toEqual({ file: 'service.hbs', missing: ['A', 'B', 'C', 'D', 'E'] })
    expect(e.hint).toBe('supply them with --set A=VALUE --set B=VALUE --set C=VALUE --set D=VALUE --set E=VALUE')
  })

  it('inherited properties are not values', () => {
    const e = thrown(() => renderHandlebars('{{constructor}}', ctx, { file: 'f.hbs' }))
    expect(e.code).toBe('template.missing-value')
  })

  it('a field undefined at render time (inside #each) is a content error with its position', () => {
    const e = thrown(() => renderHandlebars('{{#each image.Env}}\n  {{nope}}{{/each}}', ctx, { file: 'service.hbs' }))
    expect(e).toBeInstanceOf(ContentError)
    expect(e.code).toBe('template.render-failed')
    expect(e.message).toBe('service.hbs:2:3: nope is not defined')
  })

  it.each([
    ['newline', 'x\ny'],
    ['carriage return', 'x\ry'],
    ['NUL', 'x\0y'],
    ['trailing backslash', 'x\\'],
  ])('refuses a value with a %s in a unit (even through a helper)', (_what, v) => {
    const c = handlebarsContext({ V: v }, {})
    for (const t of ['ExecStart={{V}}', 'ExecStart={{{V}}}', 'ExecStart={{or EMPTY V}}', 'X={{lookup this "V"}}']) {
      const e = thrown(() => renderHandlebars(t, { ...c, EMPTY: '' }, { file: 'service.hbs' }))
      expect(e).toBeInstanceOf(UsageError)
      expect(e.code).toBe('values.unsafe')
    }
  })

  it('refuses to stringify lists implicitly', () => {
    const e = thrown(() => renderHandlebars('{{image.Cmd}}', ctx, { file: 'service.hbs' }))
    expect(e.code).toBe('template.render-failed')
    expect(e.message).toContain('{{{json image.Cmd}}}')
  })

  it('a syntax error is a content error naming the file', () => {
    const e = thrown(() => renderHandlebars('{{#if NAME}}x', ctx, { file: 'service.hbs' }))
    expect(e).toBeInstanceOf(ContentError)
    expect(e.code).toBe('template.syntax')
    expect(e.message).toMatch(/^service\.hbs: Parse error/)
  })

  it('an unknown partial is a content error', () => {
    expect(() => renderHandlebars('{{> nope}}', ctx, { file: 'service.hbs' })).toThrow(expect.objectContaining({ code: 'template.render-failed' }))
  })
})

describe('renderHandlebars: json mode', () => {
  const render = (t: string) => renderHandlebars(t, ctx, { file: 'config.json.hbs' })

  it('escapes {{X}} as the inside of a JSON string', () => {
    const out = render('{"h": "{{Q}}", "a": "{{AMP}}"}')
    expect(JSON.parse(out)).toEqual({ h: 'a"b\\c', a: '<&>' })
  })

  it('json helper emits JSON, with double or triple braces', () => {
    expect(JSON.parse(render('{"q": {{{json Q}}}, "n": {{json NL}}, "c": {{{json image.Cmd}}} }'))).toEqual({
      q: 'a"b\\c',
      n: 'x\ny',
      c: ['echo "hi" & exit'],
    })
  })

  it('a value with a newline is fine in JSON', () => {
    expect(JSON.parse(render('["{{NL}}"]'))).toEqual(['x\ny'])
  })

  it('{{{X}}} is raw', () => {
    expect(render('{{{Q}}}')).toBe('a"b\\c')
  })

  it('json of an undefined field fails', () => {
    expect(() => render('{{{json image.Labels.nope}}}')).toThrow(expect.objectContaining({ code: 'template.render-failed' }))
  })

  it('concat, envDefault, or, uid, gid', () => {
    const out = render(
      '{"args": {{{json (concat image.Entrypoint image.Cmd)}}}, "env": {{{json (envDefault image.Env "PATH" "/usr/bin")}}},' +
        ' "env2": {{{json (envDefault image.Env "HOME" "/root")}}}, "cwd": {{{json (or image.Labels.x EMPTY "/")}}},' +
        ' "uid": {{uid image.User}}, "gid": {{gid image.User}} }',
    )
    expect(JSON.parse(out)).toEqual({
      args: ['/bin/sh', '-c', 'echo "hi" & exit'],
      env: ['PATH=/bin', 'A=1'],
      env2: ['PATH=/bin', 'A=1', 'HOME=/root'],
      cwd: '/',
      uid: 1000,
      gid: 1000,
    })
  })
})

describe('imageContext and numericUser', () => {
  it('normalises absent fields', () => {
    expect(imageContext(undefined)).toEqual({ Entrypoint: [], Cmd: [], Env: [], WorkingDir: '', User: '', Labels: {}, StopSignal: '' })
    expect(imageContext({ Entrypoint: null, Cmd: null, Labels: null }).Cmd).toEqual([])
  })
  it.each([
    ['0', { uid: 0, gid: 0 }],
    ['1000', { uid: 1000, gid: 0 }],
    ['1000:50', { uid: 1000, gid: 50 }],
    ['nobody', undefined],
    ['1000:wheel', undefined],
    ['', undefined],
  ])('numericUser(%j)', (user, expected) => {
    expect(numericUser(user)).toEqual(expected)
  })
})

describe('handlebarsVariables', () => {
  it('lists top-level names (not image, not helpers, not names inside #each/#with)', () => {
    expect(
      handlebarsVariables('{{A}}{{#each image.Env}}{{B}}{{../C}}{{@root.D}}{{/each}}{{#if E}}{{F}}{{else}}{{G}}{{/if}}{{json H}}{{or (concat I) k=J}}{{#with image}}{{User}}{{/with}}'),
    ).toEqual(['A', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J'])
  })
})
