/**
 * The one place harness/daemons (and its e2e tests) reach into the rest of
 * the harness: the OCI layout writer and the nspawn test bed.
 */
export { writeOciLayout } from '../oci-layout-writer'
export type { LayerEntry, WrittenImage, ImageSpec } from '../oci-layout-writer'
export { bootSystemd, systemdSkipReason } from '../nspawn'
export type { SystemdContainer, ExecResult, Bind } from '../nspawn'
