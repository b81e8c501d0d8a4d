/** Privileged bind mounts: a read-write bind of the host's /, and the docker socket (even read-only). */
import { privilegeSuite } from './config-privileged-harness'

privilegeSuite(
  'privileged bind mounts',
  (s) => {
    s.mounts!.push({ destination: '/host', type: 'bind', source: '/', options: ['rbind', 'rw'] })
    s.mounts!.push({ destination: '/docker.sock', type: 'bind', source: '/var/run/docker.sock', options: ['bind', 'ro'] })
  },
  ['mounts[5]', 'mounts[6]'],
  ["host's / at /host", '/run/docker.sock'],
)
