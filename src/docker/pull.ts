import {OperationError} from '../errors.js'
import type {StackServiceSpec} from '../manifest/stack.js'
import {engineMessage, type Engine} from './engine.js'
import type {BuiltImage} from './images.js'
import type {Progress} from '../util/progress.js'

/** Where gateway.yaml names each role's image, as the hint of a missing image says it. */
const IMAGE_SETTING: Record<StackServiceSpec['role'], string> = {
  django: 'images.python in gateway.yaml (init --python-image)',
  gateway: 'images.nginx in gateway.yaml (init --nginx-image)',
  exporter: 'images.exporter in gateway.yaml (init --exporter-image)',
}

/** An image used as it is (the gateway's NGINX, the exporter): local if present, else one pull attempt. */
export async function ensureImage(engine: Engine, spec: StackServiceSpec, onProgress?: Progress): Promise<BuiltImage> {
  const local = await engine.image(spec.image)
  if (local) return {tag: spec.image, id: local.id, built: false}
  onProgress?.(`${spec.service}: ${spec.image} is not on this machine, pulling it`)
  try {
    await engine.pullImage(spec.image, (line) => onProgress?.(`${spec.service}: ${line}`))
  } catch (error) {
    const where = IMAGE_SETTING[spec.role]
    throw new OperationError(
      `Image ${spec.image} (${spec.service}) not found locally and the registry is unreachable (${engineMessage(error)})`,
      {
        hint: `Load or build it on this machine (fixtures/images/build.sh makes offline stand-ins), or set ${where} to an image the engine has.`,
        cause: error,
      },
    )
  }

  const pulled = await engine.image(spec.image)
  if (!pulled) throw new OperationError(`Pulled ${spec.image} (${spec.service}) but the engine does not list it`)
  return {tag: spec.image, id: pulled.id, built: false}
}
