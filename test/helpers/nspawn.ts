// The nspawn test bed lives in harness/ (the demo uses it too); tests import it from here.
export * from '../../harness/nspawn'
