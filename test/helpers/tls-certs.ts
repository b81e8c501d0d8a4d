/**
 * A throwaway CA, a server certificate for 127.0.0.1 (IP SAN) and a client
 * certificate, made with openssl in `dir` for the registry TLS tests.
 */
import { execFile } from 'node:child_process'
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

export interface TestCerts {
  caCrt: string
  caKey: string
  serverCrt: string
  serverKey: string
  clientCert: string
  clientKey: string
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await execFileP('openssl', args, { cwd, timeout: 30_000 })
  } catch (err) {
    const e = err as { stderr?: string; message: string }
    throw new Error(`openssl ${args[0]} failed: ${e.stderr || e.message}`)
  }
}

async function signed(dir: string, name: string, cn: string, ext: string): Promise<void> {
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir)
  await fsp.writeFile(join(dir, `${name}.ext`), ext)
  await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir)
}

export async function makeTestCerts(dir: string): Promise<TestCerts> {
  await fsp.mkdir(dir, { recursive: true })
  await openssl(
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=sysctr test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  )
  await signed(dir, 'server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n')
  await signed(dir, 'client', 'sysctr-test-client', 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n')
  return {
    caCrt: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCrt: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
  }
}
