import {constants} from 'node:os'

import {Command, Flags} from '@oclif/core'

import {CancelledError, GatewayError, InterruptedError} from '../errors.js'

type StopSignal = 'SIGINT' | 'SIGTERM'
const STOP_SIGNALS: StopSignal[] = ['SIGINT', 'SIGTERM']

/** What a shell reports for a process ended by a signal: 130 for Ctrl-C, 143 for SIGTERM. */
function signalExitCode(signal: StopSignal): number {
  return 128 + constants.signals[signal]
}

/**
 * What every command shares: typed errors become one clear message and the exit code of DESIGN.md
 * (2 bad input, 1 failed operation); anything else is a bug and keeps its stack trace.
 */
export abstract class BaseCommand extends Command {
  protected override async catch(error: Error & {exitCode?: number}): Promise<unknown> {
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

      this.logToStderr(
        `- ${signal === 'SIGINT' ? 'Ctrl-C' : signal}: stopping and removing what this run created (press Ctrl-C again to quit at once)`,
      )
      controller.abort(signal)
    }

    for (const name of STOP_SIGNALS) process.once(name, first)
    try {
      return await work(controller.signal)
    } catch (error) {
      if (error instanceof InterruptedError && received) {
        this.logToStderr(error.message)
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

export const dirFlag = Flags.directory({
  char: 'd',
  summary: 'Project directory (holds gateway.yaml).',
  default: '.',
})
