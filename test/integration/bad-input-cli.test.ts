import {spawnSync} from 'node:child_process'
import {chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join, relative} from 'node:path'
import {parseDocument} from 'yaml'
import {beforeAll, describe, expect, it} from 'vitest'

import {BIN, runCli, tempDir, type CliResult} from '../helpers/cli.js'

/**
 * Each input issue 9 found getting past the CLI, against the built CLI: exit 2, one line on stderr
 * naming the flag, the field or the file, no JavaScript stack, and nothing written anywhere.
 */

/** Every file and folder under `dir` with its mode and bytes: equal snapshots mean nothing was written. */
function snapshot(dir: string): Map<string, string> {
  const entries = new Map<string, string>()
  const visit = (path: string) => {
    const info = lstatSync(path)
    const key = relative(dir, path) || '.'
    if (info.isDirectory()) {
      entries.set(key, `dir ${info.mode}`)
      for (const name of readdirSync(path)) visit(join(path, name))
    } else entries.set(key, `${info.mode} ${readFileSync(path).toString('base64')}`)
  }

  visit(dir)
  return entries
}

/** Exit 2 and one `Error: ...` line matching `expected`, without a stack or a bare Node.js error code. */
function expectRefused(result: CliResult, expected: RegExp): void {
  expect(result.status, result.stderr).toBe(2)
  const lines = result.stderr.trimEnd().split('\n')
  expect(lines, result.stderr).toHaveLength(1)
  expect(lines[0]).toMatch(/^Error: /)
  expect(lines[0]).toMatch(expected)
  expect(result.stderr).not.toMatch(/\n\s+at |Code: E[A-Z]+|TypeError|ReferenceError/)
}

const INIT_CASES: Array<[string[], RegExp]> = [
  // The auth bypass: `set $external_pay http://$host:8000;` let the client's Host header pick the upstream.
  [
    ['--external', 'pay=http://$host:8000'],
    /^Error: --external: must name a host .* not "\$host" \(got "pay=http:\/\/\$host:8000"\)$/,
  ],
  [['--external', 'pay=https://a;b.com'], /--external: must name a host .*"a;b\.com"/],
  [['--external', 'pay=https://x;}y.com'], /--external: must name a host .*"x;}y\.com"/],
  [['--external', 'pay=https://h.example.com/x;internal;'], /--external: must have a path of letters/],
  [
    ['--external', `pay=https://${'a'.repeat(5000)}.com`],
    /--external: must be at most 2048 characters \(got "pay=https:\/\/a+\.\.\."\)$/,
  ],
  [
    ['--external', 'pay=x.com'],
    /--external: must be a URL such as https:\/\/payments\.example\.com \(got "pay=x\.com"\)/,
  ],
  [['--external', 'pay='], /--external: must be a URL such as/],
  [['--route', '/x/=constructor'], /--route \(routes\[2\]\.service\): no service named "constructor"/],
  [['--route', '/x/=toString'], /--route \(routes\[2\]\.service\): no service named "toString"/],
  [['--burst', '1e21'], /--burst: must be a whole number from 0 to 1000000, in decimal digits \(got "1e21"\)/],
  [['--rate', '99999999999999999999r/s'], /--rate: must look like 10r\/s or 600r\/m/],
  [['--rate', '2000000r/s'], /--rate: must be at most 1000000 requests/],
  [['--http-port', '0x50'], /--http-port: must be a port number from 1 to 65535, in decimal digits \(got "0x50"\)/],
  [['--replicas', '3.0'], /--replicas: must be a whole number from 1 to 10, in decimal digits/],
  [['--route', '/../=web'], /--route \(routes\[2\]\.path\): must not hold "\." or "\.\." segments/],
  [['--route', '/./=web'], /--route \(routes\[2\]\.path\): must not hold "\." or "\.\." segments/],
  [['--route', '/a/../=web'], /--route \(routes\[2\]\.path\): must not hold "\." or "\.\." segments/],
  [
    ['--domain', 'api.example.com\u001b[2J'],
    /--domain: must be a host name .*\(got "api\.example\.com\\u\{1b\}\[2J"\)$/,
  ],
]

