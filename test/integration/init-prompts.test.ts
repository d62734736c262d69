import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import {join} from 'node:path'
import {stripVTControlCharacters} from 'node:util'
import {afterEach, describe, expect, it} from 'vitest'
import {parse} from 'yaml'

import {BIN, runCliAsync, tempDir} from '../helpers/cli.js'

/**
 * `init` in a terminal, as a person runs it: util-linux `script` gives the CLI a pseudo-terminal, the
 * test types into it and reads the screen. Checks that a bad answer is refused at its own prompt, and
 * that Ctrl-C at a prompt says "cancelled, nothing written" and exits 130.
 */

const hasScript = spawnSync('script', ['--version']).status === 0
if (!hasScript) console.warn('init-prompts: skipped, needs util-linux `script` for a pseudo-terminal')

/** How long one prompt may take to appear on a machine shared with others; a guard, not a measure. */
const PROMPT_WAIT_MS = 60_000

interface Terminal {
  child: ChildProcess
  /** The screen so far, without escape sequences. */
  screen(): string
  /** Wait until the screen (after `from` characters) matches `pattern`. */
  waitFor(pattern: RegExp, from?: number): Promise<number>
  type(keys: string): void
  exited: Promise<number | null>
}

const started: ChildProcess[] = []
afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null && child.pid) child.kill('SIGKILL')
})

