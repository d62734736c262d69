import {toConfiguredId, type Hook} from '@oclif/core'

import {closest} from '../util/closest.js'

/**
 * An unknown command: one `Error:` line naming the nearest command, as git and npm do, and exit 2
 * (bad usage). Never a prompt: a script that mistyped a command must not wait for an answer.
 */
const hook: Hook.CommandNotFound = async function ({id, config}) {
  const visible = config.commands.filter((command) => !command.hidden).map((command) => command.id)
  const typed = toConfiguredId(id, config)
  // `export kube`: the start of exactly one command; else the nearest name (`stauts`, `certs isue`).
  const started = visible.filter((command) => command.startsWith(id))
  const suggestion = started.length === 1 ? started[0] : closest(id, visible)
  // `certs issue extra`: no near name, but a command given words it does not take.
  const taker = visible.filter((command) => id.startsWith(`${command}:`)).sort((a, b) => b.length - a.length)[0]
  if (!suggestion && taker) {
    const name = toConfiguredId(taker, config)
    const extra = toConfiguredId(id.slice(taker.length + 1), config)
    process.stderr.write(`Error: ${name} takes no argument "${extra}"\nSee \`${config.bin} help ${name}\`.\n`)
    this.exit(2)
  }

  const topic = config.findTopic(id.split(':')[0] ?? '')
  const help = topic ? `${config.bin} help ${topic.name}` : `${config.bin} help`
  const mean = suggestion ? ` Did you mean ${toConfiguredId(suggestion, config)}?` : ''
  process.stderr.write(`Error: ${typed} is not a ${config.bin} command.${mean}\n\`${help}\` lists the commands.\n`)
  this.exit(2)
}

export default hook
