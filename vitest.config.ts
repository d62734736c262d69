import {defineConfig} from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts the engine and builds the stand-in images when the selected files need them.
    globalSetup: ['test/global-setup.ts'],
    // End-to-end tests share one Docker engine and publish ports on 127.0.0.1: run files one at a time.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
})
