// The parser lives in harness/ (the demo uses it too); tests import it from here.
export { grantFlagsFrom } from '../../harness/grant-flags'
