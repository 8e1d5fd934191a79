import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // a private temp root per run, removed at the end (tests create folders under os.tmpdir())
    globalSetup: ['test/global-tmp.ts'],
  },
});
