import {UsageError} from '../../errors.js'

/** A compose file the model cannot reproduce fails loudly, saying where to model it, never silently differs. */

/** The loader meets a key or form it does not model. */
class ModelError extends UsageError {}

export function fail(where: string, message: string): never {
  throw new ModelError(`${where}: ${message}`, {
    hint: 'create-gateway computes the Compose v2 config hash itself (src/docker/compose/); this part of the compose file is not modelled there yet.',
  })
}

/** container.ts meets a setting it cannot create the way Compose does. */
export function unsupported(service: string, what: string): never {
  throw new UsageError(`services.${service}.${what}: create-gateway up cannot create this the way Compose does`, {
    hint: 'Map it in src/docker/compose/container.ts (from Compose v2 getCreateConfigs), or start the stack with `docker compose up`.',
  })
}
