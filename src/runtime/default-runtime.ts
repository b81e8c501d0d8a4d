/** The OCI runtime a container runs with unless `--runtime PATH` names another (install, provision, images info). */
export const DEFAULT_RUNTIME = '/usr/bin/runc'
