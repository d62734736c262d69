import type {Ulimit} from './model.js'

/** Go's encoding/json, as far as Compose's hash needs it: a value of a Go type -> Go's exact bytes. */

/** A Go type, as far as encoding/json cares. */
export type GoType =
  | 'string'
  | 'bool'
  | 'int'
  /** float32: Go prints the shortest decimal that reads back as the same float32. */
  | 'float32'
  /** compose-go's Duration: `time.Duration.String()` in quotes; the value is in nanoseconds. */
  | 'duration'
  /** compose-go's UnitBytes: the byte count as a decimal string in quotes. */
  | 'bytes'
  /** compose-go's FileMode: octal with a leading 0, in quotes. */
  | 'fileMode'
  /** compose-go's UlimitsConfig: a bare number when `single` is set, else the struct. */
  | 'ulimit'
  | {slice: GoType}
  | {map: GoType}
  /** A pointer: omitempty only leaves out nil (undefined here), never a zero value. */
  | {ptr: GoType}
  | {struct: StructType}

/** [JSON name, type, omitempty] in the struct's declaration order (fields with json:"-" left out). */
export type StructType = ReadonlyArray<readonly [string, GoType, boolean?]>

export const O = true // omitempty

/** Go's encoding/json escapes these for HTML safety by default; Compose hashes with that default. */
function goString(value: string): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

/** strconv.FormatFloat(f, 'f' or 'e', -1, 32), the way encoding/json writes a float32. */
export function goFloat32(value: number): string {
  const target = Math.fround(value)
  if (target === 0) return '0'
  let shortest = String(target)
  for (let precision = 1; precision <= 9; precision++) {
    const candidate = Number(target.toPrecision(precision))
    if (Math.fround(candidate) === target) {
      shortest = String(candidate)
      break
    }
  }

  const abs = Math.abs(target)
  if (abs >= 1e-6 && abs < 1e21) {
    // 'f' format: JavaScript may have chosen exponent notation for small magnitudes.
    return shortest.includes('e')
      ? Number(shortest)
          .toFixed(20)
          .replace(/\.?0+$/, '')
      : shortest
  }

  // 'e' format with a two-digit exponent at least, as Go writes it (1e-07, 1e+21).
  const [mantissa, exponent] = Number(shortest).toExponential().split('e') as [string, string]
  const sign = exponent.startsWith('-') ? '-' : '+'
  const digits = exponent.replace(/^[-+]/, '').padStart(2, '0')
  return `${mantissa}e${sign}${digits}`
}

/** time.Duration.String(): `1h2m3.5s`, `500ms`, `0s`. */
export function goDuration(nanoseconds: number): string {
  if (!Number.isSafeInteger(nanoseconds)) throw new Error(`duration out of range: ${nanoseconds}`)
  if (nanoseconds === 0) return '0s'
  const negative = nanoseconds < 0
  const ns = Math.abs(nanoseconds)
  let text: string
  if (ns < 1_000_000_000) {
    // Below a second: the largest unit that keeps the integer part non-zero.
    const [unit, size] = ns < 1_000 ? ['ns', 1] : ns < 1_000_000 ? ['µs', 1_000] : ['ms', 1_000_000]
    text = `${fraction(ns, size)}${unit}`
  } else {
    const hours = Math.floor(ns / 3_600_000_000_000)
    const minutes = Math.floor((ns % 3_600_000_000_000) / 60_000_000_000)
    const seconds = fraction(ns % 60_000_000_000, 1_000_000_000)
    text = hours > 0 ? `${hours}h${minutes}m${seconds}s` : minutes > 0 ? `${minutes}m${seconds}s` : `${seconds}s`
  }

  return negative ? `-${text}` : text
}

/** `value / size` with the fraction's trailing zeros dropped, as Go's fmtFrac does. */
function fraction(value: number, size: number): string {
  const whole = Math.floor(value / size)
  const rest = value % size
  if (rest === 0) return String(whole)
  const digits = String(size).length - 1
  return `${whole}.${String(rest).padStart(digits, '0').replace(/0+$/, '')}`
}

function isEmpty(value: unknown, type: GoType): boolean {
  if (value === undefined || value === null) return true
  if (typeof type === 'object' && 'ptr' in type) return false
  if (typeof type === 'object' && 'struct' in type) return false
  if (typeof type === 'object' && 'slice' in type) return (value as unknown[]).length === 0
  if (typeof type === 'object' && 'map' in type) return Object.keys(value as object).length === 0
  if (type === 'ulimit') return false
  return value === '' || value === false || value === 0
}

/** The JSON Go writes for `value` of Go type `type`; undefined stands for Go's zero value / nil. */
export function goJson(value: unknown, type: GoType): string {
  if (typeof type === 'object') {
    if ('ptr' in type) return value === undefined || value === null ? 'null' : goJson(value, type.ptr)
    if ('slice' in type) {
      if (value === undefined || value === null) return 'null'
      return `[${(value as unknown[]).map((item) => goJson(item, type.slice)).join(',')}]`
    }

    if ('map' in type) {
      if (value === undefined || value === null) return 'null'
      // Go writes map keys sorted (byte order of the UTF-8 keys).
      const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
        Buffer.compare(Buffer.from(a), Buffer.from(b)),
      )
      return `{${entries.map(([key, item]) => `${goString(key)}:${goJson(item, type.map)}`).join(',')}}`
    }

    const object = (value ?? {}) as Record<string, unknown>
    const parts: string[] = []
    for (const [key, fieldType, omitempty] of type.struct) {
      const field = object[key]
      if (omitempty && isEmpty(field, fieldType)) continue
      parts.push(`${goString(key)}:${goJson(field, fieldType)}`)
    }

    return `{${parts.join(',')}}`
  }

  switch (type) {
    case 'string':
      return goString((value as string | undefined) ?? '')
    case 'bool':
      return value ? 'true' : 'false'
    case 'int':
      return String((value as number | undefined) ?? 0)
    case 'float32':
      return goFloat32((value as number | undefined) ?? 0)
    case 'duration':
      return goString(goDuration((value as number | undefined) ?? 0))
    case 'bytes':
      return `"${(value as number | undefined) ?? 0}"`
    case 'fileMode':
      return `"0${((value as number | undefined) ?? 0).toString(8)}"`
    case 'ulimit': {
      const limit = value as Ulimit
      if (limit.single) return String(limit.single)
      return goJson(limit, {
        struct: [
          ['single', 'int', O],
          ['soft', 'int', O],
          ['hard', 'int', O],
        ],
      })
    }
  }
}
