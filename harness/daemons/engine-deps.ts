// The one place harness/daemons/engine.ts and test/e2e/real-engine.test.ts import the
// OCI layout writer and the nspawn test bed from.
export { writeOciLayout } from '../oci-layout-writer'
export type { LayerEntry, WrittenImage } from '../oci-layout-writer'
export { bootSystemd, systemdSkipReason } from '../nspawn'
export type { SystemdContainer } from '../nspawn'
