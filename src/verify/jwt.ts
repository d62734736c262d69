import {createHmac} from 'node:crypto'

/**
 * HS256 tokens as the jwt routes accept them (templates/gateway/njs/jwt.js.ejs), made with node:crypto
 * so verify needs no JWT library. The README's one-liner for users does the same.
 */

export interface JwtClaims {
  /** Seconds since the epoch; the gateway requires it. */
  exp: number
  nbf?: number
  iat?: number
  sub?: string
  [claim: string]: unknown
}

const base64url = (value: string | Buffer): string => Buffer.from(value).toString('base64url')

export function signJwt(secret: string, claims: JwtClaims): string {
  const unsigned = `${base64url(JSON.stringify({alg: 'HS256', typ: 'JWT'}))}.${base64url(JSON.stringify(claims))}`
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`
}

/** A token for a verify request: `valid` for five minutes, `expired` an hour ago, `wrong` signed with another key. */
export function verifyToken(
  secret: string,
  kind: 'valid' | 'wrong' | 'expired',
  nowMs: number,
  wrongKey: string,
): string {
  const now = Math.floor(nowMs / 1000)
  const sub = 'create-gateway-verify'
  if (kind === 'expired') return signJwt(secret, {sub, iat: now - 7200, exp: now - 3600})
  return signJwt(kind === 'wrong' ? `wrong-${wrongKey}` : secret, {sub, iat: now, exp: now + 300})
}
