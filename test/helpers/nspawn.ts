// The harness lives in src/testbed (the demo uses it too); tests import it from here.
export * from '../../src/testbed/nspawn'
