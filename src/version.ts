// The package version, as a constant (a test keeps it equal to package.json's).
export const WEIGHTKIT_VERSION = '0.1.0';
