/** All host devices allowed in the device cgroup. */
import { privilegeSuite } from './config-privileged-harness'

privilegeSuite(
  'all devices',
  (s) => {
    s.linux!.resources = { devices: [{ allow: true, access: 'rwm' }] }
  },
  ['linux.resources.devices[0]'],
  ['all host devices'],
)
