// Fails the CI run when any test did not run, except the ones .ci/run names with a reason.
// Usage: node .ci/check-skips.mjs REPORT.json ALLOWED.txt
//   REPORT.json  vitest's json reporter output
//   ALLOWED.txt  one allowed test per line: "<file> > <full test name>  # reason"
import {readFileSync} from 'node:fs'
import {relative} from 'node:path'

const [reportPath, allowedPath] = process.argv.slice(2)
const report = JSON.parse(readFileSync(reportPath, 'utf8'))
const allowed = new Map(
  readFileSync(allowedPath, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [name, reason = ''] = line.split(/\s+#\s+/)
      return [name.trim(), reason.trim()]
    }),
)

const notRun = []
for (const file of report.testResults ?? []) {
  const path = relative(process.cwd(), file.name)
  for (const test of file.assertionResults ?? []) {
    if (test.status === 'passed' || test.status === 'failed') continue
    notRun.push(`${path} > ${test.fullName}`)
  }
}

const unexpected = notRun.filter((name) => !allowed.has(name))
for (const name of notRun.filter((name) => allowed.has(name)))
  console.log(`skipped, as .ci/run allows: ${name} (${allowed.get(name)})`)
if (unexpected.length > 0) {
  console.error(`${unexpected.length} test(s) did not run; a test that cannot run must fail, or be named in .ci/run:`)
  for (const name of unexpected) console.error(`  ${name}`)
  process.exit(1)
}

console.log(`${notRun.length === 0 ? 'No' : 'Only the allowed'} skipped tests.`)