function openTerminal(args: string[]): Terminal {
  const command = [process.execPath, BIN, ...args].map((part) => `'${part.replace(/'/g, `'\\''`)}'`).join(' ')
  // -e: script exits with the CLI's own status; -q: no banner. The CLI sees a TTY on stdin and stdout.
  const child = spawn('script', ['-q', '-e', '-c', command, '/dev/null'], {
    env: {...process.env, NO_COLOR: '1', TERM: 'xterm', COLUMNS: '200', LINES: '50'},
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  started.push(child)
  let raw = ''
  const listeners = new Set<() => void>()
  const onData = (chunk: Buffer) => {
    raw += chunk.toString('utf8')
    for (const listener of listeners) listener()
  }

  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const screen = () => stripVTControlCharacters(raw)
  return {
    child,
    screen,
    exited,
    type: (keys) => child.stdin!.write(keys),
    waitFor: (pattern, from = 0) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(screen().slice(from))
          if (!match) return false
          cleanup()
          resolve(from + match.index + match[0].length)
          return true
        }

        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`no ${pattern} on the screen within ${PROMPT_WAIT_MS} ms; it shows:\n${screen()}`))
        }, PROMPT_WAIT_MS)
        const onExit = () => {
          if (!check()) {
            cleanup()
            reject(new Error(`the CLI exited before ${pattern} appeared; the screen:\n${screen()}`))
          }
        }

        const cleanup = () => {
          clearTimeout(timer)
          listeners.delete(listener)
          child.off('exit', onExit)
        }

        const listener = () => void check()
        if (check()) return
        listeners.add(listener)
        child.once('exit', onExit)
      }),
  }
}

describe.skipIf(!hasScript)('init in a terminal (built CLI through a pseudo-terminal)', () => {
  it('Ctrl-C at the first prompt: "cancelled, nothing written", exit 130, no folder', async () => {
    const parent = tempDir()
    const terminal = openTerminal(['init', join(parent, 'my-api')])
    await terminal.waitFor(/Project name/)
    terminal.type('\u0003')
    expect(await terminal.exited).toBe(130)
    expect(terminal.screen()).toMatch(/cancelled, nothing written/)
    expect(terminal.screen()).not.toMatch(/ExitPromptError|\n\s+at /)
    expect(readdirSync(parent)).toEqual([])
  })

  it('refuses the HTTPS port at its own prompt when it equals the HTTP port, and an external URL at its prompt', async () => {
    const parent = tempDir()
    const terminal = openTerminal(['init', join(parent, 'my-api')])
    let at = await terminal.waitFor(/Project name/)
    terminal.type('\r')
    at = await terminal.waitFor(/Domain the gateway answers for/, at)
    terminal.type('\r')
    at = await terminal.waitFor(/Host port for plain HTTP/, at)
    terminal.type('\u0015443\r') // Ctrl-U clears the default, then 443
    at = await terminal.waitFor(/Host port for HTTPS/, at)
    terminal.type('\u0015443\r')
    at = await terminal.waitFor(/must differ from the HTTP port \(443\)/, at)
    terminal.type('\u00158443\r')
    at = await terminal.waitFor(/Certificates:/, at)
    terminal.type('\r')
    for (const prompt of [/Rate limit per client IP/, /Requests a client may send/, /Replicas of the web service/]) {
      at = await terminal.waitFor(prompt, at)
      terminal.type('\r')
    }

    at = await terminal.waitFor(/Extra internal Django service/, at)
    terminal.type('\r')
    at = await terminal.waitFor(/External upstream NAME=URL/, at)
    terminal.type('pay=x.com\r')
    at = await terminal.waitFor(/must be a URL such as https:\/\/payments\.example\.com/, at)
    terminal.type('\u0015pay=http://$host:8000\r')
    at = await terminal.waitFor(/must name a host .* not "\$host"/, at)

    // Still at that prompt, nothing written: leave with Ctrl-C.
    terminal.type('\u0003')
    expect(await terminal.exited).toBe(130)
    expect(terminal.screen().slice(at)).toMatch(/cancelled, nothing written/)
    expect(readdirSync(parent)).toEqual([])
  })
})

describe.skipIf(!hasScript)('init in a terminal: summary, confirm, the same command without questions', () => {
  /** Answer every prompt: Enter keeps the default, other answers replace it (Ctrl-U clears the line first). */
  async function answerAll(terminal: Terminal, answers: Array<[RegExp, string]>): Promise<number> {
    let at = 0
    for (const [prompt, answer] of answers) {
      at = await terminal.waitFor(prompt, at)
      terminal.type(answer === '' ? '\r' : `\u0015${answer}\r`)
    }

    return at
  }

  const ANSWERS: Array<[RegExp, string]> = [
    [/Project name/, ''],
    [/Domain the gateway answers for/, ''],
    [/Host port for plain HTTP/, ''],
    [/Host port for HTTPS/, '9443'],
    [/Certificates:/, ''],
    [/Rate limit per client IP/, ''],
    [/Requests a client may send/, ''],
    [/Replicas of the web service/, '3'],
    [/Extra internal Django service/, 'orders'],
    [/External upstream NAME=URL/, ''],
  ]

  it('shows the answers before writing, writes on Enter, then prints a command that makes the same project', async () => {
    const dir = join(tempDir(), 'my-api')
    const terminal = openTerminal(['init', dir])
    let at = await answerAll(terminal, ANSWERS)
    at = await terminal.waitFor(/About to create/, at)
    // Nothing is written before the confirm.
    expect(readdirSync(join(dir, '..'))).toEqual([])
    at = await terminal.waitFor(/Write the project\?/, at)
    const summary = terminal.screen().slice(0, at)
    expect(summary).toMatch(/ports +127\.0\.0\.1:8080 \(HTTP\), 127\.0\.0\.1:9443 \(HTTPS\)/)
    expect(summary).toMatch(/web replicas +3/)
    expect(summary).toMatch(/services +web, orders/)
    terminal.type('\r')
    expect(await terminal.exited).toBe(0)
    const after = terminal.screen().slice(at)
    expect(after).toMatch(/- Wrote \d+ files to /)
    const printed = /The same project without the questions:\s+(create-gateway init .*)/.exec(after)?.[1]?.trim()
    expect(printed).toBe(`create-gateway init ${dir} --yes --https-port 9443 --replicas 3 --service orders`)

    // The printed command, run without a terminal, describes the very project the answers made.
    const args = printed!.split(' ').slice(1)
    const again = await runCliAsync([...args, '--force', '--dry-run', '--json'])
    expect(again.status, again.stderr).toBe(0)
    const written = parse(readFileSync(join(dir, 'gateway.yaml'), 'utf8')) as unknown
    expect((JSON.parse(again.stdout) as {manifest: unknown}).manifest).toEqual(written)
  })

  it('answering no at the confirm writes nothing: "cancelled, nothing written"', async () => {
    const parent = tempDir()
    const terminal = openTerminal(['init', join(parent, 'my-api')])
    const at = await answerAll(terminal, ANSWERS)
    await terminal.waitFor(/Write the project\?/, at)
    terminal.type('n\r')
    expect(await terminal.exited).toBe(130)
    expect(terminal.screen().slice(at)).toMatch(/cancelled, nothing written/)
    expect(readdirSync(parent)).toEqual([])
  })

  it('--json in a terminal takes the defaults without a question and prints one document', async () => {
    const dir = join(tempDir(), 'my-api')
    const terminal = openTerminal(['init', dir, '--json', '--dry-run'])
    expect(await terminal.exited).toBe(0)
    expect(terminal.screen()).not.toMatch(/Project name|not a terminal/)
    expect(terminal.screen()).toMatch(/"dryRun": true/)
  })
})
