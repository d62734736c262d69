/**
 * NGINX configuration text -> directives, by the rules of NGINX's own lexer (ngx_conf_read_token in
 * src/core/ngx_conf_file.c): tokens split on whitespace, ";" and "{"; "}" closes a block only where a
 * token starts; quotes open only where a token starts; "\" escapes the next character; "#" starts a
 * comment only where a token starts; "${" keeps its brace. Written here rather than taken from npm:
 * the packages there (nginx-conf) keep a directive's arguments as one untokenized string and differ
 * from NGINX on quotes and comments, and NGINX's own parser (crossplane) is Python.
 *
 * It does not validate: `nginx -t` does. It exists to see what NGINX sees in a config it accepts.
 */

export interface Directive {
  name: string
  args: string[]
  /** Set for a block directive (`server { ... }`). */
  block?: Directive[]
  line: number
}

export class NginxParseError extends Error {}

export function parseNginxConfig(text: string): Directive[] {
  let pos = 0
  let line = 1

  /** One directive's words and how it ended, as ngx_conf_read_token returns them. */
  function readWords(): {words: string[]; end: ';' | '{' | '}' | 'eof'; line: number} {
    const words: string[] = []
    let start = 0
    let startLine = line
    let lastSpace = true
    let needSpace = false
    let dQuoted = false
    let sQuoted = false
    let quoted = false
    let comment = false
    let variable = false

    const push = (end: number) => words.push(unescape(text.slice(start, end)))

    while (pos < text.length) {
      const ch = text[pos++]!
      if (ch === '\n') {
        line++
        comment = false
      }

      if (comment) continue
      if (quoted) {
        quoted = false
        continue
      }

      const space = ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n'
      if (needSpace) {
        if (space) {
          lastSpace = true
          needSpace = false
          continue
        }

        if (ch === ';' || ch === '{') return {words, end: ch, line: startLine}
        if (ch === ')') {
          lastSpace = true
          needSpace = false
        } else throw new NginxParseError(`line ${line}: unexpected "${ch}"`)
      }

      if (lastSpace) {
        start = pos - 1
        startLine = line
        if (space) continue
        switch (ch) {
          case ';':
          case '{': {
            if (words.length === 0) throw new NginxParseError(`line ${line}: unexpected "${ch}"`)
            return {words, end: ch, line: startLine}
          }

          case '}': {
            if (words.length > 0) throw new NginxParseError(`line ${line}: unexpected "}"`)
            return {words, end: '}', line: startLine}
          }

          case '#': {
            comment = true
            continue
          }

          case '\\': {
            quoted = true
            lastSpace = false
            continue
          }

          case '"': {
            start++
            dQuoted = true
            lastSpace = false
            continue
          }

          case "'": {
            start++
            sQuoted = true
            lastSpace = false
            continue
          }

          case '$': {
            variable = true
            lastSpace = false
            continue
          }

          default: {
            lastSpace = false
          }
        }

        continue
      }

      if (ch === '{' && variable) continue
      variable = false
      if (ch === '\\') {
        quoted = true
        continue
      }

      if (ch === '$') {
        variable = true
        continue
      }

      let found = false
      if (dQuoted) {
        if (ch === '"') {
          dQuoted = false
          needSpace = true
          found = true
        }
      } else if (sQuoted) {
        if (ch === "'") {
          sQuoted = false
          needSpace = true
          found = true
        }
      } else if (space || ch === ';' || ch === '{') {
        lastSpace = true
        found = true
      }

      if (found) {
        push(pos - 1)
        if (ch === ';' || ch === '{') return {words, end: ch, line: startLine}
      }
    }

    if (dQuoted || sQuoted || !lastSpace || words.length > 0)
      throw new NginxParseError('unexpected end of file, expecting ";" or "}"')
    return {words, end: 'eof', line: startLine}
  }

  function readBlock(depth: number): Directive[] {
    const directives: Directive[] = []
    for (;;) {
      const {words, end, line: at} = readWords()
      if (end === 'eof') {
        if (depth > 0) throw new NginxParseError('unexpected end of file, expecting "}"')
        return directives
      }

      if (end === '}') {
        if (depth === 0) throw new NginxParseError(`line ${at}: unexpected "}"`)
        return directives
      }

      const [name, ...args] = words as [string, ...string[]]
      directives.push(end === '{' ? {name, args, block: readBlock(depth + 1), line: at} : {name, args, line: at})
    }
  }

  return readBlock(0)
}

/** A word as NGINX stores it: `\"`, `\'`, `\\`, `\t`, `\r`, `\n` unescaped, any other `\x` kept. */
function unescape(raw: string): string {
  const replacements: Record<string, string> = {'"': '"', "'": "'", '\\': '\\', t: '\t', r: '\r', n: '\n'}
  return raw.replace(/\\([\s\S])/g, (whole, next: string) => replacements[next] ?? whole)
}

/** Variables an argument reads: `$host`, `${host}`, `$1`. */
export function variablesOf(arg: string): string[] {
  return [...arg.matchAll(/\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g)].map((match) => match[1] ?? match[2]!)
}

/** Every directive of a tree, depth first, with the directives that enclose it. */
export function* walk(
  directives: Directive[],
  parents: Directive[] = [],
): Generator<{directive: Directive; parents: Directive[]}> {
  for (const directive of directives) {
    yield {directive, parents}
    if (directive.block) yield* walk(directive.block, [...parents, directive])
  }
}
