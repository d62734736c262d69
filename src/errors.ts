/**
 * Typed errors raised below `commands/`. Only the command edge turns them into messages and exit codes,
 * so nothing below it prints or ends the process and every caller can handle them: 2 for bad usage or bad input, 1 for a failed operation or check.
 */
export class GatewayError extends Error {
  readonly exitCode: number = 1
  /** What the user can do next, printed after the message. */
  readonly hint?: string

  constructor(message: string, options: {hint?: string; cause?: unknown} = {}) {
    super(message, {cause: options.cause})
    this.name = new.target.name
    this.hint = options.hint
  }
}

/** Bad flag, argument or manifest field: exit 2, nothing written. */
export class UsageError extends GatewayError {
  override readonly exitCode = 2
}

export interface FieldIssue {
  /** `routes[2].service`, or a flag such as `--http-port` when the input came from flags. */
  path: string
  message: string
}

/**
 * The user answered a prompt with Ctrl-C. Prompts come before any write, so nothing was written;
 * exit 130, as a shell reports a process ended by SIGINT.
 */
export class CancelledError extends GatewayError {
  override readonly exitCode = 130

  constructor() {
    super('cancelled, nothing written')
  }
}

/** A manifest (from gateway.yaml or built from flags) that does not satisfy the schema. */
export class ManifestError extends UsageError {
  readonly issues: FieldIssue[]

  constructor(issues: FieldIssue[], source?: string) {
    const where = source ? `${source}: ` : ''
    const lines = issues.map((issue) => `${issue.path}: ${issue.message}`)
    super(issues.length === 1 ? `${where}${lines[0]}` : `${where}${issues.length} problems\n  ${lines.join('\n  ')}`)
    this.issues = issues
  }
}

/** An operation against the engine, the gateway or the file system that did not succeed: exit 1. */
export class OperationError extends GatewayError {}

/** The Docker engine could not be reached at all. */
export class EngineUnavailableError extends OperationError {}

/**
 * The user stopped the operation (Ctrl-C, SIGTERM) and it undid what it had done so far. The
 * message says what was removed; the command that installed the signal handlers sets the exit code.
 */
export class InterruptedError extends OperationError {}
