/** Capabilities beyond runc's default set. */
import { privilegeSuite } from './config-privileged-harness'

privilegeSuite(
  'extra capabilities',
  (s) => {
    s.process.capabilities!.bounding!.push('CAP_SYS_ADMIN')
    s.process.capabilities!.ambient = ['CAP_NET_ADMIN']
  },
  ['process.capabilities'],
  ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN'],
)
