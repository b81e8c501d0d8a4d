/**
 * The one place harness/daemons reaches into the rest of the tree: the OCI
 * layout writer and the nspawn test bed. When the harness moves (src/oci,
 * src/testbed -> harness/), only these two lines change.
 */
export { writeOciLayout } from '../../src/oci/layout-writer'
export type { LayerEntry, WrittenImage, ImageSpec } from '../../src/oci/layout-writer'
export { bootSystemd, systemdSkipReason } from '../../test/helpers/nspawn'
export type { SystemdContainer, ExecResult, Bind } from '../../test/helpers/nspawn'
