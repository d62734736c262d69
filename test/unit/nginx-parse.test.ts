import {describe, expect, it} from 'vitest'

import {NginxParseError, parseNginxConfig, variablesOf, walk} from '../helpers/nginx-parse.js'

// The property test judges rendered configs by what this parser sees, so it must see what NGINX sees.
describe('parseNginxConfig (the test suite reads configs as NGINX does)', () => {
  const names = (text: string) => [...walk(parseNginxConfig(text))].map(({directive}) => directive.name)

  it('reads directives, arguments and nested blocks', () => {
    expect(parseNginxConfig('http {\n  server {\n    listen 80 default_server;\n  }\n}\n')).toEqual([
      {
        name: 'http',
        args: [],
        line: 1,
        block: [
          {name: 'server', args: [], line: 2, block: [{name: 'listen', args: ['80', 'default_server'], line: 3}]},
        ],
      },
    ])
  })

  it('ends a directive at ";" inside a word: an injected ";" makes a directive of its own', () => {
    expect(names('set $external_pay https://h.example.com/x;internal;')).toEqual(['set', 'internal'])
  })

  it('closes a block at "}" only where a token starts', () => {
    expect(parseNginxConfig('location / { set $a x}y; }')[0]!.block).toEqual([
      {name: 'set', args: ['$a', 'x}y'], line: 1},
    ])
    // The "}" closes the location: y.com lands in the server, and the last "}" closes that.
    const tree = parseNginxConfig('server { location / { set $a https://x;}y.com; }')
    expect(
      [...walk(tree)].map(({directive, parents}) => [...parents.map((p) => p.name), directive.name].join('>')),
    ).toEqual(['server', 'server>location', 'server>location>set', 'server>y.com'])
  })

  it('takes quotes only where a token starts, and unescapes as NGINX does', () => {
    expect(parseNginxConfig(`a "x y" 'p;q' b"c \\"d\\" "e\\tf\\z";`)[0]!.args).toEqual([
      'x y',
      'p;q',
      'b"c',
      '"d"',
      'e\tf\\z',
    ])
  })

  it('starts a comment with "#" only where a token starts', () => {
    expect(parseNginxConfig('a b#c; # the rest\nd;')).toEqual([
      {name: 'a', args: ['b#c'], line: 1},
      {name: 'd', args: [], line: 2},
    ])
  })

  it('keeps ${var} braces inside a word', () => {
    expect(parseNginxConfig('return 200 ${host}x;')[0]!.args).toEqual(['200', '${host}x'])
  })

  it.each(['a "open;', 'a {', '}', 'a b', 'a "x"y;'])('refuses %j as NGINX would', (text) => {
    expect(() => parseNginxConfig(text)).toThrow(NginxParseError)
  })

  it('lists the variables an argument reads', () => {
    expect(variablesOf('http://$host:8000/${uri}x$1')).toEqual(['host', 'uri', '1'])
    expect(variablesOf('(?s)^/pay/(.*)$')).toEqual([])
  })
})
