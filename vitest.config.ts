import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          setupFiles: ['reflect-metadata'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'functional',
          include: ['test/functional/**/*.test.ts'],
          setupFiles: ['reflect-metadata'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          // Two cores: QEMU guests under TCG compete with the tests for CPU.
          maxWorkers: 2,
        },
      },
      {
        test: {
          name: 'resilience',
          include: ['test/resilience/**/*.test.ts'],
          setupFiles: ['reflect-metadata'],
          globalSetup: ['test/resilience/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 240_000,
          // Faults are injected into shared private services and timings are measured: one file at a time.
          fileParallelism: false,
          maxWorkers: 1,
        },
      },
    ],
    coverage: { provider: 'v8', include: ['src/**/*.ts'], reporter: ['text-summary', 'html'] },
  },
});
