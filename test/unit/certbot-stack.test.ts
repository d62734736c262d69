import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {parse} from 'yaml'
import {describe, expect, it} from 'vitest'

import {ACME_DIRECTORIES, certbotIssueArgs, chooseAcmeServer, renewalServer} from '../../src/certs/certbot-rules.js'
import {certificateStatus, describeCertificateStatus} from '../../src/certs/certificate-status.js'
import {certbotContainerOptions} from '../../src/certs/certbot-container.js'
import {generateSelfSigned} from '../../src/certs/self-signed.js'
import {resolveAnswers} from '../../src/manifest/answers.js'
import {parseManifest} from '../../src/manifest/load.js'
import {buildManifest} from '../../src/manifest/from-answers.js'
import type {Manifest} from '../../src/manifest/schema.js'
import {buildStackSpec} from '../../src/manifest/stack.js'
import {composeObject} from '../../src/render/compose.js'
import type {FilePlan} from '../../src/render/plan.js'
import {renderProject} from '../../src/render/project.js'
import {generateSecrets} from '../../src/render/secrets.js'
import {tempDir} from '../helpers/cli.js'

/** The text of a rendered file in the plan; fails if the plan lacks it or holds it as bytes. */
function planText(plan: FilePlan, path: string): string {
  const content = plan.find((file) => file.path === path)?.content
  if (typeof content !== 'string')
    throw new Error(
      `${path}: expected a text file in the plan, got ${content === undefined ? 'no such file' : 'a Buffer'}`,
    )
  return content
}

function manifest(
  tls: Record<string, unknown> = {mode: 'certbot', email: 'ops@example.com'},
  images: Record<string, string> = {},
): Manifest {
  return parseManifest({
    version: 1,
    name: 'shop',
    domain: 'api.example.com',
    tls,
    services: {web: {kind: 'django', replicas: 2}},
    routes: [{path: '/', service: 'web'}],
    images,
  })
}

describe('the certbot service in the stack and the compose file', () => {
  it('exists only in certbot mode, under a profile, with certbot/ and the webroot mounted read-write', () => {
    expect(buildStackSpec(manifest({mode: 'self-signed'})).tools).toEqual([])
    const compose = composeObject(manifest()) as {services: Record<string, Record<string, unknown>>}
    expect(compose.services.certbot).toEqual({
      image: 'certbot/certbot:v5.1.0',
      profiles: ['certbot'],
      command: ['renew', '--non-interactive', '--no-random-sleep-on-renew'],
      volumes: [
        './certbot/config:/etc/letsencrypt',
        './certbot/work:/var/lib/letsencrypt',
        './certbot/logs:/var/log/letsencrypt',
        './acme-webroot:/var/www/acme',
      ],
    })
    // The gateway still reads the same webroot, read-only.
    expect(compose.services.gateway!.volumes).toContain('./acme-webroot:/var/www/acme:ro')
    // `up` starts stack.services only: certbot is not one of them.
    expect(buildStackSpec(manifest()).services.map((spec) => spec.service)).toEqual(['web', 'gateway'])
  })

  it('uses images.certbot, which init sets from --certbot-image', async () => {
    expect(buildStackSpec(manifest(undefined, {certbot: 'registry.internal/certbot:2.11'})).tools[0]!.image).toBe(
      'registry.internal/certbot:2.11',
    )
    const answers = await resolveAnswers({
      dir: '/tmp/x',
      yes: true,
      flags: {
        tls: 'certbot',
        email: 'ops@example.com',
        domain: 'api.example.com',
        'certbot-image': 'create-gateway-offline/certbot:bookworm',
      },
    })
    expect(buildManifest(answers).images.certbot).toBe('create-gateway-offline/certbot:bookworm')
    await expect(resolveAnswers({dir: '/tmp/x', yes: true, flags: {'certbot-image': 'Not An Image'}})).rejects.toThrow(
      /--certbot-image: must be an image reference/,
    )
  })

  it('keeps certbot/ out of git', async () => {
    const plan = await renderProject(manifest(), generateSecrets(manifest()))
    expect(planText(plan, '.gitignore').split('\n')).toContain('certbot/')
    expect(parse(planText(plan, 'docker-compose.yml')).services.certbot.profiles).toEqual(['certbot'])
  })

  it('runs certbot as a Compose one-off container on the project network', () => {
    const options = certbotContainerOptions({
      engine: undefined as never,
      dir: '/srv/shop',
      manifest: manifest(),
      args: ['certificates'],
      name: 'shop-certbot-run-abc',
      processEnv: {CREATE_GATEWAY_RUN_ID: 'r1'},
    })
    expect(options).toMatchObject({
      name: 'shop-certbot-run-abc',
      Image: 'certbot/certbot:v5.1.0',
      Cmd: ['certificates'],
      HostConfig: {NetworkMode: 'shop_default'},
      NetworkingConfig: {EndpointsConfig: {shop_default: {Aliases: ['certbot']}}},
    })
    expect(options.Labels).toMatchObject({
      'com.docker.compose.project': 'shop',
      'com.docker.compose.service': 'certbot',
      'com.docker.compose.oneoff': 'True',
      'dev.create-gateway.run-id': 'r1',
    })
  })
})

