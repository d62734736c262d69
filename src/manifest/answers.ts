import {UsageError} from '../errors.js'
import {INIT_OPTIONS, type AnswerKey, type InitAnswers, type InitOption} from './options.js'

/** Raw flag values by flag name, as oclif parsed them (strings; repeatable ones as arrays). */
export type FlagValues = Partial<Record<string, string | string[] | undefined>>

export interface Asker {
  input(options: {message: string; default?: string; validate: (value: string) => true | string}): Promise<string>
  select(options: {message: string; default?: string; choices: readonly string[]}): Promise<string>
}

export interface ResolveOptions {
  dir: string
  flags: FlagValues
  /** --yes: take the default of every option not given as a flag. */
  yes: boolean
  /** Prompts are allowed only when stdin is a terminal; without one, nothing may wait for input. */
  ask?: Asker
}

/**
 * Each option: its flag if given, else its default under --yes, else a prompt, so a script never waits
 * on a question.
 * With no terminal and no --yes this fails naming --yes instead of hanging on a prompt.
 */
export async function resolveAnswers({dir, flags, yes, ask}: ResolveOptions): Promise<InitAnswers> {
  const answers: Partial<InitAnswers> = {}
  const set = <K extends AnswerKey>(key: K, value: InitAnswers[K] | undefined) => {
    if (value !== undefined) answers[key] = value
  }

  // Parse every flag first, so a bad value fails before any question is asked.
  const given = new Map<AnswerKey, unknown>()
  for (const option of INIT_OPTIONS as ReadonlyArray<InitOption>) {
    const raw = flags[option.flag]
    if (raw === undefined || (Array.isArray(raw) && raw.length === 0)) continue
    const value = Array.isArray(raw) ? raw.flatMap((item) => option.parse(item) as string[]) : option.parse(raw)
    given.set(option.key, value)
  }

  const missing: string[] = []
  /** Answers that took their default (no flag, no prompt): a later answer may change what fits. */
  const defaulted = new Set<string>()
  for (const option of INIT_OPTIONS as ReadonlyArray<InitOption>) {
    if (given.has(option.key)) {
      set(option.key, given.get(option.key) as never)
      continue
    }

    if (option.when && !option.when(answers)) continue
    const fallback = option.default({dir, answers})
    if (yes || !option.prompt) {
      set(option.key, fallback as never)
      defaulted.add(option.key)
      continue
    }

    if (!ask) {
      missing.push(`--${option.flag}`)
      continue
    }

    set(option.key, (await promptFor(option, fallback, ask, answers)) as never)
  }

  if (missing.length > 0) {
    throw new UsageError(`stdin is not a terminal, so init cannot ask for ${missing.join(', ')}`, {
      hint: 'Pass --yes to accept the defaults for anything not given as a flag (see `create-gateway init --help`).',
    })
  }

  if (answers.tls === 'certbot' && !answers.email) {
    throw new UsageError("--email: required with --tls certbot (Let's Encrypt sends expiry notices there)")
  }

  // Let's Encrypt checks the domain on port 80 from the internet: loopback and 8080 could never pass.
  // Values the user chose (flags, prompts) stay: a private CA (Pebble) or a port forward may need them.
  if (answers.tls === 'certbot') {
    if (defaulted.has('bind')) answers.bind = '0.0.0.0'
    if (defaulted.has('httpPort') && defaulted.has('httpsPort')) {
      answers.httpPort = 80
      answers.httpsPort = 443
    }
  }

  return answers as InitAnswers
}

async function promptFor(
  option: InitOption,
  fallback: unknown,
  ask: Asker,
  answers: Partial<InitAnswers>,
): Promise<unknown> {
  // The table speaks in flags; at a prompt the flag name and "(repeatable)" mean nothing.
  const message = option.summary.replace(/ \(repeatable\)/, '')
  // Each answer is checked at its own prompt, against the answers before it too (http != https port).
  const validate = (text: string): true | string => {
    try {
      const value = option.parse(text)
      return option.check?.(value as never, answers) ?? true
    } catch (error) {
      return (error as Error).message.replace(/^--[\w-]+: /, '')
    }
  }

  if (option.prompt === 'select' && option.choices) {
    return option.parse(await ask.select({message, choices: option.choices, default: String(fallback)}))
  }

  if (option.prompt === 'list') {
    const text = await ask.input({
      message: `${message} Comma-separated, empty for none:`,
      default: '',
      validate: (value) => (value.trim() === '' ? true : validate(value)),
    })
    return option.parse(text)
  }

  return option.parse(
    await ask.input({message, default: fallback === undefined ? undefined : String(fallback), validate}),
  )
}
