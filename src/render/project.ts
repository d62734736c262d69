import {djangoServices, usesAuth} from '../manifest/model.js'
import {serializeManifest, MANIFEST_FILE} from '../manifest/load.js'
import type {Manifest} from '../manifest/schema.js'
import {PROJECT_PATHS} from '../manifest/stack.js'
import {renderCompose} from './compose.js'
import {renderDjangoService} from './django.js'
import {JWT_LEEWAY_SECONDS, renderGateway} from './gateway.js'
import {renderTemplate, type FilePlan} from './plan.js'
import {renderSecretFiles, type ProjectSecrets} from './secrets.js'
import {MINT_ONE_LINER, MINT_PYTHON_ONE_LINER} from './jwt-mint.js'

/**
 * manifest + secrets -> every file of the project except certificates (those come from certs/, which
 * needs key generation and may keep an existing CA). Pure: nothing is written here.
 */
/** When the README's systemd timer runs `certs renew`: twice a day, as Certbot recommends. */
export const RENEW_CALENDAR = '*-*-* 03,15:17:00'

export async function renderProject(manifest: Manifest, secrets: ProjectSecrets): Promise<FilePlan> {
  const plan: FilePlan = [
    {path: MANIFEST_FILE, content: serializeManifest(manifest)},
    renderCompose(manifest),
    {path: '.gitignore', content: await renderTemplate('project/gitignore.ejs', {})},
    {
      path: 'README.md',
      content: await renderTemplate('project/README.md.ejs', {
        manifest,
        django: djangoServices(manifest),
        basicAuth: usesAuth(manifest, 'basic'),
        apiKey: usesAuth(manifest, 'api-key'),
        jwt: usesAuth(manifest, 'jwt'),
        mintOneLiner: MINT_ONE_LINER,
        mintPython: MINT_PYTHON_ONE_LINER,
        jwtLeewaySeconds: JWT_LEEWAY_SECONDS,
        paths: PROJECT_PATHS,
        // Where the renewal schedule runs from: the usual place on a server, named after the project.
        projectDir: `/srv/${manifest.name}`,
        renewCalendar: RENEW_CALENDAR,
      }),
    },
    ...renderSecretFiles(manifest, secrets),
    ...(await renderGateway(manifest)),
    // Bind-mount sources must exist before the gateway starts, or the engine creates them root-owned.
    {path: `${PROJECT_PATHS.acmeWebroot}/.well-known/acme-challenge/.keep`, content: ''},
  ]
  for (const service of djangoServices(manifest)) plan.push(...(await renderDjangoService(manifest, service)))
  return plan
}
