import {Command, Flags} from '@oclif/core'

import {GatewayError} from '../errors.js'

/**
 * What every command shares: typed errors become one clear message and the exit code of DESIGN.md
 * (2 bad input, 1 failed operation); anything else is a bug and keeps its stack trace.
 */
export abstract class BaseCommand extends Command {
  protected override async catch(error: Error & {exitCode?: number}): Promise<unknown> {
    if (error instanceof GatewayError) {
      const hint = error.hint ? `\n${error.hint}` : ''
      this.logToStderr(`Error: ${error.message}${hint}`)
      this.exit(error.exitCode)
    }

    // oclif's own parse errors (unknown flag, missing argument) already carry exit code 2.
    return super.catch(error)
  }
}

export const dirFlag = Flags.directory({
  char: 'd',
  summary: 'Project directory (holds gateway.yaml).',
  default: '.',
})
