import {spawnSync} from 'node:child_process'
import {existsSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {X509Certificate} from 'node:crypto'
import {parse} from 'yaml'
import {describe, expect, it} from 'vitest'

import {ensureComposeV2} from '../helpers/compose.js'
import {runCliAsync, tempDir} from '../helpers/cli.js'

const mode = (path: string) => statSync(path).mode & 0o777

describe('create-gateway init (the built CLI)', () => {
  it('--help lists every command with a summary', async () => {
    const help = await runCliAsync(['--help'])
    expect(help.status).toBe(0)
    for (const command of ['init', 'certs', 'up', 'down', 'status', 'logs', 'scale', 'verify', 'render'])
      expect(help.stdout).toMatch(new RegExp(`\\n\\s+${command}\\s+\\S`))
  })

  it('init --tls certbot listens where the CA can reach it, and its README gives a renewal schedule that parses', async () => {
    const dir = join(tempDir(), 'le-api')
    const result = await runCliAsync(['init', dir, '--yes', '--tls', 'certbot', '--email', 'ops@example.com'])
    expect(result.status, result.stderr).toBe(0)
    const manifest = parse(readFileSync(join(dir, 'gateway.yaml'), 'utf8'))
    expect(manifest.bind).toBe('0.0.0.0')
    expect(manifest.ports).toEqual({http: 80, https: 443})

    const readme = readFileSync(join(dir, 'README.md'), 'utf8')
    const cron = /^(\S+ \S+ \S+ \S+ \S+) (cd \/srv\/le-api && create-gateway certs renew .*)$/m.exec(readme)
    expect(cron?.[1]).toBe('17 3,15 * * *')
    expect(readme).toContain('ExecStart=/usr/bin/env create-gateway certs renew')
    const calendar = /^OnCalendar=(.+)$/m.exec(readme)![1]!
    const analyzed = spawnSync('systemd-analyze', ['calendar', calendar], {encoding: 'utf8'})
    expect(analyzed.status, analyzed.stderr).toBe(0)
    expect(analyzed.stdout).toMatch(/Normalized form: \*-\*-\* 03,15:17:00/)

    // Flags the user gave stay (a private CA such as Pebble may need loopback ports).
    const local = join(tempDir(), 'pebble-api')
    const kept = await runCliAsync([
      'init',
      local,
      '--yes',
      '--tls',
      'certbot',
      '--email',
      'ops@example.com',
      '--bind',
      '127.0.0.1',
      '--http-port',
      '8080',
      '--https-port',
      '8443',
    ])
    expect(kept.status, kept.stderr).toBe(0)
    expect(parse(readFileSync(join(local, 'gateway.yaml'), 'utf8'))).toMatchObject({
      bind: '127.0.0.1',
      ports: {http: 8080, https: 8443},
    })
  })

  it('init DIR --yes alone gives a working project', async () => {
    const dir = join(tempDir(), 'my-api')
    const result = await runCliAsync(['init', dir, '--yes'])
    expect(result.status, result.stderr).toBe(0)
    // Piped (not a terminal): the output names the file, never the password; no secret file is
    // readable by others, and the ones a container reads belong to its group.
    const password = readFileSync(join(dir, 'secrets/basic-auth.txt'), 'utf8').trim().split(':')[1]!
    expect(password.length).toBeGreaterThanOrEqual(20)
    expect(result.stdout).not.toContain(password)
    expect(result.stdout).toContain('basic auth  user gateway, password in secrets/basic-auth.txt')
    for (const file of readdirSync(join(dir, 'secrets')))
      expect(statSync(join(dir, 'secrets', file)).mode & 0o007, file).toBe(0)
    expect(statSync(join(dir, 'certs/privkey.pem')).mode & 0o077).toBe(0)
    // As root, the containers' groups; otherwise the user's own group, which the containers join.
    const root = process.getuid?.() === 0
    expect(statSync(join(dir, 'secrets/htpasswd')).gid).toBe(root ? 101 : process.getgid?.())
    expect(statSync(join(dir, 'secrets/web-secret-key')).gid).toBe(root ? 10001 : process.getgid?.())

    const manifest = parse(readFileSync(join(dir, 'gateway.yaml'), 'utf8'))
    expect(manifest.name).toBe('my-api')
    expect(manifest.routes).toEqual([
      {path: '/', service: 'web', auth: 'none'},
      {path: '/secure/', service: 'web', auth: 'basic'},
    ])
    expect(manifest.rateLimit).toEqual({rate: '10r/s', burst: 20, status: 503})

    for (const file of [
      'docker-compose.yml',
      '.env',
      '.gitignore',
      'README.md',
      'services/web/Dockerfile',
      'services/web/gunicorn.conf.py',
      'gateway/nginx.conf',
      'gateway/conf.d/upstreams.conf',
      'certs/fullchain.pem',
      'certs/ca.pem',
    ]) {
      expect(existsSync(join(dir, file)), file).toBe(true)
    }

    for (const secret of [
      '.env',
      'secrets/basic-auth.txt',
      'secrets/api-keys.txt',
      'secrets/api-keys.map',
      'secrets/jwt-secret.txt',
      'secrets/jwt-secret.map',
      'certs/privkey.pem',
    ])
      expect(mode(join(dir, secret)), secret).toBe(0o600)
    const ignored = readFileSync(join(dir, '.gitignore'), 'utf8')
    for (const entry of ['.env', 'secrets/', 'certs/']) expect(ignored).toContain(entry)
    expect(readFileSync(join(dir, 'gateway.yaml'), 'utf8')).not.toMatch(/SECRET|password/i)

    const cert = new X509Certificate(readFileSync(join(dir, 'certs/fullchain.pem')))
    expect(cert.subjectAltName).toContain('DNS:api.localhost')
    expect(cert.subjectAltName).toContain('DNS:localhost')
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1')
    expect(cert.checkIssued(new X509Certificate(readFileSync(join(dir, 'certs/ca.pem'))))).toBe(true)
  })

  it('the compose file passes a real `docker compose config` (Compose v2)', async () => {
    const dir = join(tempDir(), 'compose-check')
    expect(
      (
        await runCliAsync([
          'init',
          dir,
          '--yes',
          '--service',
          'student-api',
          '--external',
          'payment=https://payment.example.com',
          '--route',
          '/payment/=payment:api-key',
          '--route',
          '/private/=web:jwt',
        ])
      ).status,
    ).toBe(0)
    ensureComposeV2()
    const config = spawnSync('docker', ['compose', 'config'], {cwd: dir, encoding: 'utf8'})
    expect(config.status, config.stderr).toBe(0)
    const resolved = parse(config.stdout)
    expect(Object.keys(resolved.services).sort()).toEqual(['gateway', 'student-api', 'web'])
    expect(resolved.services.gateway.depends_on).toEqual({
      'student-api': {condition: 'service_healthy', restart: true, required: true},
      web: {condition: 'service_healthy', restart: true, required: true},
    })
    expect(resolved.services.gateway.ports).toEqual([
      {mode: 'ingress', host_ip: '127.0.0.1', target: 80, published: '8080', protocol: 'tcp'},
      {mode: 'ingress', host_ip: '127.0.0.1', target: 443, published: '8443', protocol: 'tcp'},
    ])
    expect(resolved.services.gateway.volumes).toContainEqual(
      expect.objectContaining({
        type: 'bind',
        source: join(dir, 'gateway/njs'),
        target: '/etc/nginx/njs',
        read_only: true,
      }),
    )
    // SECRET_KEY is a Compose secret (a file under /run/secrets/), not an environment value.
    expect(resolved.services.web.environment.DJANGO_SECRET_KEY).toBeUndefined()
    expect(resolved.services.web.environment.DJANGO_SECRET_KEY_FILE).toBe('/run/secrets/web-secret-key')
    expect(resolved.services.web.secrets).toEqual([{source: 'web-secret-key', target: '/run/secrets/web-secret-key'}])
    expect(resolved.secrets['web-secret-key']).toMatchObject({file: join(dir, 'secrets/web-secret-key')})
    expect(resolved.services.web).toMatchObject({
      read_only: true,
      cap_drop: ['ALL'],
      security_opt: ['no-new-privileges:true'],
    })
    expect(resolved.networks.internal).toMatchObject({internal: true})
    expect(readFileSync(join(dir, 'docker-compose.yml'), 'utf8')).not.toMatch(/^version:/m)
  })

  it.each([
    [['--name', 'Bad_Name'], /--name/],
    [['--domain', 'api example.com'], /--domain/],
    [['--http-port', '70000'], /--http-port/],
    [['--http-port', '8443'], /--https-port.*different/],
    [['--rate', '10/s'], /--rate/],
    [['--burst', '-1'], /--burst/],
    [['--route', '/x/=pay'], /--route.*no service named "pay"/],
    [['--route', '/=web', '--route', '/=web'], /--route.*duplicate path/],
    [['--route', '/x/=web:oauth'], /--route.*auth must be one of/],
    [['--replicas', '0'], /--replicas/],
    [['--external', 'payment=ftp://x.example.com'], /--external.*http/],
    [['--tls', 'letsencrypt'], /--tls/],
  ])('bad input %o exits 2, names the flag and writes nothing', async (flags, expected) => {
    const dir = join(tempDir(), 'bad')
    const result = await runCliAsync(['init', dir, '--yes', ...flags])
    expect(result.status).toBe(2)
    expect(result.stderr).toMatch(expected)
    expect(existsSync(dir)).toBe(false)
  })

  it.each([
    [['verify', '--ca-file', '/nonexistent/ca.pem'], /--ca-file/],
    [['certs', 'issue', '--ca-bundle', '/nonexistent/ca.pem'], /--ca-bundle/],
    [['logs', 'web', '--tail', 'abc'], /--tail/],
    [['up', '--timeout', '0'], /--timeout/],
  ])('a flag value oclif cannot parse (%o) exits 2 like every other bad input', async (args, expected) => {
    const result = await runCliAsync(args, {cwd: tempDir()})
    expect(result.status).toBe(2)
    expect(result.stderr).toMatch(expected)
  })

  it('without a terminal and without --yes it fails naming --yes, writing nothing', async () => {
    const dir = join(tempDir(), 'no-tty')
    const result = await runCliAsync(['init', dir])
    expect(result.status).toBe(2)
    expect(result.stderr).toMatch(/--yes/)
    expect(existsSync(dir)).toBe(false)
  })

  it('refuses a non-empty directory; --force overwrites only generated files and keeps secrets', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'notes.txt'), 'mine')
    const refused = await runCliAsync(['init', dir, '--yes'])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toMatch(/not empty.*\n.*--force/)
    expect(readdirSync(dir)).toEqual(['notes.txt'])

    expect((await runCliAsync(['init', dir, '--yes', '--force'])).status).toBe(0)
    const env = readFileSync(join(dir, '.env'), 'utf8')
    const password = readFileSync(join(dir, 'secrets/basic-auth.txt'), 'utf8')
    const jwtSecret = readFileSync(join(dir, 'secrets/jwt-secret.txt'), 'utf8')
    const ca = readFileSync(join(dir, 'certs/ca.pem'), 'utf8')
    writeFileSync(join(dir, 'gateway/nginx.conf'), '# edited')
    expect((await runCliAsync(['init', dir, '--yes', '--force', '--rate', '5r/s'])).status).toBe(0)
    expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine')
    expect(readFileSync(join(dir, '.env'), 'utf8')).toBe(env)
    expect(readFileSync(join(dir, 'secrets/basic-auth.txt'), 'utf8')).toBe(password)
    expect(readFileSync(join(dir, 'secrets/jwt-secret.txt'), 'utf8')).toBe(jwtSecret)
    expect(readFileSync(join(dir, 'secrets/jwt-secret.map'), 'utf8')).toBe(`default "${jwtSecret.trim()}";\n`)
    expect(readFileSync(join(dir, 'certs/ca.pem'), 'utf8')).toBe(ca)
    expect(readFileSync(join(dir, 'gateway/nginx.conf'), 'utf8')).not.toBe('# edited')
    expect(parse(readFileSync(join(dir, 'gateway.yaml'), 'utf8')).rateLimit.rate).toBe('5r/s')
  })

  it('render: a fresh project already matches its gateway.yaml; a bad edit exits 2 naming the field and writes nothing', async () => {
    const dir = join(tempDir(), 'my-api')
    expect((await runCliAsync(['init', dir, '--yes'])).status).toBe(0)
    const same = await runCliAsync(['render', '--dir', dir, '--dry-run'])
    expect(same.status, same.stderr).toBe(0)
    expect(same.stdout.trim()).toBe('my-api: every file already matches gateway.yaml (dry run).')

    const manifest = join(dir, 'gateway.yaml')
    writeFileSync(
      manifest,
      readFileSync(manifest, 'utf8')
        .replace('rate: 10r/s', 'rate: 5r/s')
        .replace('    service: web\n    auth: basic', '    service: pay\n    auth: basic'),
    )
    const limits = readFileSync(join(dir, 'gateway/conf.d/limits.conf'))
    const bad = await runCliAsync(['render', '--dir', dir])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toContain('routes[1].service: no service named "pay"')
    expect(readFileSync(join(dir, 'gateway/conf.d/limits.conf')).equals(limits)).toBe(true)
  })

  it('--dry-run lists the files and writes nothing', async () => {
    const dir = join(tempDir(), 'dry')
    const result = await runCliAsync(['init', dir, '--yes', '--dry-run'])
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/would write \d+ files/)
    expect(result.stdout).toContain('docker-compose.yml')
    expect(existsSync(dir)).toBe(false)
  })
})