describe('init refuses what used to get through (built CLI)', () => {
  // Titles clipped: one case is 5000 characters long.
  it.each(
    INIT_CASES.map(([flags, expected]) => ({
      label: flags
        .join(' ')
        .slice(0, 60)
        .replace(/\p{Cc}/gu, '?'),
      flags,
      expected,
    })),
  )('$label: exit 2, one line, nothing written', ({flags, expected}) => {
    const parent = tempDir()
    const result = runCli(['init', join(parent, 'p'), '--yes', ...flags])
    expectRefused(result, expected)
    expect(readdirSync(parent)).toEqual([])
  })

  it('--service constructor is an ordinary name now that lookups use own properties', () => {
    const dir = join(tempDir(), 'p')
    const result = runCli(['init', dir, '--yes', '--service', 'constructor'])
    expect(result.status, result.stderr).toBe(0)
    expect(readFileSync(join(dir, 'gateway/conf.d/upstreams.conf'), 'utf8')).toContain('server constructor:8000')
    const again = runCli(['render', '--dir', dir, '--dry-run'])
    expect(again.status, again.stderr).toBe(0)
    expect(again.stdout).toMatch(/every file already matches gateway\.yaml/)
  })

  it('into a regular file, or below one: exit 2 naming it, the file untouched', () => {
    const parent = tempDir()
    const file = join(parent, 'notes.txt')
    writeFileSync(file, 'mine')
    expectRefused(runCli(['init', file, '--yes']), new RegExp(`${file} is a file: init needs a folder`))
    expectRefused(
      runCli(['init', join(file, 'sub'), '--yes']),
      new RegExp(`cannot create ${file}/sub: ${file} is a file`),
    )
    expect(readdirSync(parent)).toEqual(['notes.txt'])
    expect(readFileSync(file, 'utf8')).toBe('mine')
  })
})

