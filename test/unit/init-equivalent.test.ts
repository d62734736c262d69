import {describe, expect, it} from 'vitest'

import {resolveAnswers} from '../../src/manifest/answers.js'
import {equivalentCommand, shellWord} from '../../src/manifest/equivalent.js'

describe('the init command printed after the questions', () => {
  it('quotes what a shell would split or expand', () => {
    expect(shellWord('my-api')).toBe('my-api')
    expect(shellWord('my api')).toBe(`'my api'`)
    expect(shellWord(`it's`)).toBe(`'it'\\''s'`)
    expect(shellWord('pay=http://$host')).toBe(`'pay=http://$host'`)
  })

  it('names only the answers that differ from the defaults, each list item as its own flag', async () => {
    const answers = await resolveAnswers({
      dir: 'my api',
      yes: true,
      flags: {'http-port': '8080', service: ['a', 'b'], external: ['pay=https://pay.example.com']},
    })
    expect(equivalentCommand('create-gateway', 'my api', answers)).toBe(
      `create-gateway init 'my api' --yes --service a --service b --external pay=https://pay.example.com`,
    )
  })
})
