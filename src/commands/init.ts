import {Args, Flags} from '@oclif/core'

import {CancelledError} from '../errors.js'
import {resolveAnswers, type Asker} from '../manifest/answers.js'
import {describeAnswers, equivalentCommand} from '../manifest/equivalent.js'
import {INIT_OPTIONS, type InitAnswers, type InitOption} from '../manifest/options.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import {createProject} from '../project/create-project.js'
import {describeProject} from '../project/summary.js'
import {BaseCommand} from './base.js'

/**
 * What --yes takes for each option, as help shows it: the defaults in order (a later default may
 * depend on an earlier answer); the project name comes from the folder.
 */
function helpDefaults(): Map<string, string> {
  const answers: Partial<InitAnswers> = {}
  const shown = new Map<string, string>()
  for (const option of INIT_OPTIONS as ReadonlyArray<InitOption>) {
    const value = option.default({dir: 'my-api', answers})
    ;(answers as Record<string, unknown>)[option.key] = value
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue
    shown.set(option.flag, option.key === 'name' ? "DIR's name, DNS-safe" : String(value))
  }

  return shown
}

const defaults = helpDefaults()

// Flags come from the one option table, so flags, prompts and --yes defaults never disagree. The
// defaults are shown in help only: applying them here would make every option look given.
const optionFlags = Object.fromEntries(
  INIT_OPTIONS.map((option) => [
    option.flag,
    'multiple' in option && option.multiple
      ? Flags.string({summary: option.summary, multiple: true})
      : Flags.string({
          // Written into the text as oclif writes a default: a defaultHelp function would make help
          // import this module instead of reading oclif.manifest.json.
          summary: defaults.has(option.flag)
            ? `[default: ${defaults.get(option.flag)}] ${option.summary}`
            : option.summary,
          ...('choices' in option && option.choices ? {options: [...option.choices]} : {}),
        }),
  ]),
)

/** Ctrl-C at a prompt: @inquirer rejects with an ExitPromptError, which becomes exit 130 here. */
async function cancellable<T>(prompt: Promise<T>): Promise<T> {
  try {
    return await prompt
  } catch (error) {
    if (error instanceof Error && error.name === 'ExitPromptError') throw new CancelledError()
    throw error
  }
}

// @inquirer is loaded only when a question is asked: `init --yes` and scripts never pay for it.
const inquirer: Asker = {
  input: async (options) => {
    const {input} = await import('@inquirer/prompts')
    return cancellable(input({message: options.message, default: options.default, validate: options.validate}))
  },
  select: async (options) => {
    const {select} = await import('@inquirer/prompts')
    return cancellable(
      select({message: options.message, default: options.default, choices: options.choices.map((value) => ({value}))}),
    )
  },
}

async function confirmWrite(message: string): Promise<boolean> {
  const {confirm} = await import('@inquirer/prompts')
  return cancellable(confirm({message, default: true}))
}

export default class Init extends BaseCommand {
  static override enableJsonFlag = true
  static override summary = 'Scaffold a Django + Gunicorn + NGINX gateway project with certificates and secrets.'
  static override description = `Asks for each setting when run in a terminal; every question is also a flag, and --yes takes the defaults for anything not given, so scripts never wait for input.

Defaults: one Django service "web" with 2 replicas behind NGINX, routes / and /secure/ (basic auth), rate limit 10r/s burst 20 (503 above it), HTTPS with a local CA, ports 8080/8443 on 127.0.0.1. Each --service or --external gets a route /NAME/ unless a --route says otherwise. The generated user, password and API key are printed once, to a terminal only (piped, the output names their files), and kept in secrets/.`

  static override examples = [
    {description: 'Defaults, no questions', command: '<%= config.bin %> init my-api --yes'},
    {
      description: "The guide's setup: two internal services and the payment service on EC2 behind an API key",
      command:
        '<%= config.bin %> init my-api --yes --service live-reading --service student-api --external payment=https://payment.example.com --route /payment/=payment:api-key',
    },
    {
      description: "Real certificates from Let's Encrypt, published on all interfaces",
      command:
        '<%= config.bin %> init my-api --yes --domain api.example.com --tls certbot --email ops@example.com --bind 0.0.0.0 --http-port 80 --https-port 443',
    },
    {
      description: 'Offline base images (no registry)',
      command:
        '<%= config.bin %> init my-api --yes --python-image create-gateway-offline/python:forky --nginx-image create-gateway-offline/nginx:forky',
    },
    {description: 'Show what would be written', command: '<%= config.bin %> init my-api --yes --dry-run'},
  ]

  static override args = {
    dir: Args.directory({description: 'Directory to create the project in.', default: '.'}),
  }

  static override flags = {
    yes: Flags.boolean({char: 'y', summary: 'Accept defaults for everything not given as a flag; never prompt.'}),
    ...optionFlags,
    force: Flags.boolean({
      summary: 'Write into a non-empty directory, overwriting only the files init generates (secrets are kept).',
    }),
    'dry-run': Flags.boolean({summary: 'Validate and list the files that would be written, write nothing.'}),
  }

  async run() {
    const {args, flags} = await this.parse(Init)
    // --json is for scripts: it never prompts, as --yes (a JSON document cannot hold a conversation).
    const json = this.jsonEnabled()
    const interactive = Boolean(process.stdin.isTTY) && !flags.yes && !json
    const answers = await resolveAnswers({
      dir: args.dir,
      flags,
      yes: flags.yes || json,
      ask: interactive ? inquirer : undefined,
    })
    if (interactive) {
      // Everything answered: show it all once and write only on a yes (Enter), as `npm init` does.
      this.logToStderr(
        [
          '',
          `${flags['dry-run'] ? 'Would create' : 'About to create'} ${args.dir}:`,
          ...describeAnswers(answers),
          '',
        ].join('\n'),
      )
      if (!(await confirmWrite(flags['dry-run'] ? 'List the files?' : 'Write the project?'))) throw new CancelledError()
    }

    const project = await createProject({
      dir: args.dir,
      answers,
      force: flags.force,
      dryRun: flags['dry-run'],
      onProgress: (message) => this.logToStderr(`- ${message}`),
    })

    // Secrets go to a terminal only: piped into a file or a CI log, the output names their files instead.
    const showSecrets = Boolean(process.stdout.isTTY)
    this.log(describeProject(project, {dryRun: flags['dry-run'], showSecrets}))
    if (interactive) {
      const again = equivalentCommand(this.config.bin, args.dir, answers)
      this.log(`\nThe same project without the questions:\n  ${again}${flags.force ? ' --force' : ''}`)
    }

    return {
      dir: project.dir,
      dryRun: flags['dry-run'],
      manifest: project.manifest,
      files: [...project.written, ...project.certificates],
      credentials: {
        ...(showSecrets
          ? {
              basicAuth: project.secrets.basicAuth,
              apiKeys: project.secrets.apiKeys,
              jwtSecret: project.secrets.jwtSecret,
            }
          : {basicAuth: {user: project.secrets.basicAuth.user}}),
        files: {
          basicAuth: PROJECT_PATHS.basicAuth,
          apiKeys: PROJECT_PATHS.apiKeys,
          jwtSecret: PROJECT_PATHS.jwtSecret,
        },
      },
    }
  }
}
