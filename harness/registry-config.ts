/**
 * The config.yml for Debian's docker-registry (the reference distribution
 * registry) as the tests and the demo run it: filesystem storage in a temp
 * dir, one loopback address, no access log, optional htpasswd auth.
 */
export interface RegistryConfigOptions {
  addr: string
  storageDir: string
  htpasswdFile?: string
  /** Serve https with this certificate/key (PEM files); clientCas: require a client certificate signed by one of these. */
  tls?: { certificate: string; key: string; clientCas?: string[] }
  /** Token auth (distribution token spec): the registry trusts JWTs whose x5c chain ends in rootCertBundle. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string }
}

export function registryConfig(opts: RegistryConfigOptions): string {
  const q = (s: string) => JSON.stringify(s)
  let auth = opts.htpasswdFile ? `auth:\n  htpasswd:\n    realm: sysctr-test\n    path: ${opts.htpasswdFile}\n` : ''
  if (opts.token) {
    const t = opts.token
    auth = `auth:\n  token:\n    realm: ${q(t.realm)}\n    service: ${q(t.service)}\n    issuer: ${q(t.issuer)}\n    rootcertbundle: ${q(t.rootCertBundle)}\n`
  }
  let tls = ''
  if (opts.tls) {
    tls = `  tls:\n    certificate: ${q(opts.tls.certificate)}\n    key: ${q(opts.tls.key)}\n`
    if (opts.tls.clientCas?.length) tls += `    clientcas:\n${opts.tls.clientCas.map((c) => `      - ${q(c)}\n`).join('')}`
  }
  return `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${opts.storageDir}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: ${opts.addr}
${tls}  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
${auth}`
}
