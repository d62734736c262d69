import {OperationError} from '../errors.js'

/**
 * Certbot's output, read for the failures users actually hit. Certbot explains them well but buries the
 * one line that matters under "Saving debug log..." and a generic hint; we name the cause and the fix.
 * The patterns cover Let's Encrypt (Boulder) and Pebble wording, as printed by certbot 1.x and 2.x.
 */

export type CertbotFailureKind =
  /** The CA's DNS lookup of the domain failed: no A/AAAA record, NXDOMAIN, SERVFAIL. */
  | 'dns'
  /** The CA resolved the domain but could not connect to port 80 (firewall, nothing listening, wrong IP). */
  | 'unreachable'
  /** The CA reached something on port 80, but not a gateway serving our challenge file. */
  | 'wrong-host'
  /** Too many certificates, orders or failed validations. */
  | 'rate-limited'
  /** Certbot could not talk to the ACME server itself (network, TLS trust). */
  | 'acme-server'
  | 'unknown'

export interface CertbotFailure {
  kind: CertbotFailureKind
  /** The line of certbot's output that says what went wrong (the CA's `Detail:`), without its prefix. */
  detail?: string
}

const PATTERNS: ReadonlyArray<{kind: CertbotFailureKind; pattern: RegExp}> = [
  // Rate limits first: their messages can mention orders, domains and DNS names too.
  {
    kind: 'rate-limited',
    pattern: /too many (certificates|new orders|failed authorizations|registrations|requests)|rateLimited|rate limit/i,
  },
  {
    kind: 'acme-server',
    pattern:
      /certificate verify failed|Failed to establish a new connection|Max retries exceeded with url|Name or service not known|Temporary failure in name resolution|Connection aborted|Unable to reach the ACME server|Error retrieving the ACME directory/i,
  },
  {
    kind: 'dns',
    pattern:
      /DNS problem|NXDOMAIN|SERVFAIL|no valid A records|No valid IP addresses found|Error resolving|no such host|could not resolve/i,
  },
  {
    kind: 'unreachable',
    pattern:
      /Timeout during connect|Connection refused|connection reset|Timeout after connect|i\/o timeout|dial tcp|no route to host|network is unreachable|Fetching .*: Timeout/i,
  },
  {
    kind: 'wrong-host',
    pattern:
      /Invalid response from|key authorization .*(did not match|mismatch)|unauthorized|The key authorization file from the server did not match/i,
  },
]

/** The CA's explanation lines: `Detail: ...` (certbot 1.x/2.x) or `Error: ... :: ...` / `Error creating new order :: ...`. */
export function detailLines(output: string): string[] {
  const lines = output.split('\n').map((line) => line.trim())
  const details: string[] = []
  for (const line of lines) {
    const detail = /^Detail:\s*(.+)$/.exec(line)?.[1]
    if (detail) details.push(detail)
  }

  if (details.length > 0) return details
  for (const line of lines) {
    if (/::/.test(line) || /^(An unexpected error occurred|Error|Failed)\b/i.test(line))
      details.push(line.replace(/^An unexpected error occurred:\s*/i, ''))
  }

  return details.filter((line) => line !== '')
}

/** What went wrong, from certbot's combined output. */
export function classifyCertbotOutput(output: string): CertbotFailure {
  const details = detailLines(output)
  // The CA's own detail wins over certbot's generic hints ("Ensure that the listed domains ...").
  for (const text of [...details, output]) {
    for (const {kind, pattern} of PATTERNS) {
      if (pattern.test(text)) return {kind, detail: details.find((line) => pattern.test(line)) ?? details[0]}
    }
  }

  return {kind: 'unknown', detail: details[0]}
}

/** A certbot run that did not produce a certificate. Carries the cause and certbot's last lines. */
export class CertbotError extends OperationError {
  readonly kind: CertbotFailureKind
  readonly output: string

