/**
 * Container names. Invariant: a name is safe as a unit name, a path component
 * (the deployment directory) and a runc container id.
 */
import { UsageError } from '../errors'

const NAME_CHARS = /^[A-Za-z0-9:_.@-]+$/
export const MAX_NAME_LENGTH = 200

/**
 * A container name is used as the unit name, the deployment directory and the
 * runc container id: [A-Za-z0-9:_.@-], 1..200 characters, not starting with
 * `-` or `.`, and not ending with `@` (that would name a systemd template unit).
 */
export function checkContainerName(name: string): void {
  let problem: string | undefined
  if (name.length === 0) problem = 'it is empty'
  else if (name.length > MAX_NAME_LENGTH) problem = `it is longer than ${MAX_NAME_LENGTH} characters`
  else if (!NAME_CHARS.test(name)) problem = 'only letters, digits and : _ . @ - are allowed'
  else if (name.startsWith('-') || name.startsWith('.')) problem = 'it cannot start with - or .'
  else if (name.endsWith('@')) problem = 'it cannot end with @ (that names a systemd template unit)'
  if (problem) {
    throw new UsageError('name.invalid', `invalid container name ${JSON.stringify(name)}: ${problem}`, {
      hint: 'choose a name like etcd or etcd-1',
      data: { name },
    })
  }
}
