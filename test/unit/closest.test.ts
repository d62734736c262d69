import {describe, expect, it} from 'vitest'

import {closest, editDistance} from '../../src/util/closest.js'

describe('closest command name', () => {
  it('counts a swap of neighbours as one edit', () => {
    expect(editDistance('stauts', 'status')).toBe(1)
    expect(editDistance('', 'up')).toBe(2)
    expect(editDistance('scale', 'scale')).toBe(0)
  })

  it('suggests the near name, and nothing for a word that is far from every command', () => {
    const commands = ['status', 'scale', 'up', 'down', 'certs:issue', 'certs:renew']
    expect(closest('stauts', commands)).toBe('status')
    expect(closest('scael', commands)).toBe('scale')
    expect(closest('certs:isue', commands)).toBe('certs:issue')
    expect(closest('deploy', commands)).toBeUndefined()
  })
})
