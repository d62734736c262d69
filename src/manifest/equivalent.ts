import {INIT_OPTIONS, MAIN_SERVICE, type AnswerKey, type InitAnswers, type InitOption} from './options.js'

/** A word as a POSIX shell reads it back unchanged: bare when safe, else in single quotes. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`
}

/** Each answered option as [flag, value] pairs, in table order; only what differs from --yes's choice. */
function changedFlags(dir: string, answers: InitAnswers): Array<[string, string]> {
  const before: Partial<InitAnswers> = {}
  const flags: Array<[string, string]> = []
  for (const option of INIT_OPTIONS as ReadonlyArray<InitOption>) {
    const value = answers[option.key]
    const fallback = option.when && !option.when(before) ? undefined : option.default({dir, answers: before})
    ;(before as Record<AnswerKey, unknown>)[option.key] = value
    if (value === undefined || JSON.stringify(value) === JSON.stringify(fallback)) continue
    for (const item of Array.isArray(value) ? value : [value]) flags.push([option.flag, String(item)])
  }

  return flags
}

/**
 * The `init` command that makes the same project without a question (as `sv create` prints): the
 * answers that differ from the defaults as flags, plus --yes.
 */
export function equivalentCommand(bin: string, dir: string, answers: InitAnswers): string {
  const flags = changedFlags(dir, answers).map(([flag, value]) => `--${flag} ${shellWord(value)}`)
  return [bin, 'init', shellWord(dir), '--yes', ...flags].join(' ')
}

/** The answers as `label  value` lines, for the summary before anything is written. */
export function describeAnswers(answers: InitAnswers): string[] {
  const lines: Array<[string, string]> = [
    ['project', answers.name],
    ['domain', answers.domain],
    ['ports', `${answers.bind}:${answers.httpPort} (HTTP), ${answers.bind}:${answers.httpsPort} (HTTPS)`],
    ['certificates', answers.tls + (answers.email ? ` (${answers.email})` : '')],
    ['rate limit', `${answers.rate}, burst ${answers.burst}`],
    ['web replicas', String(answers.replicas)],
    ['services', [MAIN_SERVICE, ...answers.services].join(', ')],
  ]
  if (answers.externals.length > 0) lines.push(['external', answers.externals.join(', ')])
  if (answers.routes.length > 0) lines.push(['routes', answers.routes.join(', ')])
  return lines.map(([label, value]) => `  ${label.padEnd(14)}${value}`)
}
