import {EngineUnavailableError} from '../errors.js'

/** Turn a failed connection into one line that says what and what to do. */
export function unavailableError(error: unknown, endpoint: string): EngineUnavailableError | undefined {
  const code = (error as NodeJS.ErrnoException).code
  const fromEnv = process.env.DOCKER_HOST !== undefined
  const where = `${endpoint}${fromEnv ? ' (from DOCKER_HOST)' : ''}`
  const orHost = fromEnv ? ', or correct DOCKER_HOST' : ', or set DOCKER_HOST to where it listens'
  const line = (text: string) => new EngineUnavailableError(text, {cause: error})
  switch (code) {
    case 'ENOENT':
      return line(
        `Cannot reach the Docker engine: no socket at ${where}. Start it (\`sudo systemctl start docker\` or \`sudo dockerd &\`)${orHost}.`,
      )
    case 'EACCES':
    case 'EPERM':
      return line(
        `Cannot use the Docker engine: permission denied on ${where}. Add your user to the docker group (\`sudo usermod -aG docker $USER\`, then log in again) or run with sudo.`,
      )
    case 'ECONNREFUSED':
    case 'ECONNRESET':
      return line(`Cannot reach the Docker engine: ${where} refused the connection. Start dockerd${orHost}.`)
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return line(
        `Cannot reach the Docker engine: the host in ${where} does not resolve${fromEnv ? '. Correct DOCKER_HOST' : ''}.`,
      )
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return line(`Cannot reach the Docker engine at ${where} (${code}). Check that dockerd runs there${orHost}.`)
    default:
      return undefined
  }
}