describe('render refuses a gateway.yaml that used to get through (built CLI)', () => {
  let template: string

  beforeAll(() => {
    template = join(tempDir(), 'template')
    const made = runCli(['init', template, '--yes'])
    expect(made.status, made.stderr).toBe(0)
  })

  /** A copy of the project at <base>/a/proj, its gateway.yaml edited by `edit`. */
  function project(edit: (text: string) => string): {base: string; dir: string; manifest: string} {
    const base = tempDir()
    const dir = join(base, 'a', 'proj')
    cpSync(template, dir, {recursive: true})
    const manifest = join(dir, 'gateway.yaml')
    writeFileSync(manifest, edit(readFileSync(manifest, 'utf8')))
    return {base, dir, manifest}
  }

  const setIn = (path: Array<string | number>, value: unknown) => (text: string) => {
    const document = parseDocument(text)
    document.setIn(path, value)
    return document.toString()
  }

  it.each([
    [
      'a service path out of the project',
      setIn(['services', 'web', 'path'], '../../outside/evil'),
      /services\.web\.path: must stay inside the project/,
    ],
    [
      'an absolute service path',
      setIn(['services', 'web', 'path'], '/etc/evil'),
      /services\.web\.path: must stay inside the project/,
    ],
    [
      'a service path into the gateway folder',
      setIn(['services', 'web', 'path'], 'gateway/conf.d'),
      /services\.web\.path: must not be inside gateway/,
    ],
    ['http: true', setIn(['ports', 'http'], true), /ports\.http: must be a port number from 1 to 65535, not true$/],
    [
      'burst: null',
      setIn(['rateLimit', 'burst'], null),
      /rateLimit\.burst: must be a whole number from 0 to 1000000, not null$/,
    ],
    [
      'replicas: [3]',
      setIn(['services', 'web', 'replicas'], [3]),
      /services\.web\.replicas: must be a whole number from 1 to 10, not a list$/,
    ],
    [
      'a port as text',
      setIn(['ports', 'https'], '8443'),
      /ports\.https: must be a port number from 1 to 65535, not text "8443"$/,
    ],
    ['burst: 1e21', setIn(['rateLimit', 'burst'], 1e21), /rateLimit\.burst: must be a whole number from 0 to 1000000/],
    [
      'an external URL with $host',
      (text: string) => setIn(['services', 'pay'], {kind: 'external', url: 'http://$host:8000'})(text),
      /services\.pay\.url: must name a host/,
    ],
    [
      'a route to toString',
      setIn(['routes', 0, 'service'], 'toString'),
      /routes\[0\]\.service: no service named "toString"/,
    ],
    [
      'a __proto__ service',
      (text: string) => `${text}\n`.replace('services:\n', 'services:\n  __proto__:\n    kind: django\n'),
      /services\.__proto__: service names must be DNS-safe/,
    ],
    [
      'a dead route',
      setIn(['routes', 1, 'path'], '/a/../'),
      /routes\[1\]\.path: must not hold "\." or "\.\." segments/,
    ],
    [
      'a YAML syntax error',
      (text: string) => `${text}oops: [1, 2\n`,
      /gateway\.yaml: not valid YAML: .* at line \d+, column \d+$/,
    ],
    [
      'a billion-laughs YAML',
      () =>
        [
          'a: &a [x, x, x, x, x, x, x, x, x]',
          ...'bcdefghi'
            .split('')
            .map((name, index) => `${name}: &${name} [${Array(9).fill(`*${'abcdefghi'[index]}`).join(', ')}]`),
        ].join('\n') + '\n',
      /gateway\.yaml: not valid YAML: its aliases expand to too much data$/,
    ],
    ['an alias without an anchor', () => 'version: *nope\n', /gateway\.yaml: not valid YAML: Unresolved alias/],
  ])('%s: exit 2, one line naming the field and the file, nothing written', (_what, edit, expected) => {
    const {base, dir, manifest} = project(edit)
    const before = snapshot(base)
    const result = runCli(['render', '--dir', dir])
    expectRefused(result, expected)
    expect(result.stderr).toContain(manifest)
    expect(snapshot(base)).toEqual(before)
    expect(existsSync(join(base, 'outside'))).toBe(false)
  })

  it('a gateway.yaml that is a folder: exit 2 naming it', () => {
    const {base, dir, manifest} = project((text) => text)
    const yaml = readFileSync(manifest)
    writeFileSync(manifest, '')
    spawnSync('rm', [manifest])
    mkdirSync(manifest)
    const before = snapshot(base)
    expectRefused(runCli(['render', '--dir', dir]), new RegExp(`cannot read ${manifest}: it is a folder, not a file$`))
    expect(snapshot(base)).toEqual(before)
    expect(yaml.length).toBeGreaterThan(0)
  })

  it('--dir naming a regular file: exit 2 naming it', () => {
    const base = tempDir()
    const file = join(base, 'notes.txt')
    writeFileSync(file, 'mine')
    expectRefused(
      runCli(['render', '--dir', file]),
      new RegExp(`cannot read ${file}/gateway\\.yaml: part of the path is a file`),
    )
    expect(readFileSync(file, 'utf8')).toBe('mine')
  })

  it('an unreadable gateway.yaml: exit 2 naming it, not a bare EACCES', () => {
    const {base, dir, manifest} = project((text) => text)
    chmodSync(manifest, 0o000)
    const before = snapshot(base)
    // Root reads any file; without its capabilities (CAP_DAC_OVERRIDE) a mode-000 file is unreadable.
    const command = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-all', '--inh-caps=-all'] : []
    const spawned = spawnSync(
      command[0] ?? process.execPath,
      [...command.slice(1), ...(command.length > 0 ? [process.execPath] : []), BIN, 'render', '--dir', dir],
      {
        encoding: 'utf8',
        env: {...process.env, NO_COLOR: '1'},
        timeout: 120_000,
      },
    )
    expectRefused(
      {status: spawned.status, stdout: spawned.stdout, stderr: spawned.stderr},
      new RegExp(`cannot read ${manifest}: permission denied$`),
    )
    expect(snapshot(base)).toEqual(before)
  })

  it('an API key NGINX would read as a regular expression or a keyword: exit 2 naming the file', () => {
    for (const key of ['~.', 'default', 'x" 1; "y']) {
      const {base, dir} = project((text) => text)
      writeFileSync(join(dir, 'secrets/api-keys.txt'), `# keys\n${key}\n`, {mode: 0o600})
      const before = snapshot(base)
      expectRefused(
        runCli(['render', '--dir', dir]),
        /secrets\/api-keys\.txt: key 1 must be 16 to 512 characters of base64/,
      )
      expect(snapshot(base)).toEqual(before)
    }
  })
})
