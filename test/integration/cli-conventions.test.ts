import {readFileSync} from 'node:fs'
import {join} from 'node:path'
import {beforeAll, describe, expect, it} from 'vitest'

import {runCliAsync, tempDir} from '../helpers/cli.js'

/**
 * The CLI as a newcomer tries it (issue 13): help in the forms oclif, git and npm users type, the
 * version, a suggestion for a mistyped command, shell completion, and --json that stays JSON when
 * the command fails.
 */

// oclif caches completion data under XDG_CACHE_HOME: keep it out of the user's home.
const env = () => {
  const home = tempDir('cg-home-')
  return {HOME: home, XDG_CACHE_HOME: join(home, '.cache'), XDG_CONFIG_HOME: join(home, '.config')}
}

describe('help, version, not-found (built CLI)', () => {
  it('-h, --help and `help` print the command list; `help init` and `init -h` the same help, with defaults', async () => {
    const [short, long, help] = await Promise.all([runCliAsync(['-h']), runCliAsync(['--help']), runCliAsync(['help'])])
    for (const result of [short, long, help]) {
      expect(result.status, result.stderr).toBe(0)
      expect(result.stdout).toMatch(/^COMMANDS$/m)
      expect(result.stdout).toMatch(/^ {2}init +Scaffold/m)
      expect(result.stdout).toMatch(/^ {2}certs issue|^ {2}certs +Certificates/m)
    }

    const [helpInit, initH] = await Promise.all([runCliAsync(['help', 'init']), runCliAsync(['init', '-h'])])
    expect(helpInit.status, helpInit.stderr).toBe(0)
    expect(initH.stdout).toBe(helpInit.stdout)
    expect(helpInit.stdout).toMatch(/--https-port=<value>\s+\[default: 8443\]/)
    expect(helpInit.stdout).toMatch(/--rate=<value>\s+\[default: 10r\/s\]/)
    expect(helpInit.stdout).toMatch(/--json\s+Format output as json/)
  })

  it('help for a command under a topic, with space-separated names', async () => {
    const result = await runCliAsync(['help', 'certs', 'issue'])
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/\$ create-gateway certs issue/)
    expect(result.stdout).toMatch(/-d, --dir=<value>\s+\[default: \.\]/)
  })

  it('version, --version and -v print the same version line', async () => {
    const results = await Promise.all([runCliAsync(['version']), runCliAsync(['--version']), runCliAsync(['-v'])])
    for (const result of results) {
      expect(result.status, result.stderr).toBe(0)
      expect(result.stdout).toMatch(/^create-gateway\/0\.\d+\.\d+ \S+ node-v\d+/)
    }
  })

  it.each([
    [['stauts'], /^Error: stauts is not a create-gateway command\. Did you mean status\?\n`create-gateway help` lists/],
    [['certs', 'isue'], /^Error: certs isue is not a create-gateway command\. Did you mean certs issue\?/],
    [['export', 'kube'], /Did you mean export kubernetes\?/],
    [['certs', 'issue', 'extra'], /^Error: certs issue takes no argument "extra"/],
    // No command is near it (`deploy`, used here before, is a command since issue 14).
    [['frobnicate'], /^Error: frobnicate is not a create-gateway command\.\n/],
  ])('%j: one error naming the nearest command, exit 2', async (args, expected) => {
    const result = await runCliAsync(args)
    expect(result.status).toBe(2)
    expect(result.stderr).toMatch(expected)
    expect(result.stderr).not.toMatch(/:issue|\n\s+at /)
  })

  it('autocomplete prints the setup for bash and zsh, and the completion functions it caches name the commands', async () => {
    const home = env()
    const bash = await runCliAsync(['autocomplete', 'bash'], {env: home})
    expect(bash.status, bash.stderr).toBe(0)
    expect(bash.stdout).toMatch(/create-gateway autocomplete script bash/)
    const zsh = await runCliAsync(['autocomplete', 'zsh'], {env: home})
    expect(zsh.status, zsh.stderr).toBe(0)
    const functions = join(home.XDG_CACHE_HOME, 'create-gateway', 'autocomplete', 'functions')
    const zshFunction = readFileSync(join(functions, 'zsh', '_create-gateway'), 'utf8')
    expect(zshFunction).toMatch(/#compdef create-gateway/)
    for (const command of ['status', 'scale', 'init', 'export']) expect(zshFunction).toContain(command)
    expect(readFileSync(join(functions, 'bash', 'create-gateway.bash'), 'utf8')).toMatch(/complete .*create-gateway/)
  })
})

describe('--json: one document on stdout, also for errors (built CLI)', () => {
  let project: string
  beforeAll(async () => {
    project = join(tempDir(), 'p')
    const made = await runCliAsync(['init', project, '--yes'])
    expect(made.status, made.stderr).toBe(0)
  })

  it('status --json with no engine: {"error": ...} on stdout, exit 1', async () => {
    const result = await runCliAsync(['status', '--dir', project, '--json'], {
      env: {DOCKER_HOST: `unix://${join(tempDir(), 'no-engine.sock')}`},
    })
    expect(result.status).toBe(1)
    const document = JSON.parse(result.stdout) as {error: {name: string; message: string; exitCode: number}}
    expect(document.error).toMatchObject({name: 'EngineUnavailableError', exitCode: 1})
    expect(document.error.message).toMatch(/Cannot reach the Docker engine/)
  })

  it('a bad flag or a folder with no project under --json: a JSON error, exit 2', async () => {
    const [flag, folder] = await Promise.all([
      runCliAsync(['down', '--dir', project, '--bogus', '--json']),
      runCliAsync(['render', '--dir', tempDir(), '--json']),
    ])
    expect(flag.status).toBe(2)
    expect(JSON.parse(flag.stdout)).toEqual({error: {name: 'Error', message: 'Nonexistent flag: --bogus', exitCode: 2}})
    expect(folder.status).toBe(2)
    expect(JSON.parse(folder.stdout)).toMatchObject({
      error: {name: 'UsageError', exitCode: 2, message: expect.stringMatching(/no gateway\.yaml there/)},
    })
  })

  it('render --json prints the result document; init --json never prompts and says so in the document', async () => {
    const render = await runCliAsync(['render', '--dir', project, '--dry-run', '--json'])
    expect(render.status, render.stderr).toBe(0)
    expect(JSON.parse(render.stdout)).toMatchObject({dryRun: true})
    const init = await runCliAsync(['init', join(tempDir(), 'q'), '--json', '--dry-run'])
    expect(init.status, init.stderr).toBe(0)
    expect(JSON.parse(init.stdout)).toMatchObject({dryRun: true, manifest: {ports: {http: 8080, https: 8443}}})
  })
})
