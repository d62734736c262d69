import {describe, expect, it} from 'vitest'

import {
  certbotFailure,
  classifyCertbotOutput,
  detailLines,
  type CertbotContext,
} from '../../src/certs/certbot-output.js'

/**
 * Certbot's output for the failures users hit. The Pebble ones were captured from certbot 2.1 against
 * Pebble 2.4 on the e2e network; the Let's Encrypt ones are Boulder's wording as certbot 2.x prints it.
 */

const challengeFailure = (type: string, detail: string) => `Saving debug log to /var/log/letsencrypt/letsencrypt.log
Account registered.
Requesting a certificate for api.example.com

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: api.example.com
  Type:   ${type}
  Detail: ${detail}

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot. Ensure that the listed domains serve their content from the provided --webroot-path/-w and that files created there can be downloaded from the internet.

Some challenges have failed.
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.`

const OUTPUTS = {
  leNxdomain: challengeFailure(
    'dns',
    'DNS problem: NXDOMAIN looking up A for api.example.com - check that a DNS record exists for this domain; DNS problem: NXDOMAIN looking up AAAA for api.example.com - check that a DNS record exists for this domain',
  ),
  leTimeout: challengeFailure(
    'connection',
    '203.0.113.7: Fetching http://api.example.com/.well-known/acme-challenge/Qm9v: Timeout during connect (likely firewall problem)',
  ),
  leRefused: challengeFailure(
    'connection',
    '203.0.113.7: Fetching http://api.example.com/.well-known/acme-challenge/Qm9v: Connection refused',
  ),
  le404: challengeFailure(
    'unauthorized',
    '203.0.113.7: Invalid response from http://api.example.com/.well-known/acme-challenge/Qm9v: 404',
  ),
  pebbleNoSuchHost: challengeFailure(
    'connection',
    'Get "http://api.example.test:80/.well-known/acme-challenge/u5QL": error occurred while resolving URL "http://api.example.test:80/.well-known/acme-challenge/u5QL": "lookup api.example.test on 127.0.0.11:53: no such host"',
  ),
  pebbleRefused: challengeFailure(
    'connection',
    'Get "http://api.example.test:80/.well-known/acme-challenge/qHGc": dial tcp 192.168.48.5:80: connect: connection refused',
  ),
  leRateLimited: `Saving debug log to /var/log/letsencrypt/letsencrypt.log
Requesting a certificate for api.example.com
An unexpected error occurred:
Error creating new order :: too many certificates (5) already issued for this exact set of domains in the last 168 hours: api.example.com, retry after 2024-05-01T10:00:00Z: see https://letsencrypt.org/docs/rate-limits/#new-certificates-per-exact-set-of-hostnames
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.`,
  rateLimitedUrn:
    'An unexpected error occurred:\nurn:ietf:params:acme:error:rateLimited :: There were too many requests of a given type :: too many failed authorizations recently',
  untrustedServer: `Saving debug log to /var/log/letsencrypt/letsencrypt.log
An unexpected error occurred:
requests.exceptions.SSLError: HTTPSConnectionPool(host='pebble', port=14000): Max retries exceeded with url: /dir (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate (_ssl.c:992)')))`,
  accountGone:
    'Failed to renew certificate api.example.test with error: urn:ietf:params:acme:error:accountDoesNotExist :: The request specified an account that does not exist :: Account https://pebble:14000/my-account/ff19 not found.\nAll renewals failed.',
}

const context: CertbotContext = {
  domain: 'api.example.com',
  server: 'https://acme-v02.api.letsencrypt.org/directory',
  httpPort: 8080,
  bind: '127.0.0.1',
  exitCode: 1,
  letsEncrypt: true,
}

describe('classifyCertbotOutput', () => {
  it.each([
    ['leNxdomain', 'dns'],
    ['pebbleNoSuchHost', 'dns'],
    ['leTimeout', 'unreachable'],
    ['leRefused', 'unreachable'],
    ['pebbleRefused', 'unreachable'],
    ['le404', 'wrong-host'],
    ['leRateLimited', 'rate-limited'],
    ['rateLimitedUrn', 'rate-limited'],
    ['untrustedServer', 'acme-server'],
    ['accountGone', 'unknown'],
  ] as const)('%s -> %s', (name, kind) => {
    expect(classifyCertbotOutput(OUTPUTS[name]).kind).toBe(kind)
  })

  it("takes the CA's Detail line, not certbot's generic hint", () => {
    expect(detailLines(OUTPUTS.leTimeout)).toEqual([
      '203.0.113.7: Fetching http://api.example.com/.well-known/acme-challenge/Qm9v: Timeout during connect (likely firewall problem)',
    ])
    expect(classifyCertbotOutput(OUTPUTS.leTimeout).detail).toContain('Timeout during connect')
  })

  it('falls back to the "::" error line when there is no Detail', () => {
    expect(classifyCertbotOutput(OUTPUTS.leRateLimited).detail).toMatch(
      /^Error creating new order :: too many certificates/,
    )
  })
})

describe('certbotFailure', () => {
  it('says the domain does not resolve, and what record to create', () => {
    const error = certbotFailure(OUTPUTS.leNxdomain, context)
    expect(error.exitCode).toBe(1)
    expect(error.message).toMatch(/^api\.example\.com does not resolve for the certificate authority/)
    expect(error.message).toContain('The CA said: DNS problem: NXDOMAIN looking up A for api.example.com')
    expect(error.hint).toContain('Create an A (and/or AAAA) record for api.example.com')
  })

  it('says port 80 is not reachable, naming the port and bind of this project', () => {
    const error = certbotFailure(OUTPUTS.leTimeout, context)
    expect(error.message).toMatch(/^The certificate authority could not connect to port 80 of api\.example\.com/)
    expect(error.hint).toContain('Open port 80')
    expect(error.hint).toContain('port 8080 (ports.http)')
    expect(error.hint).toContain('bind is 127.0.0.1')
    // A public setup gets no advice about bind and ports it already has right.
    const open = certbotFailure(OUTPUTS.leRefused, {...context, httpPort: 80, bind: '0.0.0.0'})
    expect(open.hint).not.toContain('ports.http')
    expect(open.hint).not.toContain('bind is')
  })

  it('says another host answers when the challenge file is not found', () => {
    const error = certbotFailure(OUTPUTS.le404, {...context, httpPort: 80, bind: '0.0.0.0'})
    expect(error.message).toContain("not this gateway's challenge files")
    expect(error.message).toContain('Invalid response from')
  })

  it("suggests --staging when rate limited by Let's Encrypt", () => {
    const error = certbotFailure(OUTPUTS.leRateLimited, context)
    expect(error.kind).toBe('rate-limited')
    expect(error.message).toContain('rate limited')
    expect(error.hint).toContain('create-gateway certs issue --staging')
  })

  it("suggests --ca-bundle when the ACME server's certificate is not trusted", () => {
    const error = certbotFailure(OUTPUTS.untrustedServer, {
      ...context,
      server: 'https://pebble:14000/dir',
      letsEncrypt: false,
    })
    expect(error.message).toContain('could not talk to the ACME server https://pebble:14000/dir')
    expect(error.hint).toContain('--ca-bundle')
  })

  it("keeps certbot's last lines, without its boilerplate, for anything else", () => {
    const error = certbotFailure(OUTPUTS.accountGone, context)
    expect(error.message).toMatch(/^certbot exited with code 1 without a certificate for api\.example\.com/)
    expect(error.message).toContain('  | All renewals failed.')
    expect(certbotFailure(OUTPUTS.leTimeout, context).message).not.toContain('Saving debug log')
  })
})
