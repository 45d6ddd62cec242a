import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['runtime/**/*.test.ts', 'builder/**/*.test.ts', 'cli/**/*.test.ts', 'functions/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    env: { ORT_DISABLE_TELEMETRY: '1' },
  },
});
