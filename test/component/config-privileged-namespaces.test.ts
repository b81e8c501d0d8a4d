/** Host namespaces: a missing pid namespace, a mount namespace joined by path. */
import { privilegeSuite } from './config-privileged-harness'

privilegeSuite(
  'host namespaces',
  (s) => {
    s.linux!.namespaces = [{ type: 'ipc' }, { type: 'uts' }, { type: 'mount', path: '/proc/1/ns/mnt' }]
  },
  ['linux.namespaces'],
  ['no pid namespace', '/proc/1/ns/mnt'],
)
