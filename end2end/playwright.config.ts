import { defineConfig, devices } from "@playwright/test";

/**
 * Browser tests of the widget and the console, in Debian's Chromium (never a downloaded one).
 * `start-server.sh` (written with the server) starts a fresh Kefu on 8849 (or `KEFU_E2E_PORT`)
 * with the admin admin@example.com / e2e-password-123 and the default site embedded by /demo.
 */
const port = process.env.KEFU_E2E_PORT ?? "8849";
export default defineConfig({
  testDir: "./tests",
  outputDir: "test-results",
  workers: 1,
  fullyParallel: false,
  timeout: 60_000,
  expect: { timeout: 15_000 },
  reporter: [["list"]],
  use: {
    baseURL: process.env.KEFU_URL ?? `http://127.0.0.1:${port}`,
    launchOptions: {
      executablePath: "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
      ],
    },
    screenshot: "only-on-failure",
    trace: "retain-on-failure",
  },
  projects: [{ name: "chromium", use: { ...devices["Desktop Chrome"] } }],
  webServer: {
    command: "bash ./start-server.sh",
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 120_000,
  },
});