describe("choosing the ACME server and certbot's arguments", () => {
  it("takes --server, else --staging, else the manifest, else Let's Encrypt production", () => {
    expect(chooseAcmeServer(manifest())).toBe(ACME_DIRECTORIES.production)
    expect(chooseAcmeServer(manifest(), {staging: true})).toBe(ACME_DIRECTORIES.staging)
    expect(chooseAcmeServer(manifest({mode: 'certbot', email: 'a@b.co', staging: true}))).toBe(ACME_DIRECTORIES.staging)
    expect(
      chooseAcmeServer(manifest({mode: 'certbot', email: 'a@b.co', acmeServer: 'https://acme.internal/dir'})),
    ).toBe('https://acme.internal/dir')
    expect(
      chooseAcmeServer(manifest({mode: 'certbot', email: 'a@b.co', acmeServer: 'https://acme.internal/dir'}), {
        server: 'https://pebble:14000/dir',
      }),
    ).toBe('https://pebble:14000/dir')
    expect(() => chooseAcmeServer(manifest(), {server: 'pebble'})).toThrow(
      /--server: must be the URL of an ACME directory/,
    )
  })

  it('asks for a webroot HTTP-01 certificate named after the domain, non-interactively', () => {
    expect(
      certbotIssueArgs({domain: 'api.example.com', email: 'ops@example.com', server: ACME_DIRECTORIES.staging}),
    ).toEqual([
      'certonly',
      '--webroot',
      '--webroot-path',
      '/var/www/acme',
      '--preferred-challenges',
      'http',
      '--cert-name',
      'api.example.com',
      '--domains',
      'api.example.com',
      '--email',
      'ops@example.com',
      '--agree-tos',
      '--no-eff-email',
      '--non-interactive',
      '--keep-until-expiring',
      '--server',
      ACME_DIRECTORIES.staging,
    ])
  })

  it("reads the server from certbot's renewal config", () => {
    expect(
      renewalServer(
        'version = 2.1.0\n[renewalparams]\naccount = abc\nserver = https://pebble:14000/dir\nauthenticator = webroot\n',
      ),
    ).toBe('https://pebble:14000/dir')
    expect(renewalServer('[renewalparams]\n')).toBeUndefined()
  })
})

describe('certificate status', () => {
  it('says how many days are left, and when the stand-in is still there', async () => {
    const dir = tempDir('cg-certstatus-')
    await mkdir(join(dir, 'certs'))
    const now = new Date()
    expect(describeCertificateStatus(await certificateStatus(dir, manifest()))).toContain(
      'certs/fullchain.pem is missing or unreadable: run `create-gateway certs issue`',
    )

    await writeFile(
      join(dir, 'certs', 'fullchain.pem'),
      (await generateSelfSigned({domain: 'api.example.com', temporary: true, now})).cert,
    )
    expect(describeCertificateStatus(await certificateStatus(dir, manifest()))).toBe(
      'Certificate: temporary self-signed stand-in; run `create-gateway certs issue` for the real one.',
    )

    await writeFile(
      join(dir, 'certs', 'fullchain.pem'),
      (await generateSelfSigned({domain: 'api.example.com', validDays: 20, now})).cert,
    )
    const status = await certificateStatus(dir, manifest(), now)
    expect(status).toMatchObject({temporary: false, daysLeft: 19, issuer: 'create-gateway local CA (api.example.com)'})
    expect(describeCertificateStatus(status)).toMatch(
      /^Certificate: issued by create-gateway local CA \(api\.example\.com\), 19 days left \(until \d{4}-\d\d-\d\d\) \(due: `create-gateway certs renew`\)\.$/,
    )
    expect(describeCertificateStatus(await certificateStatus(dir, manifest({mode: 'off'})))).toBe(
      'Certificate: none (tls.mode off).',
    )
  })
})

describe('verify --ca-file', () => {
  it('makes the tls check trust the given CA instead of the system store', async () => {
    const {projectTrust} = await import('../../src/verify/checks/tls.js')
    const dir = tempDir('cg-cafile-')
    const root = join(dir, 'pebble-root.pem')
    const pem = (await generateSelfSigned({domain: 'api.example.com'})).caCert
    await writeFile(root, pem)
    expect(await projectTrust(dir, manifest())).toEqual({label: 'system store'})
    expect(await projectTrust(dir, manifest(), root)).toEqual({ca: pem, label: root})
  })
})