  constructor(message: string, options: {kind: CertbotFailureKind; output: string; hint?: string}) {
    super(message, {hint: options.hint})
    this.kind = options.kind
    this.output = options.output
  }
}

export interface CertbotContext {
  domain: string
  /** ACME directory URL certbot talked to. */
  server: string
  /** Host port of the gateway's plain-HTTP listener and the address it is published on. */
  httpPort: number
  bind: string
  exitCode: number
  /** Whether the server is one of Let's Encrypt's. */
  letsEncrypt: boolean
}

const TAIL_LINES = 15

function tail(output: string): string {
  const lines = output
    .split('\n')
    .map((line) => line.trimEnd())
    .filter(
      (line) =>
        line !== '' && !/^Saving debug log to|^Ask for help or search for solutions|^See the logfile/i.test(line),
    )
  return lines
    .slice(-TAIL_LINES)
    .map((line) => `  | ${line}`)
    .join('\n')
}

/** Advice on reaching port 80, which is what the CA always connects to for HTTP-01. */
function portAdvice(context: CertbotContext): string {
  const problems: string[] = []
  if (context.httpPort !== 80)
    problems.push(
      `the gateway listens on port ${context.httpPort} (ports.http), so something must forward port 80 of ${context.domain} to it`,
    )
  if (context.bind === '127.0.0.1' || context.bind === '::1')
    problems.push(`bind is ${context.bind}, so only this machine can reach it (set bind: 0.0.0.0 in gateway.yaml)`)
  return problems.length > 0 ? ` Here ${problems.join(', and ')}.` : ''
}

/** Turn a failed certbot run into one clear error: what failed, the CA's words, what to do. */
export function certbotFailure(output: string, context: CertbotContext): CertbotError {
  const {kind, detail} = classifyCertbotOutput(output)
  const said = detail ? `\nThe CA said: ${detail}` : ''
  const last = `\nLast lines of certbot's output:\n${tail(output)}`
  const make = (message: string, hint: string) => new CertbotError(`${message}${said}${last}`, {kind, output, hint})
  switch (kind) {
    case 'dns':
      return make(
        `${context.domain} does not resolve for the certificate authority, so it cannot check that you control it`,
        `Create an A (and/or AAAA) record for ${context.domain} pointing to this host's public IP, wait until \`dig +short ${context.domain}\` shows it, then run \`create-gateway certs issue\` again.`,
      )
    case 'unreachable':
      return make(
        `The certificate authority could not connect to port 80 of ${context.domain}: it must fetch http://${context.domain}/.well-known/acme-challenge/... from this gateway`,
        `Open port 80 to the internet (firewall, cloud security group) and make sure ${context.domain} resolves to this host.${portAdvice(context)}`,
      )
    case 'wrong-host':
      return make(
        `The certificate authority reached port 80 of ${context.domain}, but not this gateway's challenge files: the domain points to another host, or another server answers port 80`,
        `Check that ${context.domain} resolves to this host's public IP and that port 80 reaches this gateway (not another web server or a load balancer that does not forward /.well-known/acme-challenge/).${portAdvice(context)}`,
      )
    case 'rate-limited':
      return make(
        `The certificate authority refused: rate limited`,
        context.letsEncrypt
          ? "Let's Encrypt limits certificates per domain per week and failed validations per hour. Test with `create-gateway certs issue --staging` (untrusted certificates, much higher limits) until it works, then issue once for real; see https://letsencrypt.org/docs/rate-limits/."
          : 'Wait before trying again, or test against a staging server with `certs issue --staging` / `--server URL`.',
      )
    case 'acme-server':
      return make(
        `Certbot could not talk to the ACME server ${context.server}`,
        `Check that this machine can reach ${context.server} over HTTPS. For a private or test CA (such as Pebble) pass its CA certificate with --ca-bundle FILE.`,
      )
    default:
      return make(
        `certbot exited with code ${context.exitCode} without a certificate for ${context.domain}`,
        "Certbot's full log is in certbot/logs/letsencrypt.log in the project.",
      )
  }
}
