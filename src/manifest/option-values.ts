import type {z} from 'zod'

import {UsageError} from '../errors.js'
import {parseDecimal, parseUpstreamUrl, quoted} from './grammar.js'
import {AUTH_MODES, DurationSchema, ServiceNameSchema, type AuthMode} from './schema.js'

/**
 * The values `init` reads from a flag or a prompt: each parser checks one raw text and converts it, and
 * its error names the flag, so `init` refuses a bad value where it was typed.
 */

export function fieldParser<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, flag: string): (raw: unknown) => T {
  return (raw) => {
    const result = schema.safeParse(raw)
    if (result.success) return result.data
    throw new UsageError(
      `--${flag}: ${result.error.issues[0]?.message ?? 'invalid value'} (got ${quoted(String(raw))})`,
    )
  }
}

/**
 * A whole number typed as decimal digits: "0x50", "1e3" or "80.0" is refused here rather than read
 * as 80, 1000 or 80 by a JavaScript conversion. The range sentence comes from the schema.
 */
export function integerParser(schema: z.ZodType<number, z.ZodTypeDef, unknown>, flag: string): (raw: string) => number {
  const parseNumber = fieldParser(schema, flag)
  return (raw) => {
    const value = parseDecimal(raw)
    if (value === undefined)
      throw new UsageError(
        `--${flag}: ${schema.description ?? 'must be a whole number'}, in decimal digits (got ${quoted(String(raw))})`,
      )
    return parseNumber(value)
  }
}

export function listParser(flag: string, item?: (value: string) => void): (raw: string) => string[] {
  return (raw) => {
    const values = raw
      .split(',')
      .map((value) => value.trim())
      .filter((value) => value !== '')
    for (const value of values) {
      try {
        item?.(value)
      } catch (error) {
        throw new UsageError(`--${flag}: ${(error as Error).message} (got ${quoted(value)})`)
      }
    }

    return values
  }
}

/** `NAME=URL`, both checked here so a bad URL is refused at its flag or prompt, naming it. */
export function parseExternal(value: string): {name: string; url: string} {
  const at = value.indexOf('=')
  if (at <= 0) throw new Error('must be NAME=URL')
  const name = value.slice(0, at)
  const url = value.slice(at + 1)
  const badName = ServiceNameSchema.safeParse(name)
  if (!badName.success) throw new Error(badName.error.issues[0]?.message ?? 'invalid name')
  const parsed = parseUpstreamUrl(url)
  if ('problem' in parsed) throw new Error(parsed.problem)
  return {name, url}
}

export function parseRoute(value: string): {path: string; service: string; auth: AuthMode} {
  const match = /^([^=]+)=([^:]+)(?::(.+))?$/.exec(value)
  if (!match) throw new Error('must be PATH=SERVICE or PATH=SERVICE:AUTH')
  const auth = (match[3] ?? 'none') as AuthMode
  if (!AUTH_MODES.includes(auth)) throw new Error(`auth must be one of ${AUTH_MODES.join(', ')}`)
  return {path: match[1]!, service: match[2]!, auth}
}

/** `PATH=TTL`: the TTL is checked here, the path against the routes once they are all known. */
export function parseCache(value: string): {path: string; ttl: string} {
  const at = value.lastIndexOf('=')
  if (at <= 0) throw new Error('must be PATH=TTL, e.g. /api/=30s')
  const ttl = value.slice(at + 1)
  const result = DurationSchema.safeParse(ttl)
  if (!result.success) throw new Error(`TTL ${result.error.issues[0]?.message ?? 'invalid'}`)
  return {path: value.slice(0, at), ttl}
}
