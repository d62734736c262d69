import {constants} from 'node:os'

import {Command, Errors, Flags} from '@oclif/core'

import {CancelledError, GatewayError, InterruptedError, ManifestError, type FieldIssue} from '../errors.js'

type StopSignal = 'SIGINT' | 'SIGTERM'
const STOP_SIGNALS: StopSignal[] = ['SIGINT', 'SIGTERM']

/** What a shell reports for a process ended by a signal: 130 for Ctrl-C, 143 for SIGTERM. */
function signalExitCode(signal: StopSignal): number {
  return 128 + constants.signals[signal]
}

/** The `{"error": ...}` document a command prints on stdout under --json when it fails. */
export interface ErrorDocument {
  error: {name: string; message: string; exitCode: number; hint?: string; issues?: FieldIssue[]}
}

/** The exit code an error ends the process with: ours carry it, oclif's parse errors carry `oclif.exit`. */
function exitCodeOf(error: Error & {exitCode?: number; oclif?: {exit?: number}}): number {
  return error.exitCode ?? error.oclif?.exit ?? 1
}

/**
 * What every command shares: typed errors become one clear message and an exit code a script can act
 * on (2 bad input the user can fix, 1 a failed operation or check); anything else is a bug and keeps its stack trace. Under --json
 * (commands with `enableJsonFlag`) every error, oclif's own included, is one JSON document on stdout
 * instead, with the same exit code.
 */
export abstract class BaseCommand extends Command {
  protected override async catch(error: Error & {exitCode?: number}): Promise<unknown> {
    // `this.exit(n)` is an error too: let it through as it is.
    if (error instanceof Errors.ExitError) throw error
    if (this.jsonEnabled()) {
      this.logJson(this.toErrorJson(error))
      this.exit(exitCodeOf(error))
    }

    if (error instanceof CancelledError) {
      this.logToStderr(error.message)
      this.exit(error.exitCode)
    }

    if (error instanceof GatewayError) {
      const hint = error.hint ? `\n${error.hint}` : ''
      this.logToStderr(`Error: ${error.message}${hint}`)
      this.exit(error.exitCode)
    }

    // oclif's own parse errors (unknown flag, missing argument) already carry exit code 2.
    return super.catch(error)
  }

  protected override toErrorJson(error: unknown): ErrorDocument {
    if (!(error instanceof Error)) return {error: {name: 'Error', message: String(error), exitCode: 1}}
    // oclif's parse errors end with a "See more help with --help" line meant for a terminal.
    const message = error.message.replace(/\nSee more help with --help$/, '')
    return {
      error: {
        name: error.name,
        message,
        exitCode: exitCodeOf(error),
        ...(error instanceof GatewayError && error.hint ? {hint: error.hint} : {}),
        ...(error instanceof ManifestError ? {issues: error.issues} : {}),
      },
    }
  }

  /**
   * A progress line on stderr, also under --json: stdout holds only the result, and a long operation
   * (up, scale, certs issue) still shows where it is.
   */
  protected progress(message: string): void {
    process.stderr.write(`- ${message}\n`)
  }

  /**
   * Run `work` so that Ctrl-C (SIGINT) or SIGTERM aborts its signal instead of killing the process:
   * the work stops at its next step and undoes what it did, then throws InterruptedError, whose
   * message is printed as it is and the command exits 130 / 143. A second signal while it undoes
   * exits at once, printing `abandoned` (what may be left and how to remove it). The handlers are
   * installed only for the duration of the call.
   */
  protected async interruptible<T>(work: (signal: AbortSignal) => Promise<T>, abandoned: string): Promise<T> {
    const controller = new AbortController()
    let received: StopSignal | undefined
    const again = (signal: StopSignal) => {
      process.stderr.write(`${abandoned}\n`)
      process.exit(signalExitCode(signal))
    }

    const first = (signal: StopSignal) => {
      received = signal
      for (const name of STOP_SIGNALS) {
        process.removeListener(name, first)
        process.once(name, again)
      }

      this.progress(
        `${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping and removing what this run created (press Ctrl-C again to quit at once)`,
      )
      controller.abort(signal)
    }

    for (const name of STOP_SIGNALS) process.once(name, first)
    try {
      return await work(controller.signal)
    } catch (error) {
      if (error instanceof InterruptedError && received) {
        if (this.jsonEnabled()) this.logJson(this.toErrorJson(error))
        process.stderr.write(`${error.message}\n`)
        this.exit(signalExitCode(received))
      }

      throw error
    } finally {
      for (const name of STOP_SIGNALS) {
        process.removeListener(name, first)
        process.removeListener(name, again)
      }
    }
  }
}

/** A command that works on an existing project: `--dir` names it (the current directory by default). */
export abstract class ProjectCommand extends BaseCommand {
  static override baseFlags = {
    dir: Flags.directory({
      char: 'd',
      summary: 'Project directory (holds gateway.yaml).',
      default: '.',
    }),
  }
}

/** The swarm manager a deployed stack lives on (deploy, and status/scale/logs/down on a deployed stack). */
export const hostFlag = Flags.string({
  summary: 'Engine API of a swarm manager (tcp://HOST:PORT or unix:///path); default: DOCKER_HOST.',
})
