/** "did you mean": edit distance and the nearest used key; fixed keys refused on their own. */
import { describe, expect, it } from 'vitest'
import { editDistance, nearestKey, refuseFixedKeys } from '../../src/templates/values'

describe('nearest key', () => {
  it('edit distance', () => {
    expect(editDistance('GRETING', 'GREETING')).toBe(1)
    expect(editDistance('', 'ABC')).toBe(3)
    expect(editDistance('ETCD_PORT', 'ETCD_PORT')).toBe(0)
    expect(editDistance('kitten', 'sitting')).toBe(3)
  })
  it('picks the closest used key, case-insensitively; none without candidates', () => {
    expect(nearestKey('GRETING', ['VERSION', 'GREETING', 'NAME'])).toBe('GREETING')
    expect(nearestKey('etcd_port', ['ETCD_PORT', 'ETCD_NAME'])).toBe('ETCD_PORT')
    expect(nearestKey('X', [])).toBeUndefined()
  })
  it('refuseFixedKeys names every fixed key and passes the others', () => {
    expect(() => refuseFixedKeys({ GREETING: 'x' })).not.toThrow()
    expect(() => refuseFixedKeys({ NAME: 'x', DESTDIR: '/y' })).toThrow(/NAME, DESTDIR are set by sysctr/)
  })
})
