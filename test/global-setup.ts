import {spawn} from 'node:child_process'
import {readdirSync} from 'node:fs'
import {join, relative, sep} from 'node:path'

import type {TestProject} from 'vitest/node'

/**
 * Before the tests that need a Docker engine, the stand-in images and Compose v2: prepare them with
 * the very scripts `.ci/run` uses, printing each step, so `npm test` on a fresh machine (after
 * `npm ci`, without `.ci/run`) runs them instead of waiting for what nobody starts. Each script is
 * idempotent (seconds when all is there). A step that fails ends the run with its output: a test
 * that cannot run fails, it is not skipped.
 */

const ROOT = join(import.meta.dirname, '..')

/** Test folders whose files talk to the engine (the end-to-end suite, the Compose and NGINX checks). */
const NEEDS_ENGINE = [join('test', 'e2e') + sep, join('test', 'integration') + sep]

const STEPS: Array<{what: string; script: string[]}> = [
  {what: 'Docker engine', script: ['fixtures/images/ensure-docker.sh']},
  {what: 'Compose v2 (Docker CLI plugin)', script: ['fixtures/compose/install-compose-v2.sh']},
  {what: 'stand-in images (python, nginx, pebble, certbot, exporter)', script: ['fixtures/images/build.sh']},
]

function testFiles(dir: string): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return testFiles(path)
    return entry.name.endsWith('.test.ts') ? [path] : []
  })
}

/** The files this run selected: vitest matches each command-line filter as a part of the path. */
function selectedFiles(filters: readonly string[] | undefined): string[] {
  const files = testFiles(join(ROOT, 'test'))
  return filters && filters.length > 0 ? files.filter((file) => filters.some((filter) => file.includes(filter))) : files
}

function run(script: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', script, {cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit']})
    child.once('error', reject)
    child.once('exit', (code) => resolve(code))
  })
}

export default async function setup(project: TestProject): Promise<void> {
  // `filenamePattern` holds the file filters given to `vitest run` (undefined: every file).
  const filters = (project.vitest as unknown as {filenamePattern?: string[]}).filenamePattern
  const needing = selectedFiles(filters).filter((file) =>
    NEEDS_ENGINE.some((folder) => relative(ROOT, file).startsWith(folder)),
  )
  if (needing.length === 0) return
  process.stderr.write(`[test setup] ${needing.length} selected test file(s) need the engine and the stand-ins\n`)
  for (const step of STEPS) {
    const started = Date.now()
    process.stderr.write(`[test setup] ${step.what}: bash ${step.script.join(' ')}\n`)
    const code = await run(step.script)
    if (code !== 0)
      throw new Error(`[test setup] ${step.what}: bash ${step.script.join(' ')} exited ${code}; see its output above`)
    process.stderr.write(`[test setup] ${step.what}: ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  }
}
