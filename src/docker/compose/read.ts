import {fail} from './errors.js'
import type {NormalizeOptions} from './model.js'

/** The loader's scalars: strings, numbers, lists, mappings, durations, byte sizes, `${VAR}`, each read as compose-go reads it. */

export type Raw = Record<string, unknown>

export function isRecord(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function text(value: unknown, where: string): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  return fail(where, `expected a string, got ${JSON.stringify(value)}`)
}

export function integer(value: unknown, where: string): number {
  const number = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value
  if (typeof number === 'number' && Number.isSafeInteger(number)) return number
  return fail(where, `expected an integer, got ${JSON.stringify(value)}`)
}

export function float(value: unknown, where: string): number {
  const number = typeof value === 'string' ? Number(value) : value
  if (typeof number === 'number' && Number.isFinite(number)) return number
  return fail(where, `expected a number, got ${JSON.stringify(value)}`)
}

export function boolean(value: unknown, where: string): boolean {
  if (typeof value === 'boolean') return value
  if (value === 'true' || value === 'false') return value === 'true'
  return fail(where, `expected true or false, got ${JSON.stringify(value)}`)
}

/** A list of strings; a lone string is a list of one (compose-go's StringList). */
export function stringList(value: unknown, where: string, allowString = true): string[] {
  if (allowString && typeof value === 'string') return [value]
  if (!Array.isArray(value)) return fail(where, `expected a list, got ${JSON.stringify(value)}`)
  return value.map((item, index) => text(item, `${where}[${index}]`))
}

/** `KEY: value` or `- KEY=value` (compose-go's Mapping); values become strings. */
export function mapping(value: unknown, where: string): Record<string, string> {
  if (Array.isArray(value)) {
    return Object.fromEntries(
      value.map((item, index) => {
        const entry = text(item, `${where}[${index}]`)
        const at = entry.indexOf('=')
        return at === -1 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)]
      }),
    )
  }

  if (!isRecord(value)) return fail(where, `expected a mapping, got ${JSON.stringify(value)}`)
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [key, item === null ? '' : text(item, `${where}.${key}`)]),
  )
}

/** str2duration units, as compose-go parses `5s`, `1m30s`, `1h`, `2d`. */
const DURATION_UNITS: Record<string, number> = {
  ns: 1,
  us: 1_000,
  µs: 1_000,
  μs: 1_000,
  ms: 1_000_000,
  s: 1_000_000_000,
  m: 60_000_000_000,
  h: 3_600_000_000_000,
  d: 86_400_000_000_000,
  w: 604_800_000_000_000,
}

export function parseDuration(value: unknown, where: string): number {
  const input = typeof value === 'number' ? `${value}s` : text(value, where)
  if (input === '0') return 0
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w)/gy
  let total = 0
  let consumed = 0
  for (const match of input.matchAll(pattern)) {
    total += Number(match[1]) * DURATION_UNITS[match[2]!]!
    consumed = (match.index ?? 0) + match[0].length
  }

  if (consumed !== input.length || input.length === 0) fail(where, `not a duration: ${JSON.stringify(value)}`)
  return Math.round(total)
}

/** go-units RAMInBytes: `256m`, `1g`, `512MiB` (binary multiples), or a plain byte count. */
export function parseBytes(value: unknown, where: string): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?\s*$/i.exec(text(value, where))
  if (!match) return fail(where, `not a byte size: ${JSON.stringify(value)}`)
  const power = ['', 'k', 'm', 'g', 't', 'p'].indexOf(match[2]!.toLowerCase())
  return Math.trunc(Number(match[1]) * 1024 ** power)
}

/** Every string of a value, interpolated; keys stay as they are (Compose does not interpolate keys). */
export function interpolateAll(value: unknown, where: string, options: NormalizeOptions): unknown {
  if (typeof value === 'string') {
    if (!value.includes('$')) return value
    if (!options.interpolate) return fail(where, 'uses $ but no variables were given')
    return options.interpolate(value, where)
  }

  if (Array.isArray(value)) return value.map((item, index) => interpolateAll(item, `${where}[${index}]`, options))
  if (isRecord(value))
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, interpolateAll(item, `${where}.${key}`, options)]),
    )
  return value
}
