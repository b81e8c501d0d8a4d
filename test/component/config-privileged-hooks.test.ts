/** OCI hooks: programs run on the host as root. */
import { privilegeSuite } from './config-privileged-harness'

privilegeSuite(
  'hooks',
  (s) => {
    s.hooks = { prestart: [{ path: '/usr/bin/evil', args: ['evil'] }] }
  },
  ['hooks'],
  ['run programs on the host'],
)
