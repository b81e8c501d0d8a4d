// The one place harness/daemons/engine.ts and test/e2e/real-engine.test.ts import the
// OCI layout writer and the nspawn test bed from. Fix these paths when they move.
export { writeOciLayout } from '../../src/oci/layout-writer'
export type { LayerEntry, WrittenImage } from '../../src/oci/layout-writer'
export { bootSystemd, systemdSkipReason } from '../../test/helpers/nspawn'
export type { SystemdContainer } from '../../test/helpers/nspawn'
