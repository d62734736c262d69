import {defineConfig} from 'vitest/config'

/**
 * Three projects, run one group after the other (sequence.groupOrder): the unit tests (no engine) in
 * parallel, then the integration and end-to-end tests, which share one Docker engine and publish
 * ports on 127.0.0.1, one file at a time each (singleFork).
 */
const serial = {poolOptions: {forks: {singleFork: true}}}
// Starts the engine and builds the stand-in images when the selected files need them.
const engine = {globalSetup: ['test/global-setup.ts']}

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 300_000,
    projects: [
      {extends: true, test: {name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: {groupOrder: 0}}},
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          sequence: {groupOrder: 1},
          ...serial,
          ...engine,
        },
      },
      {
        extends: true,
        test: {name: 'e2e', include: ['test/e2e/**/*.test.ts'], sequence: {groupOrder: 2}, ...serial, ...engine},
      },
    ],
  },
})
