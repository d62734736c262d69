import {gatewayContainerName} from '../../manifest/model.js'
import {runningGateway} from '../../docker/spec.js'
import {fail, pass, type Check} from '../types.js'

/** Lines of `nginx -t` worth showing: all of them on failure, they are few. */
function outputLines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
}

export const configCheck: Check = {
  id: 'config',
  title: 'NGINX config test (nginx -t)',
  async run({manifest, engine}) {
    // By label, so a gateway that Compose started (named <project>_gateway_1 by v1) is found too.
    const gateway = runningGateway(await engine.containers())
    const container = gateway?.name ?? gatewayContainerName(manifest)
    const result = await engine.exec(container, ['nginx', '-t'])
    // nginx -t reports on stderr; keep stdout too in case an image redirects it.
    const lines = outputLines(`${result.stderr}\n${result.stdout}`)
    const data = {container, exitCode: result.exitCode, output: lines}
    if (result.exitCode !== 0) {
      return fail(
        [`nginx -t in ${container} exited with code ${result.exitCode}:`, ...lines.map((line) => `  | ${line}`)].join(
          '\n',
        ),
        data,
      )
    }

    return pass(`nginx -t in ${container}: syntax ok, test successful`, data)
  },
}
